"""JSON answers of the HTTP API, written at once or to a request that was left open.

Shared by the API's handlers (`api`, `admin_api`) so every answer, errors included, has the
same shape: a JSON document, `{"error": ...}` for a failure.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web import server

log = Logger()


def encode(doc: Any) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


def reply(request: server.Request, code: int, doc: Any,
          headers: dict[str, str] | None = None) -> bytes:
    """Set the status and headers of a JSON answer; its body is returned."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    return encode(doc)


def error(request: server.Request, code: int, message: str, **extra: Any) -> bytes:
    return reply(request, code, {"error": message, **extra})


def finish(request: Any, body: bytes) -> None:
    """Answer a request that was left open (NOT_DONE_YET), unless the client went away."""
    if not request.finished and not getattr(request, "_disconnected", False):
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)  # a HEAD request's body is dropped by Twisted
        request.finish()


def internal(request: Any, failure: Failure, what: str) -> None:
    """An unexpected failure: its traceback to the log, a 500 JSON answer to the client."""
    log.failure("{what} failed", failure=failure, level=LogLevel.error, what=what)
    finish(request, error(request, 500, "internal error; see the server log"))


__all__ = ["encode", "error", "finish", "internal", "reply"]

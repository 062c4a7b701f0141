"""The status page at `/`: static HTML, CSS and JavaScript shipped in the package.

The page itself holds no data: its script polls the documented JSON API (`/v1/summary`,
`/v1/problems`, `/v1/hosts/{uuid}/events`), so anything it shows a script can get as well.
Nothing is loaded from elsewhere, and the Content-Security-Policy says so to the browser.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources

from twisted.web import server

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TYPES = {"html": b"text/html; charset=utf-8", "css": b"text/css; charset=utf-8",
         "js": b"text/javascript; charset=utf-8"}


@functools.cache
def _read(name: str) -> bytes:
    return (resources.files("stateless.daemon") / "static" / name).read_bytes()


def _serve(name: str) -> Callable[[server.Request, dict[str, str]], bytes]:
    def handler(request: server.Request, params: dict[str, str]) -> bytes:
        request.setHeader(b"content-type", TYPES[name.rsplit(".", 1)[1]])
        request.setHeader(b"content-security-policy", CSP.encode())
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-cache")
        return _read(name)

    return handler


# path -> GET handler, mounted by the API's route table
FILES = {
    "/": _serve("index.html"),
    "/static/status.css": _serve("status.css"),
    "/static/status.js": _serve("status.js"),
}

__all__ = ["FILES"]

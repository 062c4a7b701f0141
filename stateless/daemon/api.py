"""HTTP API: decode requests, hand them to the controller, encode its answers as JSON.

Nothing here decides anything; the controller owns policy, so the same decisions can be
tested without HTTP.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Protocol

import attrs
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import resource, server

from stateless.errors import NotFoundError, StatelessError
from stateless.model.birth import MAX_BODY, BirthError, BirthMessage, parse_birth
from stateless.model.identity import normalize_uuid


@attrs.frozen
class Accepted:
    host: str


@attrs.frozen
class Referral:
    site: str
    servers: tuple[dict[str, Any], ...]


@attrs.frozen
class Busy:
    retry_after: int


BirthOutcome = Accepted | Referral | Busy


@attrs.frozen
class Reapplying:
    host: str


@attrs.frozen
class OwnedElsewhere:
    owner: str
    url: str | None


ReapplyOutcome = Reapplying | OwnedElsewhere


class Controller(Protocol):
    def birth(self, message: BirthMessage, peer: str) -> defer.Deferred[BirthOutcome]: ...
    def hosts(self) -> list[dict[str, Any]]: ...
    def host(self, uuid: str) -> dict[str, Any]: ...
    def settled(self, uuid: str, timeout: float) -> defer.Deferred[dict[str, Any]]: ...
    def effective(self, uuid: str) -> dict[str, Any]: ...
    def locate(self, address: str) -> list[dict[str, Any]]: ...
    def health(self) -> dict[str, Any]: ...
    def reapply(self, uuid: str) -> defer.Deferred[ReapplyOutcome]: ...


def _json(request: server.Request, code: int, doc: Any, headers: dict[str, str] | None = None) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


def _error(request: server.Request, code: int, message: str, **extra: Any) -> bytes:
    return _json(request, code, {"error": message, **extra})


class _Leaf(resource.Resource):
    isLeaf = True

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller

    def render(self, request: server.Request) -> bytes | int:
        try:
            return super().render(request)
        except NotFoundError as exc:
            return _error(request, 404, str(exc))
        except StatelessError as exc:
            return _error(request, 400, str(exc))


class Birth(_Leaf):
    def render_POST(self, request: server.Request) -> bytes | int:
        length = request.getHeader(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return _error(request, 413, f"birth message larger than {MAX_BODY} bytes")
        assert request.content is not None
        body = request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return _error(request, 413, f"birth message larger than {MAX_BODY} bytes")
        try:
            message = parse_birth(body)
        except BirthError as exc:
            return _error(request, 400, "invalid birth message", fields=exc.errors)
        peer = request.getClientAddress()
        d = self.controller.birth(message, getattr(peer, "host", ""))
        d.addCallback(self._answer, request, message)
        d.addErrback(self._failed, request)
        return server.NOT_DONE_YET

    def _answer(self, outcome: BirthOutcome, request: Any, message: BirthMessage) -> None:
        uuid = message.identity.uuid
        if isinstance(outcome, Accepted):
            body = _json(request, 202, {"host": uuid, "status_url": f"/v1/hosts/{uuid}"})
        elif isinstance(outcome, Referral):
            body = _json(request, 200, {"referral": {"site": outcome.site,
                                                     "servers": list(outcome.servers)}})
        else:
            body = _json(request, 429, {"error": "too many births in progress; retry later",
                                        "retry_after": outcome.retry_after},
                         {"Retry-After": str(outcome.retry_after)})
        _finish(request, body)

    def _failed(self, failure: Failure, request: Any) -> None:
        if failure.check(StatelessError):
            body = _error(request, 503, f"birth not recorded: {failure.value}")
        else:
            body = _error(request, 500, "internal error; see the server log")
            failure.printTraceback()
        _finish(request, body)


def _finish(request: Any, body: bytes) -> None:
    if not request.finished and not getattr(request, "_disconnected", False):
        request.write(body)
        request.finish()


MAX_WAIT = 300.0  # seconds a status request may be held (?wait=)


class Hosts(_Leaf):
    """/v1/hosts, /v1/hosts/{uuid}[?wait=SECONDS], /v1/hosts/{uuid}/effective; POST
    /v1/hosts/{uuid}/apply"""

    def render_GET(self, request: server.Request) -> bytes | int:
        parts = [p.decode("utf-8", "replace") for p in request.postpath or () if p]
        if not parts:
            return _json(request, 200, {"hosts": self.controller.hosts()})
        try:
            uuid = normalize_uuid(parts[0])
        except StatelessError as exc:
            return _error(request, 404, str(exc))
        if len(parts) == 1:
            values = request.args.get(b"wait") if request.args else None
            if not values:
                return _json(request, 200, self.controller.host(uuid))
            text = values[0].decode("utf-8", "replace")
            try:
                wait = float(text)
            except ValueError:
                wait = -1.0
            if not 0 <= wait <= MAX_WAIT:  # also NaN
                return _error(request, 400, f"wait {text!r}: expected seconds from 0 to "
                              f"{MAX_WAIT:.0f}")
            return self._wait(request, uuid, wait)
        if parts[1:] == ["effective"]:
            return _json(request, 200, self.controller.effective(uuid))
        return _error(request, 404, "no such resource; see /v1/hosts/{uuid}[/effective]")

    def render_POST(self, request: server.Request) -> bytes | int:
        parts = [p.decode("utf-8", "replace") for p in request.postpath or () if p]
        if len(parts) != 2 or parts[1] != "apply":
            return _error(request, 404, "no such resource; see POST /v1/hosts/{uuid}/apply")
        try:
            uuid = normalize_uuid(parts[0])
        except StatelessError as exc:
            return _error(request, 404, str(exc))
        d = self.controller.reapply(uuid)  # NotFoundError (404) when unknown

        def answer(outcome: ReapplyOutcome) -> None:
            if isinstance(outcome, Reapplying):
                body = _json(request, 202, {"host": uuid, "status_url": f"/v1/hosts/{uuid}"})
            else:
                where = f" at {outcome.url}/v1/hosts/{uuid}/apply" if outcome.url else ""
                body = _error(request, 409, f"host {uuid} is owned by server {outcome.owner}; "
                              f"ask that server{where}", owner=outcome.owner,
                              owner_url=outcome.url)
            _finish(request, body)

        def failed(failure: Failure) -> None:
            if failure.check(StatelessError):
                _finish(request, _error(request, 503, f"re-apply not recorded: {failure.value}"))
                return
            failure.printTraceback()
            _finish(request, _error(request, 500, "internal error; see the server log"))

        d.addCallbacks(answer, failed)
        return server.NOT_DONE_YET

    def _wait(self, request: server.Request, uuid: str, wait: float) -> int:
        """Hold the answer until the host is no longer pending or applying (a long poll)."""
        d = self.controller.settled(uuid, wait)  # NotFoundError (404) when unknown
        request.notifyFinish().addErrback(lambda _: d.cancel())  # the client went away

        def failed(failure: Failure) -> None:
            if failure.check(defer.CancelledError):
                return
            if failure.check(NotFoundError):
                _finish(request, _error(request, 404, str(failure.value)))
                return
            failure.printTraceback()
            _finish(request, _error(request, 500, "internal error; see the server log"))

        d.addCallbacks(lambda doc: _finish(request, _json(request, 200, doc)), failed)
        return server.NOT_DONE_YET


class Locate(_Leaf):
    def render_GET(self, request: server.Request) -> bytes:
        values = request.args.get(b"ip") if request.args else None
        if not values:
            return _error(request, 400, "missing ?ip=ADDRESS")
        text = values[0].decode("utf-8", "replace")
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return _error(request, 400, f"ip {text!r}: not an IP address")
        return _json(request, 200, {"ip": text, "servers": self.controller.locate(text)})


class Health(_Leaf):
    def render_GET(self, request: server.Request) -> bytes:
        doc = self.controller.health()
        return _json(request, 200 if doc.get("ok") else 503, doc)


class Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)


def build_site(controller: Controller, registry: CollectorRegistry) -> server.Site:
    root = resource.Resource()
    v1 = resource.Resource()
    children: list[tuple[resource.Resource, bytes, resource.Resource]] = [
        (root, b"v1", v1),
        (v1, b"birth", Birth(controller)),
        (v1, b"hosts", Hosts(controller)),
        (v1, b"locate", Locate(controller)),
        (root, b"healthz", Health(controller)),
        (root, b"metrics", Metrics(registry)),
    ]
    for parent, name, child in children:
        parent.putChild(name, child)  # type: ignore[arg-type]  # zope interfaces are opaque to mypy
    site = server.Site(root)
    site.displayTracebacks = False
    return site

"""HTTP API: decode requests, hand them to the controller, encode its answers as JSON.

Nothing here decides anything; the controller owns policy, so the same decisions can be
tested without HTTP.  One leaf resource dispatches through a table of routes, so every answer,
errors included, is JSON (except /metrics, which is Prometheus text): an unknown path, a
method the path does not serve, a malformed UUID, oversized request headers and an exception
in a handler all get `{"error": ...}`, never a Twisted HTML page.  The admin changes to a
host are `admin_api`'s, the controller's answers `outcomes`', the JSON answers `replies`'.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Protocol

import attrs
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from stateless.daemon import status_page
from stateless.daemon.admin_api import AdminController, AdminHandlers, Params
from stateless.daemon.auth import Access, AdminAuth, Denied
from stateless.daemon.outcomes import Accepted, BirthOutcome, Quarantined, Referral, Refused, Signed
from stateless.daemon.replies import encode, error, finish, internal, reply
from stateless.errors import NotFoundError, StatelessError
from stateless.model.birth import MAX_BODY, BirthError, BirthMessage, parse_birth
from stateless.model.identity import normalize_uuid

log = Logger()

MAX_HEADER_BYTES = 16384  # request line and header fields together, as Twisted counts them
MAX_HEADERS = 100  # header fields in one request
MAX_WAIT = 300.0  # seconds a status request may be held (?wait=)


class Controller(AdminController, Protocol):
    """What the API asks of the controller (the engine)."""

    def birth(self, message: BirthMessage, peer: str,
              signed: Signed | None = None) -> defer.Deferred[BirthOutcome]: ...
    def hosts(self) -> list[dict[str, Any]]: ...
    def host(self, uuid: str) -> dict[str, Any]: ...
    def settled(self, uuid: str, timeout: float) -> defer.Deferred[dict[str, Any]]: ...
    def effective(self, uuid: str) -> dict[str, Any]: ...
    def locate(self, address: str) -> list[dict[str, Any]]: ...
    def health(self) -> dict[str, Any]: ...
    def events(self, uuid: str) -> dict[str, Any]: ...
    def summary(self) -> dict[str, Any]: ...
    def problems(self) -> dict[str, Any]: ...


Handler = Callable[[server.Request, Params], bytes | int]  # bytes, or NOT_DONE_YET
PARAMETERS: Mapping[str, Callable[[object], str]] = {"uuid": normalize_uuid}


@attrs.frozen
class Route:
    """A path template such as `/v1/hosts/{uuid}` and the handler of each method it serves.

    `{name}` segments are checked and normalized by `PARAMETERS[name]`; HEAD is served
    wherever GET is, as GET without the body.
    """

    template: str
    methods: Mapping[str, Handler]

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(part for part in self.template.split("/") if part)

    def allowed(self) -> list[str]:
        names = list(self.methods)
        return [*names, "HEAD"] if "GET" in names and "HEAD" not in names else names

    def handler(self, method: str) -> Handler | None:
        return self.methods.get(method) or (self.methods.get("GET") if method == "HEAD" else None)

    def match(self, parts: list[str]) -> Params | None:
        """The raw `{name}` values when `parts` has this route's shape, else None."""
        segments = self.segments
        if len(parts) != len(segments):
            return None
        params: Params = {}
        for segment, part in zip(segments, parts, strict=True):
            if segment.startswith("{") and segment.endswith("}"):
                params[segment[1:-1]] = part
            elif segment != part:
                return None
        return params


class Api(resource.Resource):
    """The one resource of the site: finds the route, checks the method and parameters."""

    isLeaf = True

    def __init__(self, routes: list[Route]) -> None:
        super().__init__()
        self.routes = routes

    def render(self, request: server.Request) -> bytes | int:
        segments = [p.decode("utf-8", "replace") for p in request.postpath or ()]
        path = ("/" + "/".join(segments))[:200]  # as decoded, for messages
        method = (request.method or b"").decode("ascii", "replace")
        try:
            body = self._dispatch(request, [p for p in segments if p], path, method)
        except NotFoundError as exc:
            body = error(request, 404, str(exc))
        except StatelessError as exc:
            body = error(request, 400, str(exc))
        except Exception:
            log.failure("{method} {path} failed", level=LogLevel.error, method=method, path=path)
            body = error(request, 500, "internal error; see the server log")
        if method == "HEAD" and isinstance(body, bytes):
            request.setHeader(b"content-length", b"%d" % len(body))
            return b""
        return body

    def _dispatch(self, request: server.Request, parts: list[str], path: str,
                  method: str) -> bytes | int:
        for route in self.routes:
            raw = route.match(parts)
            if raw is None:
                continue
            handler = route.handler(method)
            if handler is None:
                allowed = ", ".join(route.allowed())
                return reply(request, 405, {"error": f"{method} {path}: method not allowed; "
                                                     f"this path serves {allowed}"},
                             {"Allow": allowed})
            params: Params = {}
            for name, value in raw.items():
                try:
                    params[name] = PARAMETERS[name](value)
                except StatelessError as exc:
                    return error(request, 400, f"{path}: {exc}")
            return handler(request, params)
        known = ", ".join(route.template for route in self.routes)
        return error(request, 404, f"no such path {path}; the API serves {known}")


class Handlers:
    """What each route does: decode the request, ask the controller, encode its answer."""

    def __init__(self, controller: Controller, registry: CollectorRegistry,
                 auth: AdminAuth | None = None) -> None:
        self.controller = controller
        self.registry = registry
        self.auth = auth

    def birth(self, request: server.Request, params: Params) -> bytes | int:
        length = request.getHeader(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return error(request, 413, f"birth message larger than {MAX_BODY} bytes")
        assert request.content is not None
        body = request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return error(request, 413, f"birth message larger than {MAX_BODY} bytes")
        try:
            message = parse_birth(body)
        except BirthError as exc:
            return error(request, 400, "invalid birth message", fields=exc.errors)
        peer = request.getClientAddress()
        raw = request.getHeader(b"authorization")
        header = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        d = self.controller.birth(message, getattr(peer, "host", ""), Signed(header, body))
        d.addCallback(self._answer, request, message)
        d.addErrback(self._birth_failed, request)
        return server.NOT_DONE_YET

    def _status_url(self, uuid: str) -> str:
        """Where the agent waits for its host; with a token that reads this host only."""
        if self.auth is None or self.auth.public_read:
            return f"/v1/hosts/{uuid}"
        return f"/v1/hosts/{uuid}?token={self.auth.status_token(uuid)}"

    def _answer(self, outcome: BirthOutcome, request: Any, message: BirthMessage) -> None:
        uuid = message.identity.uuid
        if isinstance(outcome, Accepted):
            body = reply(request, 202, {"host": uuid, "status_url": self._status_url(uuid),
                                        "site": outcome.site, "closest": outcome.closest,
                                        "sites": list(outcome.sites)})
        elif isinstance(outcome, Quarantined):
            body = reply(request, 202, {"host": uuid, "state": "quarantined",
                                        "reason": outcome.reason,
                                        "status_url": self._status_url(uuid)})
        elif isinstance(outcome, Refused):
            body = error(request, outcome.status, outcome.reason)
        elif isinstance(outcome, Referral):
            body = reply(request, 200, {"referral": {"site": outcome.site,
                                                     "servers": list(outcome.servers),
                                                     "sites": list(outcome.sites)}})
        else:
            body = reply(request, 429, {"error": "too many births in progress; retry later",
                                        "retry_after": outcome.retry_after},
                         {"Retry-After": str(outcome.retry_after)})
        finish(request, body)

    @staticmethod
    def _birth_failed(failure: Failure, request: Any) -> None:
        if failure.check(StatelessError):
            finish(request, error(request, 503, f"birth not recorded: {failure.value}"))
        else:
            internal(request, failure, "POST /v1/birth")

    def hosts(self, request: server.Request, params: Params) -> bytes:
        return reply(request, 200, {"hosts": self.controller.hosts()})

    def host(self, request: server.Request, params: Params) -> bytes | int:
        """/v1/hosts/{uuid}[?wait=SECONDS]"""
        uuid = params["uuid"]
        values = request.args.get(b"wait") if request.args else None
        if not values:
            return reply(request, 200, self.controller.host(uuid))
        text = values[0].decode("utf-8", "replace")
        try:
            wait = float(text)
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= MAX_WAIT:  # also NaN
            return error(request, 400, f"wait {text!r}: expected seconds from 0 to {MAX_WAIT:.0f}")
        return self._wait(request, uuid, wait)

    def _wait(self, request: server.Request, uuid: str, wait: float) -> int:
        """Hold the answer until the host is no longer pending or applying (a long poll)."""
        d = self.controller.settled(uuid, wait)  # NotFoundError (404) when unknown
        request.notifyFinish().addErrback(lambda _: d.cancel())  # the client went away

        def failed(failure: Failure) -> None:
            if failure.check(defer.CancelledError):
                return
            if failure.check(NotFoundError):
                finish(request, error(request, 404, str(failure.value)))
                return
            internal(request, failure, f"GET /v1/hosts/{uuid}?wait")

        d.addCallbacks(lambda doc: finish(request, reply(request, 200, doc)), failed)
        return server.NOT_DONE_YET

    def events(self, request: server.Request, params: Params) -> bytes:
        return reply(request, 200, self.controller.events(params["uuid"]))

    def effective(self, request: server.Request, params: Params) -> bytes:
        return reply(request, 200, self.controller.effective(params["uuid"]))

    def locate(self, request: server.Request, params: Params) -> bytes:
        values = request.args.get(b"ip") if request.args else None
        if not values:
            return error(request, 400, "missing ?ip=ADDRESS")
        text = values[0].decode("utf-8", "replace")
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return error(request, 400, f"ip {text!r}: not an IP address")
        return reply(request, 200, {"ip": text, "servers": self.controller.locate(text)})

    def health(self, request: server.Request, params: Params) -> bytes:
        doc = self.controller.health()
        return reply(request, 200 if doc.get("ok") else 503, doc)

    def summary(self, request: server.Request, params: Params) -> bytes:
        return reply(request, 200, self.controller.summary())

    def problems(self, request: server.Request, params: Params) -> bytes:
        return reply(request, 200, self.controller.problems())

    def metrics(self, request: server.Request, params: Params) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)


def _refuse(request: server.Request, denied: Denied) -> bytes:
    extra = {"WWW-Authenticate": "Bearer"} if denied.status == 401 else None
    return reply(request, denied.status, {"error": denied.reason}, extra)


def routes(controller: Controller, registry: CollectorRegistry,
           auth: AdminAuth | None = None) -> list[Route]:
    """The API: one row per path, literal paths before templated ones of the same shape.

    With `auth`, host details need READ and changes WRITE (see `auth`); without it (tests of
    the API alone) every route is open.
    """
    h, a = Handlers(controller, registry, auth), AdminHandlers(controller)

    def need(access: Access, handler: Handler) -> Handler:
        return handler if auth is None else auth.guard(access, handler, refuse=_refuse)

    return [
        Route("/v1/birth", {"POST": h.birth}),
        Route("/v1/hosts", {"GET": need(Access.READ, h.hosts)}),
        Route("/v1/hosts/{uuid}", {"GET": need(Access.STATUS, h.host)}),
        Route("/v1/hosts/{uuid}/effective", {"GET": need(Access.READ, h.effective)}),
        Route("/v1/hosts/{uuid}/events", {"GET": need(Access.READ, h.events)}),
        Route("/v1/hosts/{uuid}/apply", {"POST": need(Access.WRITE, a.apply)}),
        Route("/v1/hosts/{uuid}/approve", {"POST": need(Access.WRITE, a.approve)}),
        Route("/v1/hosts/{uuid}/deny", {"POST": need(Access.WRITE, a.deny)}),
        Route("/v1/hosts/{uuid}/decommission", {"POST": need(Access.WRITE, a.decommission)}),
        Route("/v1/locate", {"GET": h.locate}),
        Route("/v1/summary", {"GET": need(Access.READ, h.summary)}),
        Route("/v1/problems", {"GET": need(Access.READ, h.problems)}),
        Route("/healthz", {"GET": h.health}),
        *(Route(path, {"GET": handler}) for path, handler in status_page.FILES.items()),
        Route("/metrics", {"GET": h.metrics}),
    ]


class Channel(http.HTTPChannel):
    """HTTP/1.1 whose header limits answer 431 (a malformed request 400) in JSON.

    Twisted's channel checks the same limits (`totalHeadersSize`, `maxHeaders`) but answers
    a bare 400, and LineReceiver drops a single line longer than `MAX_LENGTH` without any
    answer.  These checks run first with the same arithmetic, so Twisted's never fire.
    """

    totalHeadersSize = MAX_HEADER_BYTES
    maxHeaders = MAX_HEADERS
    MAX_LENGTH = MAX_HEADER_BYTES

    def lineReceived(self, line: bytes) -> None:
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse(431, f"request headers larger than {self.totalHeadersSize} bytes")
            return
        super().lineReceived(line)

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse(431, f"more than {self.maxHeaders} request header fields")
            return False
        return bool(super().headerReceived(line))

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._receivedHeaderSize == 0:  # nothing of this request counted yet: its first line
            self._refuse(414, f"request line longer than {self.MAX_LENGTH} bytes")
        else:
            self._refuse(431, f"request headers larger than {self.totalHeadersSize} bytes")

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Twisted's answer to a request it cannot parse, in JSON."""
        self._refuse(400, "malformed HTTP request")

    def _refuse(self, code: int, message: str) -> None:
        """Answer before any Request exists, then close: the rest of the input is not read."""
        body = encode({"error": message})
        head = (f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
        transport: Any = self.transport  # zope's ITransport.write confuses mypy
        if transport is not None:
            transport.write(head.encode() + body)
        self.loseConnection()


class Request(server.Request):
    """A failure that escapes the API (none should) still answers JSON; its traceback is logged."""

    def processingFailed(self, reason: Failure) -> Failure:
        log.failure("answering {uri} failed", failure=reason, level=LogLevel.error, uri=self.uri)
        if not self.startedWriting and not self.finished:
            body = error(self, 500, "internal error; see the server log")
            self.setHeader(b"content-length", b"%d" % len(body))
            self.write(body)
        if not self.finished:
            self.finish()
        return reason


class Site(server.Site):
    """The API's site: JSON for every answer, Twisted's own included."""

    # The channel itself, without Twisted's wrapper that only matters for HTTP/2 over TLS
    # (ALPN), which this site does not serve.
    protocol = Channel  # type: ignore[assignment]
    requestFactory = Request
    displayTracebacks = False


def build_site(controller: Controller, registry: CollectorRegistry, *,
               reactor: Any = None, boot: resource.Resource | None = None,
               auth: AdminAuth | None = None) -> server.Site:
    """The API site; `reactor` runs its connection timeouts (default: the global reactor);
    `boot` is mounted at /boot (see stateless.daemon.boot); `auth` guards the admin routes."""
    from stateless.daemon.boot import mount

    return Site(mount(Api(routes(controller, registry, auth)), boot), reactor=reactor)

"""The API's dispatch with Twisted's DummyRequest: routes, methods, parameters, error answers."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.test.requesthelper import DummyChannel, DummyRequest

from stateless.daemon.api import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    Api,
    Channel,
    Request,
    Route,
    Site,
    routes,
)
from stateless.daemon.outcomes import (
    Accepted,
    BirthOutcome,
    Busy,
    Quarantined,
    Referral,
    Refused,
    Signed,
)
from stateless.errors import NotFoundError, StatelessError
from stateless.model.birth import BirthMessage

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"


class Controller:
    """Answers from attributes a test sets; `boom` makes the synchronous calls raise it."""

    def __init__(self) -> None:
        self.outcome: defer.Deferred[BirthOutcome] = defer.succeed(Accepted(UUID))
        self.settle: defer.Deferred[dict[str, Any]] = defer.succeed({"host": UUID, "state": "compliant"})
        self.boom: Exception | None = None
        self.births: list[BirthMessage] = []
        self.signed: list[Signed | None] = []

    def _check(self) -> None:
        if self.boom is not None:
            raise self.boom

    def birth(self, message: BirthMessage, peer: str,
              signed: Signed | None = None) -> defer.Deferred[BirthOutcome]:
        self.births.append(message)
        self.signed.append(signed)
        return self.outcome

    def hosts(self) -> list[dict[str, Any]]:
        self._check()
        return [{"host": UUID}]

    def host(self, uuid: str) -> dict[str, Any]:
        self._check()
        return {"host": uuid, "state": "compliant"}

    def settled(self, uuid: str, timeout: float) -> defer.Deferred[dict[str, Any]]:
        return self.settle

    def effective(self, uuid: str) -> dict[str, Any]:
        self._check()
        return {"host": uuid}

    def locate(self, address: str) -> list[dict[str, Any]]:
        return []

    def health(self) -> dict[str, Any]:
        self._check()
        return {"ok": True}

    def summary(self) -> dict[str, Any]:
        self._check()
        return {"hosts": 0, "states": {}}

    def problems(self) -> dict[str, Any]:
        self._check()
        return {"problems": []}


@pytest.fixture
def controller() -> Controller:
    return Controller()


@pytest.fixture
def api(controller: Controller) -> Api:
    return Api(routes(controller, CollectorRegistry()))


@pytest.fixture
def logged() -> Any:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def call(api: Api, method: str, path: str, body: bytes | None = None,
         args: dict[bytes, list[bytes]] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Render like Twisted's Request.render: the returned body, or what was written later."""
    request = DummyRequest(path.encode().split(b"/")[1:])
    request.method = method.encode()
    request.content = io.BytesIO(body or b"")
    request.args = args or {}
    result = api.render(request)
    written = result if isinstance(result, bytes) else b"".join(request.written)
    assert isinstance(result, bytes) or result == server.NOT_DONE_YET
    headers = {k.decode().lower(): b", ".join(v).decode()
               for k, v in request.responseHeaders.getAllRawHeaders()}
    return request.responseCode or 200, headers, written


def doc(body: bytes) -> Any:
    return json.loads(body)


@pytest.mark.parametrize(("method", "path", "code", "allow"), [
    ("GET", "/nope", 404, None),
    ("GET", "/index.html", 404, None),
    ("GET", "/v1/hosts/x/y/z", 404, None),
    ("POST", "/v1/hosts", 405, "GET, HEAD"),
    ("DELETE", "/v1/hosts/" + UUID, 405, "GET, HEAD"),
    ("GET", "/v1/birth", 405, "POST"),
    ("PUT", "/healthz", 405, "GET, HEAD"),
    ("BREW", "/metrics", 405, "GET, HEAD"),
    ("GET", "/v1/hosts/not-a-uuid", 400, None),
    ("GET", "/v1/hosts/not-a-uuid/effective", 400, None),
])
def test_errors_are_json(api: Api, method: str, path: str, code: int, allow: str | None) -> None:
    status, headers, body = call(api, method, path)
    assert status == code
    assert headers["content-type"] == "application/json"
    assert isinstance(doc(body)["error"], str)
    assert headers.get("allow") == allow


def test_unknown_path_names_the_known_ones(api: Api) -> None:
    message = doc(call(api, "GET", "/v2/birth")[2])["error"]
    assert "/v2/birth" in message and "/v1/birth" in message and "/v1/hosts/{uuid}" in message


def test_malformed_uuid_names_the_value_and_the_form(api: Api) -> None:
    message = doc(call(api, "GET", "/v1/hosts/not-a-uuid")[2])["error"]
    assert "'not-a-uuid'" in message and "4c4c4544-0042-3510-8052-b4c04f4b4e31" in message


def test_uuid_is_normalized_before_the_controller_sees_it(api: Api) -> None:
    status, _, body = call(api, "GET", "/v1/hosts/" + UUID.upper())
    assert status == 200 and doc(body)["host"] == UUID


@pytest.mark.parametrize("path", ["/healthz", "/v1/hosts", "/v1/hosts/" + UUID, "/metrics",
                                  "/v1/hosts/" + UUID + "/effective", "/nope", "/v1/birth"])
def test_head_answers_like_get_without_a_body(api: Api, path: str) -> None:
    get_status, get_headers, get_body = call(api, "GET", path)
    status, headers, body = call(api, "HEAD", path)
    assert body == b""
    if path == "/v1/birth":
        assert (status, headers["allow"]) == (405, "POST")
    else:
        assert status == get_status
        assert headers["content-length"] == str(len(get_body))
        assert headers["content-type"] == get_headers["content-type"]


def test_head_of_a_long_poll_keeps_the_status_and_drops_the_body(api: Api,
                                                                  controller: Controller) -> None:
    controller.settle = defer.Deferred()
    request = DummyRequest([b"v1", b"hosts", UUID.encode()])
    request.method = b"HEAD"
    request.args = {b"wait": [b"5"]}
    assert api.render(request) == server.NOT_DONE_YET
    controller.settle.callback({"host": UUID, "state": "compliant"})
    assert request.finished and request.responseCode == 200
    assert request.responseHeaders.getRawHeaders(b"content-length") is not None


def test_routes_serve_their_documents(api: Api) -> None:
    assert call(api, "GET", "/v1/hosts")[2] and doc(call(api, "GET", "/v1/hosts")[2]) == {
        "hosts": [{"host": UUID}]}
    assert call(api, "GET", "/v1/hosts/")[0] == 200  # a trailing slash is the same path
    assert doc(call(api, "GET", "/v1/locate", args={b"ip": [b"10.0.0.1"]})[2]) == {
        "ip": "10.0.0.1", "servers": []}
    assert call(api, "GET", "/v1/locate", args={b"ip": [b"nope"]})[0] == 400
    assert call(api, "GET", "/v1/hosts/" + UUID, args={b"wait": [b"301"]})[0] == 400


@pytest.mark.parametrize(("outcome", "code", "retry_after"), [
    (Accepted(UUID), 202, None),
    (Referral("lyon", ({"name": "l1", "url": "http://l1:80", "priority": 0, "weight": 1},)), 200, None),
    (Busy(7), 429, "7"),
    (Quarantined(UUID, "waiting for approval"), 202, None),
    (Refused(401, "birth not authenticated: bad signature"), 401, None),
    (Refused(403, "birth refused: unknown host"), 403, None),
])
def test_birth_outcomes(api: Api, controller: Controller, outcome: BirthOutcome, code: int,
                        retry_after: str | None) -> None:
    controller.outcome = defer.succeed(outcome)
    status, headers, body = call(api, "POST", "/v1/birth", json.dumps({"uuid": UUID}).encode())
    assert status == code and headers["content-type"] == "application/json"
    assert headers.get("retry-after") == retry_after
    if isinstance(outcome, Referral):
        assert doc(body)["referral"]["site"] == "lyon"


def test_invalid_birth_is_400_with_fields(api: Api) -> None:
    status, _, body = call(api, "POST", "/v1/birth", b'{"colour": 1}')
    assert status == 400 and "colour" in doc(body)["fields"]


def test_birth_not_recorded_is_503(api: Api, controller: Controller) -> None:
    controller.outcome = defer.fail(StatelessError("directory ldap://x: down"))
    status, _, body = call(api, "POST", "/v1/birth", json.dumps({"uuid": UUID}).encode())
    assert status == 503 and "directory ldap://x: down" in doc(body)["error"]


@pytest.mark.parametrize("where", ["sync", "deferred-birth", "deferred-wait"])
def test_unexpected_errors_are_500_json_and_logged(api: Api, controller: Controller,
                                                   logged: list[LogEvent], where: str) -> None:
    boom = RuntimeError("boom")
    if where == "sync":
        controller.boom = boom
        status, headers, body = call(api, "GET", "/v1/hosts")
    elif where == "deferred-birth":
        controller.outcome = defer.fail(boom)
        status, headers, body = call(api, "POST", "/v1/birth", json.dumps({"uuid": UUID}).encode())
    else:
        controller.settle = defer.fail(boom)
        status, headers, body = call(api, "GET", "/v1/hosts/" + UUID, args={b"wait": [b"1"]})
    assert status == 500 and headers["content-type"] == "application/json"
    assert doc(body) == {"error": "internal error; see the server log"}
    failures = [e["log_failure"] for e in logged if "log_failure" in e]
    assert [f.value for f in failures] == [boom]


def test_controller_errors_map_to_404_and_400(api: Api, controller: Controller) -> None:
    controller.boom = NotFoundError("host x: unknown")
    assert call(api, "GET", "/v1/hosts/" + UUID)[0] == 404
    controller.boom = StatelessError("bad")
    assert call(api, "GET", "/v1/hosts/" + UUID + "/effective")[0] == 400


def test_one_more_route_is_one_more_row(controller: Controller) -> None:
    seen: list[str] = []

    def approve(request: server.Request, params: dict[str, str]) -> bytes:
        seen.append(params["uuid"])
        request.setResponseCode(202)
        return b"{}"

    table = [*routes(controller, CollectorRegistry()), Route("/v1/hosts/{uuid}/retire", {"POST": approve})]
    assert call(Api(table), "POST", f"/v1/hosts/{UUID.upper()}/retire")[0] == 202
    assert seen == [UUID]
    assert call(Api(table), "GET", f"/v1/hosts/{UUID}/retire")[1]["allow"] == "POST"


# -- the channel: header limits and malformed requests ------------------------------------------

def connect(request_factory: type[Request] = Request) -> tuple[Channel, StringTransport]:
    """A channel of the API's site on a string transport, timeouts on a fake clock."""
    site = Site(Api([]), reactor=Clock())
    site.requestFactory = request_factory
    channel = site.buildProtocol(None)
    assert isinstance(channel, Channel)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def feed(data: bytes) -> bytes:
    """What a `Channel` answers to `data` on a string transport (no request reaches a resource)."""
    channel, transport = connect()
    channel.dataReceived(data)
    assert transport.disconnecting  # refused requests close the connection
    return transport.value()


def _answer(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["content-length"] == str(len(body))
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(("data", "code", "words"), [
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20480 + b"\r\n\r\n", 431, "larger than"),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 1000) for i in range(20)) + b"\r\n",
     431, "larger than"),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: b\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n",
     431, f"more than {MAX_HEADERS}"),
    (b"GET /" + b"a" * (MAX_HEADER_BYTES + 10) + b" HTTP/1.1\r\n\r\n", 414, "request line"),
    (b"nonsense\r\n\r\n", 400, "malformed"),
    (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400, "malformed"),
])
def test_channel_refuses_in_json(data: bytes, code: int, words: str) -> None:
    status, headers, body = _answer(feed(data))
    assert status == code and headers["content-type"] == "application/json"
    assert words in body["error"]


def test_channel_accepts_headers_up_to_the_limits() -> None:
    """Exactly MAX_HEADERS fields, MAX_HEADER_BYTES in all, reach the resource."""
    request_line = b"GET /healthz HTTP/1.1"
    fields = [b"X-%03d: " % i for i in range(MAX_HEADERS)]
    room = MAX_HEADER_BYTES - len(request_line) - sum(len(f) for f in fields)
    fields[-1] += b"v" * room
    assert len(request_line) + sum(len(f) for f in fields) == MAX_HEADER_BYTES
    seen: list[int] = []

    class Counting(Request):
        def process(self) -> None:
            seen.append(len(list(self.requestHeaders.getAllRawHeaders())))
            self.setResponseCode(204)
            self.finish()

    channel, _ = connect(Counting)
    channel.dataReceived(request_line + b"\r\n" + b"\r\n".join(fields) + b"\r\n\r\n")
    assert seen == [MAX_HEADERS]


def test_processing_failed_answers_json() -> None:
    channel = DummyChannel()
    request = Request(channel)
    request.method, request.uri, request.clientproto = b"GET", b"/x", b"HTTP/1.1"
    request.processingFailed(Failure(RuntimeError("boom")))
    raw = channel.transport.written.getvalue()
    assert raw.startswith(b"HTTP/1.1 500 ")
    body = raw.partition(b"\r\n\r\n")[2]
    assert json.loads(body) == {"error": "internal error; see the server log"}

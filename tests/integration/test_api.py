"""The daemon's HTTP API over real HTTP: `build_site()` on a loopback port, a stub controller.

Every answer is JSON with `content-type: application/json` (but /metrics), errors included;
header limits answer 431 to a raw socket; an exception in a handler is a 500 JSON answer with
the traceback in the log, not on stderr.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.logger import LogEvent, globalLogPublisher

from stateless.daemon.outcomes import Busy
from stateless.errors import StatelessError
from tests.integration.fixtures_api import ApiServer, StubController, api_servers, referral

__all__ = ["api_servers"]  # the fixture, for pytest

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
BIRTH = json.dumps({"uuid": UUID, "macs": ["00:50:56:aa:bb:cc"]}).encode()


@pytest.fixture
def api(api_servers: list[ApiServer]) -> ApiServer:
    api_servers.append(ApiServer(StubController()))
    return api_servers[-1]


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


Answer = tuple[int, dict[str, str], bytes]


def ask(api: ApiServer, method: str, path: str, body: bytes | None = None) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        conn.request(method, path, body=body,
                     headers={"content-type": "application/json"} if body else {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def error_of(answer: Answer) -> str:
    status, headers, body = answer
    assert headers["content-type"] == "application/json", (status, headers)
    message = json.loads(body)["error"]
    assert isinstance(message, str) and message
    return message


def test_unknown_paths_are_404_json(api: ApiServer) -> None:
    for path in ("/index.html", "/nope", "/v1", "/v1/hosts/" + UUID + "/nope", "/v2/birth?x=1"):
        answer = ask(api, "GET", path)
        assert answer[0] == 404, path
        assert "no such path" in error_of(answer)


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/birth", "POST"),
    ("PUT", "/v1/birth", "POST"),
    ("HEAD", "/v1/birth", "POST"),
    ("POST", "/v1/hosts", "GET, HEAD"),
    ("DELETE", "/v1/hosts/" + UUID, "GET, HEAD"),
    ("POST", "/healthz", "GET, HEAD"),
    ("OPTIONS", "/metrics", "GET, HEAD"),
])
def test_wrong_method_is_405_json_with_allow(api: ApiServer, method: str, path: str,
                                              allow: str) -> None:
    status, headers, body = ask(api, method, path)
    assert status == 405 and headers["allow"] == allow
    assert headers["content-type"] == "application/json"
    if method == "HEAD":
        assert body == b""
    else:
        assert method in error_of((status, headers, body))


def test_head_answers_like_get_without_a_body(api: ApiServer) -> None:
    assert ask(api, "POST", "/v1/birth", BIRTH)[0] == 202
    for path in ("/healthz", "/v1/hosts", f"/v1/hosts/{UUID}", f"/v1/hosts/{UUID}?wait=1",
                 f"/v1/hosts/{UUID}/effective", "/metrics", "/nope", "/v1/hosts/nope"):
        get_status, get_headers, get_body = ask(api, "GET", path)
        status, headers, body = ask(api, "HEAD", path)
        assert (status, body) == (get_status, b""), path
        assert headers["content-type"] == get_headers["content-type"]
        assert headers["content-length"] == str(len(get_body))


def test_malformed_uuid_is_400_naming_value_and_form(api: ApiServer) -> None:
    for path in ("/v1/hosts/not-a-uuid", "/v1/hosts/not-a-uuid/effective"):
        answer = ask(api, "GET", path)
        assert answer[0] == 400
        message = error_of(answer)
        assert "'not-a-uuid'" in message and "4c4c4544-0042-3510-8052-b4c04f4b4e31" in message


def test_every_controller_answer_is_json(api: ApiServer) -> None:
    api.controller.outcomes.extend([referral("lyon", "http://127.0.0.1:1"), Busy(7),
                                    StatelessError("directory down")])
    status, headers, body = ask(api, "POST", "/v1/birth", BIRTH)
    assert status == 200 and json.loads(body)["referral"]["site"] == "lyon"
    status, headers, body = ask(api, "POST", "/v1/birth", BIRTH)
    assert status == 429 and headers["retry-after"] == "7" and json.loads(body)["retry_after"] == 7
    answer = ask(api, "POST", "/v1/birth", BIRTH)
    assert answer[0] == 503 and "directory down" in error_of(answer)
    answer = ask(api, "POST", "/v1/birth", b'{"uuid": 5}')
    assert answer[0] == 400 and "uuid" in json.loads(answer[2])["fields"]
    answer = ask(api, "POST", "/v1/birth", b"x" * 20000)
    assert answer[0] == 413 and error_of(answer)
    assert ask(api, "POST", "/v1/birth", BIRTH)[0] == 202
    for path in (f"/v1/hosts/{UUID}", "/healthz", "/v1/locate?ip=10.0.0.1"):
        status, headers, _ = ask(api, "GET", path)
        assert status == 200 and headers["content-type"] == "application/json"
    assert ask(api, "GET", "/metrics")[1]["content-type"].startswith("text/plain")


class Exploding(StubController):
    def hosts(self) -> list[dict[str, Any]]:
        raise RuntimeError("boom in hosts")


def test_an_exception_is_500_json_and_a_logged_traceback(api_servers: list[ApiServer],
                                                         logged: list[LogEvent],
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    api_servers.append(ApiServer(Exploding([RuntimeError("boom in birth")])))
    api = api_servers[-1]
    for method, path, body in (("GET", "/v1/hosts", None), ("POST", "/v1/birth", BIRTH)):
        answer = ask(api, method, path, body)
        assert answer[0] == 500
        assert error_of(answer) == "internal error; see the server log"
        assert b"boom" not in answer[2] and b"<html" not in answer[2].lower()
    failures = [str(event["log_failure"].value) for event in logged if "log_failure" in event]
    assert failures == ["boom in hosts", "boom in birth"]
    assert "Traceback" not in capfd.readouterr().err


def raw_exchange(api: ApiServer, data: bytes) -> bytes:
    """Send `data` on a raw socket and read until the server closes."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:  # closed with our unread input: what arrived still counts
            pass
    return out


def parse_raw(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize("shape", ["one field", "many fields", "too many fields"])
def test_oversized_headers_are_431_json(api: ApiServer, shape: str) -> None:
    if shape == "one field":
        fields = b"X-Big: " + b"a" * 20480 + b"\r\n"
    elif shape == "many fields":
        fields = b"".join(b"X-Field-%d: %s\r\n" % (i, b"b" * 1014) for i in range(20))
    else:
        fields = b"".join(b"X-Field-%d: c\r\n" % i for i in range(101))
    raw = raw_exchange(api, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields + b"\r\n")
    status, headers, doc = parse_raw(raw)
    assert status == 431 and headers["content-type"] == "application/json"
    assert "header" in doc["error"]
    # the server keeps serving
    assert ask(api, "GET", "/healthz")[0] == 200


def test_a_malformed_request_is_400_json(api: ApiServer) -> None:
    status, headers, doc = parse_raw(raw_exchange(api, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400 and headers["content-type"] == "application/json" and doc["error"]

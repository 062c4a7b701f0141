"""Bounded fuzzing of the daemon's own doors: a birth request (any body, any Authorization)
through the real route table into the engine, the admin gate's Authorization header, and a
stored quarantine claim. Only clear answers come out: a 4xx with a JSON error, never a 500."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from stateless.daemon.api import Api, routes
from stateless.daemon.auth import AdminAuth
from stateless.directory.quarantine import parse_claim
from stateless.errors import ValidationError
from stateless.model.inventory import Site
from stateless.security import enroll, seal
from tests.unit.engine_world import World, estate, world
from tests.unit.test_security_fuzz import _BIRTHISH, _HEADERISH


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Api]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    ring = seal.load_keyring(tmp / "k", create=True)
    key = enroll.new_key("default", ring, datetime(2026, 1, 1, tzinfo=UTC))
    w = world(tmp, attrs.evolve(estate(), sites={"default": Site("default",
                                                                 enroll_keys=(key.key,))}))
    w.engine.births._ring = ring
    auth = AdminAuth(token=b"0123456789abcdef0123", client_ca=False)
    return w, Api(routes(w.engine, CollectorRegistry(), auth))


def post(api: Api, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = DummyRequest(path.encode().split(b"/")[1:])
    request.method = b"POST"
    request.content = io.BytesIO(body)
    for name, value in headers.items():
        request.requestHeaders.addRawHeader(name.encode(), value.encode("utf-8", "surrogatepass"))
    result = api.render(request)
    written = result if isinstance(result, bytes) else b"".join(request.written)
    assert isinstance(result, bytes) or result == server.NOT_DONE_YET
    return request.responseCode or 200, written


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_BIRTHISH, header=st.one_of(st.none(), _HEADERISH))
def test_fuzz_births_through_the_api_get_clear_answers(keyed: tuple[World, Api], body: bytes,
                                                       header: str | None) -> None:
    w, api = keyed
    headers = {"Authorization": header} if header and "\n" not in header else {}
    status, answer = post(api, "/v1/birth", body, headers)
    w.settle()
    assert status in (400, 401, 413), answer  # no body here is signed with the site's key
    assert isinstance(json.loads(answer)["error"], str)
    assert w.directory.births == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.text(max_size=200).filter(lambda t: "\n" not in t and "\r" not in t))
def test_fuzz_the_admin_gate_refuses_clearly(keyed: tuple[World, Api], header: str) -> None:
    _, api = keyed
    status, answer = post(api, "/v1/hosts/4c4c4544-0042-3510-8052-b4c04f4b4e31/approve", b"",
                          {"Authorization": header} if header.strip() else {})
    assert status == 401 and json.loads(answer)["error"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.builds(json.dumps, st.dictionaries(
    st.sampled_from(["uuid", "serial", "macs", "thumbprint", "x"]),
    st.one_of(st.none(), st.text(max_size=40), st.lists(st.text(max_size=20), max_size=3)),
    max_size=5))))
def test_fuzz_a_stored_claim_reads_or_fails_clearly(text: str) -> None:
    try:
        claim = parse_claim(text)
    except ValidationError as exc:
        assert str(exc).startswith("statelessClaim")
        return
    assert claim.identity.uuid

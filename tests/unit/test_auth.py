"""The admin API's gate on the API's real routes: closed by default, a token or a client
certificate opens it, reads with `--public-read`, an agent's status token reads its host only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from stateless.daemon.api import Api, routes
from stateless.daemon.auth import AdminAuth, status_key
from stateless.daemon.config import DaemonConfig
from stateless.errors import StatelessError
from tests.unit.test_api import UUID, Controller

TOKEN = b"s3cret-token-0123456789"
OTHER = "4c4c4544-0042-3510-8052-b4c04f4b4e32"


def call(api: Api, method: str, path: str, headers: dict[str, str] | None = None,
         args: dict[bytes, list[bytes]] | None = None) -> tuple[int, bytes]:
    request = DummyRequest(path.encode().split(b"/")[1:])
    request.method = method.encode()
    request.content = io.BytesIO(b"")
    request.args = args or {}
    for name, value in (headers or {}).items():
        request.requestHeaders.addRawHeader(name.encode(), value.encode())
    result = api.render(request)
    body = result if isinstance(result, bytes) else b"".join(request.written)
    assert isinstance(result, bytes) or result == server.NOT_DONE_YET
    return request.responseCode or 200, body


class Admin(Controller):
    def reapply(self, uuid: str) -> Any:
        from twisted.internet import defer

        from stateless.daemon.outcomes import Reapplying

        return defer.succeed(Reapplying(uuid))


def api(**kw: Any) -> tuple[Api, AdminAuth]:
    auth = AdminAuth(**{"token": None, "client_ca": False, **kw})
    return Api(routes(Admin(), CollectorRegistry(), auth)), auth


OPEN = [("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/v1/locate?ip=10.0.0.1")]
READS = [("GET", "/v1/hosts"), ("GET", f"/v1/hosts/{UUID}"), ("GET", f"/v1/hosts/{UUID}/effective")]
WRITES = [("POST", f"/v1/hosts/{UUID}/apply")]


def _call(a: Api, method: str, path: str, **kw: Any) -> int:
    path, _, query = path.partition("?")
    args = {k.encode(): [v.encode()] for k, v in (p.split("=") for p in query.split("&") if p)}
    return call(a, method, path, args=args, **kw)[0]


def test_without_credentials_configured_the_admin_api_is_closed() -> None:
    a, _ = api()
    for method, path in OPEN:
        assert _call(a, method, path) == 200, path
    for method, path in READS + WRITES:
        status, body = call(a, method, path)
        assert status == 403 and b"neither --admin-token-file nor --client-ca" in body


def test_the_token_opens_reads_and_writes_and_nothing_else_does() -> None:
    a, _ = api(token=TOKEN)
    good = {"Authorization": "Bearer " + TOKEN.decode()}
    for method, path in READS + WRITES:
        assert call(a, method, path, good)[0] in (200, 202), path
        assert call(a, method, path)[0] == 401
        assert call(a, method, path, {"Authorization": "Bearer nope"})[0] == 401
        assert call(a, method, path, {"Authorization": "Basic eDp5"})[0] == 401


def test_public_read_opens_reads_only() -> None:
    a, _ = api(token=TOKEN, public_read=True)
    for method, path in READS:
        assert call(a, method, path)[0] == 200
    assert call(a, *WRITES[0])[0] == 401


def test_insecure_admin_opens_everything() -> None:
    a, _ = api(insecure_admin=True)
    for method, path in READS + WRITES:
        assert call(a, method, path)[0] in (200, 202)


def test_a_status_token_reads_its_own_host_only() -> None:
    a, auth = api(token=TOKEN)
    mine = {b"token": [auth.status_token(UUID).encode()]}
    assert call(a, "GET", f"/v1/hosts/{UUID}", args=mine)[0] == 200
    assert call(a, "GET", f"/v1/hosts/{OTHER}", args=mine)[0] == 401
    assert call(a, "GET", f"/v1/hosts/{UUID}/effective", args=mine)[0] == 401
    assert call(a, "POST", f"/v1/hosts/{UUID}/apply", args=mine)[0] == 401


def test_the_status_key_is_kept_and_the_token_file_checked(tmp_path: Path) -> None:
    assert status_key(tmp_path) == status_key(tmp_path)
    assert (tmp_path / "status.key").stat().st_mode & 0o777 == 0o600
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(StatelessError, match="at least 16"):
        AdminAuth.from_config(DaemonConfig(tmp_path, admin_token_file=short))
    with pytest.raises(StatelessError, match="No such file"):
        AdminAuth.from_config(DaemonConfig(tmp_path, admin_token_file=tmp_path / "none"))

"""The daemon's side of security end to end: real slapd, the simulator, statelessd processes
and the real agent.

Signed births (forged, stale and replayed ones leave no trace), identity pinning (a hijack of a
known UUID is quarantined while the real host keeps its record and vCenter object), admission
by approval, HTTPS with the agent pinning the CA, and the admin API's credentials.
"""

from __future__ import annotations

import io
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stateless.agent.signing import EnrollmentKey, parse_enrollment_key, sign
from stateless.cli import main
from stateless.security import pki
from tests.integration.fixtures_daemon import (
    ROOT,
    Daemon,
    Estate,
    hosts_by_name,
    identity,
    one_host,
    wait_for,
    wait_states,
)
from tests.integration.fixtures_vcsim import Vcsim

T1 = "AA:" * 19 + "01"
T2 = "BB:" * 19 + "02"


def stateless(where: Estate, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main([*argv], out=out, err=err, environ=where.env)
    return status, out.getvalue(), err.getvalue()


def enroll(where: Estate, site: str = "siteA") -> EnrollmentKey:
    """A new enrollment key for the site, as an admin makes and reveals it."""
    key = ("--secret-key-file", str(where.key_file))
    assert stateless(where, "enroll-key", "rotate", site, *key)[0] == 0
    status, out, err = stateless(where, "enroll-key", "show", site, "--reveal", "--json", *key)
    assert status == 0, err
    return parse_enrollment_key(json.loads(out)["keys"][0]["secret"])


def signed(d: Daemon, doc: dict[str, Any], key: EnrollmentKey, *, ts: int | None = None,
           site: str = "siteA") -> tuple[int, Any, dict[str, str]]:
    """A signed birth: (status, answer, the headers sent, for a replay)."""
    body = json.dumps(doc).encode()
    headers = {"content-type": "application/json",
               "Authorization": sign(body, site, key, int(time.time()) if ts is None else ts)}
    status, _, answer = d.request("POST", "/v1/birth", body, headers)
    return status, json.loads(answer), headers


def entry(where: Estate, uuid: str) -> dict[str, Any] | None:
    found = where.directory.read(where.directory.host_dn(uuid), "read host")
    return {k: [str(v) for v in vs] for k, vs in found.items()} if found else None


def allocated(where: Estate) -> list[str]:
    """Every address the pools hand out (statelessAllocated of each pool entry)."""
    found = where.directory.search(where.directory.ou("pools"), "(objectClass=statelessIpPool)",
                                   ("statelessAllocated",), "read pools")
    return sorted(str(v) for _, attrs in found for v in attrs.get("statelessAllocated", ()))


def start(daemons: Callable[..., Daemon], where: Estate, tmp: Path, name: str = "sd1",
          **kw: Any) -> Daemon:
    return daemons(tmp / name, where.slapd, where.base, where.key_file, name=name, site="siteA", **kw)


def test_forged_stale_and_replayed_births_leave_no_trace(
        estate: Estate, sim: Vcsim, daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    key = enroll(estate)
    d = start(daemons, estate, tmp_path)
    good, forged_host, stale_host, unsigned_host = (identity(n, "siteA") for n in (1, 2, 3, 4))
    status, answer, headers = signed(d, good, key)
    assert status == 202, answer
    wait_states(d, [good["uuid"]])
    pools_before = allocated(estate)

    forged = EnrollmentKey(key.key_id, b"\x01" * 32)
    assert signed(d, forged_host, forged)[:2] == (401, {
        "error": "birth not authenticated: bad signature: the body, a header field or the key "
                 "differs from what the host signed"})
    status, answer, _ = signed(d, stale_host, key, ts=int(time.time()) - 3600)
    assert status == 401 and "from the server's clock" in answer["error"]
    status, answer = d.birth(unsigned_host)
    assert status == 401 and "no Authorization header" in answer["error"]
    # The captured request again, to this server and to another of the site (after this one
    # recorded its nonce in the directory): a replay for both.
    body = json.dumps(good).encode()
    other = start(daemons, estate, tmp_path, "sd2")
    for server in (d, other):
        status, _, raw = server.request("POST", "/v1/birth", body, headers)
        assert status == 401 and b"a replayed birth" in raw
    # A body changed under a good signature.
    tampered = json.dumps({**good, "ipv4": "10.1.7.7"}).encode()
    assert d.request("POST", "/v1/birth", tampered, headers)[0] == 401

    for ident in (forged_host, stale_host, unsigned_host):
        assert entry(estate, ident["uuid"]) is None
        assert f"{ident['hostname']}.example.com" not in hosts_by_name(sim.connect())
    assert allocated(estate) == pools_before
    assert d.metrics()['stateless_births_total{outcome="unauthenticated"}'] == 5
    assert d.host(good["uuid"])["state"] == "compliant"  # nothing of this reached the host


def test_a_hijack_is_quarantined_and_the_real_host_keeps_its_record(
        estate: Estate, sim: Vcsim, daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    key = enroll(estate)
    d = start(daemons, estate, tmp_path)
    real = {**identity(1, "siteA"), "thumbprint": T1}
    assert signed(d, real, key)[0] == 202
    wait_states(d, [real["uuid"]])
    pinned = entry(estate, real["uuid"])
    assert pinned is not None and pinned["statelessPinnedThumbprint"] == [T1]
    assert pinned["statelessPinnedName"] == ["esx0001.example.com"]
    vc_host = one_host(sim.connect(), real)

    hijack = {**real, "thumbprint": T2, "serial": "EVIL", "hostname": "hijacked"}
    status, answer, _ = signed(d, hijack, key)
    assert status == 202 and answer["state"] == "quarantined"
    assert "thumbprint" in answer["reason"] and "serial" in answer["reason"]
    doc = d.host(real["uuid"])
    assert doc["state"] == "quarantined" and "pinned" in doc["reason"]
    after = entry(estate, real["uuid"])
    assert after is not None
    for attr in ("statelessSerial", "statelessHostname", "statelessThumbprint",
                 "statelessPinnedThumbprint", "statelessPinnedSerial", "statelessPinnedAt"):
        assert after.get(attr) == pinned.get(attr), attr
    names = hosts_by_name(sim.connect())
    assert "hijacked.example.com" not in names and "hijacked" not in names
    assert one_host(sim.connect(), real)._moId == vc_host._moId

    # A new UUID under the real host's name: quarantined too, never a second HostSystem.
    twin = {**identity(2, "siteA"), "hostname": real["hostname"], "thumbprint": T2}
    status, answer, _ = signed(d, twin, key)
    assert status == 202 and answer["state"] == "quarantined", answer
    assert "already known by the name" in answer["reason"]
    assert len(hosts_by_name(sim.connect())["esx0001.example.com"]) == 1
    status, out, err = stateless(estate, "hosts", "quarantined", "--json")
    assert {h["host"] for h in json.loads(out)["hosts"]} == {real["uuid"], twin["uuid"]}

    # Deny both: the twin's entry goes, the real host is applied again as pinned.
    token = ("--admin-token-file", str(d.state_dir / "admin.token"))
    status, out, err = stateless(estate, "hosts", "deny", real["uuid"], twin["uuid"], *token)
    assert status == 0, out + err
    assert entry(estate, twin["uuid"]) is None
    wait_states(d, [real["uuid"]])
    final = entry(estate, real["uuid"])
    assert final is not None and not final.get("statelessClaim"), final.get("statelessClaim")
    assert final["statelessPinnedThumbprint"] == [T1]
    assert one_host(sim.connect(), real)._moId == vc_host._moId


def test_approval_mode_quarantines_until_an_admin_approves(
        estate: Estate, sim: Vcsim, daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    key = enroll(estate)
    assert stateless(estate, "site", "admission", "siteA", "approval")[0] == 0
    d = start(daemons, estate, tmp_path)
    wait_for(lambda: estate.directory.snapshot().sites["siteA"].admission == "approval")
    host, other = ({**identity(n, "siteA"), "thumbprint": T1} for n in (5, 6))
    for ident in (host, other):
        status, answer, _ = signed(d, ident, key)
        assert status == 202 and answer["state"] == "quarantined", answer
    pools = allocated(estate)
    assert d.metrics()['stateless_hosts{state="quarantined"}'] == 2
    assert f"{host['hostname']}.example.com" not in hosts_by_name(sim.connect())
    # Re-booting changes nothing; admin calls need credentials.
    assert signed(d, host, key)[1]["state"] == "quarantined"
    path = f"/v1/hosts/{host['uuid']}/approve"
    assert d.request("POST", path, b"", admin=False)[0] == 401
    assert d.request("POST", path, b"", {"Authorization": "Bearer wrong-token-123456"})[0] == 401
    assert d.request("GET", f"/v1/hosts/{host['uuid']}", admin=False)[0] == 401
    assert d.request("GET", "/healthz", admin=False)[0] == 200
    assert allocated(estate) == pools

    token = ("--admin-token-file", str(d.state_dir / "admin.token"))
    status, out, err = stateless(estate, "hosts", "approve", host["uuid"], *token)
    assert status == 0 and "approved" in out, out + err
    wait_states(d, [host["uuid"]])
    assert one_host(sim.connect(), host) is not None
    assert entry(estate, host["uuid"])["statelessPinnedThumbprint"] == [T1]  # type: ignore[index]
    assert len(allocated(estate)) > len(pools)  # addresses only once approved
    status, out, _ = stateless(estate, "hosts", "deny", other["uuid"], *token)
    assert status == 0 and "deleted" in out
    assert entry(estate, other["uuid"]) is None
    assert stateless(estate, "hosts", "approve", host["uuid"], *token)[0] == 1  # not quarantined


@pytest.fixture
def tls(tmp_path: Path) -> Path:
    ca = tmp_path / "pki"
    pki.init_ca(ca)
    pki.issue(ca, "localhost", ips=["127.0.0.1"])
    pki.issue(ca, "alice", client=True)
    return ca


def test_https_serves_the_pinning_agent_and_takes_client_certificates(
        estate: Estate, sim: Vcsim, daemons: Callable[..., Daemon], tmp_path: Path,
        tls: Path) -> None:
    key = enroll(estate)
    context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    d = start(daemons, estate, tmp_path, context=context,
              extra=("--tls-cert", str(tls / "localhost.crt"), "--tls-key",
                     str(tls / "localhost.key"), "--client-ca", str(tls / "ca.crt")))
    assert d.url.startswith("https://127.0.0.1:")
    ident = identity(1, "siteA")
    path = tmp_path / "identity.json"
    path.write_text(json.dumps(ident))
    fingerprint = pki.fingerprint(pki.load_certificates(tls / "ca.crt")[0])
    proc = subprocess.run(
        [sys.executable, "-m", "stateless.agent", "--identity", str(path), "--state", "",
         "--server", d.url, "--wait-compliant", "--poll-interval", "0.2", "--timeout", "90",
         "--cmdline", f"stateless.site=siteA stateless.enroll-key={key.key_id}:"
                      f"{_b64(key.secret)} stateless.ca={fingerprint}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert d.host(ident["uuid"])["state"] == "compliant"

    # The admin API: a client certificate from the CA, or the token; nothing else.
    assert d.request("GET", "/v1/hosts", admin=False)[0] == 401
    with_cert = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    with_cert.load_cert_chain(tls / "alice.crt", tls / "alice.key")
    d2 = Daemon(d.name, d.site, d.url, d.state_dir, d.log, d.args, d.process, "", with_cert)
    assert d2.request("GET", "/v1/hosts")[0] == 200
    status, out, err = stateless(estate, "apply", ident["uuid"], "--client-cert",
                                 str(tls / "alice.crt"), "--client-key", str(tls / "alice.key"),
                                 "--ca-file", str(tls / "ca.crt"), "--wait", "60")
    assert status == 0, out + err


def _b64(secret: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


def test_accepted_nonces_are_recorded_in_the_directory(
        estate: Estate, daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """The replay store lives in the directory: a nonce entry per accepted birth."""
    key = enroll(estate)
    d = start(daemons, estate, tmp_path)
    ident = identity(1, "siteA")
    assert signed(d, ident, key)[0] == 202
    found = estate.directory.search(estate.directory.ou("nonces"),
                                    "(objectClass=statelessNonceRecord)", ("statelessSite",),
                                    "read nonces")
    assert [attrs["statelessSite"] for _, attrs in found] == [["siteA"]]

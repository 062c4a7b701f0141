"""Policy edits go to the policy write server; reads stay on the local replica (real mesh)."""

from __future__ import annotations

import io
import itertools

import ldap3

from stateless.cli import main
from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE
from tests.integration.fixtures_slapd import Mesh

_bases = itertools.count(1)


def _run(mesh: Mesh, base: str, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    conn = ["--bind-dn", mesh.bind_dn, "--password-file", str(mesh.providers[0].password_file),
            "--base", base]
    status = main([*conn, *argv], out=out, err=err, environ=env or {})
    return status, out.getvalue(), err.getvalue()


def _ntp(mesh: Mesh, url: str, base: str) -> str | None:
    """The policy's attributes on one replica, as text; None when it is not there."""
    conn = mesh.connect(url)
    try:
        if not conn.search(f"cn=Base,ou=policies,{base}", "(objectClass=*)", ldap3.BASE,
                           attributes=[ldap3.ALL_ATTRIBUTES]):
            return None
        return str(conn.entries[0].entry_attributes_as_dict)
    finally:
        conn.unbind()


def test_policy_edits_go_to_the_write_server_and_reads_stay_local(slapd_mesh: Mesh) -> None:
    m = slapd_mesh
    p1, p2, _p3 = (p.url for p in m.providers)
    base = f"ou=write{next(_bases)},{DEFAULT_BASE}"
    with Directory([p1], m.bind_dn, m.password, base=base) as d:
        d.init()
    m.wait_everywhere("the subtree", lambda url: m.read(url, f"ou=policies,{base}") is not None)
    status, _, err = _run(m, base, "--ldap", p2, "--write-server", p1, "policy", "create", "Base",
                          "--set", "ntp.servers=10.0.0.1")
    assert status == 0, err
    m.wait_everywhere("the created policy", lambda url: _ntp(m, url, base) is not None)

    m.partition({1}, {2, 3})
    try:
        # --write-server: the edit lands on provider 1 only; reads through provider 2 do not see it
        status, _, err = _run(m, base, "--ldap", p2, "--write-server", p1, "policy", "set", "Base",
                              "ntp.servers=10.0.0.2")
        assert status == 0, err
        assert "10.0.0.2" in str(_ntp(m, p1, base)) and "10.0.0.1" in str(_ntp(m, p2, base))
        status, shown, err = _run(m, base, "--ldap", p2, "policy", "show", "Base",
                                  env={"STATELESS_WRITE_SERVER": p1})
        assert status == 0 and "10.0.0.1" in shown, err
        # STATELESS_WRITE_SERVER does the same; --write-server overrides it
        status, _, err = _run(m, base, "--ldap", p2, "policy", "set", "Base", "ntp.servers=10.0.0.3",
                              env={"STATELESS_WRITE_SERVER": p1})
        assert status == 0, err
        assert "10.0.0.3" in str(_ntp(m, p1, base)) and "10.0.0.1" in str(_ntp(m, p2, base))
        status, _, err = _run(m, base, "--ldap", p1, "--write-server", p2, "policy", "set", "Base",
                              "ntp.servers=10.0.0.4", env={"STATELESS_WRITE_SERVER": p1})
        assert status == 0, err
        assert "10.0.0.4" in str(_ntp(m, p2, base)) and "10.0.0.3" in str(_ntp(m, p1, base))
        # without a write server, edits go where reads go
        status, _, err = _run(m, base, "--ldap", p1, "policy", "set", "Base", "ntp.servers=10.0.0.5")
        assert status == 0, err
        assert "10.0.0.5" in str(_ntp(m, p1, base))
    finally:
        m.heal()
    status, _, err = _run(m, base, "--ldap", p1, "--write-server", "http://x", "policy", "set",
                          "Base", "ntp.servers=10.0.0.6")
    assert status == 2 and "write server 'http://x': expected ldap://HOST[:PORT]" in err

"""`stateless dns records` against the real slapd, and `stateless agent bundle` run for real."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import dns.zone
import pytest

from stateless.cli import main
from stateless.directory.client import Directory
from tests.integration.fixtures_slapd import Slapd

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(slapd: Slapd, directory: Directory) -> Run:
    conn = ["--ldap", slapd.url, "--bind-dn", slapd.bind_dn, "--password-file",
            str(slapd.password_file), "--base", directory.base]

    def run(*argv: str, ok: bool = True, connect: bool = True) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main([*(conn if connect else []), *argv], out=out, err=err)
        if ok:
            assert status == 0, err.getvalue()
        return status, out.getvalue(), err.getvalue()

    return run


def servers(cli: Run) -> None:
    cli("site", "add", "paris", "--subnet", "10.1.0.0/16")
    cli("site", "add", "lyon", "--subnet", "10.2.0.0/16")
    cli("server", "add", "s1", "--site", "paris", "--url", "http://10.1.0.5:8080/")
    cli("server", "add", "s2", "--site", "lyon", "--url", "https://sl2.example.test/",
        "--priority", "10", "--weight", "50")


def test_dns_records_has_the_srv_lines_of_every_server(cli: Run) -> None:
    servers(cli)
    _, out, _ = cli("dns", "records", "--domain", "example.test")
    lines = out.splitlines()
    assert lines[0].startswith("; stateless servers for example.test.")
    assert set(lines[1:]) == {
        "_stateless._tcp.example.test. 300 IN SRV 0 100 8080 s1.example.test.",
        "_stateless._tcp.example.test. 300 IN SRV 10 50 443 sl2.example.test.",
        "_stateless._tcp.paris._sites.example.test. 300 IN SRV 0 100 8080 s1.example.test.",
        "_stateless._tcp.lyon._sites.example.test. 300 IN SRV 10 50 443 sl2.example.test.",
    }
    _, out, _ = cli("dns", "records", "--domain", "example.test", "--ttl", "60", "--a-records")
    assert "s1.example.test. 60 IN A 10.1.0.5" in out.splitlines()
    assert "_stateless._tcp.example.test. 60 IN SRV 0 100 8080 s1.example.test." in out
    # The lines are a valid zone body: dnspython parses them with an SOA and NS added.
    text = ("$ORIGIN example.test.\n@ 300 IN SOA ns1 admin 1 60 60 60 60\n@ 300 IN NS ns1\n"
            "ns1 300 IN A 127.0.0.1\n" + out)
    zone = dns.zone.from_text(text, origin="example.test.", relativize=False)
    srv = zone.find_rdataset("_stateless._tcp.lyon._sites.example.test.", "SRV")
    assert [(r.priority, r.weight, r.port, str(r.target)) for r in srv] == [
        (10, 50, 443, "sl2.example.test.")]


def test_dns_records_errors_are_one_line(cli: Run) -> None:
    saved = os.environ.pop("STATELESS_DOMAIN", None)
    try:
        status, _, err = cli("dns", "records", ok=False)
    finally:
        if saved is not None:
            os.environ["STATELESS_DOMAIN"] = saved
    assert status == 2 and err.count("\n") == 1 and "--domain" in err
    _, out, _ = cli("dns", "records", "--domain", "example.test")
    assert "no servers in the directory" in out
    status, _, err = cli("dns", "records", "--domain", "bad..name", ok=False)
    assert status == 1 and err.count("\n") == 1 and "domain name" in err


def test_agent_bundle_is_a_runnable_zipapp(cli: Run, tmp_path: Path) -> None:
    target = tmp_path / "agent.pyz"
    _, out, _ = cli("agent", "bundle", "-o", str(target), connect=False)
    assert f"wrote {target}" in out
    names = zipfile.ZipFile(target).namelist()
    assert "__main__.py" in names and "stateless/agent/cli.py" in names
    assert any(n.startswith("dns/") for n in names)
    run = subprocess.run([sys.executable, str(target), "--help"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "--identity" in run.stdout
    # Without the vendored dnspython the archive is the agent alone.
    slim = tmp_path / "slim.pyz"
    cli("agent", "bundle", "-o", str(slim), "--no-dnspython", connect=False)
    assert not any(n.startswith("dns/") for n in zipfile.ZipFile(slim).namelist())
    status, _, err = cli("agent", "bundle", "-o", str(tmp_path / "no" / "such" / "dir.pyz"),
                         ok=False, connect=False)
    assert status == 1 and err.count("\n") == 1 and "-o" in err

"""The `stateless` command against the real slapd: the issue's acceptance criteria."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from stateless.cli import main
from stateless.directory.client import Directory
from tests.integration.fixtures_slapd import Slapd
from tests.integration.test_directory import ldapmodify

ROOT = Path(__file__).resolve().parents[2]
H1 = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
H2 = "4c4c4544-0042-3510-8052-b4c04f4b4e32"

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(slapd: Slapd, directory: Directory) -> Run:
    """Run the CLI in-process against this test's subtree; returns (status, stdout, stderr)."""
    conn = ["--ldap", slapd.url, "--bind-dn", slapd.bind_dn, "--password-file",
            str(slapd.password_file), "--base", directory.base]

    def run(*argv: str, ok: bool = True) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main([*conn, *argv], out=out, err=err)
        if ok:
            assert status == 0, err.getvalue()
        return status, out.getvalue(), err.getvalue()

    return run


def build(cli: Run) -> None:
    cli("container", "add", "/DC1", "--kind", "datacenter")
    cli("container", "add", "/DC1/Prod", "--kind", "folder")
    cli("container", "add", "/DC1/Prod/ClusterA", "--kind", "cluster")
    cli("pool", "add", "vmo", "--range", "10.0.20.10-10.0.20.50", "--netmask", "255.255.255.0",
        "--gateway", "10.0.20.1")
    cli("policy", "create", "Baseline", "--description", "defaults", "--set", "ntp.servers=10.0.0.1,10.0.0.2",
        "--set", "lockdown.mode=normal", "--set", "service.TSM-SSH.policy=on")
    cli("policy", "create", "Network", "--set", "portgroup.vMotion.vswitch=vSwitch1",
        "--set", "portgroup.vMotion.vlan=20", "--set", "vmknic.vMotion.ip=pool:vmo",
        "--set", "vmknic.vMotion.services=vmotion")
    cli("policy", "create", "ClusterA-Net", "--set", "portgroup.vMotion.vlan=25")
    cli("policy", "create", "Security", "--set", "service.TSM-SSH.policy=off")
    cli("policy", "link", "Baseline", "/")
    cli("policy", "link", "Security", "/", "--order", "2", "--enforced")
    cli("policy", "link", "Network", "/DC1")
    cli("policy", "link", "ClusterA-Net", "/DC1/Prod/ClusterA")
    cli("host", "add", H1, "--path", "/DC1/Prod/ClusterA", "--answer", "dns.hostname=esx01")


def rsop(cli: Run, uuid: str = H1) -> dict:  # type: ignore[type-arg]
    return json.loads(cli("rsop", uuid, "--json")[1])  # type: ignore[no-any-return]


def test_cli_builds_inventory_and_rsop_has_values_and_provenance(cli: Run) -> None:
    build(cli)
    doc = rsop(cli)
    assert set(doc) >= {"host", "location", "settings", "errors", "removed"}
    assert (doc["host"], doc["location"], doc["errors"]) == (H1, "/DC1/Prod/ClusterA", [])
    s = doc["settings"]
    assert s["ntp.servers"] == {"value": ["10.0.0.1", "10.0.0.2"], "policy": "Baseline",
                                "linked_at": "/", "enforced": False, "overridden": []}
    assert s["portgroup.vMotion.vlan"] == {
        "value": 25, "policy": "ClusterA-Net", "linked_at": "/DC1/Prod/ClusterA", "enforced": False,
        "overridden": [{"policy": "Network", "linked_at": "/DC1", "value": 20}]}
    assert s["service.TSM-SSH.policy"]["value"] == "off"
    assert s["service.TSM-SSH.policy"]["enforced"] is True
    assert s["service.TSM-SSH.policy"]["overridden"] == [
        {"policy": "Baseline", "linked_at": "/", "value": "on"}]
    assert s["vmknic.vMotion.address"]["value"] == "10.0.20.10"  # allocated by `host add`
    assert s["dns.hostname"]["value"] == "esx01"
    _, text, _ = cli("rsop", H1)
    line = next(x for x in text.splitlines() if x.startswith("portgroup.vMotion.vlan"))
    assert line.split()[:4] == ["portgroup.vMotion.vlan", "25", "ClusterA-Net", "/DC1/Prod/ClusterA"]
    assert "Network@/DC1=20" in line


def test_plain_ldapmodify_edit_shows_in_rsop(cli: Run, slapd: Slapd, directory: Directory) -> None:
    build(cli)
    dn = directory.policy_dn("ClusterA-Net")
    result = ldapmodify(slapd, f"dn: {dn}\nchangetype: modify\nreplace: statelessPortGroup\n"
                               "statelessPortGroup: vMotion; vlan=42; teaming.active=vmnic1\n-\n"
                               "add: statelessAdvanced\nstatelessAdvanced: Net.TcpipHeapSize=32\n")
    assert result.returncode == 0, result.stderr
    s = rsop(cli)["settings"]
    assert s["portgroup.vMotion.vlan"]["value"] == 42
    assert s["portgroup.vMotion.teaming.active"] == {
        "value": ["vmnic1"], "policy": "ClusterA-Net", "linked_at": "/DC1/Prod/ClusterA",
        "enforced": False, "overridden": []}
    assert s["advanced.Net.TcpipHeapSize"]["value"] == 32
    link = directory.link_dn("Security", directory.container_dn("/"))
    assert ldapmodify(slapd, f"dn: {link}\nchangetype: modify\nreplace: statelessDisabled\n"
                             "statelessDisabled: TRUE\n").returncode == 0
    assert rsop(cli)["settings"]["service.TSM-SSH.policy"]["value"] == "on"


def test_schema_forbidden_values_are_rejected_by_slapd(cli: Run, slapd: Slapd,
                                                       directory: Directory) -> None:
    build(cli)
    link = directory.link_dn("Network", directory.container_dn("/DC1"))
    for attr, value in (("statelessOrder", "2nd"), ("statelessEnforced", "enforced")):
        result = ldapmodify(slapd, f"dn: {link}\nchangetype: modify\nreplace: {attr}\n{attr}: {value}\n")
        assert result.returncode == 21 and "Invalid syntax" in result.stderr, result.stderr
    assert rsop(cli)["settings"]["portgroup.vMotion.vswitch"]["linked_at"] == "/DC1"


def test_semantically_bad_value_is_reported_and_not_applied(cli: Run, slapd: Slapd,
                                                            directory: Directory) -> None:
    build(cli)
    dn = directory.policy_dn("ClusterA-Net")
    cli("policy", "set", "ClusterA-Net", "portgroup.Storage.vlan=30")
    result = ldapmodify(slapd, f"dn: {dn}\nchangetype: modify\nadd: statelessPortGroup\n"
                               "statelessPortGroup: Backup; vlan=5000\n")
    assert result.returncode == 0, result.stderr  # a valid Directory String: only the model knows
    doc = rsop(cli)
    errors = [e for e in doc["errors"] if e["dn"] == dn]
    assert errors == [{"dn": dn, "attribute": "statelessPortGroup", "value": "Backup; vlan=5000",
                       "reason": errors[0]["reason"]}]
    assert "4095" in errors[0]["reason"]
    s = doc["settings"]
    assert s["portgroup.vMotion.vlan"]["value"] == 20 and s["portgroup.vMotion.vlan"]["policy"] == "Network"
    assert "portgroup.Storage.vlan" not in s and "portgroup.Backup.vlan" not in s
    _, text, _ = cli("rsop", H1)
    assert "errors (the host is not applied until they are fixed" in text and "Backup; vlan=5000" in text
    _, shown, _ = cli("policy", "show", "ClusterA-Net", "--json")
    assert json.loads(shown)["problems"][0]["attribute"] == "statelessPortGroup"


@pytest.mark.parametrize(("argv", "status", "text"), [
    (["policy", "create", "P", "--set", "portgroup.vMotion.vlan=5000"], 1, "between 0 and 4095"),
    (["policy", "create", "P", "--set", "novalue"], 2, "expected KEY=VALUE"),
    (["policy", "create", "bad name"], 1, "policy name 'bad name'"),
    (["policy", "create", "P", "--set", "dns.hostname=esx01"], 1, "host-specific"),
    (["policy", "link", "Baseline", "/DC1", "--order", "x"], 2, "invalid int value"),
    (["policy", "link", "Baseline", "/DC1", "--order", "0"], 1, "link order 0"),
    (["policy", "link", "Nope", "/DC1"], 1, "policy Nope: not found"),
    (["policy", "link", "Baseline", "DC1"], 1, "must start with '/'"),
    (["policy", "delete", "Baseline"], 1, "still linked at /"),
    (["policy", "unset", "Baseline", "dns.servers"], 1, "does not set dns.servers"),
    (["container", "add", "/X/Y", "--kind", "folder"], 1, "parent /X does not exist"),
    (["container", "add", "/X", "--kind", "galaxy"], 2, "invalid choice"),
    (["host", "add", "zzz", "--path", "/DC1"], 1, "not a UUID"),
    (["host", "add", H1, "--path", "/DC1", "--answer", "dns.hostname=bad_label!"], 1, "host name"),
    (["host", "show", H2], 1, f"host {H2}: not in the directory"),
    (["pool", "add", "p", "--range", "10.0.0.9-10.0.0.1", "--netmask", "255.255.255.0"], 1, "reversed"),
    (["pool", "add", "p", "--range", "10.0.0.1", "--netmask", "255.255.255.0"], 2, "FIRST-LAST"),
    (["site", "add", "s", "--subnet", "10.0.0.0/33"], 1, "expected CIDR"),
    (["site", "link", "a", "b", "--cost", "5"], 1, "site a does not exist"),
    (["rules", "add", "r", "--match", "colour=red", "--location", "/DC1"], 1, "rule field 'colour'"),
    (["rules", "add", "r", "--match", "vendor=Dell*"], 1, "no location, image or policies"),
    (["rules", "test", "--identity", "/nonexistent.json"], 1, "identity file"),
    (["rsop", "not-a-uuid"], 1, "not a UUID"),
    (["frobnicate"], 2, "invalid choice"),
    ([], 2, "required"),
])
def test_bad_input_gives_one_clear_line(cli: Run, argv: list[str], status: int, text: str) -> None:
    cli("container", "add", "/DC1", "--kind", "datacenter")
    cli("policy", "create", "Baseline", "--set", "ntp.servers=10.0.0.1")
    cli("policy", "link", "Baseline", "/")
    code, _, err = cli(*argv, ok=False)
    assert code == status, err
    assert err.startswith("stateless: error: ") and err.count("\n") == 1, err
    assert text in err and "Traceback" not in err


def test_listing_and_show_commands(cli: Run) -> None:
    build(cli)
    cli("site", "add", "siteA", "--subnet", "10.1.0.0/16")
    cli("site", "add", "siteB", "--subnet", "10.2.0.0/16", "10.3.0.0/16")
    cli("site", "link", "siteA", "siteB", "--cost", "10")
    sites = json.loads(cli("site", "list", "--json")[1])
    assert sites["links"] == [{"a": "siteA", "b": "siteB", "cost": 10}]
    policies = {p["name"]: p for p in json.loads(cli("policy", "list", "--json")[1])}
    assert policies["Security"]["linked_at"] == ["/"]
    assert policies["Baseline"]["settings"]["ntp.servers"] == ["10.0.0.1", "10.0.0.2"]
    containers = json.loads(cli("container", "list", "--json")[1])
    assert [c["path"] for c in containers] == ["/", "/DC1", "/DC1/Prod", "/DC1/Prod/ClusterA"]
    host = json.loads(cli("host", "show", H1, "--json")[1])
    assert host["allocations"] == [{"item": "vmknic.vMotion", "pool": "vmo", "address": "10.0.20.10"}]
    assert H1 in cli("host", "list")[1]
    cli("policy", "unlink", "Security", "/")
    cli("policy", "delete", "ClusterA-Net", "--force")
    assert "ClusterA-Net" not in cli("policy", "list")[1]
    cli("policy", "remove", "Network", "ntp.servers")
    doc = rsop(cli)
    assert "ntp.servers" not in doc["settings"]
    assert [r["target"] for r in doc["removed"]] == ["ntp.servers"]
    assert cli("container", "block", "/DC1/Prod")[0] == 0
    assert "portgroup.vMotion.vlan" not in rsop(cli)["settings"]  # Network at /DC1 is blocked
    cli("container", "block", "/DC1/Prod", "--off")
    assert "key" in cli("settings")[1]


def test_rules_add_list_test_delete(cli: Run, tmp_path: Path) -> None:
    build(cli)
    cli("rules", "add", "prod-dell", "--order", "10", "--match", "vendor=Dell*", "--match",
        "ipv4=10.1.0.0/16", "--location", "/DC1/Prod/ClusterA", "--image", "esxi8", "--policy", "Security")
    cli("rules", "add", "default", "--order", "99", "--location", "/DC1")
    identity = tmp_path / "id.json"
    identity.write_text(json.dumps({"uuid": H2, "vendor": "Dell Inc.", "model": "PowerEdge R650",
                                    "ipv4": "10.1.2.3", "macs": ["00:50:56:aa:bb:cc"]}))
    result = json.loads(cli("rules", "test", "--identity", str(identity), "--json")[1])
    assert result["location"] == "/DC1/Prod/ClusterA" and result["image"] == "esxi8"
    assert result["policies"] == ["Security"] and result["matched"]["location"] == "prod-dell"
    assert [(m["rule"], m["wins"]) for m in result["matching"]] == [
        ("prod-dell", ["location", "image", "policies"]), ("default", [])]
    assert result["matching"][1]["gives"] == {"location": "/DC1"}
    text = cli("rules", "test", "--identity", str(identity))[1]
    assert "matching rules:" in text and "(earlier rules win)" in text
    identity.write_text(json.dumps({"uuid": H2, "vendor": "HPE", "ipv4": "10.1.2.3"}))
    assert json.loads(cli("rules", "test", "--identity", str(identity), "--json")[1])["location"] == "/DC1"
    assert [r["name"] for r in json.loads(cli("rules", "list", "--json")[1])] == ["prod-dell", "default"]
    cli("rules", "delete", "default")
    assert "default" not in cli("rules", "list")[1]
    identity.write_text(json.dumps({"uuid": H2, "colour": "red"}))
    code, _, err = cli("rules", "test", "--identity", str(identity), ok=False)
    assert code == 1 and "unknown field(s) colour" in err


def test_example_estate_loads_with_one_command(cli: Run) -> None:
    _, out, _ = cli("load", str(ROOT / "contrib" / "examples" / "estate.stateless"))
    assert "loaded" in out
    a = rsop(cli, H1)["settings"]
    b = rsop(cli, H2)["settings"]
    assert a["portgroup.vMotion.vlan"]["value"] == 20 and b["portgroup.vMotion.vlan"]["value"] == 21
    assert a["vmknic.vMotion.address"]["value"].startswith("10.1.20.")
    assert b["vmknic.vMotion.address"]["value"].startswith("10.2.20.")
    assert b["service.TSM-SSH.policy"]["value"] == "off" and b["service.TSM-SSH.policy"]["enforced"]
    assert a["ntp.servers"]["policy"] == "Baseline"
    assert rsop(cli, H1)["errors"] == [] and rsop(cli, H2)["errors"] == []


def test_load_reports_the_failing_line(cli: Run, tmp_path: Path) -> None:
    script = tmp_path / "bad.stateless"
    script.write_text("# comment\ncontainer add /DC1 --kind datacenter\n\n"
                      "policy create P --set portgroup.x.vlan=9999\n")
    code, _, err = cli("load", str(script), ok=False)
    assert code == 1 and f"{script}:4:" in err and "4095" in err


def test_directory_start_and_stop(tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["directory", "start", "--data", str(tmp_path / "d")], out=out) == 0
    try:
        exports = dict(line.removeprefix("export ").split("=", 1)
                       for line in out.getvalue().splitlines() if line.startswith("export "))
        assert exports["STATELESS_LDAP"].startswith("ldap://127.0.0.1:")
        d = Directory(exports["STATELESS_LDAP"], exports["STATELESS_BIND_DN"],
                      Path(exports["STATELESS_PASSWORD_FILE"]).read_text(), base=exports["STATELESS_BASE"])
        assert "/" in d.snapshot().containers
        d.close()
        again = io.StringIO()
        main(["directory", "start", "--data", str(tmp_path / "d")], out=again)
        assert "already running" in again.getvalue()
    finally:
        stopped = io.StringIO()
        assert main(["directory", "stop", "--data", str(tmp_path / "d")], out=stopped) == 0
    assert stopped.getvalue().startswith("stopped")


def _env(slapd: Slapd, base: str) -> dict[str, str]:
    return {**os.environ, "STATELESS_LDAP": slapd.url, "STATELESS_BIND_DN": slapd.bind_dn,
            "STATELESS_PASSWORD_FILE": str(slapd.password_file), "STATELESS_BASE": base}


def test_subprocess_with_environment(slapd: Slapd, directory: Directory) -> None:
    env = _env(slapd, directory.base)
    run = [sys.executable, "-m", "stateless.cli"]
    ok = subprocess.run([*run, "container", "add", "/DC1", "--kind", "datacenter"], env=env,
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    listed = subprocess.run([*run, "container", "list", "--json"], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert [c["path"] for c in json.loads(listed.stdout)] == ["/", "/DC1"]
    bad = subprocess.run([*run, "policy", "create", "P", "--set", "portgroup.x.vlan=5000"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_subprocess_unreachable_directory() -> None:
    env = {**os.environ, "STATELESS_LDAP": "ldap://127.0.0.1:1"}
    env.pop("STATELESS_PASSWORD_FILE", None)
    bad = subprocess.run([sys.executable, "-m", "stateless.cli", "policy", "list"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1, bad.stderr
    assert bad.stderr.startswith("stateless: error: ") and bad.stderr.count("\n") == 1
    assert "is the server running" in bad.stderr


def test_environment_is_the_one_passed_in(slapd: Slapd, directory: Directory,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATELESS_LDAP", "ldap://127.0.0.1:1")  # what the process has: unused
    out, err = io.StringIO(), io.StringIO()
    env = {"STATELESS_LDAP": slapd.url, "STATELESS_BIND_DN": slapd.bind_dn,
           "STATELESS_PASSWORD_FILE": str(slapd.password_file), "STATELESS_BASE": directory.base}
    assert main(["container", "list", "--json"], out=out, err=err, environ=env) == 0, err.getvalue()
    assert [c["path"] for c in json.loads(out.getvalue())] == ["/"]


@pytest.mark.parametrize(("ending", "status"), [("\n", 0), ("\r\n", 0), (" \n", 1)],
                         ids=["newline", "crlf", "trailing-space-is-part-of-it"])
def test_password_file_loses_only_its_line_ending(slapd: Slapd, directory: Directory,
                                                  tmp_path: Path, ending: str, status: int) -> None:
    password = tmp_path / "pw"
    password.write_bytes((slapd.password + ending).encode())
    out, err = io.StringIO(), io.StringIO()
    argv = ["--ldap", slapd.url, "--bind-dn", slapd.bind_dn, "--password-file", str(password),
            "--base", directory.base, "policy", "list"]
    assert main(argv, out=out, err=err) == status, err.getvalue()
    if status:
        assert "bind refused (invalid credentials)" in err.getvalue()


def test_missing_password_file_is_one_line(slapd: Slapd, tmp_path: Path) -> None:
    err = io.StringIO()
    argv = ["--ldap", slapd.url, "--password-file", str(tmp_path / "nope"), "policy", "list"]
    assert main(argv, out=io.StringIO(), err=err) == 1
    assert err.getvalue() == (f"stateless: error: password file {tmp_path / 'nope'}: No such file "
                              "or directory; give a readable file that holds the secret (mode "
                              "0600)\n")


def test_schema_dir_override_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATELESS_SCHEMA_DIR", str(tmp_path / "empty"))
    err = io.StringIO()
    assert main(["directory", "start", "--data", str(tmp_path / "d")], out=io.StringIO(), err=err) == 1
    assert err.getvalue() == (f"stateless: error: schema file {tmp_path / 'empty' / 'stateless.ldif'} "
                              "not found: set STATELESS_SCHEMA_DIR to a directory holding "
                              "stateless.ldif, or reinstall stateless\n")

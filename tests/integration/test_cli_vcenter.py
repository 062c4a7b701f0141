"""`stateless vcenter`, `apply` and `compliance` against the real slapd and the real simulator."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
from cryptography.fernet import Fernet
from pyVmomi import vim

from stateless.cli import main
from stateless.directory.client import Directory
from stateless.model.identity import HostIdentity
from stateless.policy import resolve
from stateless.prepare import digest
from stateless.security.seal import load_keyring
from tests.integration.fixtures_slapd import Slapd
from tests.integration.fixtures_vcsim import Vcsim

H1 = "4c4c4544-0042-3510-8052-c4c04f4b4e31"
H2 = "4c4c4544-0042-3510-8052-c4c04f4b4e32"
H3 = "4c4c4544-0042-3510-8052-c4c04f4b4e33"

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def sim(vcsim_factory: Callable[..., Vcsim]) -> Vcsim:
    """A private simulator: these tests add datacenters, clusters and hosts to it."""
    return vcsim_factory("-cluster", "1", "-host", "1", "-standalone", "0")


@pytest.fixture(scope="module")
def si(sim: Vcsim) -> Any:
    return sim.connect()


@pytest.fixture
def cli(slapd: Slapd, directory: Directory) -> Run:
    """The CLI in-process against this test's subtree: (status, stdout, stderr)."""
    conn = ["--ldap", slapd.url, "--bind-dn", slapd.bind_dn, "--password-file",
            str(slapd.password_file), "--base", directory.base]

    def run(*argv: str, ok: bool = True) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main([*conn, *argv], out=out, err=err)
        if ok:
            assert status == 0, err.getvalue()
        return status, out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def no_key_env() -> Iterator[None]:
    saved = os.environ.pop("STATELESS_SECRET_KEY_FILE", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["STATELESS_SECRET_KEY_FILE"] = saved


@pytest.fixture
def registered(cli: Run, sim: Vcsim, key_file: Path, tmp_path: Path) -> Path:
    """The simulator registered as vc1 with an encrypted password; returns the key file."""
    password = tmp_path / "vc.password"
    password.write_text(sim.password + "\n")
    cli("vcenter", "add", "vc1", "--url", sim.url, "--user", sim.user, "--password-file",
        str(password), "--secret-key-file", str(key_file), "--create-key")
    return key_file


def estate(cli: Run, directory: Directory, uuid: str, hostname: str) -> None:
    """A cluster, a pool, a baseline (NTP) and a network policy (port group, pooled vmknic)."""
    cli("container", "add", "/DC1", "--kind", "datacenter")
    cli("container", "add", "/DC1/Prod", "--kind", "folder")
    cli("container", "add", "/DC1/Prod/ClusterA", "--kind", "cluster")
    cli("pool", "add", "vmo", "--range", "10.0.20.10-10.0.20.50", "--netmask", "255.255.255.0")
    cli("policy", "create", "Baseline", "--set", "ntp.servers=10.0.0.1,10.0.0.2")
    cli("policy", "create", "Network", "--set", "vswitch.vSwitch1.uplinks=vmnic1",
        "--set", "portgroup.vMotion.vswitch=vSwitch1",
        "--set", "portgroup.vMotion.vlan=20", "--set", "vmknic.vMotion.ip=pool:vmo",
        "--set", "vmknic.vMotion.services=vmotion")
    cli("policy", "link", "Baseline", "/")
    cli("policy", "link", "Network", "/DC1")
    cli("host", "add", uuid, "--path", "/DC1/Prod/ClusterA")
    for allocation in directory.snapshot().hosts[uuid].allocations:  # `host add` allocated it:
        directory.release(uuid, allocation)                         # apply must do it itself
    from datetime import UTC, datetime

    directory.record_identity(HostIdentity(uuid, hostname=hostname, domain="example.test"),
                              datetime.now(UTC))


def vc_host(si: Any, name: str) -> Any:
    """The simulator's host of that name, anywhere (its FindByDnsName only knows DNS config)."""
    content = si.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        return next((h for h in view.view if h.name == name), None)
    finally:
        view.Destroy()


def portgroup_vlan(host: Any, name: str) -> int:
    return next(pg.spec.vlanId for pg in host.config.network.portgroup if pg.spec.name == name)


def set_portgroup_vlan(host: Any, name: str, vlan: int) -> None:
    pg = next(pg for pg in host.config.network.portgroup if pg.spec.name == name)
    spec = vim.host.PortGroup.Specification(name=name, vlanId=vlan,
                                            vswitchName=pg.spec.vswitchName,
                                            policy=vim.host.NetworkPolicy())
    host.configManager.networkSystem.UpdatePortGroup(pgName=name, portgrp=spec)


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stateless: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- vcenter add / list ------------------------------------------------------------------


def test_vcenter_add_stores_only_the_encrypted_password(cli: Run, slapd: Slapd,
                                                        directory: Directory, tmp_path: Path,
                                                        no_key_env: None) -> None:
    secret = "Vc-S3cret-only-here!"
    password = tmp_path / "vc.password"
    password.write_text(secret + "\n")
    key = tmp_path / "keys" / "secret.key"
    args = ("vcenter", "add", "vc1", "--url", "http://127.0.0.1:1/sdk", "--user", "admin",
            "--password-file", str(password))

    status, _, err = cli(*args, ok=False)
    assert status == 2 and "--secret-key-file" in one_line(err)
    status, _, err = cli(*args, "--secret-key-file", str(key), ok=False)
    assert status == 1 and "--create-key" in one_line(err) and not key.exists()

    _, out, _ = cli(*args, "--secret-key-file", str(key), "--create-key")
    assert "created secret key file" in out and "password encrypted" in out
    assert key.stat().st_mode & 0o777 == 0o600

    conn = ldap3.Connection(ldap3.Server(slapd.url), slapd.bind_dn, slapd.password,
                            auto_bind=True)
    try:
        conn.search(directory.base, "(objectClass=statelessVCenter)",
                    attributes=[ldap3.ALL_ATTRIBUTES])
        assert len(conn.response) == 1
        raw = conn.response[0]["raw_attributes"]
    finally:
        conn.unbind()
    stored = [v.decode() for v in raw["statelessPassword"]]
    assert len(stored) == 1 and stored[0].startswith("aesgcm:")
    everything = b"".join(b"".join(values) for values in raw.values())
    assert secret.encode() not in everything
    assert load_keyring(key).unseal_text(stored[0], "statelessPassword") == secret

    _, text, _ = cli("vcenter", "list")
    _, doc, _ = cli("vcenter", "list", "--json")
    assert secret not in text and secret not in doc and "aesgcm:" not in doc + text
    assert json.loads(doc) == [{"name": "vc1", "url": "http://127.0.0.1:1/sdk", "user": "admin",
                                "thumbprint": None, "password": "encrypted",
                                "dn": f"cn=vc1,ou=vcenters,{directory.base}"}]


def test_vcenter_add_refuses_bad_inputs(cli: Run, tmp_path: Path, no_key_env: None) -> None:
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not a key\n")
    empty = tmp_path / "empty.password"
    empty.write_text("\n")
    password = tmp_path / "vc.password"
    password.write_text("pw\n")
    base = ("vcenter", "add", "vc1", "--url", "http://127.0.0.1:1/sdk", "--user", "u")
    status, _, err = cli(*base, "--password-file", str(password), "--secret-key-file",
                         str(bad_key), ok=False)
    assert status == 1 and "expected KEYID:BASE64URL" in one_line(err)
    status, _, err = cli(*base, "--password-file", str(empty), "--secret-key-file",
                         str(tmp_path / "k"), "--create-key", ok=False)
    assert status == 1 and "empty" in one_line(err)
    status, _, err = cli(*base, "--password-file", str(tmp_path / "missing"),
                         "--secret-key-file", str(tmp_path / "k"), "--create-key", ok=False)
    assert status == 1 and "vCenter password file" in one_line(err)
    status, _, err = cli(*base, "--secret-key-file", str(tmp_path / "k"), ok=False)
    assert status == 2 and "--password-file" in one_line(err)
    assert cli("vcenter", "list", "--json")[1].strip() == "[]"


def test_a_wrong_key_fails_clearly(cli: Run, directory: Directory, registered: Path,
                                   tmp_path: Path) -> None:
    estate(cli, directory, H3, "esx-wrongkey")
    other = tmp_path / "other.key"
    other.write_bytes(Fernet.generate_key())
    for command in ("apply", "compliance"):
        status, out, err = cli(command, H3, "--secret-key-file", str(other), ok=False)
        assert status == 1 and out == ""
        assert "cannot decrypt" in one_line(err) and str(other) in err
    host = directory.snapshot().hosts[H3]
    assert host.state is None and host.allocations == ()


# --- apply / compliance ------------------------------------------------------------------


def test_apply_dry_run_writes_nothing(cli: Run, directory: Directory, registered: Path,
                                      si: Any) -> None:
    estate(cli, directory, H2, "esx-dry")
    before = directory.snapshot()
    _, out, _ = cli("apply", H2, "--dry-run", "--secret-key-file", str(registered))
    assert "dry run" in out
    assert "would allocate vmknic.vMotion 10.0.20.10 from pool vmo" in out
    assert "would add host esx-dry.example.test to cluster /DC1/Prod/ClusterA" in out
    assert "add portgroup vMotion" in out and "add vmknic vMotion" in out and "set ntp" in out
    _, doc, _ = cli("apply", H2, "--dry-run", "--json", "--secret-key-file", str(registered))
    report = json.loads(doc)
    assert (report["dry_run"], report["placed"], report["state"]) == (True, True, None)
    assert report["allocated"] == ["vmknic.vMotion 10.0.20.10 from pool vmo"]
    after = directory.snapshot()
    assert after.hosts[H2] == before.hosts[H2]
    assert after.hosts[H2].allocations == () and after.hosts[H2].state is None
    assert directory.pool_used("vmo")[1] == frozenset()
    assert vc_host(si, "esx-dry.example.test") is None


def test_apply_refuses_an_invalid_effective_configuration(cli: Run, directory: Directory,
                                                          registered: Path, si: Any) -> None:
    estate(cli, directory, H2, "esx-invalid")
    # The CLI refuses a pool that does not exist; a raw directory write still can make one.
    directory.policy_set("Network", {"vmknic.vMotion.ip": "pool:nosuchpool"})
    status, out, err = cli("apply", H2, "--secret-key-file", str(registered), ok=False)
    line = one_line(err)
    assert status == 1 and out == ""
    assert "nothing applied" in line and "IP pool nosuchpool does not exist" in line
    assert directory.snapshot().hosts[H2].state is None
    assert vc_host(si, "esx-invalid.example.test") is None


def test_apply_places_configures_and_fixes_drift(cli: Run, directory: Directory,
                                                 registered: Path, si: Any) -> None:
    estate(cli, directory, H1, "esx01")
    key = ("--secret-key-file", str(registered))

    _, out, _ = cli("apply", H1, *key)
    assert "allocate vmknic.vMotion 10.0.20.10 from pool vmo" in out
    assert "add host esx01.example.test to cluster /DC1/Prod/ClusterA" in out
    assert "add portgroup vMotion" in out and "verified; state compliant" in out

    cluster = si.content.searchIndex.FindByInventoryPath("DC1/host/Prod/ClusterA")
    assert isinstance(cluster, vim.ClusterComputeResource)
    host = vc_host(si, "esx01.example.test")
    assert host is not None and host._moId in [h._moId for h in cluster.host]
    assert portgroup_vlan(host, "vMotion") == 20
    assert list(host.config.dateTimeInfo.ntpConfig.server) == ["10.0.0.1", "10.0.0.2"]
    vnic = next(v for v in host.config.network.vnic if v.portgroup == "vMotion")
    assert vnic.spec.ip.ipAddress == "10.0.20.10"

    record = directory.snapshot().hosts[H1]
    assert str(record.state) == "compliant"
    assert [(a.item, a.pool, a.address) for a in record.allocations] == [
        ("vmknic.vMotion", "vmo", "10.0.20.10")]
    assert record.applied_digest == digest(resolve(directory.snapshot(), H1).values())

    # A second apply finds nothing to do.
    _, doc, _ = cli("apply", H1, "--json", *key)
    report = json.loads(doc)
    assert (report["plan"], report["placed"], report["allocated"]) == ([], False, [])
    assert (report["verified"], report["state"]) == (True, "compliant")
    assert "no changes" in cli("apply", H1, *key)[1]

    status, out, _ = cli("compliance", H1, *key)
    assert status == 0 and "compliant" in out

    # A change made behind our back is exactly one key of difference, exit 3.
    set_portgroup_vlan(host, "vMotion", 99)
    status, doc, _ = cli("compliance", H1, "--json", *key, ok=False)
    assert status == 3
    assert json.loads(doc) == {"host": H1, "compliant": False, "differences": [
        {"key": "portgroup.vMotion.vlan", "desired": 20, "actual": 99}]}
    status, out, _ = cli("compliance", H1, *key, ok=False)
    assert status == 3 and "1 key(s) differ" in out and "portgroup.vMotion.vlan" in out

    # An edit in the directory, then apply: the host follows the policy.
    cli("policy", "set", "Network", "portgroup.vMotion.vlan=30")
    _, out, _ = cli("apply", H1, "--dry-run", *key)
    assert "edit portgroup vMotion" in out
    assert portgroup_vlan(vc_host(si, "esx01.example.test"), "vMotion") == 99
    _, out, _ = cli("apply", H1, *key)
    assert "edit portgroup vMotion" in out
    assert portgroup_vlan(vc_host(si, "esx01.example.test"), "vMotion") == 30
    assert cli("compliance", H1, *key)[0] == 0
    assert directory.snapshot().hosts[H1].applied_digest == digest(
        resolve(directory.snapshot(), H1).values())


def test_compliance_of_a_host_not_in_vcenter_says_how_to_fix(cli: Run, directory: Directory,
                                                             registered: Path) -> None:
    estate(cli, directory, H3, "esx-absent")
    cli("host", "allocate", H3)
    status, _, err = cli("compliance", H3, "--secret-key-file", str(registered), ok=False)
    assert status == 1 and f"stateless apply {H3}" in one_line(err)


def test_apply_needs_a_vcenter(cli: Run, directory: Directory, key_file: Path) -> None:
    estate(cli, directory, H3, "esx-novc")
    status, _, err = cli("apply", H3, "--secret-key-file", str(key_file), ok=False)
    assert status == 1 and "stateless vcenter add" in one_line(err)
    status, _, err = cli("apply", H3, "--vcenter", "vc9", "--secret-key-file", str(key_file),
                         ok=False)
    assert status == 1 and "vc9: not registered" in one_line(err)


def test_an_unreachable_vcenter_is_one_line(cli: Run, directory: Directory, tmp_path: Path,
                                            key_file: Path) -> None:
    from tests.ports import free_port

    estate(cli, directory, H3, "esx-unreachable")
    password = tmp_path / "vc.password"
    password.write_text("pw\n")
    cli("vcenter", "add", "vc1", "--url", f"http://127.0.0.1:{free_port()}/sdk", "--user", "u",
        "--password-file", str(password), "--secret-key-file", str(key_file), "--create-key")
    for command in ("apply", "compliance"):
        status, _, err = cli(command, H3, "--secret-key-file", str(key_file), "--timeout", "5",
                             ok=False)
        assert status == 1 and "vCenter vc1" in one_line(err)


def test_dry_run_checks_advanced_options_against_the_host(cli: Run, directory: Directory,
                                                         registered: Path, si: Any) -> None:
    estate(cli, directory, H2, "esx-opt")
    cli("apply", H2, "--secret-key-file", str(registered))  # placed and compliant
    cli("policy", "set", "Baseline", "advanced.Net.NoSuchOption=1")
    status, out, err = cli("apply", H2, "--dry-run", "--secret-key-file", str(registered), ok=False)
    assert status == 1 and out == ""
    assert "advanced.Net.NoSuchOption" in one_line(err)

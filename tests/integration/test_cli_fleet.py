"""Fleet compliance and apply on the example estate, checked against vCenter read with pyvmomi."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stateless.directory.client import Directory
from stateless.model.identity import HostIdentity
from tests.integration.test_cli_vcenter import (  # noqa: F401 (fixtures)
    Run,
    cli,
    portgroup_vlan,
    registered,
    si,
    sim,
    vc_host,
)

ROOT = Path(__file__).resolve().parents[2]
A = "4c4c4544-0042-3510-8052-b4c04f4b4e31"  # esx-a01, /DC1/Prod/ClusterA
B = "4c4c4544-0042-3510-8052-b4c04f4b4e32"  # esx-b01, /DC1/Lab/ClusterB


def in_vcenter(si: Any, name: str) -> bool:  # noqa: F811
    """Whether vCenter has a host of that name (a removed one may linger in a view, nameless)."""
    from pyVmomi import vim, vmodl

    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.HostSystem], True)
    try:
        for host in view.view:
            try:
                if host.name == name:
                    return True
            except vmodl.fault.ManagedObjectNotFound:
                continue
        return False
    finally:
        view.Destroy()


def load_example(cli: Run, directory: Directory) -> None:  # noqa: F811
    """The example estate, with hosts A and B born (their identities recorded)."""
    cli("load", str(ROOT / "contrib" / "examples" / "estate.stateless"))
    for uuid, name in ((A, "esx-a01"), (B, "esx-b01")):
        directory.record_identity(HostIdentity(uuid, hostname=name, domain="example.com"),
                                  datetime.now(UTC))


def test_fleet_compliance_and_apply_on_the_example_estate(
        cli: Run, directory: Directory, registered: Path, si: Any) -> None:  # noqa: F811
    load_example(cli, directory)
    key = ("--secret-key-file", str(registered))

    status, out, _ = cli("apply", "--all", *key)
    assert status == 0
    assert f"[1/2] {A}: compliant" in out and f"[2/2] {B}: compliant" in out
    assert out.endswith("2 host(s): 2 compliant, 0 drifted, 0 failed\n")
    a, b = vc_host(si, "esx-a01.example.com"), vc_host(si, "esx-b01.example.com")
    assert (portgroup_vlan(a, "vMotion"), portgroup_vlan(b, "vMotion")) == (20, 21)

    cli("policy", "set", "Network-Std", "portgroup.vMotion.vlan=22")  # ClusterB keeps its 21
    status, out, err = cli("compliance", "--path", "/DC1/Prod/ClusterA", *key, "--json", ok=False)
    assert status == 3 and err == f"[1/1] {A}: drifted (portgroup.vMotion.vlan)\n"
    doc = json.loads(out)
    assert [h["host"] for h in doc["hosts"]] == [A]
    assert doc["hosts"][0]["outcome"] == "drifted"
    assert "portgroup.vMotion.vlan" in doc["hosts"][0]["keys"]
    assert doc["summary"] == {"compliant": 0, "drifted": 1, "failed": 0, "pending": 0}
    assert portgroup_vlan(vc_host(si, "esx-a01.example.com"), "vMotion") == 20  # what it reported
    assert cli("compliance", "--path", "/DC1/Lab", *key, ok=False)[0] == 0

    status, out, _ = cli("apply", "--all", *key, "--json")
    assert status == 0
    assert [h["outcome"] for h in json.loads(out)["hosts"]] == ["compliant", "compliant"]
    assert portgroup_vlan(vc_host(si, "esx-a01.example.com"), "vMotion") == 22
    assert portgroup_vlan(vc_host(si, "esx-b01.example.com"), "vMotion") == 21
    status, out, _ = cli("compliance", "--all", *key)
    assert status == 0 and out.endswith("2 host(s): 2 compliant, 0 drifted, 0 failed\n")


def test_fleet_failure_is_exit_1_with_its_reason(
        cli: Run, registered: Path) -> None:  # noqa: F811
    cli("load", str(ROOT / "contrib" / "examples" / "estate.stateless"))
    ghosts = [f"4c4c4544-0042-3510-8052-d4c04f4b4e3{i}" for i in (1, 2)]
    for i, uuid in enumerate(ghosts):
        cli("host", "add", uuid, "--path", "/DC1/Lab/ClusterB", "--answer", f"dns.hostname=ghost{i}")
    status, out, _ = cli("compliance", *ghosts, "--secret-key-file", str(registered), ok=False)
    assert status == 1
    assert f"{ghosts[0]}  failed" in out and "vCenter vc1 has no host named 'ghost0" in out
    assert out.endswith("2 host(s): 0 compliant, 0 drifted, 2 failed\n")


@pytest.mark.parametrize("argv,text", [
    (["compliance"], "which hosts? give UUID..., --path PATH or --all"),
    (["apply", "--all", A], "give UUIDs, --path PATH or --all, not several of them"),
    (["compliance", "--path", "/Nope"], "--path /Nope: no such container"),
])
def test_fleet_selection_mistakes(cli: Run, argv: list[str], text: str) -> None:  # noqa: F811
    status, _, err = cli(*argv, ok=False)
    assert status in (1, 2) and text in err


def test_decommission_removes_from_vcenter_and_frees_addresses(
        cli: Run, directory: Directory, registered: Path, si: Any) -> None:  # noqa: F811
    load_example(cli, directory)
    key = ("--secret-key-file", str(registered))
    cli("apply", A, B, *key)
    assert in_vcenter(si, "esx-a01.example.com")
    usage = json.loads(cli("pool", "show", "vmotion-a", "--json")[1])
    assert [a["host"] for a in usage["addresses"]] == [A]
    assert json.loads(cli("pool", "show", "storage-a", "--json")[1])["allocated"] == 1  # answered

    directory.claim_owner(B, "sd1")
    status, _, err = cli("host", "decommission", B, *key, ok=False)
    assert status == 1 and "server sd1 owns it and has no entry with a URL" in err
    assert f"`stateless host decommission {B} --direct` acts from here instead" in err

    _, out, _ = cli("host", "decommission", A, *key)
    assert "removed esx-a01.example.com from vCenter vc1" in out and f"deleted host {A}" in out
    assert not in_vcenter(si, "esx-a01.example.com")
    assert A not in directory.snapshot().hosts
    for pool in ("vmotion-a", "storage-a"):
        assert json.loads(cli("pool", "show", pool, "--json")[1])["allocated"] == 0

    _, out, _ = cli("host", "decommission", B, "--keep-entry", "--direct", *key)
    assert "kept the entry" in out and not in_vcenter(si, "esx-b01.example.com")
    kept = directory.snapshot().hosts[B]
    assert (kept.allocations, kept.owner, kept.state, kept.applied_digest) == ((), "", None, "")
    assert json.loads(cli("pool", "show", "vmotion-b", "--json")[1])["allocated"] == 0
    _, out, _ = cli("host", "decommission", B, "--direct", *key)
    assert "has no host esx-b01.example.com: nothing to remove" in out
    assert B not in directory.snapshot().hosts

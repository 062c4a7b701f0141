"""Where a host sits in vCenter is part of compliance: a real daemon, slapd and simulator.

A host's location changed in the directory while its daemon was down is acted on by the first
scan after the start; a host moved by hand into another cluster (MoveInto_Task through
pyVmomi) is seen by the change watch and moved back (`enforce`) or marked drifted (`report`).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl

from stateless.cli import main
from tests.integration.fixtures_daemon import (
    Daemon,
    Estate,
    births,
    identity,
    placed_hosts,
    vlan,
    wait_for,
    wait_states,
)
from tests.integration.fixtures_vcsim import Vcsim
from tests.integration.test_boot_daemon import cli


def born(n: int) -> dict[str, Any]:
    """A site-A host whose hardware UUID is the one the simulator gives the host it adds
    (derived from its name), as a real host reports its own: so vCenter finds it by UUID."""
    ident = identity(n, "siteA")
    ident["uuid"] = str(uuid.uuid5(uuid.NAMESPACE_OID, f"{ident['hostname']}.example.com"))
    return ident


def clusters_of(si: Any, ident: dict[str, Any]) -> list[str]:
    """The clusters holding a host of this name."""
    return sorted(cluster for _, cluster in placed_hosts(si, f"{ident['hostname']}.example.com"))


def host_named(si: Any, ident: dict[str, Any]) -> Any:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        for host in view.view:
            try:
                if host.name == f"{ident['hostname']}.example.com":
                    return host
            except vmodl.fault.ManagedObjectNotFound:
                continue
        raise AssertionError(f"no host {ident['hostname']} in the simulator")
    finally:
        view.Destroy()


def move_by_hand(si: Any, ident: dict[str, Any], cluster: str) -> None:
    """Drag the host into cluster `cluster` of DC1 (made if missing), as an administrator."""
    search = si.RetrieveContent().searchIndex
    target = search.FindByInventoryPath(f"DC1/host/{cluster}")
    if target is None:
        target = search.FindByInventoryPath("DC1/host").CreateClusterEx(
            cluster, vim.cluster.ConfigSpecEx())
    WaitForTask(target.MoveInto_Task(host=[host_named(si, ident)]))


def start(estate: Estate, tmp_path: Path, daemons: Callable[..., Daemon], *extra: str) -> Daemon:
    return daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                   site="siteA", extra=extra)


def test_a_location_changed_while_the_daemon_was_down_is_acted_on_after_its_start(
        estate: Estate, sim: Vcsim, tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    d = start(estate, tmp_path, daemons, "--scan-interval", "0.5")
    a, other = born(1), born(2)
    assert births(d, [a, other]) == [202, 202]
    wait_states(d, [a["uuid"], other["uuid"]])
    si = sim.connect()
    assert clusters_of(si, a) == ["ClusterA"]
    assert d.stop() == 0

    # A cluster that links no policy of its own: the host's effective configuration, and so
    # its digest, stay the same; only where it belongs changes.
    cli(estate, "container", "add", "/DC1/Prod/ClusterC", "--kind", "cluster")
    cli(estate, "host", "move", a["uuid"], "--path", "/DC1/Prod/ClusterC")
    d = start(estate, tmp_path, daemons, "--scan-interval", "0.5")
    wait_for(lambda: clusters_of(si, a) == ["ClusterC"], timeout=60,
             what="host a moved to ClusterC (and only there) after the start")
    wait_states(d, [a["uuid"]])
    assert vlan(host_named(si, a), "vMotion") == 20  # configured again where it is now
    assert d.host(a["uuid"])["location"] == "/DC1/Prod/ClusterC"
    assert "differs in vCenter: location" in d.log.read_text()  # found by the first scan
    assert clusters_of(si, other) == ["ClusterA"]  # the other host stays, untouched
    assert d.host(other["uuid"])["state"] == "compliant"


def test_a_host_moved_by_hand_is_moved_back_at_once(
        estate: Estate, sim: Vcsim, tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    d = start(estate, tmp_path, daemons, "--scan-interval", "3600")
    a, other = born(1), born(2)
    assert births(d, [a, other]) == [202, 202]
    wait_states(d, [a["uuid"], other["uuid"]])
    wait_for(lambda: d.get("/v1/summary")["vcenters"].get("vc1", {}).get("hosts", 0) >= 2,
             timeout=30, what="the vCenter watch to cover both hosts")
    si = sim.connect()
    move_by_hand(si, a, "Spare")
    assert clusters_of(si, a) == ["Spare"]
    wait_for(lambda: clusters_of(si, a) == ["ClusterA"], timeout=60,
             what="host a moved back to ClusterA (and only there)")
    wait_states(d, [a["uuid"]])
    assert d.metrics()["stateless_scans_total"] == 0  # the watch saw it, not a scan
    assert "differs in vCenter: location" in d.log.read_text()
    assert clusters_of(si, other) == ["ClusterA"]


def test_report_mode_marks_a_host_moved_by_hand_drifted(
        estate: Estate, sim: Vcsim, tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    d = start(estate, tmp_path, daemons, "--mode", "report", "--scan-interval", "0.5")
    a = born(1)
    assert births(d, [a]) == [202]
    wait_states(d, [a["uuid"]])
    si = sim.connect()
    move_by_hand(si, a, "Spare")
    drifted = wait_states(d, [a["uuid"]], "drifted", timeout=30)
    assert drifted[a["uuid"]]["reason"] == "differs in vCenter: location"
    scans = d.metrics()["stateless_scans_total"]
    wait_for(lambda: d.metrics()["stateless_scans_total"] >= scans + 2, timeout=30,
             what="two more compliance scans")
    assert clusters_of(si, a) == ["Spare"]  # reported, not moved
    # `stateless compliance` says the same, from the directory and vCenter alone.
    out, err = io.StringIO(), io.StringIO()
    conn = ["--ldap", estate.slapd.url, "--bind-dn", estate.slapd.bind_dn, "--password-file",
            str(estate.slapd.password_file), "--base", estate.base]
    assert main([*conn, "compliance", a["uuid"], "--json", "--secret-key-file",
                 str(estate.key_file)], out=out, err=err) == 3, err.getvalue()
    assert json.loads(out.getvalue())["differences"] == [
        {"key": "location", "desired": "/DC1/Prod/ClusterA", "actual": "/DC1/Spare"}]

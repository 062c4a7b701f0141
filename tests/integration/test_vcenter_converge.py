"""What the daemon asks of vCenter per host, against the real simulator: find, converge, check."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from stateless.model import Container, HostIdentity, HostRecord, Link, Policy, Snapshot
from stateless.plan import KeyDiff
from stateless.policy import resolve
from stateless.prepare import Target, prepare
from stateless.vcenter import VCenterClient
from stateless.vcenter.converge import check, converge
from tests.integration.fixtures_daemon import hosts_by_name

U = "4c4c4544-0000-4000-8000-0000000000c1"
NTP = ("10.1.0.123", "10.2.0.123")


@pytest.fixture(scope="module")
def sim(vcsim_factory: Callable[..., Any]) -> Any:
    return vcsim_factory("-dc", "0")


@pytest.fixture
def client(sim: Any) -> Iterator[VCenterClient]:
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as c:
        yield c


def target(uuid: str, hostname: str, location: str = "/DCX/Prod/ClusterX") -> Target:
    leaf = location.rsplit("/", 1)[1]
    snap = Snapshot(
        containers={"/": Container("/", "root"), "/DCX": Container("/DCX", "datacenter"),
                    "/DCX/Prod": Container("/DCX/Prod", "folder"),
                    location: Container(location, "cluster" if leaf.startswith("Cluster")
                                        else "folder", links=[Link("base")])},
        policies={"base": Policy("base", {"ntp.servers": NTP, "vswitch.vSwitch1.uplinks": ("vmnic2",),
                                          "portgroup.vMotion.vswitch": "vSwitch1",
                                          "portgroup.vMotion.vlan": 20})},
        hosts={uuid: HostRecord(uuid, location=location, identity=HostIdentity(
            uuid, hostname=hostname, domain="example.com", ipv4="10.1.0.9"))})
    return prepare(snap, snap.hosts[uuid], resolve(snap, uuid))


def host_named(sim: Any, name: str) -> Any:
    content = sim.connect().RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        return next(h for h in view.view if h.name == name)
    finally:
        view.Destroy()


def test_converge_places_applies_and_check_compares(sim: Any, client: VCenterClient) -> None:
    t = target(U, "esx-c1")
    assert client.find_host(t.name, t.location, t.leaf) is None  # nothing is created
    first = converge(client, t)
    assert first.placed and first.result.verified and len(first.result.plan) >= 3
    assert first.calls > first.result.calls  # placement counted too
    assert check(client, t) == []
    # A second client (a restarted daemon) finds it, and a converge changes nothing.
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as fresh:
        assert fresh.find_host(t.name, t.location, t.leaf) is not None
        again = converge(fresh, t)
        assert not again.placed and len(again.result.plan) == 0
        # Changed behind the daemon's back: check says what, converge puts it back.
        host_named(sim, t.name).configManager.dateTimeSystem.UpdateDateTimeConfig(
            vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"])))
        assert [d.key for d in check(fresh, t) or []] == ["ntp.servers"]
        fixed = converge(fresh, t)
        assert [c.kind for c in fixed.result.plan] == ["ntp"] and check(fresh, t) == []


def test_check_of_a_host_vcenter_lacks(client: VCenterClient) -> None:
    assert check(client, target("4c4c4544-0000-4000-8000-0000000000c2", "esx-c2")) is None


def test_find_host_in_a_folder(client: VCenterClient) -> None:
    t = target("4c4c4544-0000-4000-8000-0000000000c3", "esx-c3", "/DCX/Prod/Edge")
    assert t.leaf == "folder"
    converge(client, t, place=True)
    with VCenterClient(client.session.url, "user", "pass", name="vc1", timeout=8) as fresh:
        ref = fresh.find_host(t.name, t.location, t.leaf)
        assert ref is not None and ref.name == t.name


def move_into(sim: Any, name: str, cluster_path: str) -> None:
    """Move a host into another cluster by hand, as an administrator does in vCenter."""
    si = sim.connect()
    content = si.RetrieveContent()
    cluster = content.searchIndex.FindByInventoryPath(cluster_path)
    WaitForTask(cluster.MoveInto_Task(host=[host_named(sim, name)]))


def test_a_host_moved_by_hand_is_reported_and_moved_back(sim: Any, client: VCenterClient) -> None:
    # The hardware UUID the simulator gives a host it adds (from its name), as a real host
    # reports its own: how a client that did not place it finds it elsewhere.
    here = target(str(uuid.uuid5(uuid.NAMESPACE_OID, "esx-c5.example.com")), "esx-c5")
    elsewhere = target("4c4c4544-0000-4000-8000-0000000000c6", "esx-c6", "/DCX/Prod/ClusterY")
    converge(client, here, place=True)
    converge(client, elsewhere, place=True)  # creates ClusterY
    assert check(client, here) == []
    move_into(sim, here.name, "DCX/host/Prod/ClusterY")
    # The kept path of ClusterX does not apply: the host's parent is ClusterY now, read once.
    before = client.calls
    assert check(client, here) == [KeyDiff("location", "/DCX/Prod/ClusterX", "/DCX/Prod/ClusterY")]
    assert client.calls - before == 2  # the host, then ClusterY's chain of parents
    before = client.calls
    assert check(client, here) == [KeyDiff("location", "/DCX/Prod/ClusterX", "/DCX/Prod/ClusterY")]
    assert client.calls - before == 2  # a kept path that differs is read again before reporting
    moved = converge(client, here)  # placed again where it belongs, and configured
    assert moved.placed and moved.result.verified and len(moved.result.plan) >= 3
    assert host_named(sim, here.name).parent.name == "ClusterX"
    before = client.calls
    assert check(client, here) == [] and client.calls - before == 1  # its new parent is known
    move_into(sim, here.name, "DCX/host/Prod/ClusterY")
    # Another client (a restarted daemon, the CLI) sees the same without having placed it:
    # not by name (the simulator indexes no DNS names), not in ClusterX, but by UUID.
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as fresh:
        assert [d.key for d in check(fresh, here) or []] == ["location"]
        moved = converge(fresh, here)
        assert moved.placed and moved.result.verified
        assert check(fresh, here) == []
        assert check(fresh, elsewhere) == []  # the other host of ClusterY stays where it is
    assert host_named(sim, here.name).parent.name == "ClusterX"


def test_a_host_removed_in_vcenter_is_found_gone_and_placed_again(
        sim: Any, client: VCenterClient) -> None:
    t = target("4c4c4544-0000-4000-8000-0000000000c7", "esx-c7")
    converge(client, t, place=True)
    assert check(client, t) == []  # the client keeps its reference from here on
    WaitForTask(host_named(sim, t.name).Destroy_Task())  # removed by hand
    assert check(client, t) is None  # not an error: vCenter lacks it, as for a host never added
    back = converge(client, t)
    assert back.placed and back.result.verified and check(client, t) == []
    # Removed again: a converge with the kept reference places it again at once.
    [host] = hosts_by_name(sim.connect()).get(t.name, [])
    WaitForTask(host.Destroy_Task())
    again = converge(client, t)
    assert again.placed and again.result.verified and check(client, t) == []
    assert len(hosts_by_name(sim.connect()).get(t.name, [])) == 1


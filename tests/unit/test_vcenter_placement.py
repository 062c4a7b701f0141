"""Where a host sits: the inventory path of its parent, the path cache, the `location` key."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from stateless.daemon.drift import pushed_compliant
from stateless.model.config import HostConfig
from stateless.plan import LOCATION, KeyDiff, placement
from stateless.vcenter.placement import Entity, Locations, location_of, unescape

ROOT = Entity("group-d1", "Folder", "Datacenters", None)
DC = Entity("datacenter-2", "Datacenter", "DC1", "group-d1")
HOSTS = Entity("group-h4", "Folder", "host", "datacenter-2")
PROD = Entity("group-h10", "Folder", "Prod", "group-h4")
CLUSTER = Entity("domain-c7", "ClusterComputeResource", "ClusterA", "group-h10")
TOP = Entity("domain-c8", "ClusterComputeResource", "ClusterB", "group-h4")
ALONE = Entity("domain-s9", "ComputeResource", "esx9.example.com", "group-h10")
SLASHED = Entity("domain-c11", "ClusterComputeResource", "A%2fB %25", "group-h4")


def chain(*entities: Entity) -> dict[str, Entity]:
    return {e.moid: e for e in entities}


WORLD = chain(ROOT, DC, HOSTS, PROD, CLUSTER, TOP, ALONE, SLASHED)


@pytest.mark.parametrize(("start", "location"), [
    ("domain-c7", "/DC1/Prod/ClusterA"),  # a cluster in a folder
    ("domain-c8", "/DC1/ClusterB"),  # a cluster in the datacenter's host folder
    ("domain-s9", "/DC1/Prod"),  # a standalone host: its folder
    ("group-h10", "/DC1/Prod"),
    ("domain-c11", "/DC1/A/B %"),  # vCenter's escapes undone
    ("datacenter-2", "/DC1"),
    ("group-d1", None),  # above any datacenter
    ("nothing", None),  # not in the chain read
])
def test_the_location_of_an_inventory_object(start: str, location: str | None) -> None:
    assert location_of(start, WORLD) == location


def test_a_chain_cut_short_has_no_location() -> None:
    assert location_of("domain-c7", chain(CLUSTER, PROD)) is None


def test_unescape() -> None:
    assert unescape("a%2fb%5Cc%25d") == "a/b\\c%d"


@attrs.frozen
class Parent:
    _moId: str  # pyVmomi's spelling


class Reader:
    """Chains as vCenter would answer them now, counting the reads."""

    def __init__(self, world: dict[str, Entity]) -> None:
        self.world = world
        self.reads = 0

    def __call__(self, parent: Any) -> dict[str, Entity]:
        self.reads += 1
        return dict(self.world)


def test_a_parent_is_read_once_then_kept() -> None:
    read, cache = Reader(WORLD), Locations()
    assert cache.locate(Parent("domain-c7"), read, "/DC1/Prod/ClusterA") == "/DC1/Prod/ClusterA"
    assert cache.locate(Parent("domain-c7"), read, "/DC1/Prod/ClusterA") == "/DC1/Prod/ClusterA"
    assert cache.locate(Parent("domain-c7"), read) == "/DC1/Prod/ClusterA"
    assert read.reads == 1
    assert cache.get("domain-c7") == "/DC1/Prod/ClusterA"


def test_a_kept_path_that_differs_is_read_again_once_before_it_is_believed() -> None:
    read, cache = Reader(WORLD), Locations()
    cache.locate(Parent("domain-c7"), read)
    # The cluster was renamed in vCenter: the kept path is stale, a read tells the truth.
    read.world = {**WORLD, "domain-c7": attrs.evolve(CLUSTER, name="ClusterA2")}
    assert cache.locate(Parent("domain-c7"), read, "/DC1/Prod/ClusterA2") == "/DC1/Prod/ClusterA2"
    assert read.reads == 2
    assert cache.locate(Parent("domain-c7"), read, "/DC1/Prod/ClusterA2") == "/DC1/Prod/ClusterA2"
    assert read.reads == 2  # kept again
    # Where the host should be is elsewhere: one read each time, and the truth reported.
    assert cache.locate(Parent("domain-c7"), read, "/DC1/ClusterB") == "/DC1/Prod/ClusterA2"
    assert read.reads == 3


def test_a_parent_placed_by_this_client_costs_no_read() -> None:
    read, cache = Reader(WORLD), Locations()
    cache.put("domain-c8", "/DC1/ClusterB")
    assert cache.locate(Parent("domain-c8"), read, "/DC1/ClusterB") == "/DC1/ClusterB"
    assert read.reads == 0


def test_no_parent_or_no_datacenter_is_unknown() -> None:
    read, cache = Reader(chain(CLUSTER)), Locations()
    assert cache.locate(None, read, "/DC1/Prod/ClusterA") is None
    assert cache.locate(Parent("domain-c7"), read, "/DC1/Prod/ClusterA") is None
    assert cache.get("domain-c7") is None and read.reads == 1


def test_placement_reports_a_difference_only_when_where_the_host_sits_is_known() -> None:
    assert placement("/DC1/Prod/ClusterA", "/DC1/ClusterB") == [
        KeyDiff(LOCATION, "/DC1/Prod/ClusterA", "/DC1/ClusterB")]
    assert placement("/DC1/Prod/ClusterA", "/DC1/Prod/ClusterA") == []
    assert placement("/DC1/Prod/ClusterA", None) == []
    assert str(placement("/DC1/A", "/DC1/B")[0]) == "location: desired '/DC1/A', actual '/DC1/B'"


def test_a_pushed_parent_is_never_taken_as_compliant() -> None:
    from pyVmomi import vim

    desired = HostConfig.from_settings({"ntp.servers": ("10.0.0.1",)})
    ntp = vim.host.DateTimeInfo(ntpConfig=vim.host.NtpConfig(server=["10.0.0.1"]))
    assert pushed_compliant(desired, {"config.dateTimeInfo": ntp})
    assert not pushed_compliant(desired, {"config.dateTimeInfo": ntp, "parent": Parent("c2")})
    assert not pushed_compliant(desired, {"parent": Parent("c2")})

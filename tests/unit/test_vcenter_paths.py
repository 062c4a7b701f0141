"""Which vCenter properties a read, a verify and the change watch select, per item kind."""

from __future__ import annotations

import pytest

from stateless.errors import ValidationError
from stateless.model.config import HostConfig
from stateless.plan import KINDS, Change, KeyDiff, Plan, compliance, kind_of, managed_kinds
from stateless.vcenter.apply import verified_kinds
from stateless.vcenter.paths import ALL_PATHS, KIND_PATHS, PLACEMENT_PATHS, paths_for, paths_of_kinds

NET = {"vswitch.vSwitch1.uplinks": ("vmnic1",), "portgroup.vMotion.vswitch": "vSwitch1",
       "vmknic.vMotion.ip": "dhcp"}


@pytest.mark.parametrize(("key", "kind"), [
    ("vswitch.vSwitch1.mtu", "vswitch"),
    ("portgroup.VM Prod.vlan", "portgroup"),
    ("vmknic.vMotion.address", "vmknic"),
    ("vmknic.vMotion.services", "nictype"),
    ("vmknic.vMotion", "vmknic"),  # a removed item
    ("dns.servers", "dns"),
    ("ntp.servers", "ntp"),
    ("ntp.policy", "service"),
    ("service.TSM-SSH.policy", "service"),
    ("syslog.targets", "advanced"),
    ("advanced.Net.TcpipHeapSize", "advanced"),
    ("nfs.iso.host", "nfs"),
    ("iscsi.targets", "iscsi"),
    ("lockdown.exceptions", "lockdown"),
    ("snmp.enabled", "snmp"),
])
def test_each_key_belongs_to_the_kind_it_is_planned_as(key: str, kind: str) -> None:
    assert kind_of(key) == kind


def test_an_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValidationError, match="no item kind 'bogus'"):
        kind_of("bogus.x")


def test_every_planned_kind_has_its_paths_declared_once() -> None:
    assert set(KIND_PATHS) == {k for k in KINDS if not k.endswith("-remove")}
    assert len(ALL_PATHS) == len(set(ALL_PATHS))
    assert "config.network" not in ALL_PATHS  # read in its parts, never whole
    assert paths_for(None) == frozenset(ALL_PATHS)
    assert PLACEMENT_PATHS == ("parent",) and "parent" in ALL_PATHS


@pytest.mark.parametrize(("settings", "removed", "paths"), [
    ({"ntp.servers": ("10.0.0.1",)}, (), {"config.dateTimeInfo"}),
    ({"ntp.policy": "on"}, (), {"config.service"}),
    ({"syslog.targets": ("udp://10.0.0.5:514",)}, (), {"config.option"}),
    ({"dns.servers": ("10.0.0.53",)}, (), {"config.network.dnsConfig"}),
    (NET, (), {"config.network.vswitch", "config.network.portgroup", "config.network.vnic"}),
    ({**NET, "vmknic.vMotion.services": ("vmotion",)}, (),
     {"config.network.vswitch", "config.network.portgroup", "config.network.vnic",
      "config.virtualNicManagerInfo"}),
    ({}, ("portgroup.Old",), {"config.network.portgroup"}),
    ({"lockdown.mode": "normal"}, (), {"config.lockdownMode"}),
    ({"snmp.enabled": True}, (), set()),  # the SNMP agent, read on its own object
    ({}, (), set()),
])
def test_a_read_selects_the_paths_of_the_kinds_named(settings: dict[str, object],
                                                      removed: tuple[str, ...],
                                                      paths: set[str]) -> None:
    desired = HostConfig.from_settings(settings, removed)
    paths = {*paths, *PLACEMENT_PATHS}  # where the host sits: with every read and watch
    assert paths_for(desired) == paths
    assert paths_of_kinds(managed_kinds(desired)) == paths


def test_nothing_of_storage_or_tagging_is_read_unless_named() -> None:
    standard = {**NET, "vmknic.vMotion.services": ("vmotion",), "ntp.servers": ("a",),
                "dns.servers": ("10.0.0.53",), "syslog.targets": ("udp://10.0.0.5:514",),
                "advanced.Net.TcpipHeapSize": 32}
    paths = paths_for(HostConfig.from_settings(standard))
    assert "config.virtualNicManagerInfo" in paths  # STANDARD tags vMotion and Storage
    assert not paths & {"config.storageDevice", "config.fileSystemVolume", "config.service",
                        "config.lockdownMode"}
    untagged = {k: v for k, v in standard.items() if not k.endswith(".services")}
    assert "config.virtualNicManagerInfo" not in paths_for(HostConfig.from_settings(untagged))


def test_compliance_restricted_to_kinds_compares_only_their_keys() -> None:
    desired = HostConfig.from_settings({"ntp.servers": ("a",), "dns.servers": ("10.0.0.53",)},
                                       ["portgroup.Old"])
    current = HostConfig.from_settings({"ntp.servers": ("b",)})  # dns and port groups unread
    assert compliance(current, desired, {"ntp"}) == [KeyDiff("ntp.servers", ("a",), ("b",))]
    assert [d.key for d in compliance(current, desired)] == ["dns.servers", "ntp.servers"]
    assert compliance(current, desired, ()) == []


def test_the_verify_reads_back_what_the_plan_changed() -> None:
    desired = HostConfig.from_settings({**NET, "vmknic.vMotion.services": ("vmotion",),
                                        "ntp.servers": ("a",), "dns.servers": ("10.0.0.53",),
                                        "advanced.Net.TcpipHeapSize": 32})
    only_ntp = Plan([Change("ntp", "set", "", None)])
    assert verified_kinds(only_ntp, desired) == {"ntp"}
    # One network change: every network kind named is read back (one batch), tagging is not.
    one_pg = Plan([Change("portgroup", "edit", "vMotion", None)])
    assert verified_kinds(one_pg, desired) == {"vswitch", "portgroup", "vmknic", "dns"}
    tagging = Plan([Change("nictype", "select", "vmotion", "vMotion")])
    assert verified_kinds(tagging, desired) == frozenset()

"""HostConfig from and to setting keys, and the cross-item problems it reports."""

from __future__ import annotations

import pytest

from stateless.errors import ValidationError
from stateless.model.config import (
    HostConfig,
    HostConfigError,
    PortGroup,
    Teaming,
    VmkNic,
    VSwitch,
    check_settings,
)

STANDARD: dict[str, object] = {
    "vswitch.vSwitch1.uplinks": ("vmnic1", "vmnic2"),
    "vswitch.vSwitch1.mtu": 9000,
    "vswitch.vSwitch1.teaming.active": ("vmnic1",),
    "vswitch.vSwitch1.teaming.standby": ("vmnic2",),
    "vswitch.vSwitch1.teaming.policy": "failover_explicit",
    "portgroup.VM Prod.vswitch": "vSwitch1",
    "portgroup.VM Prod.vlan": 10,
    "portgroup.vMotion.vswitch": "vSwitch1",
    "portgroup.vMotion.vlan": 20,
    "portgroup.vMotion.teaming.active": ("vmnic2",),
    "portgroup.Storage.vswitch": "vSwitch1",
    "portgroup.Storage.vlan": 30,
    "vmknic.vMotion.services": ("vmotion",),
    "vmknic.vMotion.ip": "pool:vmotion",
    "vmknic.vMotion.address": "10.0.20.11",
    "vmknic.vMotion.netmask": "255.255.255.0",
    "vmknic.vMotion.mtu": 9000,
    "vmknic.Storage.services": (),
    "vmknic.Storage.ip": "dhcp",
    "ntp.servers": ("0.pool.ntp.org", "10.0.0.1"),
    "ntp.policy": "on",
    "dns.servers": ("10.0.0.53",),
    "dns.search": ("example.com",),
    "dns.hostname": "esx01",
    "dns.domain": "example.com",
    "syslog.targets": ("udp://10.0.0.5:514",),
    "advanced.Net.TcpipHeapSize": 32,
    "advanced.UserVars.SuppressShellWarning": True,
    "advanced.UserVars.Banner": "1",
    "service.TSM-SSH.policy": "off",
    "nfs.iso.host": "nas01.example.com",
    "nfs.iso.path": "/export/iso",
    "nfs.iso.readonly": True,
    "nfs.iso.version": "4.1",
    "iscsi.enabled": True,
    "iscsi.targets": ("10.0.5.10:3260",),
    "iscsi.chap.name": "iqn.1998-01.com.vmware:esx",
    "iscsi.chap.secret": "iscsi-chap",
    "lockdown.mode": "normal",
    "lockdown.exceptions": ("svc-backup",),
    "snmp.enabled": True,
    "snmp.communities": ("secret:snmp-ro",),
    "snmp.targets": ("10.0.0.7:162/secret:snmp-ro",),
}


def test_round_trip_keeps_every_key_and_value() -> None:
    config = HostConfig.from_settings(STANDARD)
    assert config.to_settings() == STANDARD


def test_items_are_typed() -> None:
    config = HostConfig.from_settings(STANDARD)
    assert config.vswitches["vSwitch1"] == VSwitch(
        "vSwitch1", ("vmnic1", "vmnic2"), 9000, None,
        Teaming(("vmnic1",), ("vmnic2",), "failover_explicit"))
    assert config.portgroups["vMotion"] == PortGroup("vMotion", "vSwitch1", 20, Teaming(("vmnic2",)))
    assert config.portgroups["VM Prod"].teaming is None
    assert config.vmknics["Storage"] == VmkNic("Storage", (), "dhcp")
    assert config.advanced["UserVars.Banner"] == "1"
    assert config.iscsi.chap_secret == "iscsi-chap"


@pytest.mark.parametrize(
    ("values", "key", "reason"),
    [
        ({"portgroup.A.vlan": 5}, "portgroup.A.vswitch", "missing"),
        ({"portgroup.A.vswitch": "vSwitch9"}, "portgroup.A.vswitch", "vSwitch vSwitch9 is not defined"),
        ({"vswitch.vSwitch1.uplinks": "vmnic1", "vswitch.vSwitch1.teaming.active": "vmnic3"},
         "vswitch.vSwitch1.teaming.active", "vmnic3 is not among the uplinks of vSwitch vSwitch1"),
        ({"vswitch.vSwitch1.uplinks": "vmnic1,vmnic2", "vswitch.vSwitch1.teaming.active": "vmnic1",
          "vswitch.vSwitch1.teaming.standby": "vmnic1"},
         "vswitch.vSwitch1.teaming.standby", "vmnic1 is also active"),
        ({"vswitch.vSwitch1.uplinks": "vmnic1", "portgroup.A.vswitch": "vSwitch1",
          "portgroup.A.teaming.standby": "vmnic7"},
         "portgroup.A.teaming.standby", "vmnic7 is not among the uplinks of vSwitch vSwitch1"),
        ({"vswitch.vSwitch1.uplinks": "vmnic1", "vswitch.vSwitch2.uplinks": "vmnic1"},
         "vswitch.vSwitch2.uplinks", "vmnic1 is already an uplink of vSwitch vSwitch1"),
        ({"vmknic.X.ip": "dhcp"}, "vmknic.X.ip", "port group X is not defined"),
        ({"vswitch.v.mtu": 1500, "portgroup.X.vswitch": "v", "vmknic.X.ip": "static"},
         "vmknic.X.address", "missing: ip is static"),
        ({"vswitch.v.mtu": 1500, "portgroup.X.vswitch": "v", "vmknic.X.ip": "pool:p",
          "vmknic.X.address": "10.0.0.1"}, "vmknic.X.netmask", "missing"),
        ({"vswitch.v.mtu": 1500, "portgroup.X.vswitch": "v", "vmknic.X.services": "vmotion"},
         "vmknic.X.ip", "missing: say dhcp, static or pool:NAME"),
        ({"vswitch.v.mtu": 1500, "portgroup.X.vswitch": "v", "vmknic.X.ip": "dhcp",
          "vmknic.X.address": "10.0.0.1"}, "vmknic.X.address", "the NIC uses dhcp"),
        ({"vswitch.v.mtu": 1500, "portgroup.X.vswitch": "v", "vmknic.X.ip": "dhcp",
          "vmknic.X.mtu": 9000}, "vmknic.X.mtu", "larger than the MTU 1500 of vSwitch v"),
        ({"vswitch.v.mtu": 1500, "portgroup.X.vswitch": "v", "vmknic.X.ip": "dhcp",
          "vmknic.X.services": "iscsi"}, "vmknic.X.services", "not supported"),
        ({"nfs.iso.host": "nas"}, "nfs.iso.path", "needs both host and path"),
        ({"iscsi.enabled": False, "iscsi.targets": "10.0.5.10"}, "iscsi.targets",
         "iscsi.enabled is false"),
        ({"iscsi.chap.name": "me"}, "iscsi.chap.secret", "needs both"),
        ({"advanced.Syslog.global.logHost": "udp://x"}, "advanced.Syslog.global.logHost",
         "set syslog.targets instead"),
        ({"ntp.policy": "on", "service.ntpd.policy": "off"}, "service.ntpd.policy",
         "conflicts with ntp.policy"),
        ({"portgroup.A.vlan": 9999, "portgroup.A.vswitch": "v", "vswitch.v.mtu": 1500},
         "portgroup.A.vlan", "between 0 and 4095"),
        ({"vswitch.v.mtu": 1500, "portgroup.A.vswitch": "v"}, "vswitch.v", None),
    ],
)
def test_problems_name_key_value_and_reason(values: dict[str, object], key: str,
                                            reason: str | None) -> None:
    problems = check_settings(values, removed=["vswitch.v"] if reason is None else [])
    if reason is None:
        assert any(p.key == "portgroup.A.vswitch" and "removed by policy" in p.reason
                   for p in problems)
        return
    assert any(p.key == key and reason in p.reason for p in problems), problems
    with pytest.raises(HostConfigError) as info:
        HostConfig.from_settings(values)
    assert isinstance(info.value, ValidationError)
    assert key in str(info.value)


def test_all_problems_are_reported_together() -> None:
    problems = check_settings({"portgroup.A.vswitch": "nope", "vmknic.B.ip": "static"})
    keys = {p.key for p in problems}
    assert {"portgroup.A.vswitch", "vmknic.B.ip", "vmknic.B.address", "vmknic.B.netmask"} <= keys


def test_unset_keys_are_unmanaged_and_removals_are_kept() -> None:
    config = HostConfig.from_settings({"ntp.servers": "10.0.0.1"}, removed=["portgroup.Old"])
    assert config.to_settings() == {"ntp.servers": ("10.0.0.1",)}
    assert config.ntp.policy is None and config.dns.servers is None
    assert config.removed == frozenset({"portgroup.Old"})


def test_text_values_are_coerced_like_the_directory_gives_them() -> None:
    config = HostConfig.from_settings({"vswitch.v.uplinks": "vmnic0, vmnic1", "vswitch.v.mtu": "9000",
                                       "advanced.UserVars.Banner": "1"})
    assert config.vswitches["v"].uplinks == ("vmnic0", "vmnic1")
    assert config.vswitches["v"].mtu == 9000
    assert config.advanced["UserVars.Banner"] == "1"  # typed values stay as they are

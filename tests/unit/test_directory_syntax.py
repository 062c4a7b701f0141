"""The setting text syntax of policy attributes: parsing, formatting, round trips, errors."""

from __future__ import annotations

import pytest

from stateless.directory import syntax
from stateless.errors import SettingError, ValidationError
from stateless.model.inventory import Allocation


@pytest.mark.parametrize(("attr", "text", "item", "expected"), [
    ("statelessPortGroup", "vMotion; vswitch=vSwitch1; vlan=20; teaming.active=vmnic1",
     "portgroup.vMotion", {"portgroup.vMotion.vswitch": "vSwitch1", "portgroup.vMotion.vlan": 20,
                           "portgroup.vMotion.teaming.active": ("vmnic1",)}),
    ("statelessPortGroup", "VM Network; vlan=0", "portgroup.VM Network",
     {"portgroup.VM Network.vlan": 0}),
    ("statelessPortGroup", "  Storage ;vlan = 30 ; ", "portgroup.Storage",
     {"portgroup.Storage.vlan": 30}),
    ("statelessVSwitch", "vSwitch1; uplinks=vmnic2, vmnic3; mtu=9000",
     "vswitch.vSwitch1", {"vswitch.vSwitch1.uplinks": ("vmnic2", "vmnic3"),
                          "vswitch.vSwitch1.mtu": 9000}),
    ("statelessVmknic", "vMotion; ip=pool:vmotion-a; services=vmotion",
     "vmknic.vMotion", {"vmknic.vMotion.ip": "pool:vmotion-a", "vmknic.vMotion.services": ("vmotion",)}),
    ("statelessNfsDatastore", "iso; host=nas01.example.com; path=/export/iso; readonly=yes",
     "nfs.iso", {"nfs.iso.host": "nas01.example.com", "nfs.iso.path": "/export/iso",
                 "nfs.iso.readonly": True}),
    ("statelessService", "TSM-SSH; policy=OFF", "service.TSM-SSH", {"service.TSM-SSH.policy": "off"}),
    ("statelessAdvanced", "Net.TcpipHeapSize=32", "advanced.Net.TcpipHeapSize",
     {"advanced.Net.TcpipHeapSize": 32}),
    ("statelessAdvanced", 'Config.HostAgent.log.level="info"', "advanced.Config.HostAgent.log.level",
     {"advanced.Config.HostAgent.log.level": "info"}),
    ("statelessAdvanced", 'UserVars.X="1"', "advanced.UserVars.X", {"advanced.UserVars.X": "1"}),
    ("statelessNtp", "servers=0.pool.ntp.org,10.0.0.1; policy=on", "ntp",
     {"ntp.servers": ("0.pool.ntp.org", "10.0.0.1"), "ntp.policy": "on"}),
    ("statelessDns", "servers=10.0.0.53; search=example.com,lab.example.com", "dns",
     {"dns.servers": ("10.0.0.53",), "dns.search": ("example.com", "lab.example.com")}),
    ("statelessSyslog", "targets=udp://10.0.0.5:514", "syslog",
     {"syslog.targets": ("udp://10.0.0.5:514",)}),
    ("statelessIscsi", "enabled=true; targets=10.0.5.10:3260; chap.name=iqn.x; chap.secret=chap1",
     "iscsi", {"iscsi.enabled": True, "iscsi.targets": ("10.0.5.10:3260",),
               "iscsi.chap.name": "iqn.x", "iscsi.chap.secret": "chap1"}),
    ("statelessLockdown", "mode=strict; exceptions=", "lockdown",
     {"lockdown.mode": "strict", "lockdown.exceptions": ()}),
    ("statelessSnmp", "enabled=false; communities=secret:ro; targets=10.0.0.7:162/secret:ro", "snmp",
     {"snmp.enabled": False, "snmp.communities": ("secret:ro",),
      "snmp.targets": ("10.0.0.7:162/secret:ro",)}),
])
def test_parse_and_round_trip(attr: str, text: str, item: str, expected: dict[str, object]) -> None:
    got_item, got = syntax.parse_value(attr, text)
    assert (got_item, got) == (item, expected)
    again = syntax.format_value_text(attr, item, got)
    assert syntax.parse_value(attr, again) == (item, expected)
    assert syntax.attribute_of(next(iter(expected)))[0] == attr


@pytest.mark.parametrize(("attr", "text", "message"), [
    ("statelessPortGroup", "vMotion; vlan=5000", "between 0 and 4095"),
    ("statelessPortGroup", "vMotion; colour=red", "unknown portgroup field"),
    ("statelessPortGroup", "vMotion", "has no fields"),
    ("statelessPortGroup", "vlan=20", "must start with the portgroup name"),
    ("statelessPortGroup", "vMotion; vlan", "expected field=value"),
    ("statelessPortGroup", "vMotion; vlan=1; vlan=2", "given twice"),
    ("statelessPortGroup", "bad,name; vlan=1", "invalid portgroup name"),
    ("statelessVmknic", "vMotion; address=10.0.0.1", "host-specific"),
    ("statelessVSwitch", "vSwitch1; uplinks=eth0", "uplink name"),
    ("statelessNtp", "servers=not a host", "DNS name or an IP"),
    ("statelessNtp", "policy=sometimes", "expected one of"),
    ("statelessNtp", "colour=red", "unknown"),
    ("statelessNtp", "", "empty"),
    ("statelessDns", "hostname=esx01", "host-specific"),
    ("statelessAdvanced", "NoDot=1", "advanced option keys"),
    ("statelessAdvanced", "Net.X", "expected field=value"),
    ("statelessPortGroup", "a; vlan=1\nb; vlan=2", "single line"),
])
def test_bad_values(attr: str, text: str, message: str) -> None:
    with pytest.raises((SettingError, ValidationError), match=message):
        syntax.parse_value(attr, text)


def test_decode_policy_keeps_good_values_and_reports_every_bad_one() -> None:
    settings, removals, problems = syntax.decode_policy({
        "statelessPortGroup": ["vMotion; vlan=20", "Storage; vlan=5000", "vMotion; vlan=21"],
        "statelessAdvanced": ["Net.TcpipHeapSize=32"],
        "statelessRemove": ["portgroup.VM Network", "ntp.servers", "bogus.thing"],
        "description": ["ignored"],
    })
    assert settings == {"portgroup.vMotion.vlan": 20, "advanced.Net.TcpipHeapSize": 32}
    assert removals == {"portgroup.VM Network", "ntp.servers"}
    assert [(a, v) for a, v, _ in problems] == [
        ("statelessPortGroup", "Storage; vlan=5000"),
        ("statelessPortGroup", "vMotion; vlan=21"),
        ("statelessRemove", "bogus.thing"),
    ]
    assert "portgroup.Storage.vlan: must be between 0 and 4095" in problems[0][2]
    assert "two values" in problems[1][2]


def test_encode_policy_one_value_per_item_and_back() -> None:
    flat = {"portgroup.vMotion.vlan": "20", "portgroup.vMotion.vswitch": "vSwitch1",
            "portgroup.VM Network.vlan": 0, "ntp.servers": "a.example.com,10.0.0.1",
            "ntp.policy": "on", "advanced.Net.TcpipHeapSize": 32, "advanced.UserVars.X": '"007"',
            "iscsi.chap.name": "iqn.x"}
    encoded = syntax.encode_policy(flat, ["service.TSM-SSH"])
    assert sorted(encoded["statelessPortGroup"]) == ["VM Network; vlan=0",
                                                     "vMotion; vlan=20; vswitch=vSwitch1"]
    assert encoded["statelessNtp"] == ["policy=on; servers=a.example.com,10.0.0.1"]
    assert sorted(encoded["statelessAdvanced"]) == ["Net.TcpipHeapSize=32", 'UserVars.X="007"']
    assert encoded["statelessIscsi"] == ["chap.name=iqn.x"]
    assert encoded["statelessRemove"] == ["service.TSM-SSH"]
    settings, removals, problems = syntax.decode_policy(encoded)
    assert problems == []
    assert removals == {"service.TSM-SSH"}
    assert settings["advanced.UserVars.X"] == "007"
    assert settings["portgroup.vMotion.vlan"] == 20


def test_encode_policy_validates() -> None:
    with pytest.raises(SettingError, match="vlan"):
        syntax.encode_policy({"portgroup.vMotion.vlan": 5000})


@pytest.mark.parametrize(("attr", "text", "item"), [
    ("statelessPortGroup", "VM Network; vlan=oops", "portgroup.VM Network"),
    ("statelessNtp", "garbage", "ntp"),
    ("statelessAdvanced", "Net.X=1", "advanced.Net.X"),
    ("description", "x", None),
])
def test_item_name_of_a_value_even_when_bad(attr: str, text: str, item: str | None) -> None:
    assert syntax.item_name_of_value(attr, text) == item


@pytest.mark.parametrize(("text", "key", "value"), [
    ("dns.hostname=esx01", "dns.hostname", "esx01"),
    ("vmknic.Storage.address = 10.1.30.11", "vmknic.Storage.address", "10.1.30.11"),
    ("ntp.servers=10.0.0.1", "ntp.servers", ("10.0.0.1",)),
])
def test_answers(text: str, key: str, value: object) -> None:
    assert syntax.parse_answer(text) == (key, value)
    assert syntax.parse_answer(syntax.format_answer(key, value)) == (key, value)


@pytest.mark.parametrize("text", ["dns.hostname", "dns.hostname=not_a_label!", "nope.key=1"])
def test_bad_answers(text: str) -> None:
    with pytest.raises((SettingError, ValidationError)):
        syntax.parse_answer(text)


def test_allocation_round_trip_and_errors() -> None:
    allocation = Allocation("vmknic.vMotion", "vmotion-a", "10.1.20.10")
    text = syntax.format_allocation(allocation)
    assert text == "vmknic.vMotion; pool=vmotion-a; address=10.1.20.10"
    assert syntax.parse_allocation(text) == allocation
    for bad in ("portgroup.x; pool=a; address=10.0.0.1", "vmknic.x; pool=a",
                "vmknic.x; pool=a; address=300.0.0.1"):
        with pytest.raises((SettingError, ValidationError)):
            syntax.parse_allocation(bad)


@pytest.mark.parametrize(("text", "ok"), [("vendor=Dell*", True), ("ipv4 = 10.1.0.0/16", True),
                                          ("vendor", False), ("=x", False), ("model=", False)])
def test_match(text: str, ok: bool) -> None:
    if ok:
        field, pattern = syntax.parse_match(text)
        assert "=" not in field and pattern
    else:
        with pytest.raises(ValidationError):
            syntax.parse_match(text)

"""The setting key space: parsing, coercion and the errors a user sees."""

from __future__ import annotations

import pytest

from stateless.errors import SettingError
from stateless.model.settings import coerce, format_value, parse_item_ref, parse_key, settings_table


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("ntp.servers", "0.pool.ntp.org, 10.0.0.1", ("0.pool.ntp.org", "10.0.0.1")),
        ("ntp.servers", "", ()),
        ("ntp.servers", ["a.example.com"], ("a.example.com",)),
        ("ntp.policy", "ON", "on"),
        ("portgroup.VM Network.vlan", "20", 20),
        ("portgroup.vMotion.vlan", 4095, 4095),
        ("vswitch.vSwitch1.teaming.policy", "failover_explicit", "failover_explicit"),
        ("vswitch.vSwitch1.uplinks", "vmnic0,vmnic1", ("vmnic0", "vmnic1")),
        ("vmknic.vMotion.services", "vmotion,vsan", ("vmotion", "vsan")),
        ("vmknic.vMotion.ip", "pool:vmotion-a", "pool:vmotion-a"),
        ("advanced.Net.TcpipHeapSize", "32", 32),
        ("advanced.Syslog.global.logHost", "udp://10.0.0.5:514", "udp://10.0.0.5:514"),
        ("advanced.UserVars.Banner", '"1"', "1"),
        ("advanced.UserVars.Flag", True, True),
        ("syslog.targets", "udp://10.0.0.5:514,ssl://log.example.com", ("udp://10.0.0.5:514",
                                                                     "ssl://log.example.com")),
        ("lockdown.mode", "Strict", "strict"),
        ("snmp.targets", "10.0.0.7:162/secret:snmp-ro", ("10.0.0.7:162/secret:snmp-ro",)),
        ("snmp.targets", "trap.example.com", ("trap.example.com",)),
        ("snmp.communities", "secret:ro-a, secret:ro-b", ("secret:ro-a", "secret:ro-b")),
        ("iscsi.enabled", "yes", True),
        ("nfs.iso.version", "4.1", "4.1"),
        ("service.TSM-SSH.policy", "off", "off"),
    ],
)
def test_coerce_accepts(key: str, raw: object, expected: object) -> None:
    assert coerce(key, raw) == expected
    assert coerce(key, format_value(coerce(key, raw), key)) == expected


@pytest.mark.parametrize(
    ("key", "raw", "reason"),
    [
        ("portgroup.vMotion.vlan", "5000", "between 0 and 4095"),
        ("portgroup.vMotion.vlan", True, "integer"),
        ("vswitch.vSwitch1.mtu", 100, "between 1280 and 9000"),
        ("ntp.servers", "not a host!", "DNS name or an IP"),
        ("ntp.servers", "a.example.com,a.example.com", "duplicate"),
        ("dns.servers", "10.0.0.300", "IP address"),
        ("vswitch.vSwitch1.uplinks", "eth0", "vmnic0"),
        ("vmknic.vMotion.services", "backup", "one of"),
        ("lockdown.mode", "paranoid", "one of"),
        ("syslog.targets", "http://x", "udp|tcp|ssl"),
        ("nosuch.key", "1", "unknown setting"),
        ("portgroup.vMotion.colour", "1", "unknown portgroup field"),
        ("advanced.NoDots", "1", "Net.TcpipHeapSize"),
        ("vmknic.vMotion.address", "10.0.0.5", "host answer"),
        ("snmp.communities", "public", "stateless secret set snmp NAME"),
        ("snmp.communities", "secret:ok,private", "secret:NAME"),
        ("snmp.targets", "10.0.0.7:162/public", "stateless secret set snmp NAME"),
        ("snmp.targets", "not a host!/secret:x", "host[:port][/secret:NAME]"),
    ],
)
def test_coerce_rejects_with_reason(key: str, raw: object, reason: str) -> None:
    with pytest.raises(SettingError) as info:
        coerce(key, raw)
    assert reason in str(info.value)
    assert info.value.key == key


def test_host_specific_keys_are_accepted_as_answers() -> None:
    assert coerce("vmknic.vMotion.address", "10.0.20.5", answer=True) == "10.0.20.5"


def test_keys_split_into_items() -> None:
    key, _ = parse_key("portgroup.VM Network.teaming.active")
    assert (key.kind, key.name, key.field, key.item) == (
        "portgroup", "VM Network", "teaming.active", "portgroup.VM Network")
    assert parse_key("ntp.servers")[0].item == "ntp.servers"
    assert parse_key("advanced.Net.TcpipHeapSize")[0].item == "advanced.Net.TcpipHeapSize"
    assert parse_item_ref("portgroup.VM Network") == "portgroup.VM Network"
    with pytest.raises(SettingError):
        parse_item_ref("bogus.thing")


def test_table_documents_every_field() -> None:
    patterns = {row[0] for row in settings_table()}
    assert "portgroup.<name>.vlan" in patterns and "advanced.<Option.Key>" in patterns
    for pattern, _doc, example in settings_table():
        key = (pattern.replace("<name>", "x").replace("<portgroup>", "x").replace("<key>", "x")
               .replace("<Option.Key>", "Net.Opt"))
        coerce(key, example, answer=True)


def test_settings_document_lists_every_key() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "settings.md").read_text()
    for pattern, doc, example in settings_table():
        assert f"| `{pattern}` | {doc} | `{example}` |" in text, f"docs/settings.md lacks {pattern}"

"""The planner and compliance: tables of current vs desired."""

from __future__ import annotations

import attrs
import pytest

from stateless.errors import ValidationError
from stateless.model.config import SECRET_SET, HostConfig, Iscsi
from stateless.model.settings import SettingValue
from stateless.plan import (
    KeyDiff,
    OptionType,
    UnsupportedOptionError,
    check_options,
    coerce_option,
    compliance,
    plan,
)

# What a freshly booted host looks like when read back.
HOST = {
    "vswitch.vSwitch0.uplinks": ("vmnic0",),
    "vswitch.vSwitch0.mtu": 1500,
    "vswitch.vSwitch0.ports": 128,
    "portgroup.Management Network.vswitch": "vSwitch0",
    "portgroup.Management Network.vlan": 0,
    "portgroup.VM Network.vswitch": "vSwitch0",
    "portgroup.VM Network.vlan": 0,
    "vmknic.Management Network.ip": "static",
    "vmknic.Management Network.address": "10.0.0.11",
    "vmknic.Management Network.netmask": "255.255.255.0",
    "vmknic.Management Network.services": ("management",),
    "vmknic.Management Network.mtu": 1500,
    "ntp.servers": (),
    "ntp.policy": "off",
    "dns.servers": ("10.0.0.53",),
    "dns.search": (),
    "dns.hostname": "localhost",
    "dns.domain": "localdomain",
    "syslog.targets": (),
    "advanced.Net.TcpipHeapSize": 0,
    "lockdown.mode": "disabled",
    "iscsi.enabled": False,
    "iscsi.targets": (),
}
CURRENT = HostConfig.from_settings(HOST)
NEW_NET = {
    "vswitch.vSwitch1.uplinks": ("vmnic1",),
    "portgroup.vMotion.vswitch": "vSwitch1",
    "vmknic.vMotion.ip": "dhcp",
    "vmknic.vMotion.services": ("vmotion",),
}


def steps(desired: dict[str, object], removed: tuple[str, ...] = ()) -> list[str]:
    return [str(c) for c in plan(CURRENT, HostConfig.from_settings(desired, removed))]


@pytest.mark.parametrize(
    ("desired", "removed", "expected"),
    [
        ({}, (), []),
        (HOST, (), []),
        ({"vswitch.vSwitch0.mtu": 1500, "dns.servers": "10.0.0.53"}, (), []),
        ({"vswitch.vSwitch0.mtu": 9000}, (), ["edit vswitch vSwitch0"]),
        ({"lockdown.mode": "normal", **NEW_NET, "ntp.servers": "10.0.0.1"}, (),
         ["add vswitch vSwitch1", "add portgroup vMotion", "add vmknic vMotion",
          "select nictype vmotion", "set ntp", "set lockdown"]),
        ({"vswitch.vSwitch0.mtu": 1500, "portgroup.VM Network.vswitch": "vSwitch0"},
         ("vmknic.Management Network", "portgroup.Management Network"),
         ["remove vmknic Management Network", "remove portgroup Management Network"]),
        ({}, ("portgroup.Not There",), []),
        ({"vswitch.vSwitch0.mtu": 1500, "portgroup.Management Network.vswitch": "vSwitch0",
          "vmknic.Management Network.ip": "static", "vmknic.Management Network.address": "10.0.0.11",
          "vmknic.Management Network.netmask": "255.255.255.0",
          "vmknic.Management Network.services": ("management", "vmotion")}, (),
         ["select nictype vmotion"]),
        ({"vswitch.vSwitch0.mtu": 1500, "portgroup.Management Network.vswitch": "vSwitch0",
          "vmknic.Management Network.ip": "pool:mgmt", "vmknic.Management Network.address": "10.0.0.11",
          "vmknic.Management Network.netmask": "255.255.255.0",
          "vmknic.Management Network.services": ()}, (),
         ["deselect nictype management"]),
        ({"ntp.policy": "on"}, (), ["set service ntpd"]),
        ({"service.TSM-SSH.policy": "on"}, (), ["set service TSM-SSH"]),
        ({"syslog.targets": "udp://10.0.0.5:514", "advanced.Net.TcpipHeapSize": 32,
          "advanced.UserVars.X": "y"}, (),
         ["set advanced syslog", "set advanced Net.TcpipHeapSize", "set advanced UserVars.X"]),
        ({"advanced.Net.TcpipHeapSize": 0}, (), []),
        ({"dns.hostname": "esx01"}, (), ["set dns"]),
        ({"nfs.iso.host": "nas", "nfs.iso.path": "/iso"}, (), ["add nfs iso"]),
        ({"snmp.enabled": True}, (), ["set snmp"]),
        ({"iscsi.enabled": True, "iscsi.targets": "10.0.5.10:3260"}, (), ["set iscsi"]),
        ({"iscsi.enabled": False}, (), []),
    ],
)
def test_plan_steps_in_dependency_order(desired: dict[str, object], removed: tuple[str, ...],
                                        expected: list[str]) -> None:
    assert steps(desired, removed) == expected


def test_edits_carry_the_complete_item() -> None:
    (change,) = plan(CURRENT, HostConfig.from_settings({"dns.hostname": "esx01"})).changes
    assert change.after.hostname == "esx01"
    assert change.after.domain == "localdomain"  # unmanaged field kept from the host
    assert change.after.servers == ("10.0.0.53",)
    (edit,) = plan(CURRENT, HostConfig.from_settings({"vswitch.vSwitch0.mtu": 9000})).changes
    assert (edit.after.mtu, edit.after.uplinks, edit.after.ports) == (9000, ("vmnic0",), 128)


def test_new_items_get_defaults_for_unmanaged_fields() -> None:
    changes = plan(CURRENT, HostConfig.from_settings(NEW_NET)).changes
    assert changes[0].after.ports == 128 and changes[0].after.mtu == 1500
    assert changes[1].after.vlan == 0


def test_switch_to_dhcp_drops_the_static_address() -> None:
    desired = {"vswitch.vSwitch0.mtu": 1500, "portgroup.Management Network.vswitch": "vSwitch0",
               "vmknic.Management Network.ip": "dhcp"}
    (change,) = plan(CURRENT, HostConfig.from_settings(desired)).changes
    assert change.op == "edit" and change.after.address is None and change.after.ip == "dhcp"


@pytest.mark.parametrize(
    ("desired", "removed", "diffs"),
    [
        ({}, (), []),
        (HOST, (), []),
        ({"ntp.servers": "10.0.0.1"}, (), [KeyDiff("ntp.servers", ("10.0.0.1",), ())]),
        ({"dns.hostname": "esx01", "dns.domain": "localdomain"}, (),
         [KeyDiff("dns.hostname", "esx01", "localhost")]),
        ({"vswitch.vSwitch1.mtu": 9000}, (), [KeyDiff("vswitch.vSwitch1.mtu", 9000, None)]),
        ({"advanced.Net.TcpipHeapSize": 0}, (), []),
        ({"advanced.Net.TcpipHeapSize": "0"}, (), [KeyDiff("advanced.Net.TcpipHeapSize", "0", 0)]),
        ({}, ("portgroup.VM Network",),
         [KeyDiff("portgroup.VM Network.vlan", None, 0),
          KeyDiff("portgroup.VM Network.vswitch", None, "vSwitch0")]),
        ({"vswitch.vSwitch0.mtu": 1500, "portgroup.Management Network.vswitch": "vSwitch0",
          "vmknic.Management Network.ip": "pool:mgmt", "vmknic.Management Network.address": "10.0.0.11",
          "vmknic.Management Network.netmask": "255.255.255.0"}, (), []),
    ],
)
def test_compliance_per_key(desired: dict[str, object], removed: tuple[str, ...],
                            diffs: list[KeyDiff]) -> None:
    assert compliance(CURRENT, HostConfig.from_settings(desired, removed)) == diffs


def test_chap_secret_is_compliant_when_the_host_has_chap() -> None:
    desired = HostConfig(iscsi=Iscsi(True, (), "me", "chap-ref"))
    with_chap = HostConfig(iscsi=Iscsi(True, (), "me", SECRET_SET))
    without = HostConfig(iscsi=Iscsi(True, (), None, None))
    assert compliance(with_chap, desired) == []
    assert not plan(with_chap, desired)
    assert [d.key for d in compliance(without, desired)] == ["iscsi.chap.name", "iscsi.chap.secret"]
    assert [str(c) for c in plan(without, desired)] == ["set iscsi"]


def test_compliant_host_after_applying_plan_targets() -> None:
    """Applying each change's target to the current config yields a compliant config."""
    desired = HostConfig.from_settings({**NEW_NET, "dns.hostname": "esx01",
                                        "vswitch.vSwitch0.mtu": 9000})
    the_plan = plan(CURRENT, desired)
    vswitches = dict(CURRENT.vswitches)
    portgroups = dict(CURRENT.portgroups)
    vmknics = dict(CURRENT.vmknics)
    dns = CURRENT.dns
    for c in the_plan:
        if c.kind == "vswitch":
            vswitches[c.name] = c.after
        elif c.kind == "portgroup":
            portgroups[c.name] = c.after
        elif c.kind == "vmknic":
            vmknics[c.name] = c.after
        elif c.kind == "nictype":
            nic = vmknics[c.after]
            vmknics[c.after] = attrs.evolve(nic, services=(*(nic.services or ()), c.name))
        elif c.kind == "dns":
            dns = c.after
    after = attrs.evolve(CURRENT, vswitches=vswitches, portgroups=portgroups, vmknics=vmknics, dns=dns)
    assert compliance(after, desired) == []
    assert not plan(after, desired)


# --- advanced options against a host's catalogue -------------------------------------------

HEAP = OptionType("Net.TcpipHeapSize", "long", 0, 32)
LOCK = OptionType("Security.AccountLockFailures", "int", 0, 2**31 - 1)
FLAG = OptionType("Syslog.global.logDirUnique", "bool")
TEXT = OptionType("Config.Etc.issue", "string")
HEX = OptionType("Some.Hex", "string", valid_characters="0123456789abcdef")
LEVEL = OptionType("Config.HostAgent.log.level", "choice", choices=("info", "verbose"))
CATALOGUE = {o.key: o for o in (HEAP, LOCK, FLAG, TEXT, HEX, LEVEL,
                                OptionType("Syslog.global.logHost", "string"),
                                OptionType("Net.TcpipHeapMax", "long", 32, 1536))}


@pytest.mark.parametrize(("option", "value", "expected"), [
    (HEAP, 32, 32),
    (HEAP, "1", 1),  # a quoted number from the directory is fine for an integer option
    (HEAP, " 7 ", 7),
    (HEAP, 0, 0),
    (LOCK, "3", 3),
    (FLAG, True, True),
    (FLAG, "yes", True),
    (FLAG, "off", False),
    (FLAG, 1, True),
    (FLAG, 0, False),
    (TEXT, "hello", "hello"),
    (TEXT, 7, "7"),  # an unquoted number still sets a string option
    (TEXT, False, "false"),
    (HEX, "00ff", "00ff"),
    (LEVEL, "verbose", "verbose"),
])
def test_values_take_the_option_type(option: OptionType, value: SettingValue,
                                     expected: SettingValue) -> None:
    got = coerce_option(option, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("option", "value", "reason"), [
    (HEAP, "yes", "expected an integer 0..32 (LongOption)"),
    (HEAP, True, "expected an integer 0..32 (LongOption)"),
    (HEAP, "1.5", "expected an integer 0..32 (LongOption)"),
    (HEAP, 33, "33 is outside 0..32 (LongOption)"),
    (HEAP, -1, "-1 is outside 0..32 (LongOption)"),
    (HEAP, ("1",), "a list; expected an integer 0..32 (LongOption)"),
    (LOCK, "many", "expected an integer 0..2147483647 (IntOption)"),
    (FLAG, "maybe", "expected true or false (BoolOption)"),
    (FLAG, 2, "expected true or false (BoolOption)"),
    (HEX, "00fg", "may only contain the characters '0123456789abcdef'"),
    (LEVEL, "debug", "expected one of info, verbose (ChoiceOption)"),
    (attrs.evolve(TEXT, readonly=True), "x", "read-only on this host"),
    (OptionType("Some.Ratio", "float"), "0.5", "a FloatOption, which stateless does not set"),
    (OptionType("Some.Odd", "VendorOption"), "x", "a VendorOption, which stateless does not set"),
])
def test_values_an_option_does_not_take(option: OptionType, value: SettingValue,
                                        reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        coerce_option(option, value)
    assert str(caught.value).startswith(reason)


@pytest.mark.parametrize(("settings", "problems"), [
    ({"advanced.Net.TcpipHeapSize": 8}, []),
    ({"advanced.Net.TcpipHeapSise": 8},
     [("advanced.Net.TcpipHeapSise", "not supported by this host; remove it from the policy or "
                                     "check its spelling (did you mean Net.TcpipHeapSize?)")]),
    ({"advanced.Custom.Thing": 1},
     [("advanced.Custom.Thing", "not supported by this host; remove it from the policy or "
                                "check its spelling")]),
    ({"advanced.Net.TcpipHeapMax": 4096, "advanced.Net.TcpipHeapSize": "yes",
      "advanced.Config.Etc.issue": "fine"},
     [("advanced.Net.TcpipHeapMax", "'4096': 4096 is outside 32..1536 (LongOption); set a value "
                                    "in range in the policy"),
      ("advanced.Net.TcpipHeapSize", "'yes': expected an integer 0..32 (LongOption); set a value "
                                     "of that type in the policy")]),
])
def test_check_options_reports_every_problem_per_key(
        settings: dict[str, object], problems: list[tuple[str, str]]) -> None:
    assert check_options(CATALOGUE, HostConfig.from_settings(settings))[1] == problems


def test_check_options_puts_values_in_their_types() -> None:
    desired = HostConfig.from_settings({"advanced.Net.TcpipHeapSize": "32",
                                        "advanced.Config.Etc.issue": 7,
                                        "advanced.Syslog.global.logDirUnique": "yes",
                                        "syslog.targets": "udp://10.0.0.5:514"})
    checked, problems = check_options(CATALOGUE, desired)
    assert problems == []
    assert dict(checked.advanced) == {"Net.TcpipHeapSize": 32, "Config.Etc.issue": "7",
                                      "Syslog.global.logDirUnique": True}
    assert checked.syslog == desired.syslog
    # Compared with what the host reports, the typed values are compliant.
    host = HostConfig(syslog=("udp://10.0.0.5:514",),
                      advanced={"Net.TcpipHeapSize": 32, "Config.Etc.issue": "7",
                                "Syslog.global.logDirUnique": True})
    assert compliance(host, checked) == [] and not plan(host, checked)
    assert compliance(host, desired) != []  # the untyped values are not


def test_check_options_without_options_changes_nothing() -> None:
    desired = HostConfig.from_settings({"ntp.servers": "10.0.0.1"})
    assert check_options({}, desired) == (desired, [])


def test_syslog_needs_the_host_option_it_is_written_as() -> None:
    desired = HostConfig.from_settings({"syslog.targets": "udp://10.0.0.5:514"})
    assert check_options(CATALOGUE, desired)[1] == []
    problems = check_options({"Net.TcpipHeapSize": HEAP}, desired)[1]
    assert problems == [("syslog.targets", "this host has no Syslog.global.logHost option; "
                                           "remove syslog.targets from the policy")]


def test_unsupported_option_error_names_host_keys_and_fix() -> None:
    error = UnsupportedOptionError("vCenter vc1: check advanced options on host esx01",
                                   [("advanced.A.B", "not supported by this host")])
    assert isinstance(error, ValidationError)
    assert error.problems == (("advanced.A.B", "not supported by this host"),)
    assert str(error) == ("vCenter vc1: check advanced options on host esx01: 1 advanced "
                          "option(s) not accepted by this host, so nothing was written: "
                          "advanced.A.B: not supported by this host")

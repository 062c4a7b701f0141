"""The difference between a host's current and desired configuration, as ordered changes.

Pure: `plan` and `compliance` only compare `HostConfig` values, `placement` where a host sits
with where it should, and `check_options` checks
desired advanced options against the catalogue a host declares (its `supportedOption`).  A
change carries the full target item (current overlaid with what is managed), because vSphere
specs must be complete even when policy manages one field.  The order respects dependencies:
vSwitches before port groups before VMkernel NICs before NIC-type tagging (removals in the
reverse order), and lockdown last, since it can cut the service's own access.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from stateless.errors import ValidationError
from stateless.model.config import (
    NTP_SERVICE,
    SECRET_SET,
    SYSLOG_OPTION,
    Dns,
    HostConfig,
    Iscsi,
    Lockdown,
    Ntp,
    PortGroup,
    Snmp,
    VmkNic,
    VSwitch,
)
from stateless.model.settings import BOOL, SettingValue, format_value, pool_name, render_value

# Kinds in apply order; `KIND_ORDER[kind]` sorts a plan.
KINDS = ("vswitch", "portgroup", "vmknic-remove", "vmknic", "portgroup-remove", "vswitch-remove",
         "nictype", "dns", "ntp", "advanced", "service", "nfs", "iscsi", "snmp", "account",
         "lockdown")
KIND_ORDER = {k: i for i, k in enumerate(KINDS)}

# Defaults for fields nobody manages on a newly created item (ESXi's own defaults).
DEFAULT_VSWITCH_PORTS = 128
DEFAULT_MTU = 1500


@attrs.frozen
class Change:
    """One step: `after` is the complete target item (None when removing)."""

    kind: str  # vswitch, portgroup, vmknic, nictype, dns, ntp, advanced, service, nfs, ...
    op: str  # add, edit, remove, select, deselect, set
    name: str  # item name; NIC type for nictype; "" for host-wide items
    after: Any = None
    before: Any = None

    @property
    def order(self) -> int:
        kind = f"{self.kind}-remove" if self.op == "remove" and self.kind in (
            "vswitch", "portgroup", "vmknic") else self.kind
        return KIND_ORDER[kind]

    def __str__(self) -> str:
        return f"{self.op} {self.kind} {self.name}".rstrip()


def _changes(value: Iterable[Change]) -> tuple[Change, ...]:
    return tuple(value)


@attrs.frozen
class Plan:
    changes: tuple[Change, ...] = attrs.field(default=(), converter=_changes)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def of(self, *kinds: str) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind in kinds)


@attrs.frozen
class KeyDiff:
    """One non-compliant key: desired None means the item was removed by policy."""

    key: str
    desired: SettingValue | None
    actual: SettingValue | None

    def __str__(self) -> str:
        def fmt(v: SettingValue | None) -> str:
            return "(unset)" if v is None else repr(render_value(self.key, v))
        return f"{self.key}: desired {fmt(self.desired)}, actual {fmt(self.actual)}"


# --- comparing -----------------------------------------------------------------------------


def same_value(key: str, desired: SettingValue | None, actual: SettingValue | None) -> bool:
    """Equal as the host sees it (pool addresses are static, service sets have no order)."""
    if desired == actual and type(desired) is type(actual):
        return True
    if desired is None or actual is None:
        return False
    if key.endswith(".ip") and key.startswith("vmknic."):
        return _ip_mode(str(desired)) == _ip_mode(str(actual))
    if key.startswith("vmknic.") and key.endswith(".services"):
        return isinstance(desired, tuple) and isinstance(actual, tuple) and set(desired) == set(actual)
    if key == "iscsi.chap.secret":
        return actual == SECRET_SET
    if key.startswith("advanced."):
        return format_value(desired, key) == format_value(actual, key)
    return False


def _ip_mode(ip: str | None) -> str | None:
    return "static" if pool_name(ip) is not None else ip


def kind_of(key: str) -> str:
    """The kind of change (see KINDS) a setting key or item reference is planned as.

    `vmknic.<pg>.services` is NIC-type tagging, `ntp.policy` the ntpd service's policy and
    `syslog.targets` an advanced option, as `plan` treats them.
    """
    head = key.partition(".")[0]
    if head == "vmknic" and key.endswith(".services"):
        return "nictype"
    if key == "ntp.policy":
        return "service"
    if head == "syslog":
        return "advanced"
    if head in KIND_ORDER:
        return head
    raise ValidationError(f"setting {key!r}: no item kind {head!r}")


def managed_kinds(desired: HostConfig) -> frozenset[str]:
    """The kinds of item `desired` sets or removes: all that a read for it must cover."""
    return frozenset(kind_of(k) for k in (*desired.to_settings(), *desired.removed))


def compliance(current: HostConfig, desired: HostConfig,
               kinds: Iterable[str] | None = None) -> list[KeyDiff]:
    """Per managed key (the keys of `rsop`): where the host differs from what is desired.

    With `kinds`, only keys of those kinds are compared (`current` holds only those).
    """
    only = None if kinds is None else frozenset(kinds)
    want = {k: v for k, v in desired.to_settings().items() if only is None or kind_of(k) in only}
    have = current.to_settings()
    diffs = [KeyDiff(k, want[k], have.get(k)) for k in sorted(want)
             if not same_value(k, want[k], have.get(k))]
    for ref in sorted(desired.removed):
        if only is not None and kind_of(ref) not in only:
            continue
        diffs += [KeyDiff(k, None, have[k]) for k in sorted(have)
                  if (k == ref or k.startswith(ref + ".")) and k not in want]
    return diffs


LOCATION = "location"  # the key of a placement difference (not a setting: no item kind)


def placement(desired: str, actual: str | None) -> list[KeyDiff]:
    """Where the host sits vs its target location (`/DC/cluster`, `/DC/folder`); a difference
    only when where it sits is known."""
    if actual is None or actual == desired:
        return []
    return [KeyDiff(LOCATION, desired, actual)]


# --- planning ------------------------------------------------------------------------------


def _overlay(current: Any, desired: Any) -> Any:
    """`current` with every field that `desired` sets (recursively for nested items)."""
    if current is None:
        return desired
    changes = {}
    for field in attrs.fields(type(desired)):
        if not field.eq:
            continue
        value = getattr(desired, field.name)
        if value is None:
            continue
        if attrs.has(type(value)):
            value = _overlay(getattr(current, field.name), value)
        changes[field.name] = value
    return attrs.evolve(current, **changes)


def _differs(current: Any, desired: Any, settings: Any) -> bool:
    """Whether any managed key of the item differs (using the compliance comparison)."""
    want = settings(desired)
    have = settings(current)
    return any(not same_value(k, v, have.get(k)) for k, v in want.items())


def _item_settings(kind: str) -> Any:
    def settings(item: Any) -> dict[str, SettingValue]:
        if item is None:
            return {}
        name = getattr(item, "name", None) or item.portgroup
        fields: dict[str, Any] = {kind: {name: item}}
        config = attrs.evolve(HostConfig(), **fields)
        return config.to_settings()
    return settings


def plan(current: HostConfig, desired: HostConfig) -> Plan:
    """The ordered changes that make `current` comply with `desired`; empty when compliant."""
    changes: list[Change] = []
    changes += _keyed("vswitch", "vswitches", current.vswitches, desired, _new_vswitch)
    changes += _keyed("portgroup", "portgroups", current.portgroups, desired, _new_portgroup)
    changes += _keyed("vmknic", "vmknics", current.vmknics, desired, _new_vmknic)
    changes += _nic_types(current, desired)
    changes += _dns(current.dns, desired.dns)
    changes += _ntp(current.ntp, desired.ntp)
    changes += _advanced(current, desired)
    changes += _services(current, desired)
    changes += _keyed("nfs", "nfs", current.nfs, desired, lambda d: d)
    changes += _iscsi(current.iscsi, desired.iscsi)
    changes += _snmp(current.snmp, desired.snmp)
    changes += _account(current, desired)
    changes += _lockdown(current.lockdown, desired.lockdown)
    changes.sort(key=lambda c: c.order)
    return Plan(changes)


def _new_vswitch(d: VSwitch) -> VSwitch:
    return attrs.evolve(d, uplinks=d.uplinks or (), mtu=d.mtu or DEFAULT_MTU,
                        ports=d.ports or DEFAULT_VSWITCH_PORTS)


def _new_portgroup(d: PortGroup) -> PortGroup:
    return attrs.evolve(d, vlan=d.vlan or 0)


def _new_vmknic(d: VmkNic) -> VmkNic:
    return attrs.evolve(d, mtu=d.mtu or DEFAULT_MTU)


def _keyed(kind: str, attr: str, current: Any, desired: HostConfig, new: Any) -> list[Change]:
    out: list[Change] = []
    settings = _item_settings(attr)
    wanted = getattr(desired, attr)
    for name in sorted(wanted):
        want = wanted[name]
        have = current.get(name)
        if have is None:
            out.append(Change(kind, "add", name, new(want), None))
        elif _differs(have, _without_services(want), settings):
            after = _overlay(have, want)
            if kind == "vmknic" and want.ip == "dhcp":
                after = attrs.evolve(after, address=None, netmask=None, gateway=None)
            out.append(Change(kind, "edit", name, after, have))
    for ref in sorted(desired.removed):
        rkind, _, name = ref.partition(".")
        if rkind == kind and name in current and name not in wanted:
            out.append(Change(kind, "remove", name, None, current[name]))
    return out


def _without_services(item: Any) -> Any:
    """VMkernel NIC services are tagging (nictype changes), not part of the NIC's spec."""
    return attrs.evolve(item, services=None) if isinstance(item, VmkNic) else item


def _nic_types(current: HostConfig, desired: HostConfig) -> list[Change]:
    """Select/deselect NIC types per VMkernel NIC whose services are managed."""
    out: list[Change] = []
    for name in sorted(desired.vmknics):
        want = desired.vmknics[name].services
        if want is None:
            continue
        have_nic = current.vmknics.get(name)
        have = set(have_nic.services or ()) if have_nic else set()
        out += [Change("nictype", "select", s, name) for s in sorted(set(want) - have)]
        out += [Change("nictype", "deselect", s, name) for s in sorted(have - set(want))]
    return out


def _global(kind: str, prefix: str, current: Any, desired: Any, name: str = "") -> list[Change]:
    def settings(item: Any) -> dict[str, Any]:
        return {f"{prefix}.{f.name}": getattr(item, f.name) for f in attrs.fields(type(item))
                if getattr(item, f.name) is not None}
    if _differs(current, desired, settings):
        return [Change(kind, "set", name, _overlay(current, desired), current)]
    return []


def _dns(current: Dns, desired: Dns) -> list[Change]:
    return _global("dns", "dns", current, desired)


def _ntp(current: Ntp, desired: Ntp) -> list[Change]:
    # ntp.policy is the ntpd service's policy; it is planned as a service change.
    return _global("ntp", "ntp", attrs.evolve(current, policy=None),
                   attrs.evolve(desired, policy=None))


def _advanced(current: HostConfig, desired: HostConfig) -> list[Change]:
    out: list[Change] = []
    if desired.syslog is not None and not same_value("syslog.targets", desired.syslog,
                                                       current.syslog):
        out.append(Change("advanced", "set", "syslog", desired.syslog, current.syslog))
    for key in sorted(desired.advanced):
        want, have = desired.advanced[key], current.advanced.get(key)
        if not same_value(f"advanced.{key}", want, have):
            out.append(Change("advanced", "set", key, want, have))
    return out


def _services(current: HostConfig, desired: HostConfig) -> list[Change]:
    wanted = dict(desired.services)
    if desired.ntp.policy is not None:
        wanted[NTP_SERVICE] = desired.ntp.policy
    have = dict(current.services)
    if current.ntp.policy is not None:
        have.setdefault(NTP_SERVICE, current.ntp.policy)
    return [Change("service", "set", key, wanted[key], have.get(key)) for key in sorted(wanted)
            if wanted[key] != have.get(key)]


def _iscsi(current: Iscsi, desired: Iscsi) -> list[Change]:
    want = attrs.evolve(desired, chap_secret=None)
    changes = _global("iscsi", "iscsi", attrs.evolve(current, chap_secret=None), want)
    secret_due = desired.chap_secret is not None and current.chap_secret != SECRET_SET
    if changes or secret_due:
        after = _overlay(current, desired)
        return [Change("iscsi", "set", "", after, current)]
    return []


def _snmp(current: Snmp, desired: Snmp) -> list[Change]:
    return _global("snmp", "snmp", current, desired)


def _account(current: HostConfig, desired: HostConfig) -> list[Change]:
    """The root password is set when the host does not carry the wanted secret's stamp
    (the read says so with the reference); it can never be read back or compared."""
    want = desired.root_password
    if want is None or want == current.root_password:
        return []
    return [Change("account", "set", "root", want, current.root_password)]


def _lockdown(current: Lockdown, desired: Lockdown) -> list[Change]:
    return _global("lockdown", "lockdown", current, desired)


# --- advanced options against the host's catalogue ---------------------------------------

# vSphere's option types (vim.option.*Option) by the short kind used here.
OPTION_TYPES = {"long": "LongOption", "int": "IntOption", "float": "FloatOption",
                "bool": "BoolOption", "string": "StringOption", "choice": "ChoiceOption"}
_INTEGER = re.compile(r"\s*-?\d+\s*")


@attrs.frozen
class OptionType:
    """One advanced option as a host declares it in its `supportedOption` catalogue."""

    key: str
    kind: str  # a key of OPTION_TYPES, or anything else for a type this code does not know
    min: int | None = None  # long and int options
    max: int | None = None
    choices: tuple[str, ...] = ()  # choice options: the keys of choiceInfo
    valid_characters: str = ""  # string options: every character must be one of these
    readonly: bool = False

    def describe(self) -> str:
        """What a value must be, in the words of an error message."""
        name = OPTION_TYPES.get(self.kind, self.kind)
        if self.kind in ("long", "int"):
            return f"an integer {self.min}..{self.max} ({name})"
        if self.kind == "bool":
            return f"true or false ({name})"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)} ({name})"
        return f"a string ({name})" if self.kind == "string" else name


OptionCatalogue = Mapping[str, OptionType]


class UnsupportedOptionError(ValidationError):
    """A host does not accept some advanced options of its desired configuration.

    Permanent for that host until the policy changes: `problems` lists (setting key, reason),
    and nothing was written to the host.
    """

    def __init__(self, where: str, problems: Iterable[tuple[str, str]]) -> None:
        self.where = where
        self.problems = tuple(problems)
        details = "; ".join(f"{key}: {reason}" for key, reason in self.problems)
        super().__init__(f"{where}: {len(self.problems)} advanced option(s) not accepted by "
                         f"this host, so nothing was written: {details}")


class _Refused(ValueError):
    """A value an option does not take; the message is the reason."""


def coerce_option(option: OptionType, value: SettingValue) -> SettingValue:
    """`value` in the option's own type, or `_Refused` saying what the option takes.

    Values from the directory are text or loosely typed: `"1"` is fine for an integer option,
    `1` for a string option, `"yes"` for a boolean one; `"yes"` for an integer is not.
    """
    if option.readonly:
        raise _Refused("read-only on this host; remove it from the policy")
    if isinstance(value, tuple):
        raise _Refused(f"a list; expected {option.describe()}")
    if option.kind in ("long", "int"):
        if isinstance(value, bool) or not (isinstance(value, int) or _INTEGER.fullmatch(value)):
            raise _Refused(f"expected {option.describe()}; set a value of that type in the policy")
        number = int(value)
        if (option.min is not None and number < option.min) or (
                option.max is not None and number > option.max):
            raise _Refused(f"{number} is outside {option.min}..{option.max} "
                           f"({OPTION_TYPES[option.kind]}); set a value in range in the policy")
        return number
    if option.kind == "bool":
        try:
            return BOOL(value if isinstance(value, bool) else str(value))
        except ValueError:
            raise _Refused(f"expected {option.describe()}; set a value of that type in the "
                           "policy") from None
    if option.kind in ("string", "choice"):
        text = value if isinstance(value, str) else format_value(value)
        if option.kind == "choice" and text not in option.choices:
            raise _Refused(f"expected {option.describe()}; set one of those in the policy")
        if option.valid_characters and any(c not in option.valid_characters for c in text):
            raise _Refused(f"may only contain the characters {option.valid_characters!r}")
        return text
    raise _Refused(f"a {OPTION_TYPES.get(option.kind, option.kind)}, which stateless does not "
                   "set; remove it from the policy")


def _unsupported(key: str, catalogue: OptionCatalogue) -> str:
    close = difflib.get_close_matches(key, list(catalogue), n=1, cutoff=0.8)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (f"not supported by this host; remove it from the policy or check its "
            f"spelling{hint}")


def check_options(catalogue: OptionCatalogue,
                  desired: HostConfig) -> tuple[HostConfig, list[tuple[str, str]]]:
    """`desired` with its advanced values in their options' types, and every problem.

    A problem is (setting key, reason): a key the host does not declare, a value of the
    wrong type or out of range.  syslog.targets is written as Syslog.global.logHost, so that
    option must exist too.
    """
    problems: list[tuple[str, str]] = []
    if desired.syslog is not None and SYSLOG_OPTION not in catalogue:
        problems.append(("syslog.targets", f"this host has no {SYSLOG_OPTION} option; remove "
                                           "syslog.targets from the policy"))
    coerced: dict[str, SettingValue] = {}
    for key in sorted(desired.advanced):
        value = desired.advanced[key]
        option = catalogue.get(key)
        if option is None:
            problems.append((f"advanced.{key}", _unsupported(key, catalogue)))
            continue
        try:
            coerced[key] = coerce_option(option, value)
        except _Refused as exc:
            problems.append((f"advanced.{key}", f"{format_value(value, 'advanced.' + key)!r}: "
                                                f"{exc}"))
    if problems or not coerced:
        return desired, problems
    return attrs.evolve(desired, advanced=coerced), problems


__all__ = ["LOCATION", "Change", "KeyDiff", "OptionType", "Plan", "UnsupportedOptionError",
           "check_options", "coerce_option", "compliance", "kind_of", "managed_kinds", "placement",
           "plan", "same_value"]

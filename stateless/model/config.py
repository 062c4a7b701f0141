"""A host's configuration as typed items, built from (and turned back into) setting keys.

`HostConfig` is what the planner diffs and what the vCenter adapter reads and applies.  It is
built from the flat effective settings (`EffectiveConfig.values()`), and `to_settings()` gives
back exactly the same keys, so compliance is reported per key, in the keys of `rsop`.

Only what is set is managed: every field is optional and `None` means "leave it as it is on
the host".  Items named in `removed` (explicit removals in policy) are the exception: the
planner deletes them from the host.

Validation across items (a port group on an undefined vSwitch, a teaming uplink that is not an
uplink of the vSwitch, a VMkernel NIC on an undefined port group, a static VMkernel NIC without
an address, ...) collects every problem: `check_settings` returns them as a list and
`HostConfig.from_settings` raises one `HostConfigError` that carries the list, so an admin sees
all mistakes at once, each naming the key, the bad value and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from stateless.errors import SettingError, ValidationError
from stateless.model.inventory import frozen_map
from stateless.model.settings import SettingValue, coerce, parse_item_ref, parse_key

# Read-back value of `iscsi.chap.secret` when the host has CHAP configured: the secret itself
# can never be read back, so any secret reference counts as compliant with it.
SECRET_SET = "(set)"

# VMkernel NIC services (setting values) and the vSphere NIC types that carry them.
NIC_TYPES: Mapping[str, str] = frozen_map({
    "management": "management",
    "vmotion": "vmotion",
    "vsan": "vsan",
    "ft": "faultToleranceLogging",
    "provisioning": "vSphereProvisioning",
})

# The ESXi service behind `ntp.policy`, and the advanced option behind `syslog.targets`.
NTP_SERVICE = "ntpd"
SYSLOG_OPTION = "Syslog.global.logHost"

Strings = tuple[str, ...]


@attrs.frozen
class ConfigProblem:
    """One reason a configuration cannot be applied: the key, its value and why."""

    key: str
    value: object
    reason: str

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}: {self.reason}"


class HostConfigError(ValidationError):
    """The host configuration is not consistent."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid host configuration: " + "; ".join(map(str, self.problems)))


# --- items ---------------------------------------------------------------------------------


@attrs.frozen
class Teaming:
    """NIC teaming; on a port group every field set here overrides its vSwitch."""

    active: Strings | None = None
    standby: Strings | None = None
    policy: str | None = None

    def is_empty(self) -> bool:
        return self.active is None and self.standby is None and self.policy is None


@attrs.frozen
class VSwitch:
    name: str
    uplinks: Strings | None = None
    mtu: int | None = None
    ports: int | None = None
    teaming: Teaming = Teaming()


@attrs.frozen
class PortGroup:
    name: str
    vswitch: str | None = None
    vlan: int | None = None
    teaming: Teaming | None = None  # None: no override managed


@attrs.frozen
class VmkNic:
    """A VMkernel NIC, keyed by its port group (one per port group)."""

    portgroup: str
    services: Strings | None = None
    ip: str | None = None  # dhcp | static | pool:NAME (read back as dhcp or static)
    address: str | None = None
    netmask: str | None = None
    gateway: str | None = None
    mtu: int | None = None
    device: str | None = attrs.field(default=None, eq=False)  # vmkN on the host; not a setting

    @property
    def dhcp(self) -> bool | None:
        return None if self.ip is None else self.ip == "dhcp"


@attrs.frozen
class Ntp:
    servers: Strings | None = None
    policy: str | None = None


@attrs.frozen
class Dns:
    servers: Strings | None = None
    search: Strings | None = None
    hostname: str | None = None
    domain: str | None = None


@attrs.frozen
class NfsDatastore:
    name: str
    host: str | None = None
    path: str | None = None
    readonly: bool | None = None
    version: str | None = None


@attrs.frozen
class Iscsi:
    enabled: bool | None = None
    targets: Strings | None = None
    chap_name: str | None = None
    chap_secret: str | None = None  # a reference into the server's secret store


@attrs.frozen
class Lockdown:
    mode: str | None = None  # disabled | normal | strict
    exceptions: Strings | None = None


@attrs.frozen
class Snmp:
    enabled: bool | None = None
    communities: Strings | None = None
    targets: Strings | None = None


def _map(value: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> Mapping[str, Any]:
    return frozen_map(dict(value or {}))


def _refs(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen
class HostConfig:
    """Everything the service manages on one host; `None` and absent items are unmanaged."""

    vswitches: Mapping[str, VSwitch] = attrs.field(factory=dict, converter=_map)
    portgroups: Mapping[str, PortGroup] = attrs.field(factory=dict, converter=_map)
    vmknics: Mapping[str, VmkNic] = attrs.field(factory=dict, converter=_map)
    ntp: Ntp = Ntp()
    dns: Dns = Dns()
    syslog: Strings | None = None
    advanced: Mapping[str, SettingValue] = attrs.field(factory=dict, converter=_map)
    services: Mapping[str, str] = attrs.field(factory=dict, converter=_map)
    nfs: Mapping[str, NfsDatastore] = attrs.field(factory=dict, converter=_map)
    iscsi: Iscsi = Iscsi()
    lockdown: Lockdown = Lockdown()
    snmp: Snmp = Snmp()
    # `account.root.password`: a reference to the sealed root password, never the password.
    # Read back, it is the reference only when the host carries the stamp of that secret's
    # current sealed value (see stateless.vcenter.account); otherwise None.
    root_password: str | None = None
    # Item references (`portgroup.Old`) that policy removed explicitly: deleted from the host.
    removed: frozenset[str] = attrs.field(default=frozenset(), converter=_refs)

    @classmethod
    def from_settings(cls, values: Mapping[str, object],
                      removed: Iterable[str] = ()) -> HostConfig:
        """Build from effective settings; raise HostConfigError listing every problem.

        `values` are canonical setting values (`EffectiveConfig.values()`); text is coerced
        again, except advanced options, whose values are taken as typed.
        """
        config, problems = _build(values, removed)
        if problems:
            raise HostConfigError(problems)
        return config

    def to_settings(self) -> dict[str, SettingValue]:
        """The set keys, exactly as `rsop` names them (the inverse of `from_settings`)."""
        out: dict[str, SettingValue] = {}

        def put(key: str, value: SettingValue | None) -> None:
            if value is not None:
                out[key] = value

        def teaming(prefix: str, t: Teaming | None) -> None:
            if t is not None:
                put(f"{prefix}.teaming.active", t.active)
                put(f"{prefix}.teaming.standby", t.standby)
                put(f"{prefix}.teaming.policy", t.policy)

        for name, vs in self.vswitches.items():
            p = f"vswitch.{name}"
            put(f"{p}.uplinks", vs.uplinks)
            put(f"{p}.mtu", vs.mtu)
            put(f"{p}.ports", vs.ports)
            teaming(p, vs.teaming)
        for name, pg in self.portgroups.items():
            p = f"portgroup.{name}"
            put(f"{p}.vswitch", pg.vswitch)
            put(f"{p}.vlan", pg.vlan)
            teaming(p, pg.teaming)
        for name, nic in self.vmknics.items():
            p = f"vmknic.{name}"
            put(f"{p}.services", nic.services)
            put(f"{p}.ip", nic.ip)
            put(f"{p}.address", nic.address)
            put(f"{p}.netmask", nic.netmask)
            put(f"{p}.gateway", nic.gateway)
            put(f"{p}.mtu", nic.mtu)
        put("ntp.servers", self.ntp.servers)
        put("ntp.policy", self.ntp.policy)
        put("dns.servers", self.dns.servers)
        put("dns.search", self.dns.search)
        put("dns.hostname", self.dns.hostname)
        put("dns.domain", self.dns.domain)
        put("syslog.targets", self.syslog)
        for key, value in self.advanced.items():
            out[f"advanced.{key}"] = value
        for key, policy in self.services.items():
            out[f"service.{key}.policy"] = policy
        for name, ds in self.nfs.items():
            p = f"nfs.{name}"
            put(f"{p}.host", ds.host)
            put(f"{p}.path", ds.path)
            put(f"{p}.readonly", ds.readonly)
            put(f"{p}.version", ds.version)
        put("iscsi.enabled", self.iscsi.enabled)
        put("iscsi.targets", self.iscsi.targets)
        put("iscsi.chap.name", self.iscsi.chap_name)
        put("iscsi.chap.secret", self.iscsi.chap_secret)
        put("lockdown.mode", self.lockdown.mode)
        put("lockdown.exceptions", self.lockdown.exceptions)
        put("snmp.enabled", self.snmp.enabled)
        put("snmp.communities", self.snmp.communities)
        put("snmp.targets", self.snmp.targets)
        put("account.root.password", self.root_password)
        return out


def check_settings(values: Mapping[str, object], removed: Iterable[str] = ()) -> list[ConfigProblem]:
    """Every problem of a set of effective settings (empty when `from_settings` would succeed)."""
    return _build(values, removed)[1]


# --- building ------------------------------------------------------------------------------

_TEAMING_FIELDS = {"teaming.active": "active", "teaming.standby": "standby",
                   "teaming.policy": "policy"}


def _build(values: Mapping[str, object],
           removed: Iterable[str]) -> tuple[HostConfig, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    items: dict[str, dict[str, dict[str, Any]]] = {
        "vswitch": {}, "portgroup": {}, "vmknic": {}, "nfs": {}}
    glob: dict[str, Any] = {}
    advanced: dict[str, SettingValue] = {}
    services: dict[str, str] = {}

    for raw_key, raw_value in values.items():
        try:
            key, _ = parse_key(raw_key)
            # Effective values are canonical already; coercing again is idempotent except for
            # advanced options, where the string "1" must stay a string.
            value = (raw_value if key.kind == "advanced" and isinstance(raw_value, bool | int | str)
                     else coerce(raw_key, raw_value, answer=True))
        except SettingError as exc:
            problems.append(ConfigProblem(exc.key, exc.value, exc.reason))
            continue
        if key.kind == "global":
            glob[key.field] = value
        elif key.kind == "advanced":
            advanced[key.name] = value
        elif key.kind == "service":
            services[key.name] = str(value)
        else:
            items[key.kind].setdefault(key.name, {})[key.field] = value

    removed_refs: set[str] = set()
    for ref in removed:
        try:
            removed_refs.add(parse_item_ref(ref))
        except SettingError as exc:
            problems.append(ConfigProblem(exc.key, exc.value, exc.reason))

    def teaming(fields: dict[str, Any]) -> Teaming | None:
        found = {attr: fields[f] for f, attr in _TEAMING_FIELDS.items() if f in fields}
        return Teaming(**found) if found else None

    vswitches = {
        name: VSwitch(name, f.get("uplinks"), f.get("mtu"), f.get("ports"),
                      teaming(f) or Teaming())
        for name, f in items["vswitch"].items()
    }
    portgroups = {
        name: PortGroup(name, f.get("vswitch"), f.get("vlan"), teaming(f))
        for name, f in items["portgroup"].items()
    }
    vmknics = {
        name: VmkNic(name, f.get("services"), f.get("ip"), f.get("address"), f.get("netmask"),
                     f.get("gateway"), f.get("mtu"))
        for name, f in items["vmknic"].items()
    }
    nfs = {
        name: NfsDatastore(name, f.get("host"), f.get("path"), f.get("readonly"), f.get("version"))
        for name, f in items["nfs"].items()
    }
    syslog = glob.get("syslog.targets")
    if SYSLOG_OPTION in advanced:
        problems.append(ConfigProblem(
            f"advanced.{SYSLOG_OPTION}", advanced[SYSLOG_OPTION],
            "set syslog.targets instead; the advanced option is what syslog.targets writes"))
    if NTP_SERVICE in services and "ntp.policy" in glob and services[NTP_SERVICE] != glob["ntp.policy"]:
        problems.append(ConfigProblem(
            f"service.{NTP_SERVICE}.policy", services[NTP_SERVICE],
            f"conflicts with ntp.policy={glob['ntp.policy']!r}; set only ntp.policy"))

    config = HostConfig(
        vswitches=vswitches,
        portgroups=portgroups,
        vmknics=vmknics,
        ntp=Ntp(glob.get("ntp.servers"), glob.get("ntp.policy")),
        dns=Dns(glob.get("dns.servers"), glob.get("dns.search"), glob.get("dns.hostname"),
                glob.get("dns.domain")),
        syslog=syslog,
        advanced=advanced,
        services=services,
        nfs=nfs,
        iscsi=Iscsi(glob.get("iscsi.enabled"), glob.get("iscsi.targets"),
                    glob.get("iscsi.chap.name"), glob.get("iscsi.chap.secret")),
        lockdown=Lockdown(glob.get("lockdown.mode"), glob.get("lockdown.exceptions")),
        snmp=Snmp(glob.get("snmp.enabled"), glob.get("snmp.communities"), glob.get("snmp.targets")),
        root_password=glob.get("account.root.password"),
        removed=frozenset(removed_refs),
    )
    problems += cross_check(config)
    return config, problems


def cross_check(config: HostConfig) -> list[ConfigProblem]:
    """Problems between items; each names the key, the value and why it is wrong."""
    problems: list[ConfigProblem] = []
    add = problems.append
    uplink_owner: dict[str, str] = {}

    for name, vs in config.vswitches.items():
        if vs.uplinks is not None:
            for uplink in vs.uplinks:
                other = uplink_owner.setdefault(uplink, name)
                if other != name:
                    add(ConfigProblem(f"vswitch.{name}.uplinks", vs.uplinks,
                                      f"{uplink} is already an uplink of vSwitch {other}"))
        problems += _check_teaming(f"vswitch.{name}", vs.teaming, vs.uplinks, f"vSwitch {name}")

    for name, pg in config.portgroups.items():
        if pg.vswitch is None:
            add(ConfigProblem(f"portgroup.{name}.vswitch", None,
                              "missing: every managed port group must name its vSwitch"))
            continue
        pg_vs = config.vswitches.get(pg.vswitch)
        if pg_vs is None:
            add(ConfigProblem(f"portgroup.{name}.vswitch", pg.vswitch,
                              f"vSwitch {pg.vswitch} is not defined; set "
                              f"vswitch.{pg.vswitch}.uplinks (or another of its keys)"))
            continue
        if f"vswitch.{pg.vswitch}" in config.removed:
            add(ConfigProblem(f"portgroup.{name}.vswitch", pg.vswitch,
                              f"vSwitch {pg.vswitch} is removed by policy"))
        if pg.teaming is not None:
            problems += _check_teaming(f"portgroup.{name}", pg.teaming, pg_vs.uplinks,
                                       f"vSwitch {pg.vswitch} of port group {name}")

    for name, nic in config.vmknics.items():
        p = f"vmknic.{name}"
        nic_pg = config.portgroups.get(name)
        if nic_pg is None:
            add(ConfigProblem(f"{p}.ip", nic.ip, f"port group {name} is not defined; set "
                              f"portgroup.{name}.vswitch"))
        elif f"portgroup.{name}" in config.removed:
            add(ConfigProblem(f"{p}.ip", nic.ip, f"port group {name} is removed by policy"))
        if nic.ip is None:
            add(ConfigProblem(f"{p}.ip", None, "missing: say dhcp, static or pool:NAME"))
        elif nic.ip == "dhcp":
            for field in ("address", "netmask", "gateway"):
                if getattr(nic, field) is not None:
                    add(ConfigProblem(f"{p}.{field}", getattr(nic, field),
                                      "the NIC uses dhcp; remove the value or set ip to static"))
        else:
            for field in ("address", "netmask"):
                if getattr(nic, field) is None:
                    add(ConfigProblem(f"{p}.{field}", None,
                                      f"missing: ip is {nic.ip}, so the host needs an {field} "
                                      "(host answer or pool allocation)"))
        nic_vs = config.vswitches.get(nic_pg.vswitch or "") if nic_pg else None
        if nic.mtu is not None and nic_vs is not None and nic_vs.mtu is not None \
                and nic.mtu > nic_vs.mtu:
            add(ConfigProblem(f"{p}.mtu", nic.mtu,
                              f"larger than the MTU {nic_vs.mtu} of vSwitch {nic_vs.name}"))
        if nic.services and "iscsi" in nic.services:
            add(ConfigProblem(f"{p}.services", nic.services,
                              "iscsi port binding is not supported by the applier yet; bind the "
                              "NIC to the software adapter by hand"))

    for name, ds in config.nfs.items():
        for field in ("host", "path"):
            if getattr(ds, field) is None:
                add(ConfigProblem(f"nfs.{name}.{field}", None,
                                  "missing: an NFS datastore needs both host and path"))

    iscsi = config.iscsi
    if iscsi.enabled is False and iscsi.targets:
        add(ConfigProblem("iscsi.targets", iscsi.targets,
                          "iscsi.enabled is false; enable the adapter or remove the targets"))
    if (iscsi.chap_name is None) != (iscsi.chap_secret is None):
        key, value = (("iscsi.chap.secret", None) if iscsi.chap_secret is None
                      else ("iscsi.chap.name", None))
        add(ConfigProblem(key, value, "CHAP needs both iscsi.chap.name and iscsi.chap.secret"))
    return problems


def _check_teaming(prefix: str, teaming: Teaming, uplinks: Strings | None,
                   where: str) -> list[ConfigProblem]:
    problems = []
    for field in ("active", "standby"):
        chosen = getattr(teaming, field)
        if chosen is None or uplinks is None:
            continue
        for uplink in chosen:
            if uplink not in uplinks:
                problems.append(ConfigProblem(
                    f"{prefix}.teaming.{field}", chosen,
                    f"{uplink} is not among the uplinks of {where} ({', '.join(uplinks) or 'none'})"))
    if teaming.active and teaming.standby:
        both = sorted(set(teaming.active) & set(teaming.standby))
        if both:
            problems.append(ConfigProblem(f"{prefix}.teaming.standby", teaming.standby,
                                          f"{', '.join(both)} is also active"))
    return problems

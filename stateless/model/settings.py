"""The setting key space: every configurable value of a host has one dotted key.

Policies, host answers, `rsop` and compliance all speak in these keys, so that provenance,
drift and edits are reported per key.  Keyed items (vSwitches, port groups, VMkernel NICs,
NFS datastores, services, advanced options) put the item name in the key
(`portgroup.vMotion.vlan`), so they merge per item and per field; lists are one key and are
replaced whole.

Values are accepted either typed (from JSON) or as text (from LDAP and the command line) and
normalised to one canonical Python value, so that the same setting compares equal whatever
its source.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Union

import attrs

from stateless.errors import SettingError, SettingKeyError
from stateless.model.secretref import reference

SettingValue = Union[int, str, bool, tuple[str, ...]]  # noqa: UP007 - used at run time

Coercer = Callable[[object], SettingValue]


class _Invalid(ValueError):
    """Raised by coercers; turned into SettingError with the key by `coerce`."""


# --- value coercers -----------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Invalid("expected a boolean (true or false)")


def _int(low: int, high: int) -> Coercer:
    def coerce(value: object) -> int:
        if isinstance(value, bool):
            raise _Invalid(f"expected an integer {low}-{high}")
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if not isinstance(value, int):
            raise _Invalid(f"expected an integer {low}-{high}")
        if not low <= value <= high:
            raise _Invalid(f"must be between {low} and {high}")
        return value

    return coerce


def _enum(*choices: str) -> Coercer:
    canonical = {c.lower(): c for c in choices}

    def coerce(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in canonical:
            return canonical[value.strip().lower()]
        raise _Invalid(f"expected one of {', '.join(choices)}")

    return coerce


def _text(pattern: str, what: str) -> Coercer:
    regex = re.compile(pattern)

    def coerce(value: object) -> str:
        if isinstance(value, str) and regex.fullmatch(value.strip()):
            return value.strip()
        raise _Invalid(f"expected {what}")

    return coerce


def _check(predicate: Callable[[str], bool], what: str) -> Coercer:
    def coerce(value: object) -> str:
        if isinstance(value, str):
            text = value.strip()
            try:
                if predicate(text):
                    return text
            except ValueError:
                pass
        raise _Invalid(f"expected {what}")

    return coerce


def _list(item: Coercer, *, unique: bool = True, max_items: int = 64) -> Coercer:
    """Ordered list; text form is comma-separated, an empty string is the empty list."""

    def coerce(value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            parts: list[object] = [p for p in (s.strip() for s in value.split(",")) if p]
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            raise _Invalid("expected a list (comma-separated in text form)")
        items = tuple(str(item(p)) for p in parts)
        if unique and len(set(items)) != len(items):
            raise _Invalid("list has duplicate entries")
        if len(items) > max_items:
            raise _Invalid(f"list has more than {max_items} entries")
        return items

    return coerce


def _typed(value: object) -> SettingValue:
    """Advanced option value: integer, boolean or string.

    In text form a decimal number is an integer, true/false a boolean, and a double-quoted
    string is always a string, so `"1"` sets the string 1 where an option needs it.
    """
    if isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if text in ("true", "false"):
            return text == "true"
        if len(text) >= 2 and text[0] == text[-1] == '"':
            return text[1:-1]
        if "\n" in text or "\x00" in text:
            raise _Invalid("must be a single line")
        return text
    raise _Invalid("expected an integer, a boolean or a string")


def is_ipv4(text: str) -> bool:
    ipaddress.IPv4Address(text)
    return True


def is_ip(text: str) -> bool:
    ipaddress.ip_address(text)
    return True


def is_netmask(text: str) -> bool:
    ipaddress.IPv4Network(f"0.0.0.0/{text}")
    return True


_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
HOSTNAME_RE = rf"{_LABEL}(\.{_LABEL})*\.?"


def is_host(text: str) -> bool:
    """A DNS name or an IP address."""
    if re.fullmatch(HOSTNAME_RE, text) and len(text) <= 253:
        return True
    return is_ip(text)


def _host_port(text: str) -> bool:
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return False
    return is_host(host)


def _syslog_target(text: str) -> bool:
    match = re.fullmatch(r"(udp|tcp|ssl)://([^/:]+)(?::(\d{1,5}))?", text)
    if not match:
        return False
    port = match.group(3)
    return is_host(match.group(2)) and (port is None or 0 < int(port) < 65536)


SEAL_SNMP = "`stateless secret set snmp NAME`"


def _reference(what: str, seal: str) -> Coercer:
    """A `secret:NAME` reference to a sealed secret; a value in clear is refused."""
    def coerce(value: object) -> str:
        try:
            return reference(value, what, seal)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None

    return coerce


def _trap(value: object) -> str:
    """`host[:port][/secret:NAME]`: a trap target whose community is a sealed secret."""
    if not isinstance(value, str):
        raise _Invalid("expected host[:port][/secret:NAME]")
    address, sep, community = value.strip().partition("/")
    try:
        good = _host_port(address)
    except ValueError:
        good = False
    if not good:
        raise _Invalid("expected host[:port][/secret:NAME]")
    if sep:
        try:
            reference(community, "SNMP community", SEAL_SNMP)
        except ValueError as exc:
            raise _Invalid(f"the community of a trap target: {exc}") from None
    return value.strip()


_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"

BOOL = _bool
NAME = _text(_NAME, "a name of letters, digits, '_', '.' and '-'")
VMNIC = _text(r"vmnic\d{1,3}", "an uplink name such as vmnic0")
USER = _text(r"[A-Za-z0-9_.\\@-]{1,64}", "a user name")
HOST = _check(is_host, "a DNS name or an IP address")
IP = _check(is_ip, "an IP address")
IPV4 = _check(is_ipv4, "an IPv4 address")
NETMASK = _check(is_netmask, "an IPv4 netmask such as 255.255.255.0")
DOMAIN = _text(HOSTNAME_RE, "a DNS domain")
HOSTNAME = _text(_LABEL, "a host name (one DNS label)")
SERVICE_POLICY = _enum("on", "off", "automatic")
TEAMING_POLICY = _enum("loadbalance_srcid", "loadbalance_ip", "loadbalance_srcmac", "failover_explicit")
VMK_SERVICES = ("management", "vmotion", "vsan", "ft", "provisioning", "iscsi")
POOL_PREFIX = "pool:"
VMK_IP = _text(r"dhcp|static|" + POOL_PREFIX + _NAME, "dhcp, static or pool:NAME")


def pool_name(value: object) -> str | None:
    """The pool a `vmknic.<pg>.ip` value takes its address from (`pool:NAME`), or None."""
    if isinstance(value, str) and value.startswith(POOL_PREFIX):
        return value[len(POOL_PREFIX):]
    return None
MTU = _int(1280, 9000)


# --- the registry -------------------------------------------------------------------------


@attrs.frozen
class SettingSpec:
    """How one key (or one field of a keyed item) is validated and documented."""

    pattern: str
    coerce: Coercer
    doc: str
    example: str
    host_specific: bool = False  # only from host answers or IP-pool allocations, never policy
    secret: bool = False  # carries or names a secret: shown as <secret> except to the applier


def _spec(pattern: str, coerce: Coercer, doc: str, example: str, **kw: bool) -> SettingSpec:
    return SettingSpec(pattern, coerce, doc, example, **kw)


GLOBAL_SPECS: dict[str, SettingSpec] = {
    s.pattern: s
    for s in (
        _spec("ntp.servers", _list(HOST), "NTP servers, in order", "0.pool.ntp.org,10.0.0.1"),
        _spec("ntp.policy", SERVICE_POLICY, "ntpd service policy", "on"),
        _spec("dns.servers", _list(IP), "DNS servers, in order", "10.0.0.53,10.0.1.53"),
        _spec("dns.search", _list(DOMAIN), "DNS search domains, in order", "example.com"),
        _spec("dns.hostname", HOSTNAME, "host name", "esx01", host_specific=True),
        _spec("dns.domain", DOMAIN, "host's DNS domain", "example.com", host_specific=True),
        _spec("syslog.targets", _list(_check(_syslog_target, "udp|tcp|ssl://host[:port]")),
              "remote syslog targets", "udp://10.0.0.5:514"),
        _spec("iscsi.enabled", BOOL, "software iSCSI adapter enabled", "true"),
        _spec("iscsi.targets", _list(_check(_host_port, "host[:port]")),
              "iSCSI send targets (dynamic discovery)", "10.0.5.10:3260"),
        _spec("iscsi.chap.name", _text(r"[!-~]{1,255}", "a CHAP name"), "CHAP user name",
              "iqn.1998-01.com.vmware:esx"),
        _spec("iscsi.chap.secret", NAME,
              "name of the CHAP secret in the server's secret store (never the secret itself)",
              "iscsi-chap", secret=True),
        _spec("lockdown.mode", _enum("disabled", "normal", "strict"), "lockdown mode", "normal"),
        _spec("lockdown.exceptions", _list(USER), "users exempt from lockdown", "svc-backup"),
        _spec("snmp.enabled", BOOL, "SNMP agent enabled", "true"),
        _spec("snmp.communities", _list(_reference("SNMP community", SEAL_SNMP)),
              "read-only communities: names of sealed SNMP secrets (never a community in clear)",
              "secret:snmp-ro", secret=True),
        _spec("snmp.targets", _list(_trap),
              "trap targets; the community names a sealed SNMP secret",
              "10.0.0.7:162/secret:snmp-ro", secret=True),
        _spec("account.root.password",
              _reference("root password", "`stateless secret set root-password NAME`"),
              "the hosts' root password: the name of a sealed root-password secret "
              "(never the password); applied when the secret changes", "secret:esx-root",
              secret=True),
    )
}

# Fields of keyed items: `<kind>.<name>.<field>`.
ITEM_SPECS: dict[str, dict[str, SettingSpec]] = {
    "vswitch": {
        "uplinks": _spec("vswitch.<name>.uplinks", _list(VMNIC), "physical uplinks", "vmnic0,vmnic1"),
        "mtu": _spec("vswitch.<name>.mtu", MTU, "MTU (1280-9000)", "9000"),
        "ports": _spec("vswitch.<name>.ports", _int(8, 4088), "number of ports", "128"),
        "teaming.active": _spec("vswitch.<name>.teaming.active", _list(VMNIC),
                                "active uplinks, in order", "vmnic0"),
        "teaming.standby": _spec("vswitch.<name>.teaming.standby", _list(VMNIC),
                                 "standby uplinks, in order", "vmnic1"),
        "teaming.policy": _spec("vswitch.<name>.teaming.policy", TEAMING_POLICY,
                                "load balancing", "loadbalance_srcid"),
    },
    "portgroup": {
        "vswitch": _spec("portgroup.<name>.vswitch", NAME, "vSwitch the port group is on", "vSwitch0"),
        "vlan": _spec("portgroup.<name>.vlan", _int(0, 4095), "VLAN ID (0 none, 4095 trunk)", "20"),
        "teaming.active": _spec("portgroup.<name>.teaming.active", _list(VMNIC),
                                "active uplinks override", "vmnic1"),
        "teaming.standby": _spec("portgroup.<name>.teaming.standby", _list(VMNIC),
                                 "standby uplinks override", "vmnic0"),
        "teaming.policy": _spec("portgroup.<name>.teaming.policy", TEAMING_POLICY,
                                "load balancing override", "failover_explicit"),
    },
    "vmknic": {
        "services": _spec("vmknic.<portgroup>.services", _list(_enum(*VMK_SERVICES)),
                          "services: " + ", ".join(VMK_SERVICES), "vmotion"),
        "ip": _spec("vmknic.<portgroup>.ip", VMK_IP, "address source: dhcp, static (host answers) "
                    "or pool:NAME", "pool:vmotion"),
        "mtu": _spec("vmknic.<portgroup>.mtu", MTU, "MTU (1280-9000)", "9000"),
        "address": _spec("vmknic.<portgroup>.address", IPV4, "static address", "10.0.20.11",
                         host_specific=True),
        "netmask": _spec("vmknic.<portgroup>.netmask", NETMASK, "static netmask", "255.255.255.0",
                         host_specific=True),
        "gateway": _spec("vmknic.<portgroup>.gateway", IPV4, "gateway override", "10.0.20.1",
                         host_specific=True),
    },
    "nfs": {
        "host": _spec("nfs.<name>.host", HOST, "NFS server", "nas01.example.com"),
        "path": _spec("nfs.<name>.path", _text(r"/[!-~ ]{0,1023}", "an absolute path"),
                      "exported path", "/export/iso"),
        "readonly": _spec("nfs.<name>.readonly", BOOL, "mount read-only", "false"),
        "version": _spec("nfs.<name>.version", _enum("3", "4.1"), "NFS version", "3"),
    },
    "service": {
        "policy": _spec("service.<key>.policy", SERVICE_POLICY, "startup policy (on starts it)",
                        "off"),
    },
}

ADVANCED_SPEC = _spec("advanced.<Option.Key>", _typed,
                      "advanced option; integer, boolean or string", "32")
ITEM_KINDS = (*ITEM_SPECS, "advanced")

# Item names: port groups may contain spaces; separators of the text syntax may not appear.
_ITEM_NAME = re.compile(r"[^\s;=,][^;=,\x00-\x1f]{0,79}(?<!\s)")
_ADVANCED_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")


@attrs.frozen
class Key:
    """A parsed setting key."""

    kind: str  # "global" or an item kind
    name: str  # item name ("" for global keys)
    field: str  # field within the item, or the global key itself; "" for advanced

    @property
    def item(self) -> str:
        """The item the key belongs to (`portgroup.vMotion`); global keys are their own item."""
        return f"{self.kind}.{self.name}" if self.name else self.field


def parse_key(key: object) -> tuple[Key, SettingSpec]:
    """Split a dotted key and find its spec, or raise SettingError naming the key."""
    if isinstance(key, str):
        return _parse_key(key)
    raise SettingError(str(key), key, "a setting key must be a non-empty string")


@functools.lru_cache(maxsize=65536)
def _parse_key(key: str) -> tuple[Key, SettingSpec]:
    """Memoized: resolution parses the same few hundred keys for every host."""
    if not key:
        raise SettingError(str(key), key, "a setting key must be a non-empty string")
    if key in GLOBAL_SPECS:
        return Key("global", "", key), GLOBAL_SPECS[key]
    kind, _, rest = key.partition(".")
    if kind == "advanced":
        if not _ADVANCED_KEY.fullmatch(rest):
            raise SettingKeyError(key, "advanced option keys look like Net.TcpipHeapSize")
        return Key("advanced", rest, ""), ADVANCED_SPEC
    fields = ITEM_SPECS.get(kind)
    if fields is None:
        raise SettingKeyError(key, f"unknown setting; see the settings table ({_known()})")
    for field in sorted(fields, key=len, reverse=True):
        if rest.endswith("." + field):
            name = rest[: -len(field) - 1]
            if not _ITEM_NAME.fullmatch(name):
                raise SettingError(key, name, f"invalid {kind} name")
            return Key(kind, name, field), fields[field]
    raise SettingKeyError(key, f"unknown {kind} field; known: {', '.join(fields)}")


def _known() -> str:
    return ", ".join((*GLOBAL_SPECS, *(f"{k}.<name>.*" for k in ITEM_SPECS), "advanced.*"))


def coerce(key: str, value: object, *, answer: bool = False) -> SettingValue:
    """Validate one value for one key and return its canonical form.

    `answer` is true for host answers, which may (only they may) set host-specific keys.
    """
    _, spec = parse_key(key)
    shown = SECRET_TEXT if spec.secret else value  # an error never carries a secret
    if spec.host_specific and not answer:
        raise SettingError(key, shown, "host-specific: give it as a host answer, not in a policy")
    try:
        return spec.coerce(value)
    except _Invalid as exc:
        raise SettingError(key, shown, str(exc)) from None


def parse_item_ref(ref: str) -> str:
    """Validate the target of an explicit removal: a whole item or one key."""
    ref = ref.strip()
    kind, _, name = ref.partition(".")
    if kind in ITEM_SPECS and name and _ITEM_NAME.fullmatch(name):
        return ref
    parse_key(ref)
    return ref


def item_of(key: str) -> str:
    return parse_key(key)[0].item


def format_value(value: SettingValue, key: str = "") -> str:
    """Text form accepted back by `coerce` for `key` (the LDAP and CLI syntax)."""
    if key.startswith("advanced.") and isinstance(value, str) and value != _typed(value):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def coerce_all(
    values: Mapping[str, object] | Iterable[tuple[str, object]], *, answer: bool = False
) -> tuple[dict[str, SettingValue], list[SettingError]]:
    """Coerce many values; return the good ones and every error (nothing is dropped silently)."""
    pairs = values.items() if isinstance(values, Mapping) else values
    good: dict[str, SettingValue] = {}
    errors: list[SettingError] = []
    for key, value in pairs:
        try:
            good[key] = coerce(key, value, answer=answer)
        except SettingError as exc:
            errors.append(exc)
    return good, errors


# --- secrets -----------------------------------------------------------------------------

SECRET_TEXT = "<secret>"


def is_secret(key: str) -> bool:
    """Whether a key's value carries (or names) a secret; an unknown key is not."""
    try:
        return parse_key(key)[1].secret
    except SettingError:
        return False


def render_value(key: str, value: SettingValue, *, reveal: bool = False) -> str:
    """The text form of a value for output: `<secret>` for secret-bearing keys.

    The one helper every output (CLI, API, logs) uses; only the applier, which needs the
    value itself, passes `reveal`.
    """
    return format_value(value, key) if reveal or not is_secret(key) else SECRET_TEXT


def render_json(key: str, value: SettingValue, *, reveal: bool = False) -> object:
    """The JSON form of a value for output: `"<secret>"` for secret-bearing keys."""
    if reveal or not is_secret(key):
        return list(value) if isinstance(value, tuple) else value
    return SECRET_TEXT


def redact_fields(text: str, prefix: str) -> str:
    """`field=value; field=value` text (one LDAP value) with each secret field's value replaced;
    `prefix` makes a field a key (`snmp.`, `portgroup.vMotion.`). For problems and logs."""
    parts = []
    for part in text.split(";"):
        field, sep, _ = part.partition("=")
        parts.append(f"{field}={SECRET_TEXT}" if sep and is_secret(prefix + field.strip()) else part)
    return ";".join(parts)


def _doc(s: SettingSpec) -> str:
    return s.doc + (" (host answer)" if s.host_specific else "") + (" (secret)" if s.secret else "")


def settings_table() -> list[tuple[str, str, str]]:
    """(key, meaning, example) rows for the documentation and `stateless settings`."""
    rows = [(s.pattern, _doc(s), s.example) for s in GLOBAL_SPECS.values()]
    for fields in ITEM_SPECS.values():
        rows += [(s.pattern, _doc(s), s.example) for s in fields.values()]
    rows.append((ADVANCED_SPEC.pattern, ADVANCED_SPEC.doc, ADVANCED_SPEC.example))
    return rows

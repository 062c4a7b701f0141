"""The text syntax of setting attributes: LDAP values <-> flat setting dicts (pure, no I/O).

One attribute value per item, so one `ldapmodify` edits one item:

    statelessPortGroup: vMotion; vswitch=vSwitch1; vlan=20; teaming.active=vmnic1
    statelessAdvanced: Net.TcpipHeapSize=32
    statelessNtp: servers=0.pool.ntp.org,10.0.0.1; policy=on
    statelessRemove: portgroup.VM Network

Fields are those of `model.settings.ITEM_SPECS`; lists are comma-separated; `;` separates
fields and so cannot appear inside a value.  Every value is checked with `model.settings.coerce`
and comes back in canonical form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stateless.errors import SettingError, ValidationError
from stateless.model.inventory import Allocation
from stateless.model.settings import (
    ITEM_SPECS,
    SettingValue,
    coerce,
    format_value,
    parse_item_ref,
    parse_key,
)

ITEM_ATTRS: dict[str, str] = {
    "statelessVSwitch": "vswitch",
    "statelessPortGroup": "portgroup",
    "statelessVmknic": "vmknic",
    "statelessNfsDatastore": "nfs",
    "statelessService": "service",
}
GROUP_ATTRS: dict[str, str] = {
    "statelessNtp": "ntp",
    "statelessDns": "dns",
    "statelessSyslog": "syslog",
    "statelessIscsi": "iscsi",
    "statelessLockdown": "lockdown",
    "statelessSnmp": "snmp",
    "statelessAccount": "account",
}
ADVANCED_ATTR = "statelessAdvanced"
REMOVE_ATTR = "statelessRemove"
SETTING_ATTRS = (*ITEM_ATTRS, ADVANCED_ATTR, *GROUP_ATTRS)
POLICY_ATTRS = (*SETTING_ATTRS, REMOVE_ATTR)
_ATTR_OF_KIND = {kind: attr for attr, kind in ITEM_ATTRS.items()}
_ATTR_OF_GROUP = {group: attr for attr, group in GROUP_ATTRS.items()}


def attribute_of(key: str) -> tuple[str, str]:
    """(attribute, item) a setting key is stored in: the item is what one value holds."""
    parsed, _ = parse_key(key)
    if parsed.kind == "advanced":
        return ADVANCED_ATTR, key
    if parsed.kind == "global":
        group = key.split(".", 1)[0]
        return _ATTR_OF_GROUP[group], group
    return _ATTR_OF_KIND[parsed.kind], parsed.item


def _pair(text: str, where: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep or not field.strip():
        raise ValidationError(f"{where}: expected field=value, got {text.strip()!r}")
    return field.strip(), value.strip()


def _split(text: str) -> list[str]:
    if "\n" in text or "\r" in text:
        raise ValidationError("a value must be a single line")
    return [p.strip() for p in text.split(";")]


def parse_value(attr: str, text: str) -> tuple[str, dict[str, SettingValue]]:
    """One attribute value -> (item, {key: canonical value}); raises SettingError/ValidationError."""
    if attr in ITEM_ATTRS:
        kind = ITEM_ATTRS[attr]
        name, *parts = _split(text)
        if not name or "=" in name:
            raise ValidationError(f"{attr}: the value must start with the {kind} name, e.g. "
                                  f"'NAME; field=value'")
        if not parts or parts == [""]:
            raise ValidationError(f"{attr}: {kind} {name!r} has no fields; known fields: "
                                  f"{', '.join(ITEM_SPECS[kind])}")
        item = f"{kind}.{name}"
        out: dict[str, SettingValue] = {}
        for part in parts:
            if not part:
                continue
            field, value = _pair(part, f"{kind} {name}")
            if field not in ITEM_SPECS[kind]:
                raise SettingError(f"{item}.{field}", part,
                                   f"unknown {kind} field; known: {', '.join(ITEM_SPECS[kind])}")
            key = f"{item}.{field}"
            if key in out:
                raise SettingError(key, part, "field given twice")
            out[key] = coerce(key, value)
        return item, out
    if attr in GROUP_ATTRS:
        group = GROUP_ATTRS[attr]
        out = {}
        for part in _split(text):
            if not part:
                continue
            field, value = _pair(part, group)
            key = f"{group}.{field}"
            if parse_key(key)[0].kind != "global":
                raise SettingError(key, part, f"unknown {group} field")
            if key in out:
                raise SettingError(key, part, "field given twice")
            out[key] = coerce(key, value)
        if not out:
            raise ValidationError(f"{attr}: empty; expected field=value; field=value")
        return group, out
    if attr == ADVANCED_ATTR:
        option, value = _pair(text, "advanced option")
        key = f"advanced.{option}"
        return key, {key: coerce(key, value)}
    raise ValidationError(f"{attr}: not a setting attribute")


def format_value_text(attr: str, item: str, settings: Mapping[str, SettingValue]) -> str:
    """Inverse of `parse_value` for the keys of one item."""
    if attr == ADVANCED_ATTR:
        (key, value), = settings.items()
        return f"{key.removeprefix('advanced.')}={format_value(value, key)}"
    prefix = item + "."
    fields = [f"{k.removeprefix(prefix)}={format_value(v, k)}" for k, v in sorted(settings.items())]
    if attr in GROUP_ATTRS:
        return "; ".join(fields)
    return "; ".join([item.split(".", 1)[1], *fields])


def item_name_of_value(attr: str, text: str) -> str | None:
    """The item a raw value holds, even when the rest of it is bad (to edit or replace it)."""
    if attr in ITEM_ATTRS:
        return f"{ITEM_ATTRS[attr]}.{text.split(';', 1)[0].strip()}"
    if attr in GROUP_ATTRS:
        return GROUP_ATTRS[attr]
    if attr == ADVANCED_ATTR:
        return "advanced." + text.partition("=")[0].strip()
    return None


def decode_policy(
    values: Mapping[str, Iterable[str]],
) -> tuple[dict[str, SettingValue], set[str], list[tuple[str, str, str]]]:
    """Policy attributes -> (settings, removals, problems as (attribute, value, reason))."""
    settings: dict[str, SettingValue] = {}
    removals: set[str] = set()
    problems: list[tuple[str, str, str]] = []
    for attr in POLICY_ATTRS:
        seen: set[str] = set()
        for text in values.get(attr, ()):
            try:
                if attr == REMOVE_ATTR:
                    removals.add(parse_item_ref(text))
                    continue
                item, got = parse_value(attr, text)
                if item in seen:
                    raise ValidationError(f"{item} is given in two values; keep one value per item")
                seen.add(item)
                settings.update(got)
            except (SettingError, ValidationError) as exc:
                problems.append((attr, text, _reason(exc)))
    return settings, removals, problems


def _reason(exc: Exception) -> str:
    """Problem text: the key and why, without repeating the raw value."""
    return f"{exc.key}: {exc.reason}" if isinstance(exc, SettingError) else str(exc)


def group_settings(settings: Mapping[str, SettingValue]) -> dict[tuple[str, str], dict[str, SettingValue]]:
    """{(attribute, item): {key: value}} for a flat dict."""
    out: dict[tuple[str, str], dict[str, SettingValue]] = {}
    for key, value in settings.items():
        out.setdefault(attribute_of(key), {})[key] = value
    return out


def encode_policy(settings: Mapping[str, SettingValue], removals: Iterable[str] = ()) -> dict[
        str, list[str]]:
    """Flat settings (validated here) -> LDAP attribute values, one value per item."""
    canonical = {key: coerce(key, value) for key, value in settings.items()}
    out: dict[str, list[str]] = {}
    for (attr, item), group in sorted(group_settings(canonical).items()):
        out.setdefault(attr, []).append(format_value_text(attr, item, group))
    refs = sorted(parse_item_ref(r) for r in removals)
    if refs:
        out[REMOVE_ATTR] = refs
    return out


# --- host answers, allocations, rule patterns ---------------------------------------------


def parse_answer(text: str) -> tuple[str, SettingValue]:
    key, value = _pair(text, "answer")
    return key, coerce(key, value, answer=True)


def format_answer(key: str, value: SettingValue) -> str:
    return f"{key}={format_value(value, key)}"


def parse_allocation(text: str) -> Allocation:
    item, *parts = _split(text)
    fields = dict(_pair(p, "allocation") for p in parts if p)
    if not item.startswith("vmknic.") or set(fields) != {"pool", "address"}:
        raise ValidationError("expected 'vmknic.PORTGROUP; pool=NAME; address=A.B.C.D'")
    coerce(f"{item}.address", fields["address"], answer=True)
    return Allocation(item, fields["pool"], fields["address"])


def format_allocation(allocation: Allocation) -> str:
    return f"{allocation.item}; pool={allocation.pool}; address={allocation.address}"


def parse_match(text: str) -> tuple[str, str]:
    field, sep, pattern = text.partition("=")
    if not sep or not field.strip() or not pattern.strip():
        raise ValidationError(f"rule pattern {text!r}: expected field=pattern, e.g. vendor=Dell*")
    return field.strip(), pattern.strip()

"""A host's hardware identity, as sent in its birth message and matched by deploy rules."""

from __future__ import annotations

import ipaddress
import re
import sys
import uuid as uuidlib
from collections.abc import Iterable

import attrs

from stateless.errors import ValidationError

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CANONICAL_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")
_CONTROL = re.compile(r"[\x00-\x1f]")
_MAC = re.compile(r"[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}")


def normalize_uuid(value: object) -> str:
    """Canonical lower-case hyphenated form, so that 'ABC…' and '{abc…}' name one host."""
    if not isinstance(value, str):
        raise ValidationError(f"uuid {value!r}: expected a string such as "
                              "4c4c4544-0042-3510-8052-b4c04f4b4e31")
    if _CANONICAL_UUID.fullmatch(value):
        return value  # already canonical: the very string, not an equal copy
    try:
        return str(uuidlib.UUID(value.strip()))
    except ValueError:
        raise ValidationError(f"uuid {value!r}: not a UUID (expected 32 hex digits, e.g. "
                              "4c4c4544-0042-3510-8052-b4c04f4b4e31)") from None


def normalize_mac(value: object) -> str:
    if isinstance(value, str) and _CANONICAL_MAC.fullmatch(value):
        return value  # as the directory stores it: no need to rebuild it
    if isinstance(value, str) and _MAC.fullmatch(value.strip().lower()):
        digits = re.sub(r"[:-]", "", value.strip().lower())
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    raise ValidationError(f"mac {value!r}: expected six hex octets such as 00:50:56:aa:bb:cc")


def _macs(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(normalize_mac(v) for v in values))


def _ipv4(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, str) and _CANONICAL_IPV4.fullmatch(value):
        return value
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise ValidationError(f"ipv4 {value!r}: not an IPv4 address") from None


def _text(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{value!r}: expected a string")
    if _CONTROL.search(value):
        raise ValidationError(f"{value!r}: control characters are not allowed")
    return value.strip()


def _shared_text(value: object) -> str:
    """Text that many hosts have in common (vendor, model, domain): one string for all."""
    return sys.intern(_text(value))


def _texts(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(_text(v) for v in values)


@attrs.frozen
class HostIdentity:
    """What a host says about itself; `uuid` (SMBIOS system UUID) is its stable key."""

    uuid: str = attrs.field(converter=normalize_uuid)
    serial: str = attrs.field(default="", converter=_text)
    vendor: str = attrs.field(default="", converter=_shared_text)
    model: str = attrs.field(default="", converter=_shared_text)
    asset: str = attrs.field(default="", converter=_text)
    oem_strings: tuple[str, ...] = attrs.field(default=(), converter=_texts)
    macs: tuple[str, ...] = attrs.field(default=(), converter=_macs)
    boot_mac: str | None = attrs.field(default=None)
    ipv4: str | None = attrs.field(default=None, converter=_ipv4)
    hostname: str = attrs.field(default="", converter=_text)
    domain: str = attrs.field(default="", converter=_shared_text)

    @boot_mac.validator
    def _check_boot_mac(self, _: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None:
            object.__setattr__(self, "boot_mac", normalize_mac(value))

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain}" if self.hostname and self.domain else self.hostname

    def field_values(self, field: str) -> tuple[str, ...]:
        """Values of one rule-matchable field (a host has several MACs and OEM strings)."""
        if field == "mac":
            macs = self.macs + ((self.boot_mac,) if self.boot_mac else ())
            return tuple(dict.fromkeys(macs))
        if field == "oemstring":
            return self.oem_strings
        value = getattr(self, field)
        return (value,) if value else ()


RULE_FIELDS = ("vendor", "model", "serial", "uuid", "mac", "ipv4", "asset", "hostname", "domain",
               "oemstring")

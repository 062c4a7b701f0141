"""The birth message a booting host sends: parsed strictly, with an error per bad field.

Hosts on the wire are untrusted: every field has a type and a size bound, unknown fields are
refused (a typo in an agent must not silently drop data), and all errors are collected so one
round trip tells the sender everything that is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from stateless.errors import ValidationError
from stateless.model.identity import HostIdentity

MAX_BODY = 16 * 1024  # a real birth message is well under 2 KiB
_THUMBPRINT = re.compile(r"([0-9A-Fa-f]{2}:){19}[0-9A-Fa-f]{2}|([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}")

_TEXT_FIELDS = {"serial": 128, "vendor": 128, "model": 128, "asset": 128, "hostname": 63,
                "domain": 253, "image": 64, "boot_mac": 17, "ipv4": 15}
_LIST_FIELDS = {"oem_strings": (32, 256), "macs": (64, 17)}
FIELDS = frozenset({"uuid", "thumbprint", *_TEXT_FIELDS, *_LIST_FIELDS})


class BirthError(ValidationError):
    """The birth message is not valid."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))
        super().__init__(f"invalid birth message: {detail}")


@attrs.frozen
class BirthMessage:
    identity: HostIdentity
    thumbprint: str | None = None
    image: str | None = None

    def to_json(self) -> dict[str, Any]:
        ident = self.identity
        return {"uuid": ident.uuid, "serial": ident.serial, "vendor": ident.vendor,
                "model": ident.model, "asset": ident.asset, "oem_strings": list(ident.oem_strings),
                "macs": list(ident.macs), "boot_mac": ident.boot_mac, "ipv4": ident.ipv4,
                "hostname": ident.hostname, "domain": ident.domain,
                "thumbprint": self.thumbprint, "image": self.image}


def parse_birth(body: bytes) -> BirthMessage:
    """Decode and validate a birth request body; raise BirthError naming every bad field."""
    if len(body) > MAX_BODY:
        raise BirthError({"body": f"larger than {MAX_BODY} bytes"})
    try:
        doc = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BirthError({"body": "not UTF-8"}) from None
    except (ValueError, RecursionError):
        raise BirthError({"body": "not a JSON document"}) from None
    if not isinstance(doc, dict):
        raise BirthError({"body": "expected a JSON object"})
    return birth_from_json(doc)


def birth_from_json(doc: Mapping[str, Any]) -> BirthMessage:
    errors: dict[str, str] = {}
    for key in doc:
        if key not in FIELDS:
            errors[str(key)[:64]] = "unknown field"
    values: dict[str, Any] = {}
    uuid = doc.get("uuid")
    if not isinstance(uuid, str):
        errors["uuid"] = "required string, the SMBIOS system UUID"
    elif len(uuid) > 40:
        errors["uuid"] = "too long for a UUID"
    else:
        values["uuid"] = uuid
    for name, limit in _TEXT_FIELDS.items():
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = "expected a string"
        elif len(value) > limit:
            errors[name] = f"longer than {limit} characters"
        else:
            values[name] = value
    for name, (count, limit) in _LIST_FIELDS.items():
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors[name] = "expected a list of strings"
        elif len(value) > count or any(len(v) > limit for v in value):
            errors[name] = f"at most {count} entries of {limit} characters"
        else:
            values[name] = value
    thumbprint = doc.get("thumbprint")
    if thumbprint is not None and not (isinstance(thumbprint, str)
                                       and _THUMBPRINT.fullmatch(thumbprint)):
        errors["thumbprint"] = "expected a SHA-1 or SHA-256 fingerprint as colon-separated hex"
    if errors:
        raise BirthError(errors)
    image = values.pop("image", None)
    return BirthMessage(identity=_identity(values), thumbprint=thumbprint, image=image)


_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


def _identity(values: dict[str, Any]) -> HostIdentity:
    """Build the identity field by field, so each bad value is reported under its own name."""
    errors: dict[str, str] = {}
    for name, value in values.items():
        try:
            if name == "uuid":
                HostIdentity(uuid=value)
            else:
                HostIdentity(uuid=_PLACEHOLDER, **{name: value})
        except (ValidationError, ValueError, TypeError) as exc:
            errors[name] = str(exc)
    if errors:
        raise BirthError(errors)
    return HostIdentity(**values)

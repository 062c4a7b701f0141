"""Files people hand to the CLI: one decoder, so every file reads the same way.

Editors and shells on different systems write text differently: UTF-8 with or without a byte
order mark, or UTF-16 with one (what PowerShell's `Out-File` writes). All of them are accepted;
anything a file's shape gets wrong is one line that names the file and the field.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

import attrs

from stateless.errors import StatelessError, ValidationError
from stateless.model.identity import HostIdentity

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def decode(data: bytes, what: str) -> str:
    """Text of a file's bytes: UTF-8 (BOM optional) or UTF-16 with its BOM."""
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{what}: not UTF-8 or UTF-16 text (byte {exc.start}); save it as "
                              "UTF-8") from None


def read_text(path: Path | str, what: str) -> str:
    """The decoded text of `path`; `what` names the file in errors (e.g. "identity file")."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValidationError(f"{what} {path}: {exc.strerror}") from exc
    return decode(data, f"{what} {path}")


def read_json(path: Path | str, what: str) -> Any:
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{what} {path}: not JSON ({exc.msg} at line {exc.lineno})") from exc


_LISTS = ("macs", "oem_strings")
_IDENTITY_FIELDS = tuple(f.name for f in attrs.fields(HostIdentity))


def identity_from(data: Any, where: str) -> HostIdentity:
    """A HostIdentity from decoded JSON; a wrong shape names the field."""
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: expected a JSON object with fields "
                              f"{', '.join(_IDENTITY_FIELDS)}")
    unknown = sorted(set(data) - set(_IDENTITY_FIELDS))
    if unknown:
        raise ValidationError(f"{where}: unknown field(s) {', '.join(unknown)}; known: "
                              f"{', '.join(_IDENTITY_FIELDS)}")
    if "uuid" not in data:
        raise ValidationError(f"{where}: field uuid is missing; give the host's SMBIOS UUID, e.g. "
                              '"uuid": "4c4c4544-0042-3510-8052-b4c04f4b4e31"')
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError(f"{where}: field {key} must be a list of strings, e.g. "
                                      f'"{key}": ["..."], not {json.dumps(value)}')
            value = tuple(value)
        elif value is not None and not isinstance(value, str):
            raise ValidationError(f"{where}: field {key} must be a string, not {json.dumps(value)}")
        values[key] = value
    for key, value in values.items():  # each field alone, so the message names it
        try:
            HostIdentity(**({"uuid": value} if key == "uuid" else
                            {"uuid": "00000000-0000-0000-0000-000000000000", key: value}))
        except StatelessError as exc:
            raise ValidationError(f"{where}: field {key}: {exc.message}") from None
    return HostIdentity(**values)


def read_identity(path: Path | str) -> HostIdentity:
    """A host identity JSON file (`rules test --identity`)."""
    return identity_from(read_json(path, "identity file"), f"identity file {path}")


__all__ = ["decode", "identity_from", "read_identity", "read_json", "read_text"]

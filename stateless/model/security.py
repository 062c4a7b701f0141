"""Security values kept in the directory: admission mode, enrollment keys, pinned identity.

Pure: the sealed secret of an enrollment key stays an opaque string here; only
`stateless.security.seal` (which holds the keys) opens it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import UTC, datetime

import attrs

from stateless.errors import ValidationError
from stateless.model.identity import normalize_mac

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_THUMBPRINT = re.compile(r"([0-9A-F]{2}:){19}[0-9A-F]{2}|([0-9A-F]{2}:){31}[0-9A-F]{2}")
_GENTIME = "%Y%m%d%H%M%SZ"


class AdmissionMode(enum.StrEnum):
    """How a site admits hosts it does not know yet (every birth is authenticated first)."""

    OPEN = "open"  # any authenticated host
    RULES = "rules"  # only hosts matching a non-default deploy rule, or pre-registered
    APPROVAL = "approval"  # unknown hosts are quarantined until an admin approves them


DEFAULT_ADMISSION = AdmissionMode.RULES


def admission_mode(text: str) -> AdmissionMode:
    try:
        return AdmissionMode(text.strip().lower())
    except ValueError:
        raise ValidationError(f"admission {text!r}: expected open, rules or approval") from None


def check_key_id(value: str) -> str:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise ValidationError(f"key id {value!r}: use 1-32 letters, digits, '_' or '-'")
    return value


def utc(when: datetime) -> datetime:
    """Whole seconds in UTC, as GeneralizedTime stores them."""
    if when.tzinfo is None:
        raise ValidationError(f"time {when!r}: needs a time zone")
    return when.astimezone(UTC).replace(microsecond=0)


def format_time(when: datetime) -> str:
    return utc(when).strftime(_GENTIME)


def parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), _GENTIME).replace(tzinfo=UTC)
    except ValueError:
        raise ValidationError(f"time {text!r}: expected GeneralizedTime such as 20260102030405Z") \
            from None


@attrs.frozen
class EnrollKey:
    """One enrollment key of a site: births signed with it are authenticated for that site."""

    key_id: str = attrs.field(validator=lambda _s, _a, v: check_key_id(v))
    created: datetime = attrs.field(converter=utc)
    sealed: str = attrs.field(repr=False)  # `stateless.security.seal` value; never the secret

    def to_text(self) -> str:
        """The `statelessEnrollKey` value."""
        return f"{self.key_id}; created={format_time(self.created)}; secret={self.sealed}"


def parse_enroll_key(text: str) -> EnrollKey:
    """A `statelessEnrollKey` value: `KEYID; created=20260102030405Z; secret=aesgcm:...`."""
    key_id, *parts = [p.strip() for p in text.split(";")]
    fields: dict[str, str] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in ("created", "secret") or name.strip() in fields:
            raise ValidationError("expected 'KEYID; created=TIME; secret=SEALED'")
        fields[name.strip()] = value.strip()
    if set(fields) != {"created", "secret"} or not fields["secret"]:
        raise ValidationError("expected 'KEYID; created=TIME; secret=SEALED'")
    return EnrollKey(key_id, parse_time(fields["created"]), fields["secret"])


def newest_first(keys: Iterable[EnrollKey]) -> tuple[EnrollKey, ...]:
    return tuple(sorted(keys, key=lambda k: (k.created, k.key_id), reverse=True))


def normalize_thumbprint(value: str) -> str:
    """Upper-case colon-separated hex (SHA-1 or SHA-256), the form vCenter's AddHost takes."""
    text = value.strip().upper() if isinstance(value, str) else ""
    if ":" not in text and len(text) in (40, 64):
        text = ":".join(text[i:i + 2] for i in range(0, len(text), 2))
    if not _THUMBPRINT.fullmatch(text):
        raise ValidationError(f"thumbprint {value!r}: expected a SHA-1 or SHA-256 fingerprint as "
                              "colon-separated hex")
    return text


def _macs(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({normalize_mac(v) for v in values}))


def _optional_thumbprint(value: str | None) -> str | None:
    return normalize_thumbprint(value) if value else None


@attrs.frozen
class PinnedIdentity:
    """What a host was when it was first approved (trust on first use, like SSH known_hosts).

    A later birth that contradicts it is quarantined and never overwrites it; vCenter's
    AddHost takes the thumbprint and name from here, never from a birth.
    """

    pinned_at: datetime = attrs.field(converter=utc)
    thumbprint: str | None = attrs.field(default=None, converter=_optional_thumbprint)
    serial: str = ""
    macs: tuple[str, ...] = attrs.field(default=(), converter=_macs)
    name: str = ""

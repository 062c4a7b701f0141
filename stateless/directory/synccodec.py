"""The RFC 4533 content-synchronization controls, as BER, and OpenLDAP's cookies.

The small codec for the sync request, state and done controls and the sync info intermediate
message (`encode_*`/`decode_*`), and the cookie arithmetic (`SyncCookie`, `merge_cookie`) a
consumer needs to resume on another provider after a failover. No I/O: the consumer that
speaks it is `stateless.directory.syncrepl`.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import attrs
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import constraint, namedtype, namedval, tag, univ

from stateless.errors import DirectoryError

SYNC_REQUEST_OID = "1.3.6.1.4.1.4203.1.9.1.1"
SYNC_STATE_OID = "1.3.6.1.4.1.4203.1.9.1.2"
SYNC_DONE_OID = "1.3.6.1.4.1.4203.1.9.1.3"
SYNC_INFO_OID = "1.3.6.1.4.1.4203.1.9.1.4"

ChangeKind = Literal["add", "modify", "delete", "present"]


class SyncCodecError(DirectoryError):
    """A content-synchronization control from the directory could not be decoded."""


# --- ASN.1 of RFC 4533 section 2 (the module uses IMPLICIT TAGS) -----------------------------


class _Mode(univ.Enumerated):
    namedValues = namedval.NamedValues(("refreshOnly", 1), ("refreshAndPersist", 3))


class _State(univ.Enumerated):
    namedValues = namedval.NamedValues(("present", 0), ("add", 1), ("modify", 2), ("delete", 3))


class _SyncUUID(univ.OctetString):
    subtypeSpec = constraint.ValueSizeConstraint(16, 16)


class _SyncRequestValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("mode", _Mode()),
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("reloadHint", univ.Boolean(False)),
    )


class _SyncStateValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("state", _State()),
        namedtype.NamedType("entryUUID", _SyncUUID()),
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
    )


class _SyncDoneValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)),
    )


def _ctx(n: int, constructed: bool) -> tag.TagSet:
    fmt = tag.tagFormatConstructed if constructed else tag.tagFormatSimple
    return tag.TagSet().tagImplicitly(tag.Tag(tag.tagClassContext, fmt, n))


class _RefreshPhase(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDone", univ.Boolean(True)),
    )


class _RefreshDelete(_RefreshPhase):
    tagSet = univ.Sequence.tagSet.tagImplicitly(tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 1))


class _RefreshPresent(_RefreshPhase):
    tagSet = univ.Sequence.tagSet.tagImplicitly(tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 2))


class _SyncIdSet(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagImplicitly(tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 3))
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)),
        namedtype.NamedType("syncUUIDs", univ.SetOf(componentType=_SyncUUID())),
    )


class _SyncInfoValue(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType(
            "newcookie",
            univ.OctetString().subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 0)
            ),
        ),
        namedtype.NamedType("refreshDelete", _RefreshDelete()),
        namedtype.NamedType("refreshPresent", _RefreshPresent()),
        namedtype.NamedType("syncIdSet", _SyncIdSet()),
    )


# --- decoded values ---------------------------------------------------------------------------


class SyncMode(enum.IntEnum):
    """The two modes of a sync request; values are the protocol's."""

    REFRESH_ONLY = 1
    REFRESH_AND_PERSIST = 3


_STATE_NAMES: tuple[ChangeKind, ...] = ("present", "add", "modify", "delete")


@attrs.frozen
class SyncRequest:
    """The syncRequestValue a consumer sends (decoded form, for tests and logs)."""

    mode: SyncMode
    cookie: bytes | None = None
    reload_hint: bool = False


@attrs.frozen
class SyncStateControl:
    """The syncStateValue attached to every entry the server sends."""

    state: ChangeKind
    entry_uuid: str
    cookie: bytes | None = None


@attrs.frozen
class SyncDoneControl:
    """The syncDoneValue attached to the final searchResultDone."""

    cookie: bytes | None = None
    refresh_deletes: bool = False


SyncInfoKind = Literal["newcookie", "refreshDelete", "refreshPresent", "syncIdSet"]


@attrs.frozen
class SyncInfoMessage:
    """The syncInfoValue of the sync intermediate response.

    One type for the four choices: `refresh_done` matters for refreshDelete/refreshPresent,
    `refresh_deletes` and `uuids` for syncIdSet.
    """

    kind: SyncInfoKind
    cookie: bytes | None = None
    refresh_done: bool = True
    refresh_deletes: bool = False
    uuids: tuple[str, ...] = ()


def _uuid_text(raw: bytes) -> str:
    if len(raw) != 16:
        raise SyncCodecError(f"syncUUID must be 16 bytes, got {len(raw)}: {raw.hex()}")
    return str(uuid.UUID(bytes=raw))


def _uuid_bytes(text: str) -> bytes:
    return uuid.UUID(text).bytes


def _optional_bytes(value: Any) -> bytes | None:
    return bytes(value) if value.isValue else None


def _decode(data: bytes, spec: Any, what: str) -> Any:
    try:
        value, rest = ber_decoder.decode(data, asn1Spec=spec)
    except PyAsn1Error as e:
        raise SyncCodecError(f"cannot decode {what} {data.hex()}: {e}") from e
    if rest:
        raise SyncCodecError(f"{len(rest)} trailing bytes after {what} {data.hex()}")
    return value


def encode_sync_request(
    mode: SyncMode = SyncMode.REFRESH_AND_PERSIST, cookie: bytes | None = None, reload_hint: bool = False
) -> bytes:
    """The value of the sync request control (DER, so booleans are 0xFF as LDAP wants)."""
    value = _SyncRequestValue()
    value["mode"] = int(mode)
    if cookie is not None:
        value["cookie"] = cookie
    value["reloadHint"] = reload_hint
    return bytes(der_encoder.encode(value))


def decode_sync_request(data: bytes) -> SyncRequest:
    value = _decode(data, _SyncRequestValue(), "syncRequestValue")
    mode = int(value["mode"])
    if mode not in (SyncMode.REFRESH_ONLY, SyncMode.REFRESH_AND_PERSIST):
        raise SyncCodecError(f"syncRequestValue {data.hex()} has mode {mode}, not 1 or 3")
    return SyncRequest(
        SyncMode(mode), _optional_bytes(value["cookie"]), bool(value["reloadHint"])
    )


def encode_sync_state(state: SyncStateControl) -> bytes:
    value = _SyncStateValue()
    value["state"] = _STATE_NAMES.index(state.state)
    value["entryUUID"] = _uuid_bytes(state.entry_uuid)
    if state.cookie is not None:
        value["cookie"] = state.cookie
    return bytes(der_encoder.encode(value))


def _short_sync_state(data: bytes) -> SyncStateControl | None:
    """The syncStateValue slapd attaches to nearly every entry, without pyasn1: exactly
    SEQUENCE { ENUMERATED 0..3, OCTET STRING (16 bytes) } in short-form DER, 23 bytes. A
    refresh of tens of thousands of entries spent most of its time decoding these; anything
    else (a cookie, long lengths, another shape) is None and goes to pyasn1."""
    if len(data) != 23 or data[:4] != b"\x30\x15\x0a\x01" or data[5:7] != b"\x04\x10":
        return None
    state = data[4]
    if state >= len(_STATE_NAMES):
        return None
    return SyncStateControl(_STATE_NAMES[state], str(uuid.UUID(bytes=data[7:])))


def decode_sync_state(data: bytes) -> SyncStateControl:
    short = _short_sync_state(data)
    if short is not None:
        return short
    value = _decode(data, _SyncStateValue(), "syncStateValue")
    state = int(value["state"])
    if not 0 <= state < len(_STATE_NAMES):
        raise SyncCodecError(f"syncStateValue {data.hex()} has state {state}, not 0..3")
    return SyncStateControl(
        _STATE_NAMES[state],
        _uuid_text(bytes(value["entryUUID"])),
        _optional_bytes(value["cookie"]),
    )


def encode_sync_done(done: SyncDoneControl) -> bytes:
    value = _SyncDoneValue()
    if done.cookie is not None:
        value["cookie"] = done.cookie
    value["refreshDeletes"] = done.refresh_deletes
    return bytes(der_encoder.encode(value))


def decode_sync_done(data: bytes) -> SyncDoneControl:
    value = _decode(data, _SyncDoneValue(), "syncDoneValue")
    return SyncDoneControl(_optional_bytes(value["cookie"]), bool(value["refreshDeletes"]))


def encode_sync_info(info: SyncInfoMessage) -> bytes:
    choice = _SyncInfoValue()
    if info.kind == "newcookie":
        if info.cookie is None:
            raise ValueError("a newcookie message needs a cookie")
        choice["newcookie"] = info.cookie
    elif info.kind == "syncIdSet":
        id_set = _SyncIdSet()
        if info.cookie is not None:
            id_set["cookie"] = info.cookie
        id_set["refreshDeletes"] = info.refresh_deletes
        uuids = id_set["syncUUIDs"]
        for i, text in enumerate(info.uuids):
            uuids[i] = _uuid_bytes(text)
        choice["syncIdSet"] = id_set
    else:
        phase: _RefreshPhase = _RefreshDelete() if info.kind == "refreshDelete" else _RefreshPresent()
        if info.cookie is not None:
            phase["cookie"] = info.cookie
        phase["refreshDone"] = info.refresh_done
        choice[info.kind] = phase
    return bytes(der_encoder.encode(choice))


def decode_sync_info(data: bytes) -> SyncInfoMessage:
    choice = _decode(data, _SyncInfoValue(), "syncInfoValue")
    kind = choice.getName()
    inner = choice.getComponent()
    if kind == "newcookie":
        return SyncInfoMessage("newcookie", bytes(inner))
    if kind == "syncIdSet":
        return SyncInfoMessage(
            "syncIdSet",
            _optional_bytes(inner["cookie"]),
            refresh_deletes=bool(inner["refreshDeletes"]),
            uuids=tuple(_uuid_text(bytes(u)) for u in inner["syncUUIDs"]),
        )
    return SyncInfoMessage(kind, _optional_bytes(inner["cookie"]), refresh_done=bool(inner["refreshDone"]))


# --- OpenLDAP cookies -------------------------------------------------------------------------

_CSN = re.compile(r"^\d{14}(?:\.\d{6})?Z#[0-9a-fA-F]{6}#([0-9a-fA-F]{3})#[0-9a-fA-F]{6}$")


@attrs.frozen
class SyncCookie:
    """An OpenLDAP sync cookie: `rid=NNN[,sid=XXX][,csn=CSN;CSN...]`.

    `csns` maps a server ID (the third `#` field of a CSN) to the newest change seen from that
    server, which is what a provider compares against its own state on resume.
    """

    rid: int | None = None
    sid: int | None = None
    csns: Mapping[int, str] = attrs.field(factory=dict)
    extra: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: bytes) -> SyncCookie | None:
        """The cookie's fields, or None when it is not in OpenLDAP's format (then it stays opaque)."""
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
        rid = sid = None
        csns: dict[int, str] = {}
        extra: list[str] = []
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                return None
            try:
                if name == "rid":
                    rid = int(value, 10)
                elif name == "sid":
                    sid = int(value, 16)
                elif name == "csn":
                    for csn in filter(None, value.split(";")):
                        match = _CSN.match(csn)
                        if match is None:
                            return None
                        server = int(match.group(1), 16)
                        csns[server] = max(csns.get(server, csn), csn)
                else:
                    extra.append(part)
            except ValueError:
                return None
        if rid is None and not csns:
            return None
        return cls(rid, sid, csns, tuple(extra))

    def encode(self) -> bytes:
        """The cookie to send back, without `sid`: that names the server that sent it, and a
        slapd that gets its own server ID back answers with a full refresh (seen with 2.5)."""
        parts = [f"rid={self.rid:03d}"] if self.rid is not None else []
        if self.csns:
            parts.append("csn=" + ";".join(self.csns[s] for s in sorted(self.csns)))
        parts.extend(self.extra)
        return ",".join(parts).encode("ascii")


def merge_cookie(stored: bytes | None, new: bytes | None) -> bytes | None:
    """The cookie to keep after receiving `new`.

    A live notification's cookie carries only the CSN of the server where the change was made,
    and a refresh with nothing new carries no cookie at all; keeping the newest CSN per server
    ID makes the stored cookie valid for a resume against any provider.
    """
    if new is None:
        return stored
    parsed_new = SyncCookie.parse(new)
    if parsed_new is None:
        return new
    parsed_old = SyncCookie.parse(stored) if stored is not None else None
    if parsed_old is None:
        return parsed_new.encode()
    csns = dict(parsed_old.csns)
    for server, csn in parsed_new.csns.items():
        csns[server] = max(csns.get(server, csn), csn)
    rid = parsed_new.rid if parsed_new.rid is not None else parsed_old.rid
    return SyncCookie(rid, None, csns, parsed_new.extra or parsed_old.extra).encode()

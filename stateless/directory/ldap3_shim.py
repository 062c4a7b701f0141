"""The ldap3 internals the change feed relies on, in one place.

ldap3 has no public way to see each message of a search that never ends (a syncrepl
refreshAndPersist search): its ASYNC_STREAM strategy's receiver thread appends every message
to `strategy._responses[message_id]` under `strategy.async_lock` and then calls
`strategy.accumulate_stream(message_id, message)`.  The feed replaces `accumulate_stream` on
its own connection's strategy with a function that hands each message over and drops the
entries ldap3 would otherwise keep for the whole life of the search.

This holds for the ldap3 versions in `SUPPORTED` (setup.cfg pins the same range);
`tests/unit/test_ldap3_shim.py` checks the receiver still does exactly this.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import suppress
from typing import Any

SUPPORTED = ((2, 9),)  # (major, minor) of the ldap3 releases this module was checked against
STREAMED = ("searchResEntry", "searchResRef", "intermediateResponse")  # a search's non-final replies

Deliver = Callable[[int, dict[str, Any]], None]


def supported(version: str) -> bool:
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) in SUPPORTED


def stream_messages(strategy: Any, deliver: Deliver) -> None:
    """Every message the connection receives goes to `deliver` (in ldap3's receiver thread:
    it must hand over and return); a search's entries are not accumulated."""

    def hook(message_id: int, message: dict[str, Any]) -> None:
        if message.get("type") in STREAMED:
            with strategy.async_lock:
                strategy._responses.pop(message_id, None)
        deliver(message_id, message)

    strategy.accumulate_stream = hook


def close_now(connection: Any) -> None:
    """Close a connection another thread may be blocked in.

    `Connection.unbind` takes `connection_lock`, which a synchronous operation holds while it
    waits for its answer: closing a connection that waits on a silent server would wait as
    long as the operation's receive timeout. Shutting its socket down wakes the waiting
    thread at once (its operation fails); an idle connection is unbound politely.
    """
    lock = connection.connection_lock
    if lock.acquire(blocking=False):
        try:
            connection.unbind()
        finally:
            lock.release()
        return
    sock = connection.socket
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def receiver_alive(strategy: Any) -> bool:
    """Whether the strategy's receiver thread still reads from the socket."""
    receiver = strategy.receiver
    return receiver is not None and bool(receiver.is_alive())


def decode_entries_raw(strategy: Any) -> None:
    """Decode search entries to what the consumer reads (dn, raw values, controls) only.

    ldap3 builds each entry twice, as raw bytes and as values formatted through the schema,
    both in case-insensitive dicts; the consumer reads only the raw bytes, and with tens of
    thousands of entries the rest was a third of the refresh's CPU. Other messages are
    decoded by ldap3 as before. Relies on `strategy.decode_response_fast(message)` being
    what the receiver decodes each message with, and on the shape of a searchResEntry's
    payload (`tests/unit/test_library_shims.py` checks both). With `decode_entries_fast`
    installed, an entry arrives already read and is taken as it is.
    """
    from ldap3.utils.conv import to_unicode

    decode = strategy.decode_response_fast
    control = strategy.decode_control_fast

    def entries_raw(message: dict[str, Any]) -> dict[str, Any]:
        if isinstance(message, ReadEntry):
            result = {"type": "searchResEntry", "dn": message.dn,
                      "raw_attributes": message.attributes}
            if message.controls:
                result["controls"] = dict(control(c) for c in message.controls)
            return result
        if message["protocolOp"] != 4:  # searchResEntry
            return decode(message)
        payload = message["payload"]
        result = {
            "type": "searchResEntry", "dn": to_unicode(payload[0][3], from_server=True),
            "raw_attributes": {to_unicode(a[3][0][3], from_server=True): [bytes(v[3]) for v in a[3][1][3]]
                               for a in payload[1][3]}}
        if message["controls"]:
            result["controls"] = dict(control(c[3]) for c in message["controls"])
        return result

    strategy.decode_response_fast = entries_raw


# --- reading a searchResEntry straight from its BER -------------------------------------------
#
# ldap3's receiver decodes every message into nested (class, constructed, tag, value) tuples
# with `ldap3.utils.asn1.decode_message_fast`, some thirty calls per entry: at 50,000 entries
# the largest cost of a daemon's start. `decode_entries_fast` puts a reader of its own in
# that function's place in the receiver's module: it reads the one shape the feed receives
# tens of thousands of (LDAPMessage { messageID, searchResEntry { dn, attributes }, controls },
# RFC 4511 section 4.5.2, definite lengths) and hands every other message, or any surprise
# in one, to ldap3's decoder. What it returns is a `ReadEntry`: the dict ldap3 would have
# returned, whose `payload` and `controls` ldap3 decodes only if someone reads them.

SEQUENCE, SET, OCTETS, INTEGER, BOOLEAN = 0x30, 0x31, 0x04, 0x02, 0x01
SEARCH_ENTRY, CONTROLS = 0x64, 0xA0  # [APPLICATION 4] and [0], both constructed
# Controls whose value ldap3 decodes further (paged results, DirSync, pre/post read).
_DECODED_CONTROLS = frozenset({b"1.2.840.113556.1.4.319", b"1.2.840.113556.1.4.841",
                               b"1.3.6.1.1.13.1", b"1.3.6.1.1.13.2"})


class _Unread(Exception):
    """Not the shape `read_entry` reads: ldap3 decodes the message."""


class ReadEntry(dict[str, Any]):
    """A searchResEntry read from BER: `dn`, `attributes` (name -> raw values) and
    `controls` (in the shape `decode_control_fast` takes). As a dict it is what ldap3's
    decoder returns for the message, decoded by ldap3 on first use."""

    def __init__(self, ber: bytes, message_id: int, dn: str, attributes: dict[str, list[bytes]],
                 controls: list[list[tuple[int, bool, int, Any]]]) -> None:
        super().__init__(messageID=message_id, protocolOp=4)
        self.ber, self.dn, self.attributes, self.controls = ber, dn, attributes, controls

    def _decoded(self) -> None:
        if "payload" not in self.keys():
            from ldap3.utils.asn1 import decode_message_fast

            full = decode_message_fast(self.ber)
            dict.update(self, payload=full["payload"], controls=full["controls"])

    def __getitem__(self, key: str) -> Any:
        if key in ("payload", "controls"):
            self._decoded()
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        if key in ("payload", "controls"):
            self._decoded()
        return dict.get(self, key, default)

    def __eq__(self, other: object) -> bool:
        self._decoded()
        return dict.__eq__(self, other)

    __hash__ = None


def _tlv(ber: bytes, pos: int, tag: int) -> tuple[int, int]:
    """(start, end) of the value of the element at `pos`, which must have `tag`."""
    if ber[pos] != tag:
        raise _Unread
    length = ber[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise _Unread  # indefinite or absurd: not in LDAP
        length = int.from_bytes(ber[pos:pos + count], "big")
        pos += count
    end = pos + length
    if end > len(ber):
        raise _Unread
    return pos, end


def read_entry(ber: bytes) -> ReadEntry:
    """A searchResEntry message read from its BER; `_Unread` when it is not one."""
    start, end = _tlv(ber, 0, SEQUENCE)
    value, pos = _tlv(ber, start, INTEGER)
    message_id = int.from_bytes(ber[value:pos], "big", signed=True)
    start, entry_end = _tlv(ber, pos, SEARCH_ENTRY)
    value, pos = _tlv(ber, start, OCTETS)
    dn = ber[value:pos].decode("utf-8")
    pos, attrs_end = _tlv(ber, pos, SEQUENCE)
    attributes: dict[str, list[bytes]] = {}
    while pos < attrs_end:
        start, pos = _tlv(ber, pos, SEQUENCE)
        value, start = _tlv(ber, start, OCTETS)
        name = ber[value:start].decode("utf-8")
        start, set_end = _tlv(ber, start, SET)
        values = []
        while start < set_end:
            value, start = _tlv(ber, start, OCTETS)
            values.append(ber[value:start])
        if start != set_end or start != pos:
            raise _Unread
        attributes[name] = values
    if pos != attrs_end or pos != entry_end:
        raise _Unread
    controls = []
    if pos < end:
        start, pos = _tlv(ber, pos, CONTROLS)
        while start < pos:
            controls.append(_control(ber, start))
            start = _tlv(ber, start, SEQUENCE)[1]
    if pos != end or end != len(ber):
        raise _Unread
    return ReadEntry(ber, message_id, dn, attributes, controls)


def _control(ber: bytes, pos: int) -> list[tuple[int, bool, int, Any]]:
    """One Control as ldap3's decoder gives it to `decode_control_fast`."""
    pos, end = _tlv(ber, pos, SEQUENCE)
    value, pos = _tlv(ber, pos, OCTETS)
    oid = ber[value:pos]
    if oid in _DECODED_CONTROLS:
        raise _Unread
    out: list[tuple[int, bool, int, Any]] = [(0, False, 4, oid)]
    if pos < end and ber[pos] == BOOLEAN:
        value, pos = _tlv(ber, pos, BOOLEAN)
        out.append((0, False, 1, ber[value:pos] != b"\x00"))
    if pos < end:
        value, pos = _tlv(ber, pos, OCTETS)
        out.append((0, False, 4, ber[value:pos]))
    if pos != end:
        raise _Unread
    return out


def decode_entries_fast() -> None:
    """Read searchResEntry messages of every ASYNC/ASYNC_STREAM connection with `read_entry`
    (ldap3 decodes everything else, and an entry when asked for its payload). Idempotent."""
    from ldap3.strategy import asynchronous
    from ldap3.utils.asn1 import decode_message_fast as original

    if getattr(asynchronous.decode_message_fast, "reads_entries", False):
        return

    def decode_message(ber: bytes) -> dict[str, Any]:
        try:
            return read_entry(ber)
        except (_Unread, IndexError, UnicodeDecodeError):
            pass  # another message (or a surprise): ldap3 decodes it
        result: dict[str, Any] = original(ber)
        return result

    decode_message.reads_entries = True  # type: ignore[attr-defined]
    asynchronous.decode_message_fast = decode_message


__all__ = ["STREAMED", "SUPPORTED", "ReadEntry", "decode_entries_fast", "decode_entries_raw",
           "read_entry", "receiver_alive", "stream_messages", "supported"]

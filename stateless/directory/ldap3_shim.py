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
    payload (`tests/unit/test_library_shims.py` checks both).
    """
    from ldap3.utils.conv import to_unicode

    decode = strategy.decode_response_fast

    def entries_raw(message: dict[str, Any]) -> dict[str, Any]:
        if message["protocolOp"] != 4:  # searchResEntry
            return decode(message)
        payload = message["payload"]
        result: dict[str, Any] = {
            "type": "searchResEntry", "dn": to_unicode(payload[0][3], from_server=True),
            "raw_attributes": {to_unicode(a[3][0][3], from_server=True): [bytes(v[3]) for v in a[3][1][3]]
                               for a in payload[1][3]}}
        if message["controls"]:
            result["controls"] = dict(strategy.decode_control_fast(c[3]) for c in message["controls"])
        return result

    strategy.decode_response_fast = entries_raw


__all__ = ["STREAMED", "SUPPORTED", "decode_entries_raw", "receiver_alive", "stream_messages",
           "supported"]

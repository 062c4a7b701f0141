"""The directory change feed: an RFC 4533 content-synchronization consumer.

OpenLDAP ignores the persistent-search control that ldap3 knows, but it speaks RFC 4533
(syncprov). `SyncConsumer` is a blocking loop that keeps a refreshAndPersist search open
against one of several servers and reports every change to callbacks; the controls' BER
codec and the cookie arithmetic it resumes with after a failover are in
`stateless.directory.synccodec`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from stateless.directory import ldap3_shim
from stateless.directory.synccodec import (
    SYNC_DONE_OID,
    SYNC_INFO_OID,
    SYNC_REQUEST_OID,
    SYNC_STATE_OID,
    ChangeKind,
    SyncInfoMessage,
    SyncMode,
    SyncStateControl,
    decode_sync_done,
    decode_sync_info,
    decode_sync_state,
    encode_sync_request,
    merge_cookie,
)
from stateless.errors import DirectoryError

log = logging.getLogger(__name__)

# --- the consumer -----------------------------------------------------------------------------

ChangeCallback = Callable[[ChangeKind, str, str, dict[str, list[bytes | str]]], None]

#: resultCode e-syncRefreshRequired: the server cannot resume from our cookie, reload in full.
SYNC_REFRESH_REQUIRED = 4096


class _SessionLost(Exception):
    """The connection to the current server ended; resume elsewhere with the stored cookie."""


class _RefreshRequired(Exception):
    """The server cannot resume from the cookie (e-syncRefreshRequired)."""


class SyncConsumer:
    """Keeps a refreshAndPersist search open on one of `urls` and reports every change.

    `run()` blocks (call it in a thread of its own, or use `start()`); callbacks run in that
    thread. After a lost connection the consumer moves to the next URL and resumes with the
    stored cookie, so it receives only what changed meanwhile, deletes included; `on_lost`
    hears of every session that ended or could not start, with the reason, and
    `on_refresh_done` of the next one that is synchronized again. Reconnection attempts are
    spaced by full-jitter backoff between `retry_delay` and `max_retry_delay`. Exceptions
    raised by callbacks are logged and do not stop the feed.

    A `cookie` given at construction only makes sense together with the entries it stands
    for: pass `known` (entryUUID -> DN of the entries the caller already holds), or the
    caller's copy misses everything that did not change since.
    """

    def __init__(
        self,
        urls: Sequence[str],
        base: str,
        on_change: ChangeCallback,
        on_refresh_done: Callable[[], None] | None = None,
        *,
        on_refresh_start: Callable[[], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
        bind_dn: str | None = None,
        password: str | None = None,
        search_filter: str = "(objectClass=*)",
        attributes: Sequence[str] = ("*",),
        cookie: bytes | None = None,
        known: Mapping[str, str] | None = None,
        connect_timeout: float = 3.0,
        keepalive: int = 10,
        retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        poll_interval: float = 0.1,
        tls: Any = None,
        rng: random.Random | None = None,
    ) -> None:
        if not urls:
            raise DirectoryError("no directory URL to follow: give at least one ldap:// URL")
        self.urls = tuple(urls)
        self._endpoints = {url: _endpoint(url) for url in self.urls}
        self.base = base
        self.on_change = on_change
        self.on_refresh_done = on_refresh_done
        self.on_refresh_start = on_refresh_start
        self.on_lost = on_lost
        self.bind_dn = bind_dn
        self.password = password
        self.search_filter = search_filter
        self.attributes = tuple(attributes)
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.poll_interval = poll_interval
        self.tls = tls
        self._rng = rng or random.Random()
        self._cookie = merge_cookie(None, cookie)
        self._dns: dict[str, str] = dict(known or {})
        self._stop = threading.Event()
        self._refreshed = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._index = 0
        self._move_to: int | None = None  # a planned move to urls[i] (see `move_to`)
        self.current_url: str | None = None
        self.last_error: str | None = None
        self.sessions = 0
        self._session_was_good = False
        #: messages received by kind ("entry/add", "info/syncIdSet/deletes", ...), for metrics
        self.counts: Counter[str] = Counter()

    # --- public ------------------------------------------------------------------------------

    @property
    def cookie(self) -> bytes | None:
        """The merged cookie: where a resume starts (persist it to survive restarts)."""
        return self._cookie

    @property
    def known(self) -> Mapping[str, str]:
        """entryUUID -> DN of every entry the consumer believes exists."""
        return dict(self._dns)

    def refreshed(self) -> bool:
        """True while connected and past the refresh stage."""
        return self._refreshed.is_set()

    def wait_refreshed(self, timeout: float | None = None) -> bool:
        return self._refreshed.wait(timeout)

    def start(self) -> threading.Thread:
        """Run in a daemon thread of its own and return it."""
        if self._thread is not None and self._thread.is_alive():
            raise DirectoryError("the change feed is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="stateless-syncrepl", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection and end `run()`; waits for the thread `start()` made."""
        self._stop.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.unbind()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def move_to(self, url: str) -> None:
        """End the current session and resume on `url` (one of `urls`) from the stored cookie,
        without reporting a loss: a planned return to the preferred server."""
        self._move_to = self.urls.index(url)
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.unbind()

    def run(self) -> None:
        """Follow the directory until `stop()`; never raises for connection trouble."""
        failures = 0
        while not self._stop.is_set():
            url = self.urls[self._index % len(self.urls)]
            try:
                self._session(url)
            except _RefreshRequired:
                log.warning("%s cannot resume from cookie %r: reloading in full", url, self._cookie)
                self._cookie = None
                continue
            except (_SessionLost, DirectoryError) as e:
                if self._stop.is_set():
                    break
                if self._move_to is not None:
                    log.info("change feed leaves %s for %s", url, self.urls[self._move_to])
                else:
                    self.last_error = f"{url}: {e}"
                    # Once per outage, not once per attempt: attempts may come several a second.
                    (log.warning if self._session_was_good or not failures else log.debug)(
                        "change feed from %s lost: %s", url, e)
            except Exception as e:  # a library surprise must not end the feed for good
                self.last_error = f"{url}: {e!r}"
                log.exception("change feed from %s failed", url)
            finally:
                self._refreshed.clear()
                self.current_url = None
                self._close()
            if self._stop.is_set():
                break
            if self._move_to is not None:
                self._index, self._move_to, failures = self._move_to, None, 0
                continue
            self._lost(self.last_error or f"{url}: connection closed")
            self._index += 1
            failures = 0 if self._session_was_good else failures + 1
            if failures and failures % len(self.urls) == 0:
                ceiling = min(self.max_retry_delay, self.retry_delay * 2 ** (failures // len(self.urls) - 1))
                self._stop.wait(self._rng.uniform(0, ceiling))

    def _lost(self, reason: str) -> None:
        if self.on_lost is not None:
            try:
                self.on_lost(reason)
            except Exception:
                log.exception("connection-lost callback failed")

    # --- one connection ----------------------------------------------------------------------

    def _connect(self, url: str) -> Any:
        import ldap3  # the adapter's dependency; kept out of import time for the codec users
        from ldap3.core.exceptions import LDAPException

        try:
            host, port, use_ssl = self._endpoints[url]
            server = ldap3.Server(host, port=port, use_ssl=use_ssl, get_info=ldap3.NONE,
                                  connect_timeout=self.connect_timeout, tls=self.tls)
            conn = ldap3.Connection(server, self.bind_dn, self.password,
                                    client_strategy=ldap3.ASYNC_STREAM, raise_exceptions=False)
            ldap3_shim.decode_entries_fast()
            ldap3_shim.decode_entries_raw(conn.strategy)
            conn.open(read_server_info=False)
            self._set_keepalive(conn.socket)
            if conn.socket is not None:
                # ldap3 leaves connect_timeout on the socket; a quiet feed is not a dead one
                # (a vanished peer is caught by keepalive instead).
                conn.socket.settimeout(None)
            if self.bind_dn is not None and not conn.bind():
                result = conn.result or {}
                with contextlib.suppress(Exception):
                    conn.unbind()
                raise DirectoryError(
                    f"bind as {self.bind_dn} to {url} failed: {result.get('description')} "
                    f"{result.get('message', '')}".strip() + "; check the bind DN and password")
        except LDAPException as e:
            raise _SessionLost(f"cannot connect: {e}") from e
        return conn

    def _set_keepalive(self, sock: socket.socket | None) -> None:
        """A silently vanished peer (no FIN, no RST) is noticed within about 2 * keepalive s."""
        if sock is None or not self.keepalive:
            return
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self.keepalive)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, self.keepalive // 3))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.unbind()

    def _session(self, url: str) -> None:
        import ldap3

        self._session_was_good = False
        inbox: queue.SimpleQueue[tuple[int, dict[str, Any]]] = queue.SimpleQueue()
        conn = self._connect(url)
        self._conn = conn
        if self._stop.is_set():
            return
        strategy = conn.strategy
        # In ldap3's receiver thread: hand over and forget, so the strategy keeps no backlog
        # of a search that never completes.
        ldap3_shim.stream_messages(strategy, lambda message_id, message: inbox.put((message_id, message)))
        sent_cookie = self._cookie
        control = (SYNC_REQUEST_OID, True, encode_sync_request(SyncMode.REFRESH_AND_PERSIST, sent_cookie))
        message_id = conn.search(self.base, self.search_filter, search_scope=ldap3.SUBTREE,
                                 dereference_aliases=ldap3.DEREF_NEVER, attributes=list(self.attributes),
                                 controls=[control])
        if not isinstance(message_id, int):
            raise _SessionLost(f"search on {self.base} was not sent: {conn.last_error}")
        self.current_url = url
        self.sessions += 1
        log.info("following %s at %s from cookie %r", self.base, url, sent_cookie)
        state = _Refresh(full=sent_cookie is None)
        if self.on_refresh_start is not None:
            try:
                self.on_refresh_start()
            except Exception:
                log.exception("refresh-start callback failed")
        while not self._stop.is_set():
            try:
                got_id, message = inbox.get(timeout=self.poll_interval)
            except queue.Empty:
                if conn.closed or not ldap3_shim.receiver_alive(strategy):
                    raise _SessionLost("connection closed") from None
                continue
            if got_id == message_id:
                self._handle(message, state, url)

    # --- protocol ----------------------------------------------------------------------------

    def _handle(self, message: dict[str, Any], state: _Refresh, url: str) -> None:
        kind = message.get("type")
        controls = message.get("controls") or {}
        if kind == "searchResEntry":
            raw = controls.get(SYNC_STATE_OID)
            if raw is None:
                log.warning("entry %s from %s has no sync state control; ignored", message.get("dn"), url)
                return
            sync_state = decode_sync_state(raw["value"])
            self.counts[f"entry/{sync_state.state}"] += 1
            self._entry(sync_state, message.get("dn") or "", message.get("raw_attributes") or {}, state)
            if sync_state.cookie is not None:
                self._cookie = merge_cookie(self._cookie, sync_state.cookie)
        elif kind == "intermediateResponse":
            if message.get("responseName") != SYNC_INFO_OID:
                return
            info = decode_sync_info(message.get("responseValue") or b"")
            deletes = "/deletes" if info.kind == "syncIdSet" and info.refresh_deletes else ""
            self.counts[f"info/{info.kind}{deletes}"] += 1
            self._info(info, state)
        elif kind == "searchResDone":
            result = message.get("result")
            done = controls.get(SYNC_DONE_OID)
            if result == SYNC_REFRESH_REQUIRED:
                raise _RefreshRequired()
            if done is not None:
                self._cookie = merge_cookie(self._cookie, decode_sync_done(done["value"]).cookie)
            raise _SessionLost(f"search ended: {message.get('description')} {message.get('message', '')}")

    def _entry(
        self, sync_state: SyncStateControl, dn: str, attributes: Mapping[str, Any], state: _Refresh
    ) -> None:
        entry_uuid = sync_state.entry_uuid
        if sync_state.state == "delete":
            dn = dn or self._dns.get(entry_uuid, "")
            self._dns.pop(entry_uuid, None)
            self._notify("delete", entry_uuid, dn, {})
            return
        if not state.done:
            state.seen.add(entry_uuid)
        if sync_state.state == "present":
            self._dns.setdefault(entry_uuid, dn)
            self._notify("present", entry_uuid, dn, {})
            return
        kind: ChangeKind = sync_state.state
        if kind == "add" and entry_uuid in self._dns:
            kind = "modify"  # a refresh sends changed entries as adds
        self._dns[entry_uuid] = dn
        self._notify(kind, entry_uuid, dn, {k: list(v) for k, v in attributes.items()})

    def _info(self, info: SyncInfoMessage, state: _Refresh) -> None:
        if info.kind == "syncIdSet":
            if info.refresh_deletes:
                for entry_uuid in info.uuids:
                    self._delete_known(entry_uuid)
            elif not state.done:
                state.seen.update(info.uuids)
        elif info.kind in ("refreshPresent", "refreshDelete") and not state.done:
            # End of a refresh phase: in a present phase (or a full reload) whatever the
            # server did not mention is gone.
            if info.kind == "refreshPresent" or state.full:
                for entry_uuid in [u for u in self._dns if u not in state.seen]:
                    self._delete_known(entry_uuid)
            state.seen.clear()
            state.full = False
            if info.refresh_done:
                state.done = True
        self._cookie = merge_cookie(self._cookie, info.cookie)
        if state.done and not self._refreshed.is_set():
            self._session_was_good = True
            self._refreshed.set()
            if self.on_refresh_done is not None:
                try:
                    self.on_refresh_done()
                except Exception:
                    log.exception("refresh-done callback failed")

    def _delete_known(self, entry_uuid: str) -> None:
        dn = self._dns.pop(entry_uuid, None)
        if dn is None:
            log.debug("delete of unknown entry %s ignored", entry_uuid)
            return
        self._notify("delete", entry_uuid, dn, {})

    def _notify(
        self, kind: ChangeKind, entry_uuid: str, dn: str, attributes: dict[str, list[bytes | str]]
    ) -> None:
        try:
            self.on_change(kind, entry_uuid, dn, attributes)
        except Exception:
            log.exception("change callback failed for %s %s (%s)", kind, dn, entry_uuid)


def _endpoint(url: str) -> tuple[str, int, bool]:
    """(host, port, TLS) of an ldap:// or ldaps:// URL; ldap3 itself refuses a trailing slash."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or port == -1:
        raise DirectoryError(f"directory URL {url!r} is not valid: write it as ldap://HOST[:PORT]/ "
                             "or ldaps://HOST[:PORT]/")
    use_ssl = parts.scheme == "ldaps"
    return parts.hostname, port or (636 if use_ssl else 389), use_ssl


@attrs.define
class _Refresh:
    """Where one session stands in the refresh stage."""

    full: bool
    done: bool = False
    seen: set[str] = attrs.field(factory=set)


def follow(
    urls: Iterable[str], base: str, on_change: ChangeCallback, **options: Any
) -> SyncConsumer:
    """Start a consumer in its own thread and return it (stop it with `stop()`)."""
    consumer = SyncConsumer(list(urls), base, on_change, **options)
    consumer.start()
    return consumer

"""The change feed against real slapd: refresh, live changes, resume after a restart, failover.

The shared session slapd serves the refresh and live-change tests; restarts and failover use
instances of their own (one restartable, two in multi-provider replication).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import ldap3
import pytest
from ldap3.core.exceptions import LDAPNoSuchObjectResult

from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE, ROOT_DN, EmbeddedDirectory
from stateless.directory.mapping import MODEL_ATTRIBUTES
from stateless.directory.mirror import ChangeBatch, Mirror
from stateless.directory.synccodec import SyncCookie
from stateless.directory.syncrepl import SyncConsumer
from stateless.errors import DirectoryError
from stateless.model.inventory import IpPool, Policy
from tests.integration.fixtures_slapd import Slapd
from tests.ports import free_port

WAIT = 10.0


@attrs.define
class Feed:
    """A consumer and mirror wired together, with what they reported."""

    consumer: SyncConsumer
    mirror: Mirror
    changes: list[tuple[float, str, str, str]] = attrs.field(factory=list)
    batches: list[ChangeBatch] = attrs.field(factory=list)
    cond: threading.Condition = attrs.field(factory=threading.Condition)

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what}: not within {timeout} s; changes={self.changes[-5:]} "
                                     f"last_error={self.consumer.last_error}")
                self.cond.wait(0.01)  # woken at once by callbacks; polls for connection state

    def changes_since(self, index: int) -> set[tuple[str, str]]:
        """(kind, dn) reported after `index`, present notices left out."""
        return {(kind, dn.lower()) for _, kind, dn, _ in self.changes[index:] if kind != "present"}


def follow(urls: list[str], base: str, password: str, **options: Any) -> Feed:
    feed: Feed

    def on_batch(batch: ChangeBatch) -> None:
        with feed.cond:
            feed.batches.append(batch)
            feed.cond.notify_all()

    mirror = Mirror(on_batch=on_batch)

    def on_change(kind: Any, entry_uuid: str, dn: str, attributes: dict[str, list[bytes | str]]) -> None:
        mirror.on_change(kind, entry_uuid, dn, attributes)
        with feed.cond:
            feed.changes.append((time.monotonic(), kind, dn, entry_uuid))
            feed.cond.notify_all()

    consumer = SyncConsumer(urls, base, on_change, mirror.on_refresh_done,
                            on_refresh_start=mirror.on_refresh_start, bind_dn=ROOT_DN,
                            password=password, **options)
    feed = Feed(consumer, mirror)
    consumer.start()
    return feed


@pytest.fixture
def feeds() -> Iterator[list[Feed]]:
    started: list[Feed] = []
    yield started
    for feed in started:
        feed.consumer.stop()


def writer(url: str, password: str) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(url.rstrip("/"), get_info=ldap3.NONE), ROOT_DN, password,
                            auto_bind=True, raise_exceptions=True)


def exists(conn: ldap3.Connection, dn: str) -> bool:
    try:
        return bool(conn.search(dn, "(objectClass=*)", ldap3.BASE))
    except LDAPNoSuchObjectResult:
        return False


def ou_entries(conn: ldap3.Connection, base: str, names: list[str]) -> None:
    conn.add(base, ["top", "organizationalUnit"], {"ou": base.split(",")[0][3:]})
    for name in names:
        conn.add(f"ou={name},{base}", ["top", "organizationalUnit"], {"description": "v0"})


# --- shared slapd: refresh and live changes ------------------------------------------------------


def test_refresh_then_live_changes(slapd: Slapd, directory: Directory, base: str, feeds: list[Feed]) -> None:
    directory.create_policy(Policy("baseline", {"ntp.servers": ("10.0.0.1",)}))
    feed = follow([slapd.url], base, slapd.password)
    feeds.append(feed)
    assert feed.consumer.wait_refreshed(WAIT), feed.consumer.last_error
    first = feed.batches[0]
    assert first.refresh and f"cn=baseline,ou=policies,{base}".lower() in {d.lower() for d in first.added}
    assert feed.mirror.snapshot(base) == directory.snapshot()
    assert feed.consumer.cookie is not None and SyncCookie.parse(feed.consumer.cookie) is not None

    # every write is reported (how fast: tests/bench/propagation.py)
    policy_dn = directory.policy_dn("baseline")
    w = writer(slapd.url, slapd.password)
    for i in range(5):
        mark = len(feed.changes)
        w.modify(policy_dn, {"description": [(ldap3.MODIFY_REPLACE, [f"edit {i}"])]})
        feed.wait_for(lambda m=mark: len(feed.changes) > m, "modify notification")  # type: ignore[misc]
        assert feed.changes[mark][1:3] == ("modify", policy_dn)
    assert feed.batches[-1].modified == {policy_dn}
    assert feed.mirror.snapshot(base).policies["baseline"].description == "edit 4"

    # a setting edit through the adapter and a delete
    directory.policy_set("baseline", {"ntp.servers": ["10.0.0.2", "10.0.0.3"]})
    feed.wait_for(lambda: feed.mirror.snapshot(base) == directory.snapshot(), "policy edit mirrored")
    mark = len(feed.changes)
    directory.delete_policy("baseline")
    feed.wait_for(lambda: feed.changes_since(mark) == {("delete", policy_dn.lower())}, "delete")
    assert "baseline" not in feed.mirror.snapshot(base).policies
    assert feed.mirror.snapshot(base) == directory.snapshot()


def test_a_feed_of_model_attributes_carries_no_pool_allocations(
        slapd: Slapd, directory: Directory, base: str, feeds: list[Feed]) -> None:
    """What the daemon follows: allocations are notified, without the pool's whole address list."""
    directory.add_pool(IpPool("vmo", "10.0.20.10", "10.0.20.200", "255.255.255.0"))
    for n in range(3):
        directory.add_host(f"4c4c4544-0042-3510-8052-{n:012x}")
    feed = follow([slapd.url], base, slapd.password, attributes=MODEL_ATTRIBUTES)
    feeds.append(feed)
    assert feed.consumer.wait_refreshed(WAIT), feed.consumer.last_error
    before = feed.mirror.snapshot(base)
    seen: list[dict[str, list[bytes | str]]] = []
    original = feed.consumer.on_change
    feed.consumer.on_change = lambda *args: (seen.append(args[3]), original(*args))
    for n in range(3):
        directory.allocate(f"4c4c4544-0042-3510-8052-{n:012x}", "vmknic.vMotion", "vmo")
    feed.wait_for(lambda: feed.mirror.snapshot(base) == directory.snapshot(), "allocations")
    pool_changes = [a for a in seen if "statelessRangeStart" in a]
    assert len(pool_changes) == 3 and all("statelessAllocated" not in a for a in pool_changes)
    after = feed.mirror.snapshot(base)
    assert after.pools["vmo"] is before.pools["vmo"]  # derived, never rebuilt from scratch
    assert all(len(h.allocations) == 1 for h in after.hosts.values())


def test_a_quiet_feed_stays_connected(slapd: Slapd, directory: Directory, base: str,
                                      feeds: list[Feed]) -> None:
    """Silence longer than the connect timeout is not a lost connection."""
    directory.create_policy(Policy("quiet", {"ntp.servers": ("10.0.0.1",)}))
    feed = follow([slapd.url], base, slapd.password, connect_timeout=0.3)
    feeds.append(feed)
    assert feed.consumer.wait_refreshed(WAIT), feed.consumer.last_error
    time.sleep(1.2)
    mark = len(feed.changes)
    directory.policy_set("quiet", {"ntp.servers": ["10.0.0.9"]})
    feed.wait_for(lambda: len(feed.changes) > mark, "modify after a quiet second")
    assert feed.consumer.sessions == 1, feed.consumer.last_error


def test_bad_password_is_reported_and_retried(slapd: Slapd, feeds: list[Feed]) -> None:
    feed = follow([slapd.url], DEFAULT_BASE, "wrong", retry_delay=0.05)
    feeds.append(feed)
    assert not feed.consumer.wait_refreshed(0.5)
    assert "bind as" in (feed.consumer.last_error or "") and "password" in (feed.consumer.last_error or "")
    assert feed.consumer.sessions == 0


# --- a restartable slapd: resume with the cookie --------------------------------------------------


class _Gate(random.Random):
    """A backoff that lasts until the test opens the gate, so the test decides when the
    consumer comes back (no race with the test's own writes)."""

    def __init__(self) -> None:
        super().__init__(1)
        self.open = threading.Event()
        self.waits = 0

    def uniform(self, a: float, b: float) -> float:
        self.waits += 1
        self.open.wait(60)
        return 0.0


@pytest.fixture(scope="module")
def own_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedDirectory]:
    instance = EmbeddedDirectory(tmp_path_factory.mktemp("slapd-restart"), port=free_port())
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def test_resume_after_restart_gets_only_what_changed(own_slapd: EmbeddedDirectory, feeds: list[Feed]) -> None:
    password = own_slapd.password_file.read_text().strip()
    base = f"ou=restart,{DEFAULT_BASE}"
    names = [f"h{i}" for i in range(20)]
    ou_entries(writer(own_slapd.url, password), base, names)
    gate = _Gate()
    lost: list[str] = []
    feed = follow([own_slapd.url], base, password, rng=gate, on_lost=lost.append)
    feeds.append(feed)
    assert feed.consumer.wait_refreshed(WAIT)
    assert len(feed.mirror.view().entries) == 21
    cookie = feed.consumer.cookie

    try:
        own_slapd.stop()
        feed.wait_for(lambda: not feed.consumer.refreshed() and gate.waits == 1, "loss noticed")
        assert lost and "connection closed" in lost[0]  # the daemon's health hears of it
        sessions = feed.consumer.sessions

        # while the consumer waits out its backoff: restart with the same data, change things
        own_slapd.start()
        w = writer(own_slapd.url, password)
        mark = len(feed.changes)
        w.modify(f"ou=h1,{base}", {"description": [(ldap3.MODIFY_REPLACE, ["v1"])]})
        w.delete(f"ou=h2,{base}")
        w.add(f"ou=h99,{base}", ["top", "organizationalUnit"], {"description": "new"})
        assert feed.consumer.sessions == sessions
    finally:
        gate.open.set()

    assert feed.consumer.wait_refreshed(WAIT), feed.consumer.last_error
    assert feed.consumer.sessions == sessions + 1
    # only the differences came: no full reload
    assert feed.changes_since(mark) == {
        ("modify", f"ou=h1,{base}".lower()),
        ("delete", f"ou=h2,{base}".lower()),
        ("add", f"ou=h99,{base}".lower()),
    }
    assert feed.batches[-1] == ChangeBatch(
        feed.mirror.generation, frozenset({f"ou=h99,{base}"}), frozenset({f"ou=h1,{base}"}),
        frozenset({f"ou=h2,{base}"}), refresh=True)
    entries = feed.mirror.view().by_dn()
    assert entries[f"ou=h1,{base}".lower()].attributes["description"] == (b"v1",)
    assert f"ou=h2,{base}".lower() not in entries
    assert feed.consumer.cookie != cookie
    print(f"resume after restart: {dict(feed.consumer.counts)}")
    # no session log survives a restart: the server listed what is present instead
    assert feed.consumer.counts["info/refreshPresent"] == 1

    # and it follows live changes again
    mark = len(feed.changes)
    w.delete(f"ou=h3,{base}")
    feed.wait_for(lambda: feed.changes_since(mark) == {("delete", f"ou=h3,{base}".lower())}, "live delete")


class _Ceilings(random.Random):
    """Records the backoff ceilings the consumer asks for, and waits a tenth of each."""

    def __init__(self) -> None:
        super().__init__(1)
        self.ceilings: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.ceilings.append(b)
        return b / 10


def test_an_outage_never_backs_off_past_max_retry_delay(own_slapd: EmbeddedDirectory,
                                                         feeds: list[Feed]) -> None:
    """What the daemon asks of its feed (0.05 s, at most 0.5 s): however long the directory
    is away, the next attempt after its return is at most 0.5 s off."""
    password = own_slapd.password_file.read_text().strip()
    base = f"ou=outage,{DEFAULT_BASE}"
    ou_entries(writer(own_slapd.url, password), base, ["h1"])
    rng, lost = _Ceilings(), []
    feed = follow([own_slapd.url], base, password, retry_delay=0.05, max_retry_delay=0.5,
                  rng=rng, on_lost=lost.append)
    feeds.append(feed)
    assert feed.consumer.wait_refreshed(WAIT)
    own_slapd.stop()
    try:
        feed.wait_for(lambda: len(lost) >= 12, "a dozen failed attempts")
    finally:
        own_slapd.start()
    assert feed.consumer.wait_refreshed(WAIT), feed.consumer.last_error
    assert len(rng.ceilings) >= 11 and max(rng.ceilings) == 0.5
    assert "connection closed" in lost[0] and "refused" in lost[-1]
    mark = len(feed.changes)
    writer(own_slapd.url, password).modify(f"ou=h1,{base}",
                                           {"description": [(ldap3.MODIFY_REPLACE, ["back"])]})
    feed.wait_for(lambda: len(feed.changes) > mark, "a change after the outage")


def test_directory_writes_need_no_grace_period_after_a_restart(own_slapd: EmbeddedDirectory) -> None:
    """ldap3 shuns an address for 5 s after a failed connect, and each thread's connection
    outlives the server; neither may cost a write once the directory is back."""
    password = own_slapd.password_file.read_text().strip()
    base = f"ou=writes,{DEFAULT_BASE}"
    directory = Directory([own_slapd.url], ROOT_DN, password, base=base)
    directory.init()
    try:
        directory.create_policy(Policy("p", {"ntp.servers": ("10.0.0.1",)}))
        own_slapd.stop()
        for _ in range(2):  # the dead connection, then a refused connect
            with pytest.raises(DirectoryError):
                directory.policy_describe("p", "down")
        own_slapd.start()
        directory.policy_describe("p", "back")  # the first try after the return succeeds
        # A connection the outage left behind (no failure seen in this thread): reset() is
        # what the daemon calls when its change feed loses the directory.
        own_slapd.stop()
        own_slapd.start()
        directory.reset()
        directory.policy_describe("p", "again")
        assert directory.snapshot().policies["p"].description == "again"
    finally:
        directory.close()


def test_pause_and_resume_with_session_log(own_slapd: EmbeddedDirectory, feeds: list[Feed]) -> None:
    """With a session log the server names the deleted entries (syncIdSet, refreshDeletes)."""
    password = own_slapd.password_file.read_text().strip()
    w = writer(own_slapd.url, password)
    w.modify("olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config",
             {"olcSpSessionlog": [(ldap3.MODIFY_REPLACE, ["1000"])]})
    base = f"ou=sessionlog,{DEFAULT_BASE}"
    ou_entries(w, base, [f"h{i}" for i in range(10)])
    feed = follow([own_slapd.url], base, password)
    feeds.append(feed)
    assert feed.consumer.wait_refreshed(WAIT)
    feed.consumer.stop()
    assert not feed.consumer.refreshed()

    mark = len(feed.changes)
    w.delete(f"ou=h4,{base}")
    w.delete(f"ou=h5,{base}")
    w.modify(f"ou=h6,{base}", {"description": [(ldap3.MODIFY_REPLACE, ["v1"])]})
    feed.consumer.start()
    assert feed.consumer.wait_refreshed(WAIT)
    assert feed.changes_since(mark) == {
        ("delete", f"ou=h4,{base}".lower()), ("delete", f"ou=h5,{base}".lower()),
        ("modify", f"ou=h6,{base}".lower())}
    assert {e.dn.lower() for e in feed.mirror.view().entries.values()} == {
        dn.lower() for dn in [base, *(f"ou=h{i},{base}" for i in range(10) if i not in (4, 5))]}

    print(f"\nresume with a session log: {dict(feed.consumer.counts)}")
    assert feed.consumer.counts["info/syncIdSet/deletes"] >= 1  # the deletes were named

    # a new consumer that holds the same entries resumes from the cookie alone
    feed.consumer.stop()
    cookie, known = feed.consumer.cookie, feed.consumer.known
    w.delete(f"ou=h7,{base}")
    other = follow([own_slapd.url], base, password, cookie=cookie, known=known)
    feeds.append(other)
    assert other.consumer.wait_refreshed(WAIT)
    assert other.changes_since(0) == {("delete", f"ou=h7,{base}".lower())}


# --- two providers: failover ----------------------------------------------------------------------


class _Provider(EmbeddedDirectory):
    """A second provider starts empty: it gets the base entries by replication."""

    def _load_base(self) -> None:
        return None


def _replicate(node: EmbeddedDirectory, server_id: int, peer: EmbeddedDirectory, password: str) -> None:
    """Turn `node` into a multi-provider replicating from `peer` (over LDAP, as rootdn)."""
    conn = writer(node.url, password)
    conn.modify("cn=config", {"olcServerID": [(ldap3.MODIFY_REPLACE, [str(server_id)])]})
    syncrepl = (f'rid={server_id:03d} provider={peer.url.rstrip("/")} binddn="{ROOT_DN}" '
                f'bindmethod=simple credentials={password} searchbase="dc=example,dc=com" '
                'type=refreshAndPersist retry="1 +" timeout=3')
    conn.modify("olcDatabase={1}mdb,cn=config", {
        "olcSyncrepl": [(ldap3.MODIFY_ADD, [syncrepl])],
        "olcMultiProvider": [(ldap3.MODIFY_REPLACE, ["TRUE"])],
    })
    conn.unbind()


@pytest.fixture(scope="module")
def providers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EmbeddedDirectory, EmbeddedDirectory, str]]:
    """Nodes a (server ID 1) and b (2); one admin password for both, as replication needs."""
    a = EmbeddedDirectory(tmp_path_factory.mktemp("provider-a"), port=free_port())
    b = _Provider(tmp_path_factory.mktemp("provider-b"), port=free_port())
    try:
        a.start()
        b.start()
        password = a.password_file.read_text().strip()
        writer(b.url, b.password_file.read_text().strip()).modify(
            "olcDatabase={1}mdb,cn=config", {"olcRootPW": [(ldap3.MODIFY_REPLACE, [password])]})
        _replicate(b, 2, a, password)
        _replicate(a, 1, b, password)
        _wait_replicated(b.url, password, DEFAULT_BASE)  # provider b has the base from a
        yield a, b, password
    finally:
        b.stop()
        a.stop()


def _wait_replicated(url: str, password: str, dn: str, present: bool = True) -> None:
    conn = writer(url, password)
    deadline = time.monotonic() + WAIT
    while exists(conn, dn) != present:
        assert time.monotonic() < deadline, f"{dn} not replicated to {url}"
        time.sleep(0.02)


def test_failover_to_second_provider(
    providers: tuple[EmbeddedDirectory, EmbeddedDirectory, str], feeds: list[Feed]
) -> None:
    a, b, pa = providers
    base = f"ou=failover,{DEFAULT_BASE}"
    names = [f"h{i}" for i in range(10)]
    ou_entries(writer(a.url, pa), base, names)
    _wait_replicated(b.url, pa, f"ou=h9,{base}")

    feed = follow([a.url, b.url], base, pa, retry_delay=0.2)
    feeds.append(feed)
    assert feed.consumer.wait_refreshed(WAIT)
    assert feed.consumer.current_url == a.url

    # a change made on b reaches the consumer through a, with a cookie naming only b's CSN
    wb = writer(b.url, pa)
    mark = len(feed.changes)
    wb.modify(f"ou=h1,{base}", {"description": [(ldap3.MODIFY_REPLACE, ["from b"])]})
    feed.wait_for(lambda: ("modify", f"ou=h1,{base}".lower()) in feed.changes_since(mark), "change via a")
    # the cookie advances right after the callback returns; it now names both servers
    feed.wait_for(lambda: set(getattr(SyncCookie.parse(feed.consumer.cookie or b""), "csns", ())) == {1, 2},
                  "cookie with the CSNs of a and b")

    mark = len(feed.changes)
    pid = a.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # a crash: the kernel closes a's connections at once
    killed = time.monotonic()
    feed.wait_for(lambda: feed.consumer.refreshed() and feed.consumer.current_url == b.url, "failover to b")
    print(f"\nslapd a killed -> consumer refreshed on b after {(time.monotonic() - killed) * 1000:.0f} ms")
    a.stop()
    # b accepted the merged cookie: nothing changed, so nothing was sent again
    assert feed.changes_since(mark) == set()
    assert feed.batches[-1] == ChangeBatch(feed.mirror.generation, refresh=True)
    mark = len(feed.changes)
    wb.delete(f"ou=h2,{base}")
    wb.add(f"ou=h42,{base}", ["top", "organizationalUnit"], {"description": "b"})
    feed.wait_for(lambda: len(feed.changes_since(mark)) >= 2, "changes on b")
    assert feed.changes_since(mark) == {
        ("delete", f"ou=h2,{base}".lower()), ("add", f"ou=h42,{base}".lower())}
    assert len(feed.mirror.view().entries) == 11

    # a consumer started while a is down goes straight to b
    late = follow([a.url, b.url], base, pa, retry_delay=0.2)
    feeds.append(late)
    assert late.consumer.wait_refreshed(WAIT)
    assert late.consumer.current_url == b.url
    assert {e.dn.lower() for e in late.mirror.view().entries.values()} == {
        e.dn.lower() for e in feed.mirror.view().entries.values()}

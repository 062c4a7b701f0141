"""The security stores against the real slapd: nonces, pinned identities."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from stateless.agent.signing import Authorization
from stateless.directory import pinning
from stateless.directory.client import Directory
from stateless.directory.nonces import FEED_FILTER, NonceStore
from stateless.errors import ValidationError
from stateless.model.security import PinnedIdentity
from tests.integration.fixtures_slapd import Slapd

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"


def other_connection(slapd: Slapd, directory: Directory) -> Directory:
    return Directory([slapd.url], slapd.bind_dn, slapd.password, base=directory.base)


def test_a_nonce_recorded_through_one_connection_is_a_replay_through_another(
        slapd: Slapd, directory: Directory) -> None:
    first, second = NonceStore(directory), NonceStore(other_connection(slapd, directory))
    try:
        assert first.record("siteA", "ab" * 16, NOW)
        assert not second.record("siteA", "ab" * 16, NOW)
        assert second.record("siteB", "ab" * 16, NOW)  # nonces are per site
        auth = Authorization("siteA", "k1", int(NOW.timestamp()), "cd" * 16, "0" * 64)
        assert not second.seen(auth) and first.seen(auth)
    finally:
        second.directory.close()


def test_concurrent_records_of_one_nonce_accept_exactly_one(slapd: Slapd, directory: Directory) -> None:
    stores = [NonceStore(other_connection(slapd, directory)) for _ in range(6)]
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def race(store: NonceStore) -> None:
        barrier.wait()
        results.append(store.record("siteA", "ef" * 16, NOW))

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for store in stores:
        store.directory.close()
    assert sorted(results) == [False] * 5 + [True]


def test_expired_nonces_are_purged(slapd: Slapd, directory: Directory) -> None:
    store = NonceStore(directory, skew=300, grace=60)
    store.record("siteA", "01" * 16, NOW - timedelta(seconds=120))  # expired 2 minutes ago
    store.record("siteA", "02" * 16, NOW - timedelta(seconds=30))  # within the grace period
    store.record("siteA", "03" * 16, NOW + timedelta(seconds=300))
    assert store.purge(NOW) == 1
    assert store.purge(NOW) == 0
    left = {dn.split(",")[0] for dn, _ in directory.search(store.ou, "(objectClass=statelessNonceRecord)")}
    assert left == {f"statelessNonce=siteA:{'02' * 16}", f"statelessNonce=siteA:{'03' * 16}"}
    assert store.record("siteA", "01" * 16, NOW)  # purged: it could be recorded again
    assert len(directory.search(directory.base, f"(&{FEED_FILTER}(ou=nonces))")) == 1


def test_nonce_store_works_on_a_base_made_before_it(slapd: Slapd, directory: Directory) -> None:
    directory.delete_entry(directory.ou("nonces"))
    store = NonceStore(directory)
    assert store.purge(NOW) == 0
    assert store.record("siteA", "aa" * 16, NOW) and not store.record("siteA", "aa" * 16, NOW)
    with pytest.raises(ValidationError):
        store.record("site A", "aa" * 16, NOW)
    with pytest.raises(ValidationError):
        store.record("siteA", "zz", NOW)


def test_the_snapshot_ignores_the_security_branches(directory: Directory) -> None:
    NonceStore(directory).record("siteA", "bb" * 16, NOW)
    assert directory.snapshot().problems == ()


def test_an_identity_is_pinned_once(slapd: Slapd, directory: Directory) -> None:
    directory.add_host(UUID)
    pin = PinnedIdentity(NOW, ":".join(["AB"] * 20), "SN1", ("00:50:56:aa:bb:01",),
                         "esx01.example.com")
    assert pinning.pin(directory, UUID, pin)
    other = PinnedIdentity(NOW, ":".join(["CD"] * 20), "SN2", (), "evil.example.com")
    with other_connection(slapd, directory) as racing:
        assert not pinning.pin(racing, UUID, other)
    assert not pinning.pin(directory, UUID, pin)
    assert directory.snapshot().hosts[UUID].pinned == pin
    pinning.unpin(directory, UUID)
    assert directory.snapshot().hosts[UUID].pinned is None
    assert pinning.pin(directory, UUID, other)
    assert directory.snapshot().hosts[UUID].pinned == other

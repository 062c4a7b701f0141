"""Leases and takeover against the real slapd: one owner at a time, whoever races."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from stateless.directory.client import Directory
from stateless.errors import NotFoundError
from stateless.model.inventory import Server
from tests.integration.fixtures_slapd import Slapd

HOST = "4c4c4544-0000-4000-8000-0000000000aa"


def test_a_lease_is_renewed_on_the_servers_own_entry(directory: Directory) -> None:
    directory.add_server(Server("sd1", "siteA", "http://127.0.0.1:8480"))
    assert directory.snapshot().servers["sd1"].lease_expiry is None
    until = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)
    directory.renew_lease("sd1", until)
    directory.renew_lease("sd1", until + timedelta(seconds=20))
    assert directory.snapshot().servers["sd1"].lease_expiry == until + timedelta(seconds=20)
    with pytest.raises(NotFoundError):
        directory.renew_lease("nosuch", until)


def test_a_host_is_taken_over_once_from_the_owner_it_had(directory: Directory, slapd: Slapd) -> None:
    directory.add_host(HOST)
    assert directory.claim_owner(HOST, "sd1") == "sd1"
    assert directory.take_over(HOST, "sd1", "sd2") == "sd2"
    assert directory.take_over(HOST, "sd1", "sd3") == "sd2"  # sd1 no longer owns it: refused
    # Several servers racing for one dead owner's host: exactly one wins, all learn who.
    assert directory.take_over(HOST, "sd2", "sd2") == "sd2"
    racers = [Directory([slapd.url], slapd.bind_dn, slapd.password, base=directory.base)
              for _ in range(6)]
    try:
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda i: racers[i].take_over(HOST, "sd2", f"r{i}"), range(6)))
    finally:
        for racer in racers:
            racer.close()
    winners = {g for g in got if g != "sd2"}
    assert len(winners) == 1 and got.count(winners.pop()) == 6
    with pytest.raises(NotFoundError):
        directory.take_over("4c4c4544-0000-4000-8000-0000000000ab", "sd1", "sd2")

"""Directory failover: a daemon's local provider stops in the middle of a boot storm.

Two real slapd providers replicating both ways, the simulator, a real statelessd given both
providers (`--ldap local,remote`). Every check reads the directory with ldap3 on each provider
and the simulator with pyvmomi, never only the daemon's own view.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stateless.directory.client import Directory
from tests.integration.fixtures_daemon import (
    Daemon,
    hosts_by_name,
    identity,
    load_estate,
    states,
    wait_for,
    wait_states,
)
from tests.integration.fixtures_federation import PAIR_BASE, Pair
from tests.integration.fixtures_vcsim import Vcsim

HOSTS = 100
STOP_AFTER = 30  # births answered before the local provider stops


def host_entries(directory: Directory) -> dict[str, tuple[str | None, str | None]]:
    return {u: (h.state.value if h.state else None, h.owner)
            for u, h in directory.snapshot().hosts.items()}


def health(daemon: Daemon) -> Any:
    """`/healthz`, 200 or 503 (unreachable for a moment while the feed moves)."""
    _, _, body = daemon.request("GET", "/healthz")
    return json.loads(body)


def born(daemon: Daemon, doc: dict[str, Any], deadline: float) -> int:
    """Send one birth as the agent would: again after a 503 (not recorded) until accepted."""
    while True:
        status, _ = daemon.birth(doc)
        if status == 202 or time.monotonic() > deadline:
            return status
        assert status == 503, status
        time.sleep(0.1)


def test_local_provider_stopped_during_births_nothing_lost_and_the_daemon_returns(
        pair: Pair, vcsim_factory: Callable[..., Vcsim], daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    sim = vcsim_factory("-dc", "0")
    estate = load_estate(pair.slapd(pair.local), PAIR_BASE, sim, tmp_path / "secret.key")
    remote = pair.directory(pair.remote)
    wait_for(lambda: len(remote.snapshot().policies) == len(estate.directory.snapshot().policies),
             what="the estate replicated to the remote provider")
    both = pair.slapd(pair.local, f"{pair.local.url},{pair.remote.url}")
    daemon = daemons(tmp_path / "sd", both, PAIR_BASE, estate.key_file, name="sdF", site="siteA")
    assert health(daemon)["directory_url"] == pair.local.url

    docs = [identity(n, "siteA") for n in range(300, 300 + HOSTS)]
    answered = threading.Semaphore(0)
    deadline = time.monotonic() + 120

    def one(doc: dict[str, Any]) -> int:
        status = born(daemon, doc, deadline)
        answered.release()
        return status

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(one, doc) for doc in docs]
        for _ in range(STOP_AFTER):
            assert answered.acquire(timeout=120)
        pair.local.stop()
        statuses = [f.result() for f in futures]
    assert statuses == [202] * HOSTS
    uuids = [d["uuid"] for d in docs]
    wait_for(lambda: health(daemon)["directory_url"] == pair.remote.url
             and "does not answer" in daemon.log.read_text(), timeout=30,
             what="the daemon on the remote provider, saying so")

    # The daemon goes on through the remote provider. A birth the local provider acknowledged
    # just before it stopped, and had not replicated yet, is in no directory the daemon can
    # read: it waits for the local provider (replication is asynchronous).
    def settled() -> tuple[list[str]] | None:
        """(hosts only the stopped provider holds,) once every other host is compliant."""
        api, there = states(daemon), host_entries(remote)
        bad = [u for u in uuids if u in there and (api.get(u, {}).get("state"), there[u]) !=
               ("compliant", ("compliant", "sdF"))]
        return None if bad else ([u for u in uuids if u not in there],)

    try:
        only_local, = wait_for(settled, timeout=120,
                               what="hosts compliant through the remote provider")
    except AssertionError as exc:
        api, there = states(daemon), host_entries(remote)
        seen = {u: (api.get(u, {}).get("state"), api.get(u, {}).get("reason"), there.get(u))
                for u in uuids if u in there and (api.get(u, {}).get("state"), there[u]) !=
                ("compliant", ("compliant", "sdF"))}
        raise AssertionError(f"{exc}\n{seen}\n{daemon.tail(80)}") from None
    assert len(only_local) < STOP_AFTER

    # The provider comes back: it catches up, and the daemon reads and writes through it again.
    pair.local.start()
    local = pair.directory(pair.local)
    try:
        api = wait_states(daemon, uuids, timeout=90)
    except AssertionError as exc:
        now = states(daemon)
        summary: dict[str, int] = {}
        for u in uuids:
            key = f"{now.get(u, {}).get('state')}: {now.get(u, {}).get('reason')}"
            summary[key] = summary.get(key, 0) + 1
        raise AssertionError(f"{exc}\n{summary}\n{daemon.tail(60)}") from None

    # None lost: both providers hold every host, compliant, owned, as the API says.
    def recorded(directory: Directory) -> dict[str, tuple[str | None, str | None]] | None:
        entries = host_entries(directory)
        return entries if all(entries.get(u) == ("compliant", "sdF") for u in uuids) else None

    wait_for(lambda: recorded(local) and recorded(remote), timeout=60,
             what="every host compliant on both providers")
    assert {u: (h["state"], h["owner"]) for u, h in states(daemon).items() if u in uuids} == \
        {u: (api[u]["state"], "sdF") for u in uuids}
    found = hosts_by_name(sim.connect())
    assert all(len(found[f"{d['hostname']}.example.com"]) == 1 for d in docs)
    wait_for(lambda: health(daemon)["directory_url"] == pair.local.url
             and "back on the local replica" in daemon.log.read_text(), timeout=30,
             what="the daemon back on its local provider")
    assert daemon.get("/healthz")["ok"] is True
    extra = identity(300 + HOSTS, "siteA")
    assert born(daemon, extra, time.monotonic() + 30) == 202
    wait_states(daemon, [extra["uuid"]])
    wait_for(lambda: host_entries(local).get(extra["uuid"]) == ("compliant", "sdF"),
             what="the last host's state written through the local provider")
    assert daemon.stop() == 0

"""Periodic loops never die: each one keeps running when its collaborator fails."""

from __future__ import annotations

import random
from pathlib import Path

from twisted.internet import defer, task
from twisted.logger import capturedLogs

from stateless.daemon.discovery import srv_refresh
from stateless.daemon.loops import Periodic
from stateless.daemon.services import InPool
from stateless.errors import DirectoryError, TransientVCenterError
from stateless.plan import KeyDiff
from tests.unit.engine_world import estate, metric, record, uuid_of, world


def failures(events: list[dict[str, object]]) -> int:
    return sum(1 for e in events if e.get("log_failure") is not None)


def test_a_failing_body_is_logged_and_the_loop_goes_on() -> None:
    clock = task.Clock()
    runs: list[float] = []

    def body() -> None:
        runs.append(clock.seconds())
        if len(runs) in (1, 3):
            raise RuntimeError("boom")
        if len(runs) == 2:
            raise DirectoryError("directory down")

    loop = Periodic(clock, 10.0, body, name="test loop")
    loop.start()
    with capturedLogs() as events:
        clock.pump([10.0] * 5)
    assert runs == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert (loop.runs, loop.failures) == (5, 3)
    assert failures(events) == 2  # bugs with their traceback; the directory error as a warning
    assert any("directory down" in str(e.get("reason")) for e in events)
    loop.stop()
    clock.advance(100)
    assert len(runs) == 5


def test_runs_never_overlap_and_stop_waits_for_the_current_one() -> None:
    clock = task.Clock()
    pending: list[defer.Deferred[None]] = []

    def body() -> defer.Deferred[None]:
        pending.append(defer.Deferred())
        return pending[-1]

    loop = Periodic(clock, 1.0, body, name="slow loop")
    loop.start(now=True)
    clock.advance(5)
    assert len(pending) == 1  # still running: nothing else started
    pending[0].errback(RuntimeError("late failure"))
    clock.advance(1)
    assert len(pending) == 2
    stopped = loop.stop()
    assert not stopped.called
    pending[1].callback(None)
    assert stopped.called
    clock.advance(10)
    assert len(pending) == 2


def test_jitter_spreads_the_runs() -> None:
    clock = task.Clock()
    runs: list[float] = []
    loop = Periodic(clock, 10.0, lambda: runs.append(clock.seconds()), name="jittered",
                    jitter=0.2, rng=random.Random(4))
    loop.start()
    for _ in range(200):
        clock.advance(0.5)
    gaps = [b - a for a, b in zip([0.0, *runs], runs, strict=False)]
    assert all(8.0 <= g <= 12.5 for g in gaps)  # 10 s +- 20 %, at the 0.5 s steps of the test
    assert len({round(g, 1) for g in gaps}) > 3


def test_the_srv_refresh_loop_survives_failed_refreshes() -> None:
    clock = task.Clock()
    calls: list[float] = []

    def refresh() -> None:
        calls.append(clock.seconds())
        if len(calls) <= 2:
            raise OSError("nameserver unreachable")

    def blocking(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        return defer.maybeDeferred(fn, *args, **kwargs)

    loop = srv_refresh(clock, blocking, refresh, 300.0)
    loop.start()
    with capturedLogs() as events:
        clock.pump([300.0] * 4)
    assert calls == [300.0, 600.0, 900.0, 1200.0]
    assert loop.failures == 2 and failures(events) == 2
    assert callable(InPool)  # the daemon's runner: the same protocol, over its thread pool


def test_the_compliance_scan_survives_a_failing_vcenter(tmp_path: Path) -> None:
    """One host's check fails, the others are still checked; the next scan runs all the same."""
    hosts = [record(n, state=None) for n in (1, 2, 3)]
    w = world(tmp_path, estate(hosts))
    for n in (1, 2, 3):
        w.born(n)
    assert [w.doc(n)["state"] for n in (1, 2, 3)] == ["compliant"] * 3
    loop = Periodic(w.clock, 600.0, w.engine.scan, name="compliance scan")
    loop.start()
    w.vcenters.faults = [TransientVCenterError("vCenter vc1: timed out")]
    w.vcenters.drift[uuid_of(3)] = [KeyDiff("ntp.servers", ("10.0.0.1",), ("192.0.2.1",))]
    with capturedLogs() as events:
        w.settle(600.0)
    assert w.vcenters.checked == [uuid_of(1), uuid_of(2), uuid_of(3)]
    assert any("timed out" in str(e.get("reason")) for e in events)
    assert metric(w, "stateless_drift_total", source="vcenter") == 1  # host 3, found anyway
    w.settle()
    assert w.vcenters.applied[-1][1].host.uuid == uuid_of(3)  # enforce: applied again
    w.vcenters.drift.clear()
    w.vcenters.checked.clear()
    w.vcenters.faults = [RuntimeError("a bug in the scan's collaborator")] * 3
    with capturedLogs() as events:
        w.settle(600.0)
    assert failures(events) == 3 and loop.runs == 2
    w.settle(600.0)
    assert loop.runs == 3 and len(w.vcenters.checked) == 6  # both scans checked all three
    assert metric(w, "stateless_scans_total") == 3

"""The service tree: children start one after the other and stop in reverse, one at a time."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from stateless.daemon.config import DaemonConfig
from stateless.daemon.services import (
    ListeningPort,
    Sequence,
    Stage,
    ThreadPoolService,
    build_service,
    start_failed,
)
from stateless.errors import StatelessError


class Step(Stage):
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail = fail
        self.starting: defer.Deferred[None] = defer.Deferred()
        self.stopping: defer.Deferred[None] = defer.Deferred()

    def start(self) -> Any:
        self.log.append(f"start {self.name}")
        if self.fail:
            raise StatelessError(f"{self.name} is broken")
        return self.starting

    def stop(self) -> Any:
        self.log.append(f"stop {self.name}")
        return self.stopping


def tree(log: list[str], *names: str, failing: str = "") -> tuple[Sequence, list[Step]]:
    root = Sequence()
    steps = [Step(n, log, fail=n == failing) for n in names]
    for step in steps:
        step.setServiceParent(root)
    return root, steps


def test_each_child_starts_once_the_previous_is_ready() -> None:
    log: list[str] = []
    root, (a, b, c) = tree(log, "a", "b", "c")
    root.startService()
    assert log == ["start a"]
    a.starting.callback(None)
    assert log == ["start a", "start b"] and not root.started.called
    b.starting.callback(None)
    c.starting.callback(None)
    assert log[-1] == "start c" and root.started.called


def test_children_stop_in_reverse_each_after_the_later_one_has_stopped() -> None:
    log: list[str] = []
    root, steps = tree(log, "a", "b", "c")
    root.startService()
    for step in steps:
        step.starting.callback(None)
    log.clear()
    stopped = root.stopService()
    assert log == ["stop c"]
    steps[2].stopping.callback(None)
    assert log == ["stop c", "stop b"]
    steps[1].stopping.errback(RuntimeError("b would not stop"))  # logged; the stop goes on
    assert log == ["stop c", "stop b", "stop a"] and not stopped.called
    steps[0].stopping.callback(None)
    assert stopped.called
    assert root.started.called and not root.running


def test_a_failed_start_starts_nothing_after_it_and_stops_what_started() -> None:
    log: list[str] = []
    root, (a, b, _c) = tree(log, "a", "b", "c", failing="b")
    failures: list[Failure] = []
    root.started.addErrback(failures.append)
    root.startService()
    a.starting.callback(None)
    assert log == ["start a", "start b"]
    assert start_failed(failures[0]) == "statelessd cannot start: b is broken"
    root.stopService()
    assert log[-1] == "stop b"
    b.stopping.callback(None)
    assert log[-1] == "stop a"  # c never started: never stopped


def test_a_stop_during_the_start_starts_no_more_children() -> None:
    log: list[str] = []
    root, (a, _b) = tree(log, "a", "b")
    root.startService()
    root.stopService()
    a.starting.callback(None)
    assert "start b" not in log and root.started.called


def test_a_start_failing_because_of_a_stop_is_no_failed_start() -> None:
    log: list[str] = []
    root, (a, _b) = tree(log, "a", "b")
    failures: list[Failure] = []
    root.started.addErrback(failures.append)
    root.startService()
    root.stopService()
    a.starting.errback(StatelessError("interrupted"))
    assert failures == [] and root.started.called


def test_the_daemon_tree_in_start_order(tmp_path: Path) -> None:
    config = DaemonConfig(tmp_path, listen="tcp:0:interface=127.0.0.1", dns="serve")
    root = build_service(config, task.Clock())
    assert [s.name for s in root] == [
        "stateless-blocking", "stateless-mirror", "stateless-watch", "directory", "engine",
        "change feed", "api",
        "announce", "dns zone", "federation", "scan", "vcenter watch", "nonce purge"]
    api = next(s for s in root if s.name == "api")
    assert isinstance(api, ListeningPort) and api.port is None  # nothing listens before start


class ThreadedClock(task.Clock):
    """A clock whose callFromThread queues the call for the test to run."""

    def __init__(self) -> None:
        super().__init__()
        self.from_threads: queue.Queue[Any] = queue.Queue()

    def callFromThread(self, fn: Any, *args: Any) -> None:
        self.from_threads.put(lambda: fn(*args))


def test_a_thread_pool_stops_once_its_calls_are_done() -> None:
    clock = ThreadedClock()
    pool = ThreadPool(minthreads=1, maxthreads=2, name="p")
    stage = ThreadPoolService(pool, clock, grace=10)
    stage.startService()
    ran = threading.Event()
    pool.callInThread(ran.set)
    stopped = stage.stopService()
    clock.from_threads.get(timeout=30)()  # the join, done, hands over to the reactor
    assert ran.is_set() and stopped.called and not clock.getDelayedCalls()
    assert all(t.daemon for t in pool.threads)


def test_a_thread_pool_stuck_in_a_call_stops_after_its_grace_time() -> None:
    clock = ThreadedClock()
    pool = ThreadPool(minthreads=1, maxthreads=1, name="p")
    stage = ThreadPoolService(pool, clock, grace=10)
    stage.startService()
    release, entered = threading.Event(), threading.Event()
    pool.callInThread(lambda: (entered.set(), release.wait(60)))
    entered.wait(30)
    with capturedLogs() as events:
        stopped = stage.stopService()
        clock.advance(9)
        assert not stopped.called
        clock.advance(1)
    assert stopped.called  # the process may exit: the stuck thread is a daemon thread
    assert "1 thread(s) still busy after 10 s" in formatEvent(events[-1])
    release.set()
    clock.from_threads.get(timeout=30)()  # the late join changes nothing

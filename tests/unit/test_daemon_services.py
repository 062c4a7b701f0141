"""The service tree: children start one after the other and stop in reverse, one at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.python.failure import Failure

from stateless.daemon.config import DaemonConfig
from stateless.daemon.services import ListeningPort, Sequence, Stage, build_service, start_failed
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
        "stateless-blocking", "stateless-mirror", "directory", "engine", "change feed", "api",
        "announce", "dns zone", "federation", "scan", "vcenter watch", "nonce purge"]
    api = next(s for s in root if s.name == "api")
    assert isinstance(api, ListeningPort) and api.port is None  # nothing listens before start

"""The periodic replica check: runs on its clock, survives every failure, exports the count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from prometheus_client import CollectorRegistry
from twisted.internet import defer, task
from twisted.logger import capturedLogs

from stateless.daemon.replicacheck import ReplicaCheck
from stateless.errors import DirectoryError

URLS = ("ldap://127.0.0.1:1", "ldap://127.0.0.1:2")


@attrs.frozen
class Diverged:
    dn: str


@attrs.frozen
class Report:
    diverged: tuple[Diverged, ...]


def run_now(fn: Any, *args: Any) -> defer.Deferred[Any]:
    return defer.maybeDeferred(fn, *args)


def gauge(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("stateless_directory_diverged")


def make(clock: task.Clock, outcomes: list[Any], urls: Sequence[str] = URLS,
         interval: float = 300.0) -> tuple[ReplicaCheck, CollectorRegistry, list[tuple[Any, ...]]]:
    calls: list[tuple[Any, ...]] = []

    def check(*args: Any) -> Any:
        calls.append(args)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return Report(tuple(Diverged(f"cn=e{i}") for i in range(outcome)))

    registry = CollectorRegistry()
    return (ReplicaCheck(clock, run_now, registry, urls, "cn=admin", "pw", "ou=stateless",
                         interval, check=check), registry, calls)


def test_checks_every_interval_and_exports_the_count() -> None:
    clock = task.Clock()
    rc, registry, calls = make(clock, [0, 2, 0])
    rc.start()
    assert len(calls) == 1 and calls[0] == (URLS, "cn=admin", "pw", "ou=stateless")
    assert gauge(registry) == 0 and rc.fields() == {"directory_diverged": 0}
    with capturedLogs() as events:
        clock.advance(300)
    assert gauge(registry) == 2 and rc.fields() == {"directory_diverged": 2}
    assert any(e.get("event") == "replicas_diverged" and e.get("count") == 2 for e in events)
    clock.advance(299)
    assert len(calls) == 2
    clock.advance(1)
    assert len(calls) == 3 and gauge(registry) == 0
    rc.stop()
    clock.advance(3000)
    assert len(calls) == 3


def test_a_failing_check_is_shown_and_the_loop_goes_on() -> None:
    clock = task.Clock()
    rc, registry, calls = make(clock, [DirectoryError("ldap://127.0.0.1:2: cannot connect"),
                                       RuntimeError("library surprise"), 1])
    with capturedLogs() as events:
        rc.start()
        assert gauge(registry) == -1
        assert rc.fields() == {"directory_diverged": None,
                               "directory_check_error": "ldap://127.0.0.1:2: cannot connect"}
        clock.advance(300)
        assert gauge(registry) == -1 and "library surprise" in rc.fields()["directory_check_error"]
        clock.advance(300)
    assert len(calls) == 3 and gauge(registry) == 1 and rc.fields() == {"directory_diverged": 1}
    assert sum(1 for e in events if e.get("event") == "replicas_check_failed") >= 2
    assert any(e.get("log_failure") is not None for e in events)  # the surprise keeps its traceback


def test_disabled_with_zero_or_with_one_replica() -> None:
    for urls, interval in ((URLS, 0.0), (URLS[:1], 300.0), ((URLS[0], URLS[0] + "/"), 300.0)):
        clock = task.Clock()
        rc, registry, calls = make(clock, [0], urls=urls, interval=interval)
        rc.start()
        clock.advance(10_000)
        assert calls == [] and rc.fields() == {} and not rc.enabled
        assert gauge(registry) == 0

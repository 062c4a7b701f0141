"""Long polls of a host's status (`GET /v1/hosts/{uuid}?wait=`), driven by a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge
from twisted.internet import defer, task

from stateless.daemon.hoststate import HostStates
from stateless.errors import NotFoundError
from stateless.model.inventory import HostState
from tests.unit.engine_world import estate, message, metric, record, uuid_of, world

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"


def _states(state: HostState | None) -> tuple[HostStates, task.Clock, Gauge]:
    clock = task.Clock()
    gauge = Gauge("hosts", "hosts by state", ["state"], registry=CollectorRegistry())
    states = HostStates(clock, gauge)
    if state is not None:
        states.set(UUID, state)
    return states, clock, gauge


def _result(d: defer.Deferred[Any]) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


def test_answers_when_the_host_settles() -> None:
    states, clock, gauge = _states(HostState.PENDING)
    got = _result(states.settled(UUID, 30))
    clock.advance(29)
    states.set(UUID, HostState.APPLYING, "applying")
    assert got == []  # still in progress
    states.set(UUID, HostState.COMPLIANT)
    assert got == [None] and states.watching == 0
    states.set("4c4c4544-0000-4000-8000-000000000001", HostState.PENDING)
    counts = {HostState(sample.labels["state"]): sample.value
              for family in gauge.collect() for sample in family.samples}
    assert counts[HostState.COMPLIANT] == 1 and counts[HostState.PENDING] == 1
    assert counts[HostState.APPLYING] == 0
    clock.advance(10)  # the timeout was cancelled with it
    assert got == [None]


def test_answers_after_the_wait_whatever_the_state() -> None:
    states, clock, _ = _states(HostState.APPLYING)
    got = _result(states.settled(UUID, 5))
    clock.advance(4.9)
    assert got == []
    clock.advance(0.2)
    assert got == [None] and states.watching == 0
    assert states.get(UUID).state == HostState.APPLYING  # type: ignore[union-attr]


def test_a_client_that_goes_away_leaves_nothing_behind() -> None:
    states, _, _ = _states(HostState.PENDING)
    d = states.settled(UUID, 30)
    other = _result(states.settled(UUID, 30))
    d.cancel()
    assert states.watching == 1
    with pytest.raises(defer.CancelledError):
        d.result.raiseException()
    d.addErrback(lambda _f: None)
    states.set(UUID, HostState.FAILED, "vCenter refused")
    assert other == [None] and states.watching == 0


@pytest.mark.parametrize("state", [HostState.COMPLIANT, HostState.DRIFTED, HostState.FAILED])
def test_a_settled_host_is_answered_at_once(state: HostState) -> None:
    states, _, _ = _states(state)
    assert _result(states.settled(UUID, 300)) == [None]


def test_since_moves_with_the_state_or_reason() -> None:
    states, clock, _ = _states(HostState.PENDING)
    clock.advance(5)
    states.set(UUID, HostState.PENDING, calls=3)
    assert states.get(UUID).since == 0  # type: ignore[union-attr]
    states.set(UUID, HostState.APPLYING)
    assert states.get(UUID).since == 5  # type: ignore[union-attr]


def test_the_engine_answers_the_document_once_settled(tmp_path: Path) -> None:
    w = world(tmp_path, estate([record(1)]))
    w.blocking.hold = True  # the birth's write and the apply wait in the pool
    w.engine.birth(message(1), "")
    w.blocking.release()
    w.settle()
    got = _result(w.engine.settled(uuid_of(1), 30))
    assert got == []
    w.blocking.hold = False
    w.blocking.release()
    w.settle()
    assert [doc["state"] for doc in got] == ["compliant"]
    assert metric(w, "stateless_hosts", state="compliant") == 1
    with pytest.raises(NotFoundError):
        w.engine.settled(uuid_of(99), 30)

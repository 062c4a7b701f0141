"""Long polls of a host's status (`GET /v1/hosts/{uuid}?wait=`), driven by a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import defer, task

from stateless.daemon.config import DaemonConfig
from stateless.daemon.engine import Engine
from stateless.errors import NotFoundError
from stateless.model.inventory import HostState

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"


def _engine(tmp_path: Path, state: HostState | None) -> tuple[Engine, task.Clock]:
    clock = task.Clock()
    # No directory or vCenter: nothing here writes (write=False) or applies.
    engine = Engine(DaemonConfig(tmp_path), clock, pool=None, directory=None,  # type: ignore[arg-type]
                    registry=CollectorRegistry(), vcenter=lambda _name: None, clock=clock.seconds)
    if state is not None:
        engine._set(UUID, state, write=False)
    return engine, clock


def _result(d: defer.Deferred[Any]) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


def test_answers_when_the_host_settles(tmp_path: Path) -> None:
    engine, clock = _engine(tmp_path, HostState.PENDING)
    got = _result(engine.settled(UUID, 30))
    clock.advance(29)
    engine._set(UUID, HostState.APPLYING, "applying", write=False)
    assert got == []  # still in progress
    engine._set(UUID, HostState.COMPLIANT, write=False)
    assert [doc["state"] for doc in got] == ["compliant"]
    assert engine._watchers == {}
    engine._set("4c4c4544-0000-4000-8000-000000000001", HostState.PENDING, write=False)
    gauge = {state: engine.metrics.hosts.labels(state=str(state))._value.get()
             for state in HostState}
    assert gauge[HostState.COMPLIANT] == 1 and gauge[HostState.PENDING] == 1
    assert gauge[HostState.APPLYING] == 0
    clock.advance(10)  # the timeout was cancelled with it
    assert len(got) == 1


def test_answers_the_current_state_after_the_wait(tmp_path: Path) -> None:
    engine, clock = _engine(tmp_path, HostState.APPLYING)
    got = _result(engine.settled(UUID, 5))
    clock.advance(4.9)
    assert got == []
    clock.advance(0.2)
    assert [doc["state"] for doc in got] == ["applying"]
    assert engine._watchers == {}


def test_a_client_that_goes_away_leaves_nothing_behind(tmp_path: Path) -> None:
    engine, _ = _engine(tmp_path, HostState.PENDING)
    d = engine.settled(UUID, 30)
    other = _result(engine.settled(UUID, 30))
    d.cancel()
    assert len(engine._watchers[UUID]) == 1
    with pytest.raises(defer.CancelledError):
        d.result.raiseException()
    d.addErrback(lambda _f: None)
    engine._set(UUID, HostState.FAILED, "vCenter refused", write=False)
    assert [doc["state"] for doc in other] == ["failed"]
    assert engine._watchers == {}


@pytest.mark.parametrize("state", [HostState.COMPLIANT, HostState.DRIFTED, HostState.FAILED])
def test_a_settled_host_is_answered_at_once(tmp_path: Path, state: HostState) -> None:
    engine, _ = _engine(tmp_path, state)
    assert [doc["state"] for doc in _result(engine.settled(UUID, 300))] == [str(state)]


def test_unknown_host(tmp_path: Path) -> None:
    engine, _ = _engine(tmp_path, None)
    with pytest.raises(NotFoundError):
        engine.settled(UUID, 30)

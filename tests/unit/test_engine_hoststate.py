"""Host states reach the directory in order, per host, and are retried until they land."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import task
from twisted.logger import capturedLogs

from stateless.daemon.hoststate import StateWriter
from stateless.daemon.queue import RetryPolicy
from stateless.errors import DirectoryError, NotFoundError
from stateless.model.inventory import HostState
from tests.unit.engine_world import Blocking, Directory

A, B = "4c4c4544-0000-4000-8000-000000000001", "4c4c4544-0000-4000-8000-000000000002"


def writer() -> tuple[StateWriter, Directory, Blocking, task.Clock]:
    clock, directory, blocking = task.Clock(), Directory(), Blocking()
    return (StateWriter(clock, blocking, directory, RetryPolicy(0.25, 10.0), random.Random(1)),
            directory, blocking, clock)


def test_one_write_per_host_at_a_time_and_the_latest_wins() -> None:
    w, directory, blocking, _ = writer()
    blocking.hold = True
    w.write(A, HostState.APPLYING, "applying")
    w.write(A, HostState.FAILED, "vCenter refused")
    w.write(A, HostState.COMPLIANT, "", applied_digest="d1")
    w.write(B, HostState.APPLYING, "applying")
    assert len(blocking.held) == 2 and w.pending == 2  # one in flight per host
    blocking.hold = False
    blocking.release()
    # FAILED was superseded before it was sent; each host's writes stay in order.
    assert [s for u, s in directory.writes if u == A] == [HostState.APPLYING, HostState.COMPLIANT]
    assert [s for u, s in directory.writes if u == B] == [HostState.APPLYING]
    assert directory.states[A] == (HostState.COMPLIANT, "", "d1")
    assert w.pending == 0


def test_a_failed_write_is_retried_until_it_lands() -> None:
    w, directory, _, clock = writer()
    directory.fail = DirectoryError("directory unreachable")
    with capturedLogs() as events:
        w.write(A, HostState.COMPLIANT, "", applied_digest="d1")
        clock.pump([1.0] * 30)
    assert w.pending == 1 and A not in directory.states
    assert any("not recorded yet" in e.get("log_format", "") for e in events)
    idle: list[Any] = []
    w.idle().addCallback(idle.append)
    directory.fail = None
    clock.advance(10.0)  # the longest backoff
    assert directory.states[A] == (HostState.COMPLIANT, "", "d1") and idle == [None]


def test_a_newer_write_keeps_the_digest_of_one_that_never_landed() -> None:
    w, directory, _, clock = writer()
    directory.fail = DirectoryError("directory unreachable")
    w.write(A, HostState.COMPLIANT, "", applied_digest="d1")
    w.write(A, HostState.DRIFTED, "differs in vCenter: ntp.servers")
    directory.fail = None
    w.flush()  # the directory is back: no waiting for the backoff
    assert directory.states[A] == (HostState.DRIFTED, "differs in vCenter: ntp.servers", "d1")
    clock.advance(100)
    assert directory.writes == [(A, HostState.DRIFTED)]


def test_writes_for_a_deleted_entry_are_dropped() -> None:
    w, directory, _, clock = writer()
    directory.fail = NotFoundError("no such entry")
    w.write(A, HostState.FAILED, "x" * 5000)
    clock.advance(100)
    assert w.pending == 0 and directory.writes == []
    directory.fail = None
    w.write(A, HostState.FAILED, "x" * 5000)
    assert len(directory.states[A][1]) == 1000  # reasons are kept to 1,000 characters


def test_a_bug_in_a_write_is_logged_with_its_traceback_and_retried() -> None:
    w, directory, _, clock = writer()
    directory.fail = KeyError("bug")
    with capturedLogs() as events:
        w.write(A, HostState.COMPLIANT, "", applied_digest="d1")
    assert [e for e in events if e.get("log_failure") is not None]
    directory.fail = None
    clock.advance(10.0)
    assert directory.states[A][0] == HostState.COMPLIANT


def test_drop_forgets_what_was_not_sent() -> None:
    w, directory, _, clock = writer()
    directory.fail = DirectoryError("directory unreachable")
    w.write(A, HostState.FAILED, "no vCenter")
    directory.fail = None
    w.drop(A)  # a birth wrote `pending` itself meanwhile
    clock.advance(100)
    assert directory.writes == [] and w.pending == 0
    w.stop()

"""--max-pending counted exactly: births whose write is in flight hold their slot."""

from __future__ import annotations

import random

from stateless.daemon.admission import Admission


def test_writes_in_flight_count_against_the_limit() -> None:
    admission = Admission(5, random.Random(1))
    tickets = [admission.admit(f"h{n}", backlog=0, tracked=False) for n in range(40)]
    assert sum(t is not None for t in tickets) == 5 and admission.in_flight == 5
    admission.release(tickets[0])  # type: ignore[arg-type]
    assert admission.admit("late", backlog=0, tracked=False) is not None
    assert admission.admit("later", backlog=0, tracked=False) is None


def test_the_backlog_counts_too() -> None:
    admission = Admission(5, random.Random(1))
    assert admission.admit("a", backlog=4, tracked=False) is not None
    assert admission.admit("b", backlog=4, tracked=False) is None


def test_a_host_already_tracked_takes_no_new_slot() -> None:
    admission = Admission(1, random.Random(1))
    first = admission.admit("a", backlog=0, tracked=False)
    again = admission.admit("a", backlog=0, tracked=False)  # the same agent, asking again
    queued = admission.admit("q", backlog=1, tracked=True)  # queued already
    assert first and again and queued and admission.in_flight == 2
    assert admission.writing("a")
    admission.release(first)  # type: ignore[arg-type]
    assert admission.writing("a")  # the second write is still in flight
    admission.release(again)  # type: ignore[arg-type]
    admission.release(queued)  # type: ignore[arg-type]
    assert admission.in_flight == 0 and not admission.writing("a")


def test_retry_after_grows_with_the_backlog() -> None:
    admission = Admission(5, random.Random(1))
    assert admission.retry_after(0, 8) == 1
    waits = [admission.retry_after(400, 8) for _ in range(200)]
    assert all(50 <= w <= 150 for w in waits) and len(set(waits)) > 10  # jittered

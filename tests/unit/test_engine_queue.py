"""The apply queue and its retry policy, driven by task.Clock and a seeded random source."""

from __future__ import annotations

import random

import pytest
from twisted.internet import task
from twisted.logger import capturedLogs

from stateless.daemon.queue import ApplyQueue, RetryPolicy


@pytest.mark.parametrize(("attempts", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (9, 128.0),
                                                   (10, 256.0), (11, 300.0), (500, 300.0)])
def test_backoff_doubles_up_to_the_cap(attempts: int, ceiling: float) -> None:
    policy = RetryPolicy(0.5, 300.0)
    assert policy.ceiling(attempts) == ceiling
    rng = random.Random(7)
    delays = [policy.delay(attempts, rng) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter: spread over the whole range, not bunched at the ceiling.
    assert min(delays) < ceiling * 0.05 and max(delays) > ceiling * 0.95


def test_backoff_is_reproducible_with_a_seed() -> None:
    policy = RetryPolicy(0.5, 10.0)
    first = [policy.delay(n, random.Random(3)) for n in range(1, 8)]
    assert first == [policy.delay(n, random.Random(3)) for n in range(1, 8)]


class Pump:
    """The queue's owner: counts wake-ups, takes what it is allowed to run."""

    def __init__(self) -> None:
        self.woken = 0

    def __call__(self) -> None:
        self.woken += 1


def queue(cap: float = 300.0, seed: int = 1) -> tuple[ApplyQueue, task.Clock, Pump]:
    clock, pump = task.Clock(), Pump()
    return ApplyQueue(clock, RetryPolicy(0.5, cap), random.Random(seed), pump), clock, pump


def test_hosts_run_in_arrival_order_within_the_limit() -> None:
    q, _, pump = queue()
    for uuid in "abcde":
        q.add(uuid)
    q.add("a")  # already queued: still once
    assert pump.woken == 6 and q.backlog == 5
    assert q.take(3) == ["a", "b", "c"]
    assert q.take(3) == []  # three running
    assert q.running("a") and q.busy("d") and not q.running("d")
    assert q.finish("a") is None
    assert q.take(3) == ["d"]
    assert q.backlog == 4


def test_a_host_asked_for_while_it_runs_runs_once_more() -> None:
    q, _, _ = queue()
    q.add("a")
    q.take(1)
    q.add("a")
    q.add("a")
    assert q.again("a")
    assert q.finish("a", retry_after=3) is None  # asked for: at once, no retry timer
    assert q.take(1) == ["a"] and not q.again("a")


def test_a_failed_host_waits_for_its_retry() -> None:
    q, clock, pump = queue(cap=4.0)
    q.add("a")
    q.take(1)
    due = q.finish("a", retry_after=1)
    assert due is not None and 0 <= due <= 0.5
    assert q.next_try("a") == due and q.waiting == 1 and q.backlog == 0
    assert q.take(1) == []
    clock.advance(due)
    assert q.next_try("a") is None and q.take(1) == ["a"]
    # The ceiling grows with the attempts and stops at the cap.
    dues = []
    for attempts in range(2, 12):
        start = clock.seconds()
        dues.append(q.finish("a", retry_after=attempts) - start)  # type: ignore[operator]
        clock.advance(dues[-1])
        assert q.take(1) == ["a"]
    assert all(0 <= d <= min(4.0, 0.5 * 2 ** (n - 1)) for n, d in zip(range(2, 12), dues,
                                                                        strict=True))
    assert pump.woken >= 12


def test_asking_for_a_waiting_host_cancels_its_timer() -> None:
    q, clock, _ = queue()
    q.add("a")
    q.take(1)
    q.finish("a", retry_after=5)
    q.add("a")
    assert q.next_try("a") is None and q.take(1) == ["a"]
    q.finish("a")
    clock.advance(1000)  # the cancelled timer does not bring it back
    assert q.take(1) == []


def test_retry_now_and_discard() -> None:
    q, clock, _ = queue()
    for uuid in "ab":
        q.add(uuid)
    q.take(2)
    q.finish("a", retry_after=8)
    q.finish("b", retry_after=8)
    q.retry_now(["a", "c"])
    assert q.take(5) == ["a"]
    q.discard("b")
    clock.advance(1000)
    assert q.take(5) == [] and q.waiting == 0
    q.stop()


def test_the_retry_timer_survives_a_failing_owner() -> None:
    """A retry whose wake-up fails is logged; the host is ready all the same, and later
    timers still fire."""
    clock, failing = task.Clock(), [False]

    def owner() -> None:
        if failing[0]:
            raise RuntimeError("owner failed")

    q = ApplyQueue(clock, RetryPolicy(0.5, 1.0), random.Random(1), owner)
    q.add("a")
    q.take(1)
    q.finish("a", retry_after=1)
    failing[0] = True
    with capturedLogs() as events:
        clock.advance(1.0)
    assert [e for e in events if e.get("log_failure") is not None]
    failing[0] = False
    assert q.take(1) == ["a"]
    q.finish("a", retry_after=2)
    clock.advance(1.0)
    assert q.take(1) == ["a"]

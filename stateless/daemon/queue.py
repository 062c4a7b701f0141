"""The apply queue: which hosts run now, which run again, which wait for their next try.

No I/O: the clock and the random source are passed in, so tests drive time with
`twisted.internet.task.Clock` and a seeded `random.Random`.  A host is in at most one of
ready / running / waiting for a retry; a host asked for while it runs is marked to run once
more afterwards.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Iterable

import attrs
from twisted.logger import Logger

from stateless.daemon.ports import Clock, Delayed

log = Logger()


@attrs.frozen
class RetryPolicy:
    """Capped exponential backoff with full jitter: attempt n waits U(0, min(cap, base * 2**(n-1)))."""

    base: float = 0.5
    cap: float = 300.0

    def ceiling(self, attempts: int) -> float:
        return min(self.cap, self.base * 2 ** min(max(attempts, 1) - 1, 60))

    def delay(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after `attempts` consecutive failures (attempts >= 1)."""
        return rng.uniform(0.0, self.ceiling(attempts))


class ApplyQueue:
    """Hosts to apply, in arrival order, and the timers of hosts waiting to be retried."""

    def __init__(self, clock: Clock, policy: RetryPolicy, rng: random.Random,
                 on_ready: Callable[[], None]) -> None:
        self._clock = clock
        self.policy = policy
        self._rng = rng
        self._on_ready = on_ready  # something became ready: the owner takes what it can
        self._ready: OrderedDict[str, None] = OrderedDict()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._timers: dict[str, tuple[float, Delayed]] = {}

    # --- state -----------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Hosts ready or running (hosts waiting for a retry have settled for now)."""
        return len(self._ready) + len(self._running)

    @property
    def waiting(self) -> int:
        """Hosts waiting for their next try."""
        return len(self._timers)

    def running(self, uuid: str) -> bool:
        return uuid in self._running

    def busy(self, uuid: str) -> bool:
        """Ready or running: it will be applied from the current directory view anyway."""
        return uuid in self._ready or uuid in self._running

    def next_try(self, uuid: str) -> float | None:
        """Clock time of the host's next automatic try, if one is scheduled."""
        timer = self._timers.get(uuid)
        return timer[0] if timer else None

    # --- changes ---------------------------------------------------------------------------

    def add(self, uuid: str) -> None:
        """Apply the host as soon as a slot is free (once more after the current run)."""
        self._cancel_timer(uuid)
        if uuid in self._running:
            self._again.add(uuid)
            return
        if uuid not in self._ready:
            self._ready[uuid] = None
        self._on_ready()

    def take(self, limit: int) -> list[str]:
        """Move ready hosts to running, oldest first, while fewer than `limit` run."""
        taken = []
        while self._ready and len(self._running) < limit:
            uuid, _ = self._ready.popitem(last=False)
            self._running.add(uuid)
            taken.append(uuid)
        return taken

    def again(self, uuid: str) -> bool:
        """Whether the running host was asked for again since it started."""
        return uuid in self._again

    def finish(self, uuid: str, retry_after: int | None = None) -> float | None:
        """The host's run ended.  Asked for again meanwhile: it is ready at once.  Otherwise,
        with `retry_after` (consecutive failed attempts), its retry is scheduled; the clock
        time of that retry is returned."""
        self._running.discard(uuid)
        if uuid in self._again:
            self._again.discard(uuid)
            self.add(uuid)
            return None
        if retry_after is None:
            self._on_ready()  # a slot is free
            return None
        due = self.retry(uuid, retry_after)
        self._on_ready()
        return due

    def retry(self, uuid: str, attempts: int) -> float:
        """Schedule the host's next try after `attempts` consecutive failures."""
        self._cancel_timer(uuid)
        delay = self.policy.delay(attempts, self._rng)
        call = self._clock.callLater(delay, self._due, uuid)
        due = self._clock.seconds() + delay
        self._timers[uuid] = (due, call)
        return due

    def retry_now(self, uuids: Iterable[str]) -> None:
        """Hosts waiting for a retry that should not wait any longer."""
        for uuid in list(uuids):
            if uuid in self._timers:
                self.add(uuid)

    def discard(self, uuid: str) -> None:
        """Forget the host (its entry is gone); a run in progress ends on its own."""
        self._cancel_timer(uuid)
        self._ready.pop(uuid, None)
        self._again.discard(uuid)

    def stop(self) -> None:
        """Cancel every retry timer (the service is stopping)."""
        for uuid in list(self._timers):
            self._cancel_timer(uuid)

    # --- internals -------------------------------------------------------------------------

    def _cancel_timer(self, uuid: str) -> None:
        timer = self._timers.pop(uuid, None)
        if timer is not None and timer[1].active():
            timer[1].cancel()

    def _due(self, uuid: str) -> None:
        """A retry timer fired.  Whatever goes wrong is logged: the next timer still fires."""
        self._timers.pop(uuid, None)
        try:
            self.add(uuid)
        except Exception:
            log.failure("retrying host {uuid}", uuid=uuid)


__all__ = ["ApplyQueue", "RetryPolicy"]

"""Periodic tasks that never stop on a failure.

A `LoopingCall` stops for good when its function fails, and nobody notices if its Deferred
is dropped.  `Periodic` runs its body, logs whatever the body raised, and schedules the next
run regardless; runs never overlap, and the interval can be jittered so that several daemons
(or several hosts' timers) do not fall into step.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from stateless.daemon.ports import Clock, Delayed
from stateless.errors import StatelessError

log = Logger()


class Periodic:
    """`body` every `interval` seconds (times U(1 - jitter, 1 + jitter)) until `stop()`."""

    def __init__(self, clock: Clock, interval: float,
                 body: Callable[[], defer.Deferred[object] | object], *, name: str,
                 jitter: float = 0.0, rng: random.Random | None = None) -> None:
        if interval <= 0 or not 0 <= jitter < 1:
            raise ValueError(f"{name}: interval must be positive and jitter in [0, 1)")
        self.name = name
        self.interval = interval
        self.jitter = jitter
        self._clock = clock
        self._body = body
        self._rng = rng or random.Random()
        self._call: Delayed | None = None
        self._current: defer.Deferred[object] | None = None
        self._stopped = True
        self.runs = 0  # bodies completed, successfully or not
        self.failures = 0

    @property
    def running(self) -> bool:
        return not self._stopped

    def start(self, now: bool = False) -> None:
        self._stopped = False
        if now:
            self._run()
        else:
            self._schedule()

    def stop(self) -> defer.Deferred[None]:
        """No further runs; fires when a run in progress has ended."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._current is None:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        self._current.addBoth(lambda _: done.callback(None))
        return done

    def _schedule(self) -> None:
        if self._stopped:
            return
        factor = 1.0 + self._rng.uniform(-self.jitter, self.jitter) if self.jitter else 1.0
        self._call = self._clock.callLater(self.interval * factor, self._run)

    def _run(self) -> None:
        self._call = None
        d = defer.maybeDeferred(self._body)
        d.addErrback(self._failed)
        d.addBoth(self._ran)
        if not d.called:
            self._current = d

    def _failed(self, failure: Failure) -> None:
        self.failures += 1
        if failure.check(StatelessError):
            log.warn("{loop}: {reason}; next run as planned", loop=self.name,
                     reason=failure.getErrorMessage())
        else:
            log.failure("{loop} failed; next run as planned", failure, loop=self.name)

    def _ran(self, _: object) -> None:
        self._current = None
        self.runs += 1
        self._schedule()


__all__ = ["Periodic"]

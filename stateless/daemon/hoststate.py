"""Where each host stands: in memory for the API, and in the directory for everyone else.

`HostStates` is the daemon's view (what `/v1/hosts` answers, the hosts-by-state gauge, the
long polls of `?wait=`).  `StateWriter` makes the directory say the same: per host, writes go
out in order, one at a time, and a write that fails for a reason a retry can fix is retried
until it lands.  A newer write for the same host replaces one still waiting (states are
replaced whole; an applied digest survives a newer write that carries none).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Any, cast

import attrs
from prometheus_client import Gauge
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from stateless.daemon.ports import Blocking, Clock, Delayed, HostDirectory
from stateless.daemon.queue import RetryPolicy
from stateless.errors import NotFoundError, StatelessError, ValidationError
from stateless.model.inventory import HostState

log = Logger()

IN_PROGRESS = (HostState.PENDING, HostState.APPLYING)
REASON_LIMIT = 1000  # characters of a reason kept in the directory


@attrs.define
class HostStatus:
    """One host as this daemon sees it."""

    state: HostState
    reason: str = ""
    since: float = 0.0  # clock time of the last change of state or reason
    plan: int = 0  # changes the last apply made
    calls: int = 0  # SOAP calls the last apply made
    attempts: int = 0  # consecutive failed attempts
    next_try: float | None = None  # clock time of the next automatic try
    tried: str = ""  # inputs digest of what a permanently failed apply tried
    applied: str | None = None  # digest this process applied (the directory may lag)
    cause: str = ""  # of the last transient failure: "directory", "vcenter" or "internal"


class HostStates:
    """In-memory status of every host this daemon tracks, and who waits for it to settle."""

    def __init__(self, clock: Clock, gauge: Gauge,
                 on_change: Callable[[str, HostState | None, HostStatus], None] | None = None,
                 ) -> None:
        self._clock = clock
        self._gauge = gauge
        self._on_change = on_change  # (uuid, state before, status now) on a change of state
        self._status: dict[str, HostStatus] = {}
        self._watchers: dict[str, list[defer.Deferred[None]]] = {}

    def get(self, uuid: str) -> HostStatus | None:
        return self._status.get(uuid)

    def __contains__(self, uuid: object) -> bool:
        return uuid in self._status

    def uuids(self) -> set[str]:
        return set(self._status)

    def set(self, uuid: str, state: HostState, reason: str = "", **fields: Any) -> HostStatus:
        """A new state; fields not given keep their values (`since` moves on a change)."""
        before = self._status.get(uuid)
        status = attrs.evolve(before, state=state, reason=reason, **fields) if before \
            else HostStatus(state, reason, **fields)
        if before is None or (before.state, before.reason) != (state, reason):
            status.since = self._clock.seconds()
        self._status[uuid] = status
        if before is None or before.state != state:  # the gauge, without counting every host
            if before is not None:
                self._gauge.labels(state=str(before.state)).dec()
            self._gauge.labels(state=str(state)).inc()
            if self._on_change is not None:
                self._on_change(uuid, before.state if before else None, status)
        if state not in IN_PROGRESS:
            for waiter in self._watchers.pop(uuid, []):
                waiter.callback(None)
        return status

    def forget(self, uuid: str) -> None:
        status = self._status.pop(uuid, None)
        if status is not None:
            self._gauge.labels(state=str(status.state)).dec()
        for waiter in self._watchers.pop(uuid, []):
            waiter.callback(None)

    def settled(self, uuid: str, timeout: float) -> defer.Deferred[None]:
        """Fires once the host is no longer pending or applying, or after `timeout` seconds."""
        status = self._status.get(uuid)
        if status is None or status.state not in IN_PROGRESS or timeout <= 0:
            return defer.succeed(None)
        waiters = self._watchers.setdefault(uuid, [])

        def forget(d: defer.Deferred[None]) -> None:
            with contextlib.suppress(ValueError):
                waiters.remove(d)
            if not waiters and self._watchers.get(uuid) is waiters:
                del self._watchers[uuid]

        waiter: defer.Deferred[None] = defer.Deferred(canceller=forget)
        waiters.append(waiter)
        waiter.addTimeout(timeout, cast(Any, self._clock),  # a Clock: the reactor or task.Clock
                          onTimeoutCancel=lambda _result, _t: None)
        return waiter

    @property
    def watching(self) -> int:
        """Long polls held open."""
        return sum(len(w) for w in self._watchers.values())


@attrs.frozen
class _Write:
    state: HostState
    reason: str
    digest: str | None  # None: leave the applied digest as it is

    def after(self, older: _Write) -> _Write:
        """This write, keeping the digest of an older one that never landed."""
        return self if self.digest is not None else attrs.evolve(self, digest=older.digest)


class StateWriter:
    """Host states into the directory, in order per host, retried until they land."""

    def __init__(self, clock: Clock, blocking: Blocking, directory: HostDirectory,
                 policy: RetryPolicy, rng: random.Random,
                 on_failure: Callable[[Failure], None] | None = None) -> None:
        self._clock = clock
        self._blocking = blocking
        self._directory = directory
        self._policy = policy
        self._rng = rng
        self._on_failure = on_failure  # a write failed and will be retried
        self._next: dict[str, _Write] = {}  # waiting to be sent, per host
        self._sending: set[str] = set()
        self._failures: dict[str, int] = {}  # consecutive, per host
        self._timers: dict[str, Delayed] = {}
        self._idle: list[defer.Deferred[None]] = []

    @property
    def pending(self) -> int:
        """Hosts whose last state has not landed yet."""
        return len(self._next.keys() | self._sending)

    def write(self, uuid: str, state: HostState, reason: str = "",
              applied_digest: str | None = None) -> None:
        new = _Write(state, reason[:REASON_LIMIT], applied_digest)
        older = self._next.get(uuid)
        self._next[uuid] = new.after(older) if older else new
        self._send(uuid)

    def drop(self, uuid: str) -> None:
        """Forget writes not yet sent (the host's entry was written another way, or is gone)."""
        self._next.pop(uuid, None)
        self._failures.pop(uuid, None)
        timer = self._timers.pop(uuid, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._check_idle()

    def flush(self) -> None:
        """The directory is back: send what waits for a retry now."""
        for uuid, timer in list(self._timers.items()):
            if timer.active():
                timer.cancel()
            del self._timers[uuid]
            self._send(uuid)

    def idle(self) -> defer.Deferred[None]:
        """Fires when every write has landed (or was dropped)."""
        if not self.pending:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        return d

    def stop(self) -> None:
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    # --- internals -------------------------------------------------------------------------

    def _send(self, uuid: str) -> None:
        if uuid in self._sending or uuid in self._timers or uuid not in self._next:
            return
        write = self._next.pop(uuid)
        self._sending.add(uuid)
        d = defer.maybeDeferred(self._blocking, self._directory.set_host_state, uuid, write.state,
                                write.reason, applied_digest=write.digest)
        d.addCallbacks(self._landed, self._failed, callbackArgs=(uuid,),
                       errbackArgs=(uuid, write))

    def _landed(self, _: object, uuid: str) -> None:
        self._sending.discard(uuid)
        self._failures.pop(uuid, None)
        self._send(uuid)
        self._check_idle()

    def _failed(self, failure: Failure, uuid: str, write: _Write) -> None:
        self._sending.discard(uuid)
        if failure.check(NotFoundError, ValidationError):
            # The entry is gone, or the directory refuses the value: a retry cannot help.
            log.warn("host {uuid}: state {state} not recorded: {reason}", uuid=uuid,
                     state=str(write.state), reason=failure.getErrorMessage())
            self.drop(uuid)
            return
        newer = self._next.get(uuid)
        self._next[uuid] = newer.after(write) if newer else write
        failures = self._failures[uuid] = self._failures.get(uuid, 0) + 1
        delay = self._policy.delay(failures, self._rng)
        if failure.check(StatelessError):
            log.warn("host {uuid}: state {state} not recorded yet: {reason}; next try in "
                     "{delay:.1f}s", uuid=uuid, state=str(write.state),
                     reason=failure.getErrorMessage(), delay=delay)
        else:  # a bug: keep its traceback, and still retry
            log.failure("host {uuid}: recording state {state}", failure, uuid=uuid,
                        state=str(write.state))
        if self._on_failure is not None:
            self._on_failure(failure)
        self._timers[uuid] = self._clock.callLater(delay, self._retry, uuid)

    def _retry(self, uuid: str) -> None:
        self._timers.pop(uuid, None)
        self._send(uuid)  # whatever fails comes back through _failed, as a Deferred

    def _check_idle(self) -> None:
        if not self.pending:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)


__all__ = ["IN_PROGRESS", "HostStates", "HostStatus", "StateWriter"]

"""What an apply's outcome does to the host's bookkeeping in the engine.

A success records where the host went and what was applied; a failure is classified
(`failures`): a transient one is retried with backoff, a permanent one waits for a change to
the host's inputs, and a host that is gone is forgotten.  A host that failed because another
host would get its vCenter name (`prepare.name_clash`) is no input of its own: it is tried
again whenever any host changes.  A part of the engine (`Engine` inherits it).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from stateless.daemon.failures import GONE, PERMANENT, classify
from stateless.errors import NameClashError
from stateless.model.inventory import HostState, Snapshot
from stateless.prepare import Target, effective_digest
from stateless.vcenter.converge import Converged

if TYPE_CHECKING:
    from stateless.daemon.audit import Audit
    from stateless.daemon.births import Births
    from stateless.daemon.hoststate import HostStates, StateWriter
    from stateless.daemon.metrics import Metrics
    from stateless.daemon.ports import Clock
    from stateless.daemon.queue import ApplyQueue

log = Logger()

AGAIN = "queued again: asked for while it was being applied"


class Settlement:
    """Settling applies and forgetting hosts; the engine provides the attributes declared here."""

    reactor: Clock
    snapshot: Snapshot
    owned: set[str]
    states: HostStates
    writer: StateWriter
    queue: ApplyQueue
    births: Births
    audit: Audit
    metrics: Metrics
    directory_state: str
    _place: dict[str, str | None]
    _located: dict[str, str]
    _clashed: set[str]
    _recheck: set[str]
    _drifted: dict[str, list[str]]

    if TYPE_CHECKING:  # the engine's
        def _wanted(self, uuid: str) -> str: ...

        def _inputs(self, uuid: str) -> str: ...

        def _vcenter(self, location: str | None) -> str: ...

    def _settle_success(self, uuid: str, target: Target, done: Converged, started: float) -> None:
        self._place.pop(uuid, None)
        self._located[uuid] = target.location
        self.births.unseen.discard(uuid)
        seconds = self.reactor.seconds() - started
        keys = [f"{c.kind}.{c.name}" if c.name else c.kind for c in done.result.plan]
        self.audit.apply(host=uuid, keys=keys, calls=done.calls, seconds=seconds,
                         vcenter=self._vcenter(target.location))
        drifted = self._drifted.pop(uuid, None)
        if drifted is not None:
            self.audit.drift_reverted(host=uuid, keys=drifted or keys, calls=done.calls)
        self.metrics.calls.inc(done.calls)
        self.metrics.apply_seconds.observe(seconds)
        self.metrics.applies.labels(result="compliant").inc()
        if uuid in self._recheck:
            self._recheck.discard(uuid)
            if self._wanted(uuid) != effective_digest(target.effective):
                self.queue.add(uuid)  # changed while it ran: once more
        fields: dict[str, Any] = dict(plan=len(done.result.plan), calls=done.calls, attempts=0,
                                      next_try=None, tried="", applied=target.digest, cause="")
        if self.queue.again(uuid):
            self.queue.finish(uuid)
            self.states.set(uuid, HostState.PENDING, AGAIN, **fields)
            return
        self.queue.finish(uuid)
        self.states.set(uuid, HostState.COMPLIANT, "", **fields)
        self.writer.write(uuid, HostState.COMPLIANT, "", applied_digest=target.digest)

    def _settle_failure(self, uuid: str, failure: Failure) -> None:
        verdict = classify(failure.value, in_view=uuid in self.snapshot.hosts,
                           may_lag=uuid in self.births.unseen
                           or self.directory_state != "synchronized")
        if verdict.bug:
            log.failure("applying host {uuid}", failure, uuid=uuid)  # keep its traceback
        if verdict.kind == GONE:
            self.queue.finish(uuid)
            self._forget(uuid, verdict.reason)
            return
        self.metrics.applies.labels(result="failed").inc()
        status = self.states.get(uuid)
        attempts = (status.attempts if status else 0) + 1
        if uuid in self._recheck:
            self._recheck.discard(uuid)
            self.queue.add(uuid)  # its inputs changed while it ran: try those at once
        if self.queue.again(uuid):
            self.queue.finish(uuid)
            self.states.set(uuid, HostState.PENDING, AGAIN, attempts=attempts, next_try=None)
            return
        reason, tried = verdict.reason, self._inputs(uuid)
        permanent = verdict.kind == PERMANENT
        self.audit.failure(host=uuid, reason=reason, cause=verdict.cause, attempts=attempts,
                           permanent=permanent)
        if permanent:
            if failure.check(NameClashError):
                self._clashed.add(uuid)
            self.queue.finish(uuid)
            self.states.set(uuid, HostState.FAILED, reason, attempts=attempts, next_try=None,
                            tried=tried, cause="")
            self.writer.write(uuid, HostState.FAILED, reason)
            return
        self.metrics.retries.inc()
        due = self.queue.finish(uuid, retry_after=attempts)
        self.states.set(uuid, HostState.FAILED, reason, attempts=attempts, next_try=due,
                        tried=tried, cause=verdict.cause)
        self.writer.write(uuid, HostState.FAILED, reason)
        if due is not None:
            self.audit.retry(host=uuid, attempt=attempts + 1, next_try=due)

    def _retry_clashed(self, hosts: Collection[str] | None) -> None:
        """Hosts changed (`hosts`; None: any may have): the one a clashed host clashed with
        may be renamed or gone, so every clashed host this server still owns is queued."""
        if self._clashed and (hosts is None or hosts):
            clashed, self._clashed = self._clashed & self.owned, set()
            for uuid in sorted(clashed):
                self.queue.add(uuid)

    def _forget(self, uuid: str, why: str) -> None:
        log.info("host {uuid}: no longer tracked: {reason}", uuid=uuid, reason=why)
        self.owned.discard(uuid)
        self.queue.discard(uuid)
        self.writer.drop(uuid)
        self.states.forget(uuid)
        self._place.pop(uuid, None)
        self._located.pop(uuid, None)
        self.births.unseen.discard(uuid)
        self._recheck.discard(uuid)
        self._drifted.pop(uuid, None)


__all__ = ["AGAIN", "Settlement"]

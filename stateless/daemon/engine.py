"""The daemon's controller: what happens to hosts, and the answers of the HTTP API.

Everything here runs on the reactor thread; directory writes and vCenter calls go through the
`Blocking` runner (the daemon's thread pool).  The parts live in their own modules: births
and their admission (`births`, `admission`), the apply queue and its retry policy (`queue`),
what a failure means (`failures`), host state in memory and in the directory (`hoststate`),
the compliance scan (`scan`) and the API's documents (`documents`).  A transient failure is
retried with capped, jittered backoff for as long as it takes; a failure of the host's own
(invalid policy, a full or missing pool) waits for a change to its inputs.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Collection
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from stateless.daemon.adoption import adoptable
from stateless.daemon.api import BirthOutcome, OwnedElsewhere, Reapplying
from stateless.daemon.births import FEED_TIMEOUT, Births
from stateless.daemon.config import DaemonConfig
from stateless.daemon.documents import health_document, host_document, iso
from stateless.daemon.failures import GONE, PERMANENT, classify
from stateless.daemon.hoststate import IN_PROGRESS, HostStates, HostStatus, StateWriter
from stateless.daemon.metrics import Metrics
from stateless.daemon.ports import Blocking, Clock, Delayed, HostDirectory, VCenters
from stateless.daemon.queue import ApplyQueue, RetryPolicy
from stateless.daemon.scan import ComplianceScan
from stateless.errors import NotFoundError, StatelessError, TransientVCenterError, ValidationError
from stateless.model.birth import BirthMessage
from stateless.model.inventory import HostState, Snapshot
from stateless.plan import KeyDiff
from stateless.policy import Resolver, resolve
from stateless.prepare import (
    Target,
    desired_config,
    digest,
    effective_digest,
    inputs_digest,
    missing_allocations,
    prepare,
    serving_vcenter,
    vcenter_name,
    with_allocations,
)
from stateless.sites import nearest_servers
from stateless.vcenter.converge import Converged

log = Logger()

BACKOFF_BASE = 0.5  # seconds: the ceiling of the first retry's full-jitter delay
WRITE_RETRY_CAP = 10.0  # seconds between tries of a state write, at most
AGAIN = "queued again: asked for while it was being applied"


class Engine:
    """Births, applies and status; the HTTP API's controller and the scan's fleet."""

    def __init__(self, config: DaemonConfig, reactor: Clock, blocking: Blocking,
                 directory: HostDirectory, vcenters: VCenters, registry: CollectorRegistry, *,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.reactor = reactor
        self.blocking = blocking
        self.directory = directory
        self.vcenters = vcenters
        self.metrics = Metrics(registry)
        self.rng = rng or random.Random()
        self.snapshot = Snapshot()
        self.resolver = Resolver(self.snapshot)
        self.ready = False
        self.directory_state = "loading"  # "synchronized" once the change feed is; "unreachable"
        self.directory_reason = "the change feed has not completed its first refresh"
        self.owned: set[str] = set()
        self.states = HostStates(reactor, self.metrics.hosts)
        self.queue = ApplyQueue(reactor, RetryPolicy(BACKOFF_BASE, config.retry_cap), self.rng,
                                self._wake)
        self.writer = StateWriter(reactor, blocking, directory,
                                  RetryPolicy(BACKOFF_BASE / 2, min(config.retry_cap, WRITE_RETRY_CAP)),
                                  self.rng)
        self.births = Births(config, reactor, blocking, directory, self.metrics, self.rng,
                             self.queue, self._born)
        self.scanner = ComplianceScan(self)
        self._place: dict[str, str | None] = {}  # born hosts to (re)place in vCenter: thumbprint
        self._recheck: set[str] = set()  # running hosts whose inputs may have changed meanwhile
        self._slots: dict[str, defer.DeferredSemaphore] = {}
        self._timer: Delayed | None = None
        self._woken = False

    # --- the directory -----------------------------------------------------------------------

    def set_snapshot(self, snapshot: Snapshot, hosts: Collection[str] | None = None,
                     since: Snapshot | None = None) -> None:
        """A new view of the directory: re-resolve only the hosts it can affect.

        `hosts` names the hosts whose record changed since `since` (the mirror knows); they
        are used only when `since` is the current snapshot, else every host is compared.
        """
        before, self.snapshot = self.snapshot, snapshot
        if since is not before:
            hosts = None
        affected = self.resolver.update(snapshot, hosts)
        if not self.ready:
            self.births.snapshot = snapshot
            return
        self.births.update(snapshot)
        # Hosts deleted from the directory: among those changed when the mirror says which.
        gone = self.owned - snapshot.hosts.keys() if hosts is None else {
            u for u in hosts if u in self.owned and u not in snapshot.hosts}
        for uuid in gone - self.births.tracked():
            if not self.queue.running(uuid):  # a running apply finds out by itself
                self._forget(uuid, "its directory entry was deleted")
        me = self.config.name
        if before.vcenters != snapshot.vcenters or before.servers.get(me) != snapshot.servers.get(me):
            affected |= {u for u in self.owned if self._state(u) == HostState.FAILED}
        for uuid in sorted(affected & self.owned):
            self.reconsider(uuid)
        self._adopt(before, snapshot, hosts)

    def resume(self) -> None:
        """After a start: take back every host this server owns and finish what was left."""
        self.ready = True
        for uuid, host in self.snapshot.hosts.items():
            if host.owner != self.config.name or host.state is None:
                continue
            self.owned.add(uuid)
            self.states.set(uuid, host.state, host.reason)
            if host.state in IN_PROGRESS:
                self._place[uuid] = None  # placement finds what a killed apply left
                self.queue.add(uuid)
            elif host.state == HostState.FAILED or (host.state == HostState.DRIFTED
                                                    and self.config.mode == "enforce"):
                self.queue.add(uuid)
            else:
                self.reconsider(uuid)
        self._adopt(Snapshot(), self.snapshot)

    def _adopt(self, before: Snapshot, snapshot: Snapshot,
               changed: Collection[str] | None = None) -> None:
        """Take hosts applied without an owner, or handed to this server (see `adoption`)."""
        mine, unowned = adoptable(before, snapshot, self.config.name, self.config.site, self.owned,
                                  changed)
        for uuid in mine:
            self._take(uuid)
        for uuid in unowned:
            d = self.blocking(self.directory.claim_owner, uuid, self.config.name)
            d.addCallbacks(self._claimed, self._not_claimed, callbackArgs=(uuid,),
                           errbackArgs=(uuid,))

    def _claimed(self, got: str, uuid: str) -> None:
        if got == self.config.name:
            self._take(uuid)

    def _not_claimed(self, failure: Failure, uuid: str) -> None:
        log.warn("host {uuid}: not taken over: {error}", uuid=uuid, error=failure.getErrorMessage())

    def _take(self, uuid: str) -> None:
        host = self.snapshot.hosts.get(uuid)
        if host is None or host.state is None or uuid in self.owned:
            return
        log.info("host {uuid}: now owned by this server (state {state})", uuid=uuid,
                 state=str(host.state), event="adopted")
        self.owned.add(uuid)
        self.states.set(uuid, host.state, host.reason)
        self.reconsider(uuid)

    def directory_lost(self, reason: str) -> None:
        """The change feed lost the directory: say so until it is back."""
        if self.directory_state != "unreachable":
            log.warn("directory unreachable: {reason}", reason=reason)
        self.directory_state = "unreachable"
        self.directory_reason = f"directory unreachable: {reason}"
        self.metrics.directory_up.set(0)

    def directory_back(self) -> None:
        """The change feed is synchronized (again): retry what waited for the directory."""
        was = self.directory_state
        self.directory_state, self.directory_reason = "synchronized", ""
        self.metrics.directory_up.set(1)
        if was == "unreachable":
            log.info("directory reachable again; retrying what waited for it")
            self.writer.flush()
            self.queue.retry_now(u for u in self.owned if self._cause(u) == "directory")

    # --- births ------------------------------------------------------------------------------

    def birth(self, message: BirthMessage, peer: str) -> defer.Deferred[BirthOutcome]:
        return self.births.answer(message, peer)

    def _born(self, uuid: str, message: BirthMessage) -> None:
        """The directory holds the birth: this server owns the host and will place it."""
        self.owned.add(uuid)
        self._place[uuid] = message.thumbprint
        self.writer.drop(uuid)  # the birth wrote `pending` itself
        self.queue.discard(uuid)  # a retry timer, say: the birth supersedes it
        self.states.set(uuid, HostState.PENDING, "birth accepted", next_try=None)

    @property
    def backlog(self) -> int:
        """Births waiting for the feed, hosts queued or being applied."""
        return self.births.backlog

    # --- applying ----------------------------------------------------------------------------

    def _wake(self) -> None:
        """Something is ready: start what the slots allow, once this turn of the reactor ends."""
        if not self._woken:
            self._woken = True
            self._timer = self.reactor.callLater(0, self._pump)

    def _pump(self) -> None:
        self._woken = False
        # Twice the vCenter slots: while some hosts are in vCenter, as many more do their
        # directory work (allocations, state) and wait for a slot, so no slot sits idle.
        limit = 2 * max(1, self.config.vcenter_concurrency) * max(1, len(self.snapshot.vcenters))
        for uuid in self.queue.take(limit):
            self._run(uuid).addErrback(lambda f: log.failure("applying a host", f))
        self.metrics.queue.set(self.backlog)

    @defer.inlineCallbacks
    def _run(self, uuid: str) -> Any:
        """One apply and its outcome; nothing it raises escapes, nothing wedges the queue."""
        started = self.reactor.seconds()
        status = self.states.get(uuid)
        if status is not None and status.attempts:
            log.info("host {uuid}: try {attempt} after {reason}", uuid=uuid,
                     attempt=status.attempts + 1, reason=status.reason, attempts=status.attempts)
        outcome: Failure | tuple[Target, Converged]
        try:
            outcome = yield self._apply(uuid)
        except Exception:
            outcome = Failure()
        try:
            if isinstance(outcome, Failure):
                self._settle_failure(uuid, outcome)
            else:
                self._settle_success(uuid, *outcome, started)
        except Exception:
            log.failure("settling host {uuid}", uuid=uuid)
            if self.queue.running(uuid):
                self.queue.finish(uuid, retry_after=1)
        self._wake()

    @defer.inlineCallbacks
    def _apply(self, uuid: str) -> Any:
        """Resolve, allocate, prepare, then place and apply in vCenter: (Target, Converged)."""
        snap = self.snapshot
        host = snap.hosts.get(uuid)
        if host is None:
            raise NotFoundError(f"host {uuid}: no directory entry (was it deleted?)")
        effective = self.resolver.resolve(uuid)
        missing = missing_allocations(effective, host, snap.pools)
        if missing:
            made = yield self.blocking(self.directory.allocate_all, uuid, missing, snap.pools)
            snap, host = with_allocations(snap, host, made)
            effective = resolve(snap, uuid)
        target = prepare(snap, host, effective)
        vcenter = serving_vcenter(snap, self.config.name)
        reason = f"applying through vCenter {vcenter}"
        self.states.set(uuid, HostState.APPLYING, reason, next_try=None)
        if host.state not in IN_PROGRESS:  # a birth's `pending` says enough after a restart
            self.writer.write(uuid, HostState.APPLYING, reason)
        slot = self._slots.setdefault(vcenter,
                                      defer.DeferredSemaphore(self.config.vcenter_concurrency))
        try:
            done = yield slot.run(self.blocking, self.vcenters.converge, vcenter, target,
                                  place=uuid in self._place, thumbprint=self._place.get(uuid))
        except NotFoundError as exc:  # gone from vCenter meanwhile: the next try places it
            raise TransientVCenterError(str(exc)) from exc
        if not done.result.verified:
            diffs = ", ".join(d.key for d in done.result.diffs[:5])
            raise TransientVCenterError(f"host {uuid}: still differs after apply: {diffs}")
        return target, done

    def _settle_success(self, uuid: str, target: Target, done: Converged, started: float) -> None:
        self._place.pop(uuid, None)
        self.births.unseen.discard(uuid)
        self.metrics.calls.inc(done.calls)
        self.metrics.apply_seconds.observe(self.reactor.seconds() - started)
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
        log.info("host {uuid}: compliant; {changes} change(s) in {calls} vCenter call(s)",
                 uuid=uuid, changes=len(done.result.plan), calls=done.calls,
                 keys=[f"{c.kind}.{c.name}" if c.name else c.kind for c in done.result.plan])

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
        if verdict.kind == PERMANENT:
            self.queue.finish(uuid)
            self.states.set(uuid, HostState.FAILED, reason, attempts=attempts, next_try=None,
                            tried=tried, cause="")
            self.writer.write(uuid, HostState.FAILED, reason)
            log.warn("host {uuid}: apply failed: {reason}; tried again when its configuration "
                     "changes", uuid=uuid, reason=reason, attempts=attempts, next_try=None)
            return
        self.metrics.retries.inc()
        due = self.queue.finish(uuid, retry_after=attempts)
        self.states.set(uuid, HostState.FAILED, reason, attempts=attempts, next_try=due,
                        tried=tried, cause=verdict.cause)
        self.writer.write(uuid, HostState.FAILED, reason)
        log.warn("host {uuid}: apply failed ({cause}): {reason}; try {next_attempt} at {next_try}",
                 uuid=uuid, cause=verdict.cause, reason=reason, attempts=attempts,
                 next_attempt=attempts + 1, next_try=iso(due))

    def _forget(self, uuid: str, why: str) -> None:
        log.info("host {uuid}: no longer tracked: {reason}", uuid=uuid, reason=why)
        self.owned.discard(uuid)
        self.queue.discard(uuid)
        self.writer.drop(uuid)
        self.states.forget(uuid)
        self._place.pop(uuid, None)
        self.births.unseen.discard(uuid)
        self._recheck.discard(uuid)

    def _wanted(self, uuid: str) -> str:
        try:
            return effective_digest(self.resolver.resolve(uuid))
        except StatelessError:
            return ""

    def _inputs(self, uuid: str) -> str:
        """What an apply of the host depends on now (see `prepare.inputs_digest`)."""
        try:
            effective = self.resolver.resolve(uuid)
        except StatelessError:
            return ""
        try:
            vcenter = serving_vcenter(self.snapshot, self.config.name)
        except ValidationError:
            vcenter = ""
        return inputs_digest(effective, self.snapshot.pools, vcenter)

    # --- drift and failures: the directory's changes and the scan's findings -----------------

    def reconsider(self, uuid: str) -> None:
        """The host's inputs may have changed: apply it again, or mark it, as the mode says."""
        status = self.states.get(uuid)
        if status is None or self.births.waiting(uuid):
            return
        if self.queue.running(uuid):
            self._recheck.add(uuid)
            return
        if self.queue.busy(uuid):
            return  # queued: it resolves afresh when it runs
        if status.state == HostState.FAILED:
            lost = status.next_try is not None and self.queue.next_try(uuid) is None
            if lost or self._inputs(uuid) != status.tried:
                self.queue.add(uuid)
            return
        if status.state not in (HostState.COMPLIANT, HostState.DRIFTED):
            return
        host = self.snapshot.hosts.get(uuid)
        applied = status.applied if status.applied is not None else (host.applied_digest if host else "")
        if self._wanted(uuid) == applied:
            return
        self.metrics.drift.labels(source="directory").inc()
        if self.config.mode == "enforce":
            self.queue.add(uuid)
        elif status.state != HostState.DRIFTED:
            self._mark(uuid, HostState.DRIFTED, "effective configuration changed in the directory")

    def scan_hosts(self) -> list[str]:
        return sorted(u for u in self.owned if not self.queue.busy(u) and not self.births.waiting(u))

    def status(self, uuid: str) -> HostStatus | None:
        return self.states.get(uuid)

    def check(self, uuid: str) -> defer.Deferred[list[KeyDiff] | None]:
        """Compare the host with vCenter (the scan's question)."""
        snap = self.snapshot
        host = snap.hosts.get(uuid)
        if host is None:
            raise NotFoundError(f"host {uuid}: no directory entry (was it deleted?)")
        target = prepare(snap, host, self.resolver.resolve(uuid))
        return self.blocking(self.vcenters.check, serving_vcenter(snap, self.config.name), target)

    def vcenter_drift(self, uuid: str, reason: str) -> None:
        """The scan found the host differing in vCenter: apply it, or report it once (a host
        already drifted keeps the reason it was first marked with)."""
        status = self.states.get(uuid)
        if status is None:
            return
        if status.state == HostState.COMPLIANT:
            self.metrics.drift.labels(source="vcenter").inc()
        if self.config.mode == "enforce":
            self.queue.add(uuid)
        elif status.state == HostState.COMPLIANT:
            self._mark(uuid, HostState.DRIFTED, reason)

    def vcenter_matches(self, uuid: str) -> None:
        status = self.states.get(uuid)
        if status is None or status.state != HostState.DRIFTED:
            return
        host = self.snapshot.hosts.get(uuid)
        applied = status.applied if status.applied is not None else (host.applied_digest if host else "")
        if self._wanted(uuid) == applied:
            self._mark(uuid, HostState.COMPLIANT, "")
        elif self.config.mode == "enforce":
            self.queue.add(uuid)

    def _mark(self, uuid: str, state: HostState, reason: str) -> None:
        self.states.set(uuid, state, reason)
        self.writer.write(uuid, state, reason)
        log.info("host {uuid}: {state} {reason}", uuid=uuid, state=str(state), reason=reason)

    def scan(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = self.scanner.run()
        return d.addCallback(lambda _: self.metrics.scans.inc())

    # --- the admin's re-apply ------------------------------------------------------------------

    def reapply(self, uuid: str) -> defer.Deferred[Reapplying | OwnedElsewhere]:
        """Apply the host again now (a full read, plan, apply, verify), if this server owns it
        or nobody does (then it takes the host first)."""
        host = self.snapshot.hosts.get(uuid)
        if host is None and uuid not in self.owned:
            raise NotFoundError(f"host {uuid}: unknown; it has not been born nor added")
        owner = host.owner if host is not None else self.config.name
        if owner == self.config.name:
            self._reapply(uuid)
            return defer.succeed(Reapplying(uuid))
        if owner:
            return defer.succeed(self._elsewhere(owner))
        d = defer.maybeDeferred(self.blocking, self.directory.claim_owner, uuid, self.config.name)

        def claimed(got: str) -> Reapplying | OwnedElsewhere:
            if got != self.config.name:
                return self._elsewhere(got)
            log.info("host {uuid}: taken over on an admin's request", uuid=uuid)
            self.owned.add(uuid)
            self._reapply(uuid)
            return Reapplying(uuid)

        return d.addCallback(claimed)

    def _reapply(self, uuid: str) -> None:
        self.owned.add(uuid)
        if self.births.waiting(uuid):
            return  # a birth's apply is about to start anyway
        if self._state(uuid) not in IN_PROGRESS:
            self.states.set(uuid, HostState.PENDING, "re-apply requested", next_try=None)
            self.writer.write(uuid, HostState.PENDING, "re-apply requested")
        self.queue.add(uuid)

    def _elsewhere(self, owner: str) -> OwnedElsewhere:
        server = self.snapshot.servers.get(owner)
        return OwnedElsewhere(owner, server.url if server is not None else None)

    # --- HTTP API answers ---------------------------------------------------------------------

    def _state(self, uuid: str) -> HostState | None:
        status = self.states.get(uuid)
        return status.state if status else None

    def _cause(self, uuid: str) -> str:
        status = self.states.get(uuid)
        return status.cause if status and status.state == HostState.FAILED else ""

    def _document(self, uuid: str) -> dict[str, Any]:
        host = self.snapshot.hosts.get(uuid)
        location = host.location if host else None
        if host is not None and location is None:
            with contextlib.suppress(StatelessError):
                location = self.resolver.resolve(uuid).location  # chosen by a deploy rule
        return host_document(uuid, host, self.states.get(uuid), location)

    def hosts(self) -> list[dict[str, Any]]:
        return [self._document(u) for u in sorted(set(self.snapshot.hosts) | self.states.uuids())]

    def host(self, uuid: str) -> dict[str, Any]:
        if uuid not in self.snapshot.hosts and uuid not in self.states:
            raise NotFoundError(f"host {uuid}: unknown; it has not been born nor added")
        return self._document(uuid)

    def settled(self, uuid: str, timeout: float) -> defer.Deferred[dict[str, Any]]:
        """The host's document once it is no longer pending or applying, or after `timeout`.

        Agents that wait for their host hold one request each instead of polling, which
        during a boot storm would cost the server a request per host per poll interval.
        """
        self.host(uuid)  # NotFoundError when unknown
        return self.states.settled(uuid, timeout).addCallback(lambda _: self.host(uuid))

    def effective(self, uuid: str) -> dict[str, Any]:
        return self.resolver.resolve(uuid).to_json()

    def locate(self, address: str) -> list[dict[str, Any]]:
        return [{"name": s.name, "site": s.site, "url": s.url, "priority": s.priority,
                 "weight": s.weight} for s in nearest_servers(self.snapshot, address)]

    def health(self) -> dict[str, Any]:
        directory = self.directory_state if self.ready else "loading"
        reason = self.directory_reason if self.ready else "loading the directory"
        return health_document(ready=self.ready, directory=directory, reason=reason,
                               name=self.config.name, site=self.config.site,
                               hosts=len(self.snapshot.hosts), queue=self.backlog,
                               vcenters=sorted(self.snapshot.vcenters))

    def stop(self) -> None:
        """Cancel every timer (the service is stopping)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self.births.stop()
        self.queue.stop()
        self.writer.stop()


__all__ = ["FEED_TIMEOUT", "Engine", "desired_config", "digest", "effective_digest",
           "vcenter_name"]

"""The daemon's controller: what happens to hosts, and the answers of the HTTP API.

Everything here runs on the reactor thread; directory writes and vCenter calls go through the
`Blocking` runner (the daemon's thread pool).  The parts live in their own modules: births
and their admission (`births`, `admission`), the apply queue and its retry policy (`queue`),
what a failure means (`failures`) and what an apply's outcome does (`settlement`), host
state in memory and in the directory (`hoststate`),
the compliance scan (`scan`), the API's documents (`documents`, `answers`), ownership
(`ownership`) and the audit events (`audit`).  A transient failure is
retried with capped, jittered backoff for as long as it takes; a failure of the host's own
(invalid policy, a full or missing pool) waits for a change to its inputs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from stateless.agent.signing import Authorization
from stateless.daemon.answers import Answers
from stateless.daemon.approvals import Approvals
from stateless.daemon.audit import Audit
from stateless.daemon.births import Births
from stateless.daemon.config import DaemonConfig
from stateless.daemon.hoststate import IN_PROGRESS, HostStates, HostStatus, StateWriter
from stateless.daemon.leases import Lease
from stateless.daemon.metrics import Metrics
from stateless.daemon.outcomes import BirthOutcome, Signed
from stateless.daemon.overview import Overview
from stateless.daemon.ownership import Ownership
from stateless.daemon.ports import Blocking, Clock, Delayed, HostDirectory, VCenters
from stateless.daemon.quarantine import Quarantine
from stateless.daemon.queue import ApplyQueue, RetryPolicy
from stateless.daemon.reboots import Reboots
from stateless.daemon.scan import ComplianceScan
from stateless.daemon.served import vcenter_for
from stateless.daemon.settlement import Settlement
from stateless.daemon.takeover import lost
from stateless.errors import (
    NotFoundError,
    StatelessError,
    TransientVCenterError,
    ValidationError,
)
from stateless.model.birth import BirthMessage
from stateless.model.inventory import HostState, Problem, Snapshot
from stateless.model.names import HostNames
from stateless.plan import KeyDiff
from stateless.policy import Resolver
from stateless.prepare import (
    Target,
    effective_digest,
    inputs_digest,
    missing_allocations,
    prepare,
    with_allocations,
)
from stateless.security.seal import KeyRing
from stateless.vcenter.converge import Converged

log = Logger()

BACKOFF_BASE = 0.5  # seconds: the ceiling of the first retry's full-jitter delay
WRITE_RETRY_CAP = 10.0  # seconds between tries of a state write, at most
INDEX_SLICE = 2000  # hosts the resolver indexes per turn of the reactor after a start


class Engine(Ownership, Quarantine, Answers, Settlement):
    """Births, applies and status; the HTTP API's controller and the scan's fleet."""

    def __init__(self, config: DaemonConfig, reactor: Clock, blocking: Blocking,
                 directory: HostDirectory, vcenters: VCenters, registry: CollectorRegistry, *,
                 rng: random.Random | None = None, audit: Audit | None = None,
                 ring: KeyRing | None = None,
                 replay: Callable[[Authorization], bool] | None = None) -> None:
        self.config = config
        self.reactor = reactor
        self.blocking = blocking
        self.directory = directory
        self.vcenters = vcenters
        self.metrics = Metrics(registry)
        self.audit = audit or Audit(reactor, config.host_events)
        self.rng = rng or random.Random()
        self.snapshot = Snapshot()
        self.resolver = Resolver(self.snapshot)
        self.ready = False
        # Extra `/healthz` fields from other parts of the service (the replica check, ...).
        self.health_fields: list[Callable[[], dict[str, Any]]] = []
        self.directory_state = "loading"  # "synchronized" once the change feed is; "unreachable"
        self.directory_reason = "the change feed has not completed its first refresh"
        self.owned: set[str] = set()
        self.states = HostStates(reactor, self.metrics.hosts, self._state_changed)
        self.queue = ApplyQueue(reactor, RetryPolicy(BACKOFF_BASE, config.retry_cap), self.rng,
                                self._wake)
        self.writer = StateWriter(reactor, blocking, directory,
                                  RetryPolicy(BACKOFF_BASE / 2, min(config.retry_cap, WRITE_RETRY_CAP)),
                                  self.rng)
        self.names = HostNames()  # the hosts by name, for the name checks of births and applies
        self.births = Births(config, reactor, blocking, directory, self.metrics, self.rng,
                             self.queue, self._born, ring=ring, replay=replay,
                             quarantined=self._hold, resolve=self.resolver.resolve,
                             audit=self.audit, names=self.names)
        self.approvals = Approvals(self)
        self.scanner = ComplianceScan(self)
        self.overview = Overview(self, reactor.seconds, config.mode)
        self.reboots = Reboots(config.site, registry)
        self._located: dict[str, str] = {}  # where each host was last applied (its cluster)
        self._leaving: set[str] = set()  # being decommissioned: never taken back meanwhile
        self._clashed: set[str] = set()  # failed on another host's name: retried on host changes
        self._place: dict[str, str | None] = {}  # born hosts to (re)place in vCenter: thumbprint
        self._recheck: set[str] = set()  # running hosts whose inputs may have changed meanwhile
        self._slots: dict[str, defer.DeferredSemaphore] = {}
        self._drifted: dict[str, list[str]] = {}  # drift in vCenter being reverted: its keys
        self.known_problems: frozenset[Problem] = frozenset()
        self._timer: Delayed | None = None
        self.lease: Lease | None = None  # set by the service; None: applies need no lease
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
        self.names.update(before.hosts, snapshot.hosts, hosts)
        if not self.ready:
            self.births.snapshot = snapshot
            return
        self.births.update(snapshot)
        self._leaving = {u for u in self._leaving  # until its entry is gone or retired
                         if u in snapshot.hosts and snapshot.hosts[u].owner == self.config.name}
        # Hosts deleted from the directory: among those changed when the mirror says which.
        gone = self.owned - snapshot.hosts.keys() if hosts is None else {
            u for u in hosts if u in self.owned and u not in snapshot.hosts}
        for uuid in gone - self.births.tracked():
            if not self.queue.running(uuid):  # a running apply finds out by itself
                self._forget(uuid, "its directory entry was deleted")
        me = self.config.name
        # Who holds a host changes with its entry, or with the servers' (a lease renewed).
        held = self.owned if hosts is None or before.servers != snapshot.servers else [
            u for u in hosts if u in self.owned]
        for uuid, owner in lost(snapshot, me, held, self._now()).items():
            if not self.queue.running(uuid):  # an apply in flight finishes
                self.audit.host_taken(host=uuid, owner=owner, previous=me,
                                      why=f"server {owner} holds it now")
                self._forget(uuid, f"taken over by server {owner}")
        if before.vcenters != snapshot.vcenters or before.servers.get(me) != snapshot.servers.get(me):
            affected |= {u for u in self.owned if self._state(u) == HostState.FAILED}
        for uuid in sorted(affected & self.owned):
            self.reconsider(uuid)
        self._retry_clashed(hosts)
        self._flag_reboots(self.reboots.update(snapshot, self.owned, self.reactor.seconds(),
                                               before, hosts))
        self._adopt(before, snapshot, hosts)

    def resume(self) -> None:
        """After a start: take back every host this server owns and finish what was left."""
        self.ready = True
        self._index_slice()
        for uuid, host in self.snapshot.hosts.items():
            if host.owner == self.config.name and host.state is not None:
                self.own(uuid, host.state, host.reason)
        self.reboots.update(self.snapshot, self.owned, self.reactor.seconds())
        self._adopt(Snapshot(), self.snapshot)

    def _index_slice(self) -> None:
        """The resolver's reverse indexes (what a change affects), a slice per turn of the
        reactor once serving: at 50,000 hosts they cost half a second the start no longer
        waits for, and no turn holds births up for long."""
        if self.resolver.index_some(INDEX_SLICE):
            self.reactor.callLater(0, self._index_slice)

    def set_problems(self, problems: list[Problem]) -> None:
        """The directory's problems (`policy.problems`): one audit line per new or cleared one."""
        now = frozenset(problems)
        new = sorted(now - self.known_problems, key=str)
        resolved = sorted(self.known_problems - now, key=str)
        self.known_problems = now
        self.metrics.problems.set(len(now))
        self.audit.directory_problems(new, resolved)

    def lease_changed(self, live: bool) -> None:
        """Fenced or renewed again (see `leases`): applies waiting for the lease start now."""
        if live:
            self._wake()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), UTC)

    def directory_lost(self, reason: str) -> None:
        """The change feed lost the directory: say so until it is back."""
        if self.directory_state != "unreachable":
            self.audit.directory_down(reason=reason)
        self.directory_state = "unreachable"
        self.directory_reason = f"directory unreachable: {reason}"
        self.metrics.directory_up.set(0)

    def directory_back(self) -> None:
        """The change feed is synchronized (again): retry what waited for the directory."""
        was = self.directory_state
        self.directory_state, self.directory_reason = "synchronized", ""
        self.metrics.directory_up.set(1)
        if was == "unreachable":
            self.audit.directory_up()
            self.writer.flush()
            self.queue.retry_now(u for u in self.owned if self._cause(u) == "directory")

    # --- births ------------------------------------------------------------------------------

    def birth(self, message: BirthMessage, peer: str,
              signed: Signed | None = None) -> defer.Deferred[BirthOutcome]:
        return self.births.answer(message, peer, signed)

    def _born(self, uuid: str, message: BirthMessage) -> None:
        """The directory holds the birth: this server owns the host and will place it (with
        the thumbprint and name of its pin, never the birth's)."""
        self.owned.add(uuid)
        self._place[uuid] = None
        self.writer.drop(uuid)  # the birth wrote `pending` itself
        self.queue.discard(uuid)  # a retry timer, say: the birth supersedes it
        self.states.set(uuid, HostState.PENDING, "birth accepted", next_try=None)
        self.reboots.born(self.snapshot, message.identity, message.image,
                          self.reactor.seconds())

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
        if self.lease is not None and not self.lease.live:
            self.metrics.queue.set(self.backlog)
            return  # fenced: applies wait for the lease (see `leases`)
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
            effective = self.resolver.resolve_record(host)
        target = prepare(snap, host, effective, self.config.host_domain, self.names)
        vcenter = vcenter_for(snap, self.config.name, target.location, self._now())
        if uuid in self._place:  # just born (or left half-placed): where the rules put it
            self.audit.rule(host=uuid, location=effective.location,
                            placed_by="its directory entry" if host.location else "deploy rules",
                            matched=dict(self.resolver.rule_result(uuid).matched))
        reason = f"applying through vCenter {vcenter}"
        self.states.set(uuid, HostState.APPLYING, reason, next_try=None)
        if host.state not in IN_PROGRESS:  # a birth's `pending` says enough after a restart
            self.writer.write(uuid, HostState.APPLYING, reason)
        slot = self._slots.setdefault(vcenter,
                                      defer.DeferredSemaphore(self.config.vcenter_concurrency))
        try:
            done = yield slot.run(self.blocking, self.vcenters.converge, vcenter, target,
                                  place=uuid in self._place,
                                  thumbprint=target.host.thumbprint)
        except NotFoundError as exc:  # gone from vCenter meanwhile: the next try places it
            raise TransientVCenterError(str(exc)) from exc
        if not done.result.verified:
            diffs = ", ".join(d.key for d in done.result.diffs[:5])
            raise TransientVCenterError(f"host {uuid}: still differs after apply: {diffs}")
        return target, done

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
        return inputs_digest(effective, self.snapshot.pools, self._vcenter(effective.location))

    def _vcenter(self, location: str | None) -> str:
        """The vCenter this server applies a host at `location` through ('' when none)."""
        try:
            return vcenter_for(self.snapshot, self.config.name, location, self._now())
        except ValidationError:
            return ""

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
        moved = self._moved(uuid)
        if self._wanted(uuid) == applied and not moved:
            return
        self.metrics.drift.labels(source="directory").inc()
        self.audit.drift(host=uuid, keys=[], source="directory",
                         reason="effective configuration changed in the directory",
                         action="re-applying" if self.config.mode == "enforce" else "reported")
        if self.config.mode == "enforce":
            self.queue.add(uuid)
        elif status.state != HostState.DRIFTED:
            self._mark(uuid, HostState.DRIFTED, f"location changed to {moved}" if moved else
                       "effective configuration changed in the directory")

    def _moved(self, uuid: str) -> str | None:
        """The host's new location when its rules or entry moved it since it was applied."""
        was = self._located.get(uuid)
        try:
            now = self.resolver.resolve(uuid).location
        except StatelessError:
            return None
        return now if was is not None and now is not None and now != was else None

    def _flag_reboots(self, uuids: list[str]) -> None:
        for uuid in uuids:
            log.info("host {uuid}: reboot required: its image is now {image}", uuid=uuid,
                     image=self.reboots.wanted.get(uuid) or "none", event="reboot-required")

    def scan_hosts(self) -> list[str]:
        return sorted(u for u in self.owned if self.scannable(u))

    def scannable(self, uuid: str) -> bool:
        """Owned, and neither queued, running, waiting for its birth nor quarantined."""
        return (uuid in self.owned and not self.queue.busy(uuid)
                and not self.births.waiting(uuid) and not self.quarantined(uuid))

    def status(self, uuid: str) -> HostStatus | None:
        return self.states.get(uuid)

    def check(self, uuid: str) -> defer.Deferred[list[KeyDiff] | None]:
        """Compare the host with vCenter (the scan's question)."""
        snap = self.snapshot
        host = snap.hosts.get(uuid)
        if host is None:
            raise NotFoundError(f"host {uuid}: no directory entry (was it deleted?)")
        target = prepare(snap, host, self.resolver.resolve(uuid), self.config.host_domain,
                         self.names)
        return self.blocking(self.vcenters.check,
                             vcenter_for(snap, self.config.name, target.location, self._now()),
                             target)

    def vcenter_drift(self, uuid: str, reason: str, keys: Sequence[str] = ()) -> None:
        """The scan found the host differing in vCenter: apply it, or report it once (a host
        already drifted keeps the reason it was first marked with)."""
        status = self.states.get(uuid)
        if status is None:
            return
        enforce = self.config.mode == "enforce"
        if status.state == HostState.COMPLIANT:
            self.metrics.drift.labels(source="vcenter").inc()
            self.audit.drift(host=uuid, keys=keys, source="vcenter", reason=reason,
                             action="reverting" if enforce else "reported")
            if enforce:
                self._drifted[uuid] = list(keys)
        if enforce:
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

    def scan(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = self.scanner.run()
        return d.addCallback(lambda _: self.metrics.scans.inc())

    # --- state --------------------------------------------------------------------------------

    def _state(self, uuid: str) -> HostState | None:
        status = self.states.get(uuid)
        return status.state if status else None

    def _cause(self, uuid: str) -> str:
        status = self.states.get(uuid)
        return status.cause if status and status.state == HostState.FAILED else ""

    def _state_changed(self, uuid: str, before: HostState | None, status: HostStatus) -> None:
        self.audit.state(host=uuid, state=str(status.state),
                         previous=str(before) if before is not None else None,
                         reason=status.reason)

    def summary(self) -> dict[str, Any]:
        return self.overview.summary()

    def problems(self) -> dict[str, Any]:
        return self.overview.problems_document()

    def stop(self) -> None:
        """Cancel every timer (the service is stopping)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self.births.stop()
        self.queue.stop()
        self.writer.stop()


__all__ = ["Engine"]

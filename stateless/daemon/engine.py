"""The daemon's controller: births, the apply queue, drift, and the answers of the HTTP API.

Everything here runs on the reactor thread; directory writes and vCenter calls go to the
daemon's thread pool.  A host is in at most one apply at a time: a change that arrives while
it is being applied marks it to run once more afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from stateless.daemon.api import Accepted, BirthOutcome, Busy, Referral
from stateless.daemon.config import DaemonConfig
from stateless.errors import NotFoundError, StatelessError, TransientVCenterError, ValidationError
from stateless.model.birth import BirthMessage
from stateless.model.config import HostConfig
from stateless.model.effective import EffectiveConfig
from stateless.model.identity import HostIdentity
from stateless.model.inventory import ContainerKind, HostRecord, HostState, Snapshot
from stateless.policy import Resolver, resolve
from stateless.sites import nearest_servers, site_of

T = TypeVar("T")
log = Logger()

MAX_ATTEMPTS = 5
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
IN_PROGRESS = (HostState.PENDING, HostState.APPLYING)
BIRTH_FEED_TIMEOUT = 10.0  # seconds a recorded birth may take to come back through the change feed


def digest(values: Mapping[str, Any]) -> str:
    """A stable fingerprint of an effective configuration (what was applied)."""
    text = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in values.items()},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def effective_digest(effective: EffectiveConfig) -> str:
    """Like `digest`, but an invalid configuration has its own (it never matches an applied one)."""
    if effective.errors:
        return "invalid:" + digest({str(i): str(e) for i, e in enumerate(effective.errors)})
    return digest(effective.values())


def vcenter_name(host: HostRecord) -> str:
    """The name vCenter knows the host by: FQDN when known, else its address."""
    ident = host.identity
    if ident is None:
        return host.uuid
    if ident.hostname and ident.domain:
        return ident.fqdn
    return ident.ipv4 or ident.hostname or host.uuid


@attrs.define
class Status:
    state: HostState
    reason: str = ""
    since: float = 0.0
    plan: int = 0
    calls: int = 0
    tried: str = ""  # digest of the configuration a failed apply tried


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.births = Counter("stateless_births", "birth messages by outcome", ["outcome"],
                              registry=registry)
        self.applies = Counter("stateless_applies", "applies by result", ["result"],
                               registry=registry)
        self.apply_seconds = Histogram("stateless_apply_seconds", "time to apply one host",
                                       registry=registry)
        self.calls = Counter("stateless_vcenter_calls", "SOAP calls made by applies, placement "
                             "included",
                             registry=registry)
        self.queue = Gauge("stateless_queue", "hosts queued or being applied", registry=registry)
        self.hosts = Gauge("stateless_hosts", "hosts by state", ["state"], registry=registry)
        self.drift = Counter("stateless_drift", "drift found, by source", ["source"],
                             registry=registry)


class Engine:
    """Births, applies and status; the HTTP API's controller."""

    def __init__(self, config: DaemonConfig, reactor: Any, pool: ThreadPool, directory: Any,
                 registry: CollectorRegistry, *, vcenter: Callable[[str], Any],
                 rng: random.Random | None = None, clock: Callable[[], float] = time.time,
                 host_password: str = "") -> None:
        self.config = config
        self.reactor = reactor
        self.pool = pool
        self.directory = directory
        self.metrics = Metrics(registry)
        self.vcenter = vcenter  # name -> VCenterClient; called in the pool (it may log in)
        self.rng = rng or random.Random()
        self.clock = clock
        self.host_password = host_password
        self.snapshot = Snapshot()
        self.resolver = Resolver(self.snapshot)
        self.ready = False
        self.status: dict[str, Status] = {}
        self.owned: set[str] = set()
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._place: dict[str, str | None] = {}  # born hosts to (re)place in vCenter: thumbprint
        # Recorded births not yet seen through the change feed: uuid -> (identity, deadline).
        self._waiting: dict[str, tuple[HostIdentity, float]] = {}
        self._slots: dict[str, defer.DeferredSemaphore] = {}
        self._watchers: dict[str, list[defer.Deferred[None]]] = {}  # long polls of hosts
        self._active = 0
        # Containers this process has seen in vCenter; until then one placement creates them.
        self._idle: list[defer.Deferred[None]] = []

    # --- helpers -------------------------------------------------------------------------

    def _thread(self, fn: Callable[..., T], *args: Any, **kw: Any) -> defer.Deferred[T]:
        return threads.deferToThreadPool(self.reactor, self.pool, fn, *args, **kw)

    def _set(self, uuid: str, state: HostState, reason: str = "", *, write: bool = True,
             applied_digest: str | None = None, **extra: Any) -> defer.Deferred[None]:
        before = self.status.get(uuid)
        self.status[uuid] = Status(state, reason, self.clock(), **extra)
        if before is None or before.state != state:  # the gauge, without counting every host
            if before is not None:
                self.metrics.hosts.labels(state=str(before.state)).dec()
            self.metrics.hosts.labels(state=str(state)).inc()
        if state not in IN_PROGRESS:
            for waiter in self._watchers.pop(uuid, []):
                waiter.callback(None)
        if not write:
            return defer.succeed(None)
        d = self._thread(self.directory.set_host_state, uuid, state, reason[:1000],
                         applied_digest=applied_digest)
        d.addErrback(lambda f: log.failure("recording state of {uuid}", f, uuid=uuid))
        return d

    def _count_states(self) -> None:
        counts = dict.fromkeys(HostState, 0)
        for status in self.status.values():
            counts[status.state] += 1
        for state, n in counts.items():
            self.metrics.hosts.labels(state=str(state)).set(n)

    # --- directory changes ------------------------------------------------------------------

    def set_snapshot(self, snapshot: Snapshot) -> None:
        """A new view of the directory: re-resolve only the hosts it can affect."""
        self.snapshot = snapshot
        affected = self.resolver.update(snapshot)
        if not self.ready:
            return
        self._release_births()
        for uuid in affected & self.owned:
            status = self.status.get(uuid)
            if status is None or status.state not in (HostState.COMPLIANT, HostState.DRIFTED,
                                                      HostState.FAILED):
                continue
            host = snapshot.hosts.get(uuid)
            if host is None:
                continue
            try:
                effective = self.resolver.resolve(uuid)
            except NotFoundError:
                continue
            wanted = effective_digest(effective)
            if wanted == (status.tried if status.state == HostState.FAILED
                          else host.applied_digest):
                continue
            self.metrics.drift.labels(source="directory").inc()
            if self.config.mode == "enforce":
                self.enqueue(uuid)
            elif status.state != HostState.DRIFTED:
                self._set(uuid, HostState.DRIFTED, "effective configuration changed in the directory")

    def resume(self) -> None:
        """After a start: take back every host this server owns that was left unfinished."""
        self.ready = True
        for uuid, host in self.snapshot.hosts.items():
            if host.owner != self.config.name or host.state is None:
                continue
            self.owned.add(uuid)
            self.status[uuid] = Status(host.state, host.reason, self.clock())
            if host.state in IN_PROGRESS:
                self._place[uuid] = None
                self.enqueue(uuid)
        self._count_states()

    # --- births ------------------------------------------------------------------------------

    def birth(self, message: BirthMessage, peer: str) -> defer.Deferred[BirthOutcome]:
        identity = message.identity
        address = identity.ipv4 or peer
        snap = self.snapshot
        site = site_of(snap.sites.values(), address) if address else None
        if site is not None and site != self.config.site:
            servers = [s for s in nearest_servers(snap, address) if s.site == site]
            if servers:
                self.metrics.births.labels(outcome="referral").inc()
                return defer.succeed(Referral(site, tuple(
                    {"name": s.name, "url": s.url, "priority": s.priority, "weight": s.weight}
                    for s in servers)))
        uuid = identity.uuid
        if uuid not in self._queue and uuid not in self._running and uuid not in self._waiting \
                and self.backlog >= self.config.max_pending:
            self.metrics.births.labels(outcome="busy").inc()
            return defer.succeed(Busy(self.retry_after()))
        d = self._thread(self.directory.record_birth, identity, datetime.now(UTC),
                         self.config.name, known=uuid in snap.hosts,
                         thumbprint=message.thumbprint)

        def recorded(_: object) -> BirthOutcome:
            self.metrics.births.labels(outcome="accepted").inc()
            self.owned.add(uuid)
            self._place[uuid] = message.thumbprint
            self._set(uuid, HostState.PENDING, "birth accepted", write=False)
            self._waiting[uuid] = (identity, self.clock() + BIRTH_FEED_TIMEOUT)
            self._release_births()
            if uuid in self._waiting:
                self.reactor.callLater(BIRTH_FEED_TIMEOUT, self._release_births)
            return Accepted(uuid)

        d.addCallback(recorded)
        return d

    def _release_births(self) -> None:
        """Queue the births the snapshot now reflects.

        The birth was written to the directory, but this engine resolves from the change
        feed's view: applying before the entry (and its new identity, which deploy rules
        match) arrives would resolve a missing or stale host.
        """
        now = self.clock()
        for uuid, (identity, deadline) in list(self._waiting.items()):
            host = self.snapshot.hosts.get(uuid)
            if host is not None and host.identity == identity:
                del self._waiting[uuid]
                self.enqueue(uuid)
            elif now >= deadline:
                log.warn("host {uuid}: birth not seen in the change feed after {t:.0f}s; "
                         "applying with what the directory showed", uuid=uuid,
                         t=BIRTH_FEED_TIMEOUT)
                del self._waiting[uuid]
                self.enqueue(uuid)

    @property
    def backlog(self) -> int:
        return len(self._queue) + len(self._running) + len(self._waiting)

    def retry_after(self) -> int:
        """Seconds until the backlog has room, roughly; jittered so retries spread out."""
        per_host = 2.0 / max(1, self.config.vcenter_concurrency)
        return max(1, int(self.backlog * per_host * (0.5 + self.rng.random())))

    # --- the apply queue ---------------------------------------------------------------------

    def enqueue(self, uuid: str) -> None:
        if uuid in self._running:
            self._again.add(uuid)
            return
        self._queue[uuid] = None
        self.metrics.queue.set(self.backlog)
        self.reactor.callLater(0, self._pump)

    def _pump(self) -> None:
        # Twice the vCenter slots: while some hosts are in vCenter, as many more do their
        # directory work (allocations, state) and wait for a slot, so no slot sits idle.
        limit = 2 * max(1, self.config.vcenter_concurrency) * max(1, len(self.snapshot.vcenters))
        while self._queue and len(self._running) < limit:
            uuid, _ = self._queue.popitem(last=False)
            self._running.add(uuid)
            d = self._run(uuid)
            d.addBoth(self._finished, uuid)

    def _finished(self, result: object, uuid: str) -> None:
        self._running.discard(uuid)
        if uuid in self._again:
            self._again.discard(uuid)
            self._queue[uuid] = None
        self.metrics.queue.set(self.backlog)
        self._pump()
        if not self.backlog:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    def idle(self) -> defer.Deferred[None]:
        """Fires when nothing is queued or running (tests and shutdown use it)."""
        if not self.backlog:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        return d

    @defer.inlineCallbacks
    def _run(self, uuid: str) -> Any:
        for attempt in range(MAX_ATTEMPTS):
            try:
                yield self._apply(uuid)
                return
            except TransientVCenterError as exc:
                delay = self.rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
                log.warn("host {uuid}: {error}; retry {n} in {delay:.1f}s", uuid=uuid,
                         error=exc, n=attempt + 1, delay=delay)
                yield task.deferLater(self.reactor, delay, lambda: None)
            except StatelessError as exc:
                self.metrics.applies.labels(result="failed").inc()
                yield self._set(uuid, HostState.FAILED, str(exc), tried=self._tried(uuid))
                return
            except Exception as exc:  # a bug must not wedge the queue: record it, go on
                log.failure("applying host {uuid}", uuid=uuid)
                yield self._set(uuid, HostState.FAILED, f"internal error: {exc!r}")
                return
        self.metrics.applies.labels(result="failed").inc()
        yield self._set(uuid, HostState.FAILED, f"vCenter kept failing after {MAX_ATTEMPTS} "
                        "attempts; see the server log")

    def _effective(self, uuid: str) -> EffectiveConfig:
        return self.resolver.resolve(uuid)

    def _tried(self, uuid: str) -> str:
        """What a failed apply tried, so only a change to it triggers another try."""
        try:
            return effective_digest(self._effective(uuid))
        except StatelessError:
            return ""

    @defer.inlineCallbacks
    def _apply(self, uuid: str) -> Any:
        started = self.clock()
        snap = self.snapshot
        host = snap.hosts.get(uuid)
        if host is None:
            raise NotFoundError(f"host {uuid}: no directory entry (was it deleted?)")
        effective = self._effective(uuid)
        missing = _missing_allocations(effective, host)
        if missing:
            made = yield self._thread(self.directory.allocate_all, uuid, missing, snap.pools)
            host = attrs.evolve(host, allocations=(*host.allocations, *made))
            effective = resolve(attrs.evolve(snap, hosts={**snap.hosts, uuid: host}), uuid)
        if effective.errors:
            # Invalid policy never reaches a host: it keeps its last good configuration.
            raise ValidationError("; ".join(str(e) for e in effective.errors))
        if effective.location is None or effective.location not in snap.containers:
            raise ValidationError(f"host {uuid}: no location; add a deploy rule or "
                                  "`stateless host add {uuid} --path PATH`")
        desired = desired_config(effective)
        vcenter = self._vcenter_for(snap)
        kind = snap.containers[effective.location].kind
        leaf = "cluster" if kind == ContainerKind.CLUSTER else "folder"
        # A host the directory already shows pending or applying is resumed after a restart
        # either way: saying "applying" there too would only cost a write per birth.
        yield self._set(uuid, HostState.APPLYING, f"applying through vCenter {vcenter}",
                        write=host.state not in IN_PROGRESS)
        slot = self._slots.setdefault(vcenter,
                                      defer.DeferredSemaphore(self.config.vcenter_concurrency))
        placing = uuid in self._place
        thumbprint = self._place.get(uuid) or host.thumbprint  # recorded: survives a restart
        result, calls = yield slot.run(self._thread, self._apply_blocking, vcenter, host,
                                       effective.location, leaf, desired, placing, thumbprint)
        self._place.pop(uuid, None)
        self.metrics.calls.inc(calls)
        self.metrics.apply_seconds.observe(self.clock() - started)
        if not result.verified:
            diffs = ", ".join(d.key for d in result.diffs[:5])
            raise TransientVCenterError(f"host {uuid}: still differs after apply: {diffs}")
        self.metrics.applies.labels(result="compliant").inc()
        yield self._set(uuid, HostState.COMPLIANT, "", plan=len(result.plan.changes),
                        calls=calls, applied_digest=digest(effective.values()))

    def _apply_blocking(self, vcenter: str, host: HostRecord, location: str, leaf: str,
                        desired: HostConfig, placing: bool, thumbprint: str | None) -> Any:
        """Place (when needed) and apply: (ApplyResult, SOAP calls made, placement included)."""
        client = self.vcenter(vcenter)
        start = client.session.calls
        name = vcenter_name(host)
        ref = None
        if not placing:
            # vCenter's DNS-name search only sees names hosts report themselves; a host it
            # misses is looked for where it was placed (ensure_host is idempotent).
            with contextlib.suppress(NotFoundError):
                ref = client.resolve(name)
        if ref is None:
            # Concurrent placements into a new cluster are safe: placement uses a container
            # that another apply created meanwhile (stateless.vcenter.lifecycle).
            ref = client.ensure_host(name, location, leaf, identity=host.identity,
                                     thumbprint=thumbprint, password=self.host_password)
        result = client.apply(ref, desired)
        return result, client.session.calls - start

    def _compliance_blocking(self, vcenter: str, host: HostRecord, desired: HostConfig) -> Any:
        return self.vcenter(vcenter).compliance(vcenter_name(host), desired)

    def _vcenter_for(self, snap: Snapshot) -> str:
        """The vCenter this server applies through: the one its entry names, or the only one."""
        me = snap.servers.get(self.config.name)
        names = [n for n in (me.vcenters if me else ()) if n in snap.vcenters]
        if not names and len(snap.vcenters) == 1:
            names = list(snap.vcenters)
        if not names:
            if not snap.vcenters:
                raise ValidationError("no vCenter is registered: add one with `stateless vcenter "
                                      "add NAME --url URL --user U --password-file F`")
            raise ValidationError(f"server {self.config.name} serves no registered vCenter: list "
                                  "one in its server entry (several are registered)")
        return names[0]

    # --- compliance scan -----------------------------------------------------------------------

    @defer.inlineCallbacks
    def scan(self) -> Any:
        """Compare every compliant host with vCenter; drift is re-applied or reported."""
        for uuid in sorted(self.owned):
            status = self.status.get(uuid)
            if status is None or status.state != HostState.COMPLIANT or uuid in self._running:
                continue
            host = self.snapshot.hosts.get(uuid)
            if host is None:
                continue
            try:
                effective = self._effective(uuid)
                desired = desired_config(effective)
                vcenter = self._vcenter_for(self.snapshot)
                diffs = yield self._thread(self._compliance_blocking, vcenter, host, desired)
            except StatelessError as exc:
                log.warn("compliance scan of {uuid}: {error}", uuid=uuid, error=exc)
                continue
            if not diffs:
                continue
            self.metrics.drift.labels(source="vcenter").inc()
            keys = ", ".join(d.key for d in diffs[:5])
            if self.config.mode == "enforce":
                self.enqueue(uuid)
            else:
                yield self._set(uuid, HostState.DRIFTED, f"differs in vCenter: {keys}")

    # --- HTTP API answers ---------------------------------------------------------------------

    def _host_doc(self, uuid: str) -> dict[str, Any]:
        host = self.snapshot.hosts.get(uuid)
        status = self.status.get(uuid)
        state = status.state if status else (host.state if host else None)
        reason = status.reason if status else (host.reason if host else "")
        location = host.location if host else None
        if host is not None and location is None:
            with contextlib.suppress(StatelessError):
                location = self._effective(uuid).location  # chosen by a deploy rule
        doc: dict[str, Any] = {
            "host": uuid, "state": str(state) if state else None, "reason": reason,
            "location": location,
            "owner": host.owner if host else None,
            "applied_digest": host.applied_digest if host else "",
        }
        if status is not None:
            doc.update(plan_changes=status.plan, vcenter_calls=status.calls,
                       since=datetime.fromtimestamp(status.since, UTC).isoformat())
        return doc

    def hosts(self) -> list[dict[str, Any]]:
        uuids = sorted(set(self.snapshot.hosts) | set(self.status))
        return [self._host_doc(u) for u in uuids]

    def host(self, uuid: str) -> dict[str, Any]:
        if uuid not in self.snapshot.hosts and uuid not in self.status:
            raise NotFoundError(f"host {uuid}: unknown; it has not been born nor added")
        return self._host_doc(uuid)

    def settled(self, uuid: str, timeout: float) -> defer.Deferred[dict[str, Any]]:
        """The host's document once it is no longer pending or applying, or after `timeout`.

        Agents that wait for their host hold one request each instead of polling, which
        during a boot storm would cost the server a request per host per poll interval.
        """
        doc = self.host(uuid)
        status = self.status.get(uuid)
        if status is None or status.state not in IN_PROGRESS or timeout <= 0:
            return defer.succeed(doc)
        waiters = self._watchers.setdefault(uuid, [])

        def forget(d: defer.Deferred[None]) -> None:
            with contextlib.suppress(ValueError):
                waiters.remove(d)
            if not waiters and self._watchers.get(uuid) is waiters:
                del self._watchers[uuid]

        waiter: defer.Deferred[None] = defer.Deferred(canceller=forget)
        waiters.append(waiter)
        waiter.addTimeout(timeout, self.reactor, onTimeoutCancel=lambda _result, _t: None)
        return waiter.addCallback(lambda _: self.host(uuid))

    def effective(self, uuid: str) -> dict[str, Any]:
        return self._effective(uuid).to_json()

    def locate(self, address: str) -> list[dict[str, Any]]:
        return [{"name": s.name, "site": s.site, "url": s.url, "priority": s.priority,
                 "weight": s.weight} for s in nearest_servers(self.snapshot, address)]

    def health(self) -> dict[str, Any]:
        return {"ok": self.ready, "name": self.config.name, "site": self.config.site,
                "directory": "synchronized" if self.ready else "loading",
                "hosts": len(self.snapshot.hosts), "queue": self.backlog,
                "vcenters": sorted(self.snapshot.vcenters)}


def desired_config(effective: EffectiveConfig) -> HostConfig:
    return HostConfig.from_settings(effective.values(), [r.target for r in effective.removed])


def _missing_allocations(effective: EffectiveConfig, host: HostRecord) -> list[tuple[str, str]]:
    have = {(a.item, a.pool) for a in host.allocations}
    out = []
    for key, setting in effective.settings.items():
        if key.startswith("vmknic.") and key.endswith(".ip") and isinstance(setting.value, str) \
                and setting.value.startswith("pool:"):
            item = key[: -len(".ip")]
            pool = setting.value[len("pool:"):]
            if (item, pool) not in have:
                out.append((item, pool))
    return out

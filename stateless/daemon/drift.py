"""Drift the moment it happens: vCenter pushes changes of the hosts this server owns.

One `HostWatch` (a `WaitForUpdatesEx` session, `stateless.vcenter.watch`) on the vCenter this
server applies through.  Its waits run in the daemon's thread pool one after the other, each
bounded by `max_wait`; a change of a watched host is compared at once with the host's desired
configuration, exactly as the periodic scan compares it, and the engine reverts it (mode
`enforce`) or marks the host drifted (`report`).  The scan stays as the safety net.

Which hosts are watched follows the engine: owned hosts that are compliant or drifted, synced
every `SYNC_INTERVAL` seconds (one `ModifyListView` when the set changed).  What is watched
is what their desired configurations name: the property paths of those item kinds
(`stateless.vcenter.paths`), worked out once per host and applied digest, plus every host's
`parent`, so a host moved to another cluster by hand is compared at once (its `location`).
A lost session is logged (`event=watch_lost`), retried with capped, jittered backoff, and
once subscribed again every watched host is compared (what changed meanwhile is unknown).
Nothing the watch or a comparison raises ends the loop.

Log events: `drift` (a change found, with its keys), `drift_reverted` (applied again and
compliant), `watch_lost`, `watch_subscribed`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from stateless.daemon.hoststate import HostStatus
from stateless.daemon.loops import Periodic
from stateless.daemon.ports import Blocking, Clock
from stateless.daemon.scan import describe
from stateless.errors import StatelessError
from stateless.model.config import HostConfig
from stateless.model.inventory import HostState, Snapshot
from stateless.model.names import HostNames
from stateless.plan import LOCATION, KeyDiff, compliance, managed_kinds
from stateless.prepare import Target, prepare, serving_vcenter
from stateless.vcenter.paths import KIND_PATHS, PLACEMENT_PATHS, covered_kinds, paths_of_kinds
from stateless.vcenter.read import pushed_config
from stateless.vcenter.watch import MAX_WAIT, HostWatch, Updates

log = Logger()

SYNC_INTERVAL = 1.0  # seconds between comparisons of the watched hosts with the owned ones
RETRY = (0.5, 30.0)  # seconds: first and longest wait before subscribing again
REVERT_TIMEOUT = 300.0  # seconds a reverted host is followed for `drift_reverted`
WATCHED = (HostState.COMPLIANT, HostState.DRIFTED)


class Engine(Protocol):
    """The engine as the watch uses it (all of it public, as the scan uses it)."""

    snapshot: Snapshot
    resolver: Any
    config: Any  # DaemonConfig
    names: HostNames

    def scan_hosts(self) -> list[str]: ...

    def scannable(self, uuid: str) -> bool: ...

    def status(self, uuid: str) -> HostStatus | None: ...

    def check(self, uuid: str) -> defer.Deferred[list[KeyDiff] | None]: ...

    def vcenter_drift(self, uuid: str, reason: str, keys: Sequence[str] = ()) -> None: ...

    def vcenter_matches(self, uuid: str) -> None: ...

    def settled(self, uuid: str, timeout: float) -> defer.Deferred[dict[str, Any]]: ...


class Watches(Protocol):
    """What the watch needs of the vCenter clients (blocking)."""

    def watch(self, name: str, max_wait: int) -> HostWatch: ...

    def find(self, vcenter: str, target: Target) -> str | None: ...


class DriftWatch:
    """The change watch of this server's vCenter, and what it does with a change."""

    def __init__(self, engine: Engine, vcenters: Watches, clock: Clock, blocking: Blocking, *,
                 server: str, mode: str, max_wait: int = MAX_WAIT,
                 rng: random.Random | None = None, waiting: Blocking | None = None) -> None:
        self.engine = engine
        self.vcenters = vcenters
        self.clock = clock
        self.blocking = blocking
        # Where the long `WaitForUpdatesEx` runs: a thread of its own, so the wait is never
        # queued behind a storm's applies in the shared pool.
        self.waiting = waiting or blocking
        self.server = server
        self.mode = mode
        self.max_wait = max_wait
        self.rng = rng or random.Random()
        self.vcenter: str | None = None
        self.watch: HostWatch | None = None
        self.state = "starting"  # watching | lost | idle (no vCenter)
        self.reason = ""
        self.moids: dict[str, str] = {}  # uuid -> managed object id, once found
        self._found: dict[str, float] = {}  # uuid -> its status's `since` when its id was found
        self.watched: dict[str, str] = {}  # moid -> uuid, as last given to the watch
        # uuid -> (applied digest, item kinds its desired configuration names)
        self.kinds: dict[str, tuple[str, frozenset[str]]] = {}
        self.changes = 0  # changes reported by vCenter
        self.compared = 0  # hosts compared because of a change or a new subscription
        self._stopped = False
        self._subscribed_once = False
        self._loop: defer.Deferred[None] | None = None
        self._sync = Periodic(clock, SYNC_INTERVAL, self.sync, name="drift watch hosts")

    # --- running -----------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = self._run()
        self._sync.start(now=True)

    @defer.inlineCallbacks
    def stop(self) -> Any:
        self._stopped = True
        yield self._sync.stop()
        watch, self.watch = self.watch, None
        if watch is not None:
            yield self.blocking(watch.close)  # a wait in progress fails and ends the loop

    def health(self) -> dict[str, dict[str, Any]]:
        """For `/v1/summary`: how the watch of each vCenter stands."""
        if self.vcenter is None:
            return {}
        return {self.vcenter: {"state": self.state, "reason": self.reason,
                               "hosts": len(self.watched), "changes": self.changes}}

    @defer.inlineCallbacks
    def _run(self) -> Any:
        failures = 0
        while not self._stopped:
            try:
                watch = self._current()
                if watch is None:
                    self.state, self.reason = "idle", "no vCenter to watch"
                    yield self._sleep(self.max_wait)
                    continue
                updates = yield self.waiting(watch.wait)
                if self._stopped:
                    break
                if self.state != "watching":
                    self.state, self.reason = "watching", ""
                failures = 0
                self._handle(updates)
            except Exception as exc:
                if self._stopped:
                    break
                failures += 1
                self.state, self.reason = "lost", str(exc)
                if isinstance(exc, StatelessError):
                    log.warn("vCenter watch {vcenter}: {reason}; subscribing again",
                             vcenter=self.vcenter, reason=str(exc), event="watch_lost")
                else:
                    log.failure("vCenter watch {vcenter}", vcenter=self.vcenter, event="watch_lost")
                ceiling = min(RETRY[1], RETRY[0] * 2 ** (failures - 1))
                yield self._sleep(self.rng.uniform(RETRY[0] / 2, ceiling))

    def _sleep(self, seconds: float) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self.clock.callLater(seconds, d.callback, None)
        return d

    def _current(self) -> HostWatch | None:
        """The watch of the vCenter this server serves now (a new one when that changed)."""
        try:
            name: str | None = serving_vcenter(self.engine.snapshot, self.server)
        except StatelessError:
            name = None
        if name != self.vcenter:
            old, self.watch = self.watch, None
            if old is not None:
                self.blocking(old.close)
            self.vcenter, self.moids, self.watched, self.kinds = name, {}, {}, {}
            self._found = {}
            self._subscribed_once = False
            if name is not None:
                self.watch = self.vcenters.watch(name, self.max_wait)
        return self.watch

    def _handle(self, updates: Updates) -> None:
        if updates.resubscribed:
            log.info("vCenter watch {vcenter}: subscribed, {hosts} host(s)",
                     vcenter=self.vcenter, hosts=len(self.watched), event="watch_subscribed")
            if self._subscribed_once:  # what changed while the watch was lost is unknown
                for uuid in sorted(self.watched.values()):
                    self.compare(uuid, ())
            self._subscribed_once = True
        for change in updates.changes:
            found = self.watched.get(change.moid)
            if found is not None:
                self.changes += 1
                self.compare(found, change.paths, change.values)

    # --- which hosts -------------------------------------------------------------------------

    def wanted(self) -> list[str]:
        """Owned hosts that are compliant or drifted and not being applied."""
        return [u for u in self.engine.scan_hosts() if self._watched_state(u)]

    def is_wanted(self, uuid: str) -> bool:
        return self.engine.scannable(uuid) and self._watched_state(uuid)

    def _watched_state(self, uuid: str) -> bool:
        status = self.engine.status(uuid)
        return status is not None and status.state in WATCHED

    @defer.inlineCallbacks
    def sync(self) -> Any:
        """Give the watch the hosts it should watch (finding their ids in vCenter first)."""
        watch, vcenter = self.watch, self.vcenter
        if watch is None or vcenter is None:
            return
        wanted = self.wanted()
        # An apply may place a host again as a new object (moved back, or removed in vCenter
        # meanwhile), so a host whose state changed since its id was found is looked up again
        # (the vCenter client keeps the id: no call when it is unchanged).
        since = {u: self._since(u) for u in wanted}
        self.moids = {u: m for u, m in self.moids.items() if self._found.get(u) == since.get(u)}
        self._found = {u: s for u, s in self._found.items() if u in self.moids}
        targets = self._refresh_kinds(wanted)
        missing = [u for u in wanted if u not in self.moids]
        try:
            for uuid in missing:
                target = targets.get(uuid) or self._target(uuid)
                if target is None:
                    continue
                moid = yield self.blocking(self.vcenters.find, vcenter, target)
                if moid is not None:
                    self.moids[uuid], self._found[uuid] = moid, since[uuid]
            hosts = {self.moids[u]: u for u in wanted if u in self.moids}
            kinds = {k for u in hosts.values() if u in self.kinds for k in self.kinds[u][1]}
            paths = paths_of_kinds(kinds)
            if hosts != self.watched or paths != frozenset(watch.paths) or watch.stale():
                yield self.blocking(watch.set_hosts, sorted(hosts), paths)
                self.watched = hosts
        except StatelessError:
            return  # vCenter is not answering: the watch loop says so; the next sync tries again

    def _since(self, uuid: str) -> float:
        status = self.engine.status(uuid)
        return status.since if status is not None else 0.0

    def _refresh_kinds(self, wanted: list[str]) -> dict[str, Target]:
        """Know the item kinds of every wanted host; the targets prepared for it, by uuid.

        Worked out again only when the host was applied since (its applied digest changed).
        """
        hosts = self.engine.snapshot.hosts
        targets: dict[str, Target] = {}
        kept: dict[str, tuple[str, frozenset[str]]] = {}
        for uuid in wanted:
            record = hosts.get(uuid)
            digest = record.applied_digest if record is not None else ""
            known = self.kinds.get(uuid)
            if known is not None and known[0] == digest:
                kept[uuid] = known
                continue
            target = self._target(uuid)
            if target is not None:
                targets[uuid] = target
                kept[uuid] = (digest, managed_kinds(target.desired))
        self.kinds = kept
        return targets

    def _target(self, uuid: str) -> Target | None:
        snapshot = self.engine.snapshot
        host = snapshot.hosts.get(uuid)
        if host is None:
            return None
        try:
            return prepare(snapshot, host, self.engine.resolver.resolve(uuid),
                           self.engine.config.host_domain, self.engine.names)
        except StatelessError:
            return None  # the engine says why it cannot apply the host; nothing to watch

    # --- a change ----------------------------------------------------------------------------

    def compare(self, uuid: str, paths: tuple[str, ...],
                values: Mapping[str, Any] | None = None) -> defer.Deferred[None]:
        d = self._compare(uuid, paths, values or {})
        d.addErrback(self._compare_failed, uuid)
        return d

    def _compare_failed(self, failure: Any, uuid: str) -> None:
        if failure.check(StatelessError):
            log.warn("host {uuid}: comparing a change in vCenter: {reason}", uuid=uuid,
                     reason=failure.getErrorMessage())
        else:
            log.failure("host {uuid}: comparing a change in vCenter", failure, uuid=uuid)

    @defer.inlineCallbacks
    def _compare(self, uuid: str, paths: tuple[str, ...], values: Mapping[str, Any]) -> Any:
        """Compare the host now, as the scan would; revert or report what differs.

        When the values vCenter pushed hold every kind the change touched and match the
        desired configuration, they are the answer; otherwise the host is read.
        """
        if not self.is_wanted(uuid):
            return  # being applied (its apply verifies), failed, or no longer ours
        started = self.clock.seconds()
        self.compared += 1
        target = self._target(uuid) if values else None
        if target is not None and pushed_compliant(target.desired, values):
            self.engine.vcenter_matches(uuid)
            return
        diffs = yield self.engine.check(uuid)
        if diffs is not None and not diffs:
            self.engine.vcenter_matches(uuid)
            return
        keys = [d.key for d in diffs or ()]
        # The engine writes the audit events (drift, then drift_reverted once applied).
        log.debug("host {uuid}: changed in vCenter {vcenter} ({paths})", uuid=uuid,
                  vcenter=self.vcenter, paths=list(paths))
        before = self.engine.status(uuid)
        self.engine.vcenter_drift(uuid, describe(diffs), keys)
        if LOCATION in keys:
            self.moids.pop(uuid, None)  # placed again, it is a new object: found anew
        if self.mode == "enforce" and before is not None:
            yield self._follow(uuid, before.since, started, keys)

    @defer.inlineCallbacks
    def _follow(self, uuid: str, since: float, started: float, keys: list[str]) -> Any:
        """Log `drift_reverted` once the host is compliant again after this drift."""
        deadline = started + REVERT_TIMEOUT
        while self.clock.seconds() < deadline and not self._stopped:
            status = self.engine.status(uuid)
            if status is None:
                return
            if status.state == HostState.COMPLIANT and status.since > since:
                log.debug("host {uuid}: reverted in {seconds:.2f}s", uuid=uuid, keys=keys,
                          seconds=self.clock.seconds() - started)
                return
            if status.state == HostState.FAILED:
                return  # the engine logs why, and retries
            yield self._sleep(0.05)


def pushed_compliant(desired: HostConfig, values: Mapping[str, Any]) -> bool:
    """Whether pushed property values (path -> value) show every item kind they touch as
    desired.  False when a touched kind is not wholly among them (NIC-type tagging pushed
    without the VMkernel NICs, or a new `parent`): only a read can tell then."""
    if values.keys() & set(PLACEMENT_PATHS):
        return False  # where the host sits now is read with its parent's path
    named = managed_kinds(desired)
    touched = {k for k in named if set(KIND_PATHS[k]) & values.keys()}
    if not touched or not touched <= covered_kinds(values):
        return False
    return not compliance(pushed_config(values), desired, touched)


__all__ = ["DriftWatch", "pushed_compliant"]

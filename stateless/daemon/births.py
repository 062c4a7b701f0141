"""Births: authentication, referral or coverage (`coverage`), admission, the directory write,
the wait for the feed.

A birth is first authenticated (`birthauth`: its signature with one of the site's current
enrollment keys, its timestamp, its nonce in the site-wide replay store), then referred to
its own site or admitted (`security.admission`): a known host must match its pinned identity,
an unknown one passes as the site's admission mode says. A refused birth is answered 401/403
and leaves nothing in the directory, the pools or vCenter; a quarantined one is recorded with
its claimed identity and never applied until an admin approves it (`quarantine`).

A birth is answered 202 only once the directory holds it.  The engine resolves hosts from the
change feed's view, so an accepted birth is applied once the feed shows the entry it wrote
(with the identity deploy rules match), or after `FEED_TIMEOUT` with whatever the view has.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from stateless.agent.signing import Authorization
from stateless.daemon.admission import Admission
from stateless.daemon.audit import Audit
from stateless.daemon.config import DaemonConfig
from stateless.daemon.coverage import BirthRoute, birth_route
from stateless.daemon.metrics import Metrics
from stateless.daemon.outcomes import Accepted, BirthOutcome, Busy, Quarantined, Referral, Refused, Signed
from stateless.daemon.ports import Blocking, Clock, Delayed, HostDirectory
from stateless.daemon.queue import ApplyQueue
from stateless.errors import StatelessError
from stateless.model.birth import BirthMessage
from stateless.model.effective import EffectiveConfig
from stateless.model.identity import HostIdentity
from stateless.model.inventory import HostRecord, HostState, Snapshot
from stateless.model.names import HostNames
from stateless.model.security import DEFAULT_ADMISSION
from stateless.prepare import vcenter_name
from stateless.security import admission as gate
from stateless.security.birthauth import BirthAuthError, authenticate
from stateless.security.seal import KeyRing

log = Logger()

FEED_TIMEOUT = 10.0  # seconds a recorded birth may take to come back through the change feed


class Births:
    """The births in flight, from the first byte of the request until the apply is queued."""

    def __init__(self, config: DaemonConfig, clock: Clock, blocking: Blocking,
                 directory: HostDirectory, metrics: Metrics, rng: random.Random,
                 queue: ApplyQueue, accepted: Callable[[str, BirthMessage], None], *,
                 ring: KeyRing | None = None, replay: Callable[[Authorization], bool] | None = None,
                 quarantined: Callable[[str, str], None] | None = None,
                 resolve: Callable[[str], EffectiveConfig] | None = None,
                 audit: Audit | None = None, names: HostNames | None = None) -> None:
        self.config = config
        self._audit = audit or Audit(clock, config.host_events)
        self._ring = ring or KeyRing([])
        self._replay = replay  # the site-wide nonce store's `seen`
        self._quarantined = quarantined  # the engine's bookkeeping of a quarantined host
        self._resolve = resolve  # a known host's effective configuration (its name in vCenter)
        self._names = names if names is not None else HostNames()  # kept by the engine
        self._held: tuple[Snapshot, set[str]] | None = None  # quarantined in that snapshot
        self._holding: set[str] = set()  # quarantined here since (write in flight or not seen)
        self._clock = clock
        self._blocking = blocking
        self._directory = directory
        self._metrics = metrics
        self._queue = queue
        self._accepted = accepted  # the engine's bookkeeping, once the directory holds it
        self.admission = Admission(config.max_pending, rng)
        self.snapshot = Snapshot()
        # Recorded, not yet seen through the change feed: uuid -> (identity, deadline).
        self._waiting: dict[str, tuple[HostIdentity, float]] = {}
        self.unseen: set[str] = set()  # released after the timeout without the feed showing them
        self._timers: list[Delayed] = []

    @property
    def backlog(self) -> int:
        """Births waiting for the feed, and hosts queued or being applied."""
        return len(self._waiting) + self._queue.backlog

    def waiting(self, uuid: str) -> bool:
        return uuid in self._waiting

    def tracked(self) -> set[str]:
        """Hosts born here that the directory view may not show yet."""
        return self._waiting.keys() | self.unseen

    def auth_required(self) -> bool:
        """Whether births must be signed: `--birth-auth`, else once the site has a key."""
        if self.config.birth_auth:
            return self.config.birth_auth == "required"
        site = self.snapshot.sites.get(self.config.site)
        return bool(site is not None and site.enroll_keys)

    def answer(self, message: BirthMessage, peer: str,
               signed: Signed | None = None) -> defer.Deferred[BirthOutcome]:
        """Authenticate, then refer, admit, quarantine or refuse the birth."""
        header = signed.header if signed is not None else None
        if not header and not self.auth_required():
            # `--birth-auth optional` (or a site without keys): unsigned, admitted as any other
            return self._admit(message, peer, None)
        body = signed.body if signed is not None else b""
        d = self._blocking(authenticate, header, body, self.snapshot.sites, self._ring,
                           now=self._clock.seconds(), replay=self._replay)

        def refused(failure: Any) -> BirthOutcome:
            failure.trap(BirthAuthError)
            return self._refuse(message, peer, 401, str(failure.value), "unauthenticated")

        outcome: defer.Deferred[Any] = d.addCallbacks(
            lambda auth: self._admit(message, peer, auth), refused)
        return outcome

    def _refuse(self, message: BirthMessage, peer: str, status: int, reason: str,
                outcome: str) -> Refused:
        self._metrics.births.labels(outcome=outcome).inc()
        self._audit.birth_refused(host=message.identity.uuid, peer=peer, status=status,
                                  reason=reason)
        return Refused(status, reason)

    def _admit(self, message: BirthMessage, peer: str,
               auth: Authorization | None) -> defer.Deferred[BirthOutcome]:
        identity = message.identity
        route = self._route(identity.ipv4 or peer)
        if route.refer:
            self._metrics.births.labels(outcome="referral").inc()
            referral = Referral(route.site or "", tuple(
                {"name": s.name, "url": s.url, "priority": s.priority, "weight": s.weight}
                for s in route.refer), route.sites)
            self._audit.referral(host=identity.uuid, identity=identity, site=referral.site,
                                 servers=[str(s["name"]) for s in referral.servers])
            return defer.succeed(referral)
        # The host's site: this server's, or one it covers (`coverage`), whose key and
        # admission mode apply.
        home = route.site or self.config.site
        if auth is not None and auth.site not in (self.config.site, home):
            return defer.succeed(self._refuse(
                message, peer, 403, f"birth refused: the host is enrolled in site {auth.site}; "
                f"this server serves site {home}", "refused"))
        site = self.snapshot.sites.get(home)
        mode = site.admission if site is not None else DEFAULT_ADMISSION
        host = self.snapshot.hosts.get(identity.uuid)
        verdict = gate.admit(mode, host, message, self.snapshot.rules)
        if verdict.decision == gate.Decision.ADMIT:
            twin = self._namesake(identity.uuid, identity)
            if twin is not None:
                verdict = gate.Admission(gate.Decision.QUARANTINE,
                                         f"host {twin} is already known by the name "
                                         f"{identity.fqdn}; an admin must approve this one")
        if verdict.decision == gate.Decision.REFUSE:
            return defer.succeed(self._refuse(message, peer, 403,
                                              f"birth refused: {verdict.reason}", "refused"))
        if verdict.decision == gate.Decision.QUARANTINE:
            return self._quarantine(message, peer, verdict.reason)
        return self._record(message, self._pin_name(host, identity) if verdict.pin else None,
                            route)

    def _namesake(self, uuid: str, identity: HostIdentity) -> str | None:
        """Another host of the same name (two HostSystems of one name must never exist)."""
        name = identity.fqdn.casefold()
        if not name:
            return None
        reported: list[str] = []
        for other in self._names.candidates(name):
            host = self.snapshot.hosts.get(other)
            if host is None:
                continue
            if host.pinned is not None and host.pinned.name.casefold() == name:
                return other if other != uuid else None  # the name is pinned to that host
            if host.identity is not None and host.identity.fqdn.casefold() == name:
                reported.append(other)
        return next((other for other in reported if other != uuid), None)

    def _waits_in_quarantine(self, uuid: str) -> bool:
        host = self.snapshot.hosts.get(uuid)
        return host is not None and host.state == HostState.QUARANTINED

    def _pin_name(self, host: HostRecord | None, identity: HostIdentity) -> str:
        return pin_name(host, identity, self._resolve)

    def quarantine_count(self) -> int:
        """Hosts waiting in quarantine: in the directory, or quarantined here and not yet seen
        there (their write may still be in flight)."""
        if self._held is None or self._held[0] is not self.snapshot:
            held = {u for u, h in self.snapshot.hosts.items() if h.state == HostState.QUARANTINED}
            self._holding = {u for u in self._holding if u not in self.snapshot.hosts}
            self._held = (self.snapshot, held)
        return len(self._held[1] | self._holding)

    def _quarantine(self, message: BirthMessage, peer: str,
                    reason: str) -> defer.Deferred[BirthOutcome]:
        uuid = message.identity.uuid
        limit = self.config.max_quarantined
        if uuid not in self._holding and not self._waits_in_quarantine(uuid) \
                and self.quarantine_count() >= limit:
            return defer.succeed(self._refuse(
                message, peer, 503, f"quarantine full: {limit} hosts wait for an admin "
                "(stateless hosts quarantined, then approve or deny them; --max-quarantined)",
                "quarantine_full"))
        self._holding.add(uuid)
        self._audit.quarantined(host=uuid, peer=peer, reason=reason)
        d = defer.maybeDeferred(self._blocking, self._directory.record_quarantine, message,
                                datetime.fromtimestamp(self._clock.seconds(), UTC),
                                self.config.name, reason, known=uuid in self.snapshot.hosts)

        def recorded(_: object) -> BirthOutcome:
            self._metrics.births.labels(outcome="quarantined").inc()
            if self._quarantined is not None:
                self._quarantined(uuid, reason)
            return Quarantined(uuid, reason)

        def lost(failure: Any) -> Any:  # not recorded: it holds no place in the quarantine
            self._holding.discard(uuid)
            return failure

        return d.addCallbacks(recorded, lost)

    def _record(self, message: BirthMessage, pin_name: str | None,
                route: BirthRoute) -> defer.Deferred[BirthOutcome]:
        identity = message.identity
        uuid = identity.uuid
        busy = uuid in self._waiting or self._queue.busy(uuid)
        ticket = self.admission.admit(uuid, self.backlog, busy)
        if ticket is None:
            self._metrics.births.labels(outcome="busy").inc()
            busy_for = Busy(self.admission.retry_after(self.backlog,
                                                       self.config.vcenter_concurrency))
            self._audit.admission_refused(host=uuid, backlog=self.backlog,
                                          limit=self.config.max_pending,
                                          retry_after=busy_for.retry_after)
            return defer.succeed(busy_for)
        d = defer.maybeDeferred(self._blocking, self._write, message, pin_name,
                                datetime.fromtimestamp(self._clock.seconds(), UTC),
                                uuid in self.snapshot.hosts)

        def recorded(_: object) -> BirthOutcome:
            self._metrics.births.labels(outcome="accepted").inc()
            self._audit.birth(host=uuid, identity=identity, server=self.config.name,
                              site=route.site or self.config.site)
            self.expect(uuid, message)
            return Accepted(uuid, route.site, route.closest, route.sites)

        def released(result: Any) -> Any:  # the slot went to the backlog, or the write failed
            self.admission.release(ticket)
            return result

        outcome: defer.Deferred[BirthOutcome] = d.addCallback(recorded)
        outcome.addBoth(released)
        return outcome

    def _write(self, message: BirthMessage, pin_name: str | None, when: datetime,
               known: bool) -> None:
        """In a thread: the birth and (first approval) the pin of its identity, in one add
        for a new host."""
        pin = gate.pin_from_birth(message, when, pin_name) if pin_name is not None else None
        if not self._directory.record_birth(message.identity, when, self.config.name,
                                            known=known, thumbprint=message.thumbprint,
                                            image=message.image, pin=pin) and pin is not None:
            self._directory.pin_identity(message.identity.uuid, pin)

    def expect(self, uuid: str, message: BirthMessage) -> None:
        """The directory holds the birth: apply once the change feed shows it."""
        self._accepted(uuid, message)
        self._waiting[uuid] = (message.identity, self._clock.seconds() + FEED_TIMEOUT)
        self.release()
        if uuid in self._waiting:
            self._later(FEED_TIMEOUT, self.release)

    def _route(self, address: str) -> BirthRoute:
        """Accept here, or refer (see `coverage.birth_route`: covered sites are accepted)."""
        now = datetime.fromtimestamp(self._clock.seconds(), UTC)
        return birth_route(self.snapshot, self.config.site, address, now)

    def update(self, snapshot: Snapshot) -> None:
        """A new directory view: queue the births it shows."""
        self.snapshot = snapshot
        if self.unseen:  # (a set difference would walk every host of the view)
            self.unseen = {u for u in self.unseen if u not in snapshot.hosts}
        self.release()

    def release(self) -> None:
        """Queue the births the view reflects, and those that waited for it long enough.

        Applying before the entry (and its new identity, which deploy rules match) arrives
        would resolve a missing or stale host.
        """
        now = self._clock.seconds()
        for uuid, (identity, deadline) in list(self._waiting.items()):
            host = self.snapshot.hosts.get(uuid)
            if host is not None and host.identity == identity:
                del self._waiting[uuid]
                self._queue.add(uuid)
            elif now >= deadline:
                log.warn("host {uuid}: birth not seen in the change feed after {t:.0f}s; "
                         "applying with what the directory showed", uuid=uuid, t=FEED_TIMEOUT)
                del self._waiting[uuid]
                if host is None:
                    self.unseen.add(uuid)
                self._queue.add(uuid)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        self._timers = [t for t in self._timers if t.active()]
        self._timers.append(self._clock.callLater(delay, fn))

    def stop(self) -> None:
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()


def pin_name(host: HostRecord | None, identity: HostIdentity,
             resolve: Callable[[str], EffectiveConfig] | None) -> str:
    """The name vCenter's AddHost will get, pinned with the identity: as `prepare` names it
    (answers and policy first), from the identity being pinned."""
    record = attrs.evolve(host, identity=identity) if host else HostRecord(identity.uuid,
                                                                           identity=identity)
    effective = None
    if host is not None and resolve is not None:
        with contextlib.suppress(StatelessError):
            effective = resolve(identity.uuid)
    return vcenter_name(record, effective)


__all__ = ["FEED_TIMEOUT", "Births", "pin_name"]

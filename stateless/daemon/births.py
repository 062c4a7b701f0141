"""Births: referral or coverage (`coverage`), admission, the directory write, and the feed.

A birth is answered 202 only once the directory holds it.  The engine resolves hosts from the
change feed's view, so an accepted birth is applied once the feed shows the entry it wrote
(with the identity deploy rules match), or after `FEED_TIMEOUT` with whatever the view has.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from stateless.daemon.admission import Admission
from stateless.daemon.api import Accepted, BirthOutcome, Busy, Referral
from stateless.daemon.audit import Audit
from stateless.daemon.config import DaemonConfig
from stateless.daemon.coverage import BirthRoute, birth_route
from stateless.daemon.metrics import Metrics
from stateless.daemon.ports import Blocking, Clock, Delayed, HostDirectory
from stateless.daemon.queue import ApplyQueue
from stateless.model.birth import BirthMessage
from stateless.model.identity import HostIdentity
from stateless.model.inventory import Snapshot

log = Logger()

FEED_TIMEOUT = 10.0  # seconds a recorded birth may take to come back through the change feed


class Births:
    """The births in flight, from the first byte of the request until the apply is queued."""

    def __init__(self, config: DaemonConfig, clock: Clock, blocking: Blocking,
                 directory: HostDirectory, metrics: Metrics, rng: random.Random,
                 queue: ApplyQueue, accepted: Callable[[str, BirthMessage], None], *,
                 audit: Audit | None = None) -> None:
        self.config = config
        self._audit = audit or Audit(clock, config.host_events)
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

    def answer(self, message: BirthMessage, peer: str) -> defer.Deferred[BirthOutcome]:
        identity = message.identity
        uuid = identity.uuid
        route = self._route(identity.ipv4 or peer)
        if route.refer:
            self._metrics.births.labels(outcome="referral").inc()
            referral = Referral(route.site or "", tuple(
                {"name": s.name, "url": s.url, "priority": s.priority, "weight": s.weight}
                for s in route.refer), route.sites)
            self._audit.referral(host=uuid, identity=identity, site=referral.site,
                                 servers=[str(s["name"]) for s in referral.servers])
            return defer.succeed(referral)
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
        d = defer.maybeDeferred(self._blocking, self._directory.record_birth, identity,
                                datetime.fromtimestamp(self._clock.seconds(), UTC),
                                self.config.name, known=uuid in self.snapshot.hosts,
                                thumbprint=message.thumbprint, image=message.image)

        def recorded(_: object) -> BirthOutcome:
            self._metrics.births.labels(outcome="accepted").inc()
            self._audit.birth(host=uuid, identity=identity, server=self.config.name,
                              site=route.site or self.config.site)
            self._accepted(uuid, message)
            self._waiting[uuid] = (identity, self._clock.seconds() + FEED_TIMEOUT)
            self.release()
            if uuid in self._waiting:
                self._later(FEED_TIMEOUT, self.release)
            return Accepted(uuid, route.site, route.closest, route.sites)

        def released(result: Any) -> Any:  # the slot went to the backlog, or the write failed
            self.admission.release(ticket)
            return result

        outcome: defer.Deferred[BirthOutcome] = d.addCallback(recorded)
        outcome.addBoth(released)
        return outcome

    def _route(self, address: str) -> BirthRoute:
        """Accept here, or refer (see `coverage.birth_route`: covered sites are accepted)."""
        now = datetime.fromtimestamp(self._clock.seconds(), UTC)
        return birth_route(self.snapshot, self.config.site, address, now)

    def update(self, snapshot: Snapshot) -> None:
        """A new directory view: queue the births it shows."""
        self.snapshot = snapshot
        self.unseen -= snapshot.hosts.keys()
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


__all__ = ["FEED_TIMEOUT", "Births"]

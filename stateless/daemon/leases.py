"""This server's lease: it may start applies only while the lease it last renewed runs.

The lease is `statelessLeaseExpiry` on the server's own entry, written through the daemon's
local replica every third of its length. Other servers of the same vCenter take this one's
hosts once that time has passed (`takeover`), so this one must have stopped by then: when it
has not renewed before its lease runs out it *fences* itself (starts no apply; those in flight
finish) and says so in the log and `/healthz`, until a renewal succeeds again.

The deadline is counted from when the renewal was sent, never from when it was answered, so
this server's view of its lease never outlasts the one the directory shows the others.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from stateless.daemon.documents import iso
from stateless.daemon.loops import Periodic
from stateless.daemon.ports import Blocking, Clock, Delayed

log = Logger()

Renew = Callable[[str, datetime], None]  # Directory.renew_lease: server name, new expiry


class Lease:
    def __init__(self, clock: Clock, blocking: Blocking, renew: Renew, name: str, length: float,
                 on_change: Callable[[bool], None] = lambda _live: None) -> None:
        self.name = name
        self.length = length
        self.held_until = 0.0  # clock seconds: no apply starts after this
        self.fenced = False  # the lease ran out and has not been renewed since
        self.cause = "no lease yet"  # why the last renewal failed; "" after a success
        self._clock = clock
        self._blocking = blocking
        self._renew = renew
        self._on_change = on_change
        self._expiry: Delayed | None = None
        self._loop = Periodic(clock, length / 3, self.renew, name="lease renewal")

    @property
    def reason(self) -> str:
        if not self.fenced:
            return self.cause
        why = self.cause or "no renewal reached the directory in time"
        return f"fenced: the lease ran out at {iso(self.held_until)} ({why}); no apply starts " \
               "until it is renewed"

    @property
    def live(self) -> bool:
        return self._clock.seconds() < self.held_until

    def start(self) -> defer.Deferred[None]:
        """Take the lease now (fails when the directory refuses), then renew it periodically."""
        d = self.renew()
        d.addCallback(lambda _: self._loop.start())
        return d

    def stop(self) -> None:
        self._loop.stop()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()

    def renew(self) -> defer.Deferred[None]:
        sent = self._clock.seconds()
        until = sent + self.length
        d = self._blocking(self._renew, self.name, datetime.fromtimestamp(until, UTC))
        d.addCallbacks(lambda _: self._renewed(until), self._not_renewed)
        return d

    def _renewed(self, until: float) -> None:
        if until <= max(self.held_until, self._clock.seconds()):
            return  # an older renewal, or one answered after its own expiry
        was_live, self.held_until = self.live, until
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = self._clock.callLater(max(0.0, until - self._clock.seconds()), self._check)
        if self.fenced:
            self.fenced = False
            log.info("lease of server {server} renewed until {until}: applying again",
                     server=self.name, until=iso(until), event="lease_renewed")
        elif not was_live:
            log.info("server {server} holds its lease until {until}", server=self.name,
                     until=iso(until), event="lease_taken")
        if not was_live:
            self._on_change(True)  # applies waiting for the lease may start
        self.cause = ""

    def _not_renewed(self, failure: Failure) -> Failure:
        self.cause = f"lease not renewed: {failure.getErrorMessage()}"
        self._check()
        return failure  # the loop logs it

    def _check(self) -> None:
        """At the deadline: fence when no renewal extended it."""
        if self.live or self.fenced or self.held_until == 0.0:
            return
        self.fenced = True
        log.warn("server {server}: {reason}", server=self.name, reason=self.reason,
                 event="fenced")
        self._on_change(False)

    def document(self) -> dict[str, Any]:
        """The lease in `/healthz`."""
        return {"live": self.live, "fenced": self.fenced, "length": self.length,
                "expires": iso(self.held_until) if self.held_until else None,
                "reason": self.reason}


__all__ = ["Lease"]

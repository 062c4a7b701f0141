"""Directory failover: read and write through the local replica, the next one while it is
down, and the local one again once it is back and has caught up.

The change feed (`SyncConsumer`) already moves to the next `--ldap` URL when its session is
lost, resuming from its cookie, and the writer's connections (`Directory`, an ldap3 pool in
FIRST order) reconnect to the first URL that answers. What neither does is come back: this
watcher sees the feed away from the first URL, asks every second whether that replica answers
and holds every change the one in use holds (its `contextCSN`, per server ID), and then moves
the feed back (without a loss being reported) and makes every writer reconnect, so writes go
to the local replica again. Births and state writes made meanwhile are in the directory the
daemon used; replication brings them home.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from stateless.daemon.loops import Periodic
from stateless.daemon.ports import Blocking, Clock
from stateless.errors import StatelessError

log = Logger()

INTERVAL = 1.0  # seconds between looks at where the feed reads, and tries of the local replica


def default_caught_up(url: str, other: str, bind_dn: str, password: str, base: str) -> bool:
    from stateless.directory.replicas import caught_up

    return caught_up(url, other, bind_dn, password, base)


class DirectoryFailover:
    """Logs every move of the change feed and brings it (and the writers) back home."""

    def __init__(self, clock: Clock, blocking: Blocking, consumer: Any, directory: Any,
                 urls: Sequence[str], bind_dn: str, password: str, base: str, *,
                 caught_up: Callable[[str, str, str, str, str], bool] = default_caught_up,
                 interval: float = INTERVAL) -> None:
        self._blocking = blocking
        self.consumer = consumer
        self.directory = directory
        self.urls = tuple(urls)
        self.home = self.urls[0] if self.urls else ""
        self._creds = (bind_dn, password, base)
        self._caught_up = caught_up
        self._seen: str | None = self.home
        self.away_since: str | None = None  # the replica the feed failed over to
        self.returns = 0
        self._quiet = False  # "still unavailable" is said once per outage
        self.loop = Periodic(clock, interval, self.tick, name="directory failover")

    @property
    def enabled(self) -> bool:
        return len(self.urls) >= 2

    def start(self) -> None:
        if self.enabled:
            self.loop.start()

    def fields(self) -> dict[str, Any]:
        """For `/healthz`: the replica the change feed reads now (None: none at the moment)."""
        return {"directory_url": self.consumer.current_url} if self.enabled else {}

    def tick(self) -> defer.Deferred[Any]:
        current = self.consumer.current_url
        if current is not None and current != self._seen:
            if current != self.home:
                log.warn("directory: reading from {url}, the local replica {home} does not "
                         "answer ({reason})", event="directory_failover", url=current,
                         home=self.home, reason=self.consumer.last_error or "connection lost")
                self.away_since = current
                self._quiet = False
            elif self.away_since is not None:
                log.info("directory: back on the local replica {home} (was on {url})",
                         event="directory_failover", url=self.away_since, home=self.home)
                self.away_since = None
            self._seen = current
        if current is None or current == self.home:
            return defer.succeed(None)
        d: defer.Deferred[Any] = defer.maybeDeferred(self._blocking, self._caught_up, self.home,
                                                     current, *self._creds)
        d.addCallback(self._maybe_return, current)
        d.addErrback(self._still_down)
        return d

    def _maybe_return(self, ready: bool, current: str) -> None:
        if not ready:
            log.debug("directory: {home} answers but has not caught up with {url} yet",
                      home=self.home, url=current)
            return
        if self.consumer.current_url != current:
            return  # the feed moved meanwhile; look again next time
        log.info("directory: {home} is back and up to date; leaving {url}",
                 event="directory_failover", home=self.home, url=current)
        self.returns += 1
        self.consumer.move_to(self.home)
        self.directory.reset()  # every writer reconnects, the first URL first

    def _still_down(self, failure: Any) -> None:
        failure.trap(StatelessError)
        if not self._quiet:
            self._quiet = True
            log.info("directory: the local replica is unavailable ({error}); trying it every "
                     "{interval:.0f} s", error=failure.value, interval=self.loop.interval)


__all__ = ["INTERVAL", "DirectoryFailover", "default_caught_up"]

"""The change feed into the engine: the mirror the engine resolves from, and directory health.

The feed is also the daemon's directory health: when it loses the directory the engine says
so (`/healthz` answers 503) and every directory connection is dropped; the feed tries again
at least twice a second, and once it is synchronized the engine retries what waited for the
directory.  Bursts of changes are coalesced into one snapshot rebuild, built in a thread of
its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer, threads
from twisted.logger import Logger

from stateless.daemon.services import Parts, Stage
from stateless.errors import StatelessError
from stateless.policy.problems import directory_problems

log = Logger()
T = TypeVar("T")
R = TypeVar("R")

FEED_RETRY = (0.05, 0.5)  # seconds: the change feed's reconnect backoff, first and longest
GATHER = 0.01  # seconds a burst of change notifications is gathered into one update
FIRST_VIEW_TIMEOUT = 120.0  # seconds the first complete view may take
WAIT_SLICE = 0.5  # seconds: how long a pool thread waits for it at a time
# The directory's problems are listed at most this often: at 10,000 hosts a listing costs
# ~30 ms, fifty times an incremental snapshot, and a boot storm rebuilds many times a second.
PROBLEMS_EVERY = 1.0
# ... and at most once per this many times the last listing's cost: at 50,000 hosts one costs
# 0.2-0.5 s, and once a second it took a third of the CPU a boot storm needed.
PROBLEMS_SPACING = 20


class FeedStage(Stage):
    """Ready once the engine holds a complete first view of the directory."""

    name = "change feed"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.consumer: Any = None
        self.mirror: Any = None
        self._rebuild_scheduled = False
        self._rebuilding = False
        self._problems_scheduled = False
        self._problems_at = 0.0  # clock time of the last listing of the problems
        self._problems_cost = 0.0  # seconds the last listing took
        self._stopping = False

    @defer.inlineCallbacks
    def start(self) -> Any:
        from stateless.directory.mapping import MODEL_ATTRIBUTES
        from stateless.directory.mirror import Mirror
        from stateless.directory.nonces import FEED_FILTER
        from stateless.directory.syncrepl import SyncConsumer

        parts, base = self.parts, self.parts.config.base
        urls, bind_dn, password = parts.connection
        reactor = parts.reactor
        self.mirror = Mirror(on_batch=lambda _batch: reactor.callFromThread(self._changed))
        self.consumer = SyncConsumer(list(urls), base, self.mirror.on_change, self._refreshed,
                                     on_refresh_start=self.mirror.on_refresh_start,
                                     on_lost=self._lost, bind_dn=bind_dn, password=password,
                                     attributes=MODEL_ATTRIBUTES, search_filter=FEED_FILTER,
                                     retry_delay=FEED_RETRY[0],
                                     max_retry_delay=FEED_RETRY[1])
        self.consumer.start()
        deadline = reactor.seconds() + FIRST_VIEW_TIMEOUT
        # In slices, so that a stop meanwhile does not leave a pool thread waiting.
        while not (yield parts.thread(self.consumer.wait_refreshed, WAIT_SLICE)):
            if self._stopping:
                raise StatelessError("stopped before the directory's first complete view")
            if reactor.seconds() >= deadline:
                raise StatelessError(f"directory {', '.join(urls)}: no complete view after "
                                     f"{FIRST_VIEW_TIMEOUT:.0f} s; is it reachable, and is the "
                                     "syncprov overlay configured on the database?")
        update = yield parts.thread(self.mirror.update, base)
        parts.engine.set_snapshot(update.snapshot, update.hosts, since=update.before)
        # The listing is for the log and the gauge (what a problem blocks is decided as hosts
        # are resolved): it follows the start, PROBLEMS_EVERY later, instead of delaying it.
        self._problems_at = parts.reactor.seconds()
        self._list_problems()

    @defer.inlineCallbacks
    def stop(self) -> Any:
        self._stopping = True
        if self.consumer is not None:
            yield self.parts.thread(self.consumer.stop)

    def _refreshed(self) -> None:
        """In the feed's thread: the mirror is complete, and the directory reachable."""
        self.mirror.on_refresh_done()
        if self.parts.engine is not None:
            self.parts.reactor.callFromThread(self.parts.engine.directory_back)

    def _lost(self, reason: str) -> None:
        """In the feed's thread: no directory until the feed is synchronized again."""
        if self.parts.directory is not None:
            self.parts.directory.reset()
        if self.parts.engine is not None and not self._stopping:
            self.parts.reactor.callFromThread(self.parts.engine.directory_lost, reason)

    def _changed(self) -> None:
        """Coalesce bursts of change notifications into one snapshot rebuild."""
        if not self._rebuild_scheduled and not self._stopping:
            self._rebuild_scheduled = True
            # Updates cost in proportion to the change (the mirror applies each entry to the
            # last snapshot): a fixed 10 ms gathers a burst of writes into one, whatever the
            # size of the directory.
            self.parts.reactor.callLater(GATHER, self._rebuild)

    @defer.inlineCallbacks
    def _rebuild(self) -> Any:
        parts = self.parts
        if self._stopping:
            return
        if self._rebuilding:
            parts.reactor.callLater(0.01, self._rebuild)
            return
        self._rebuild_scheduled = False
        self._rebuilding = True
        try:
            update = yield threads.deferToThreadPool(parts.reactor, parts.build_pool,
                                                     self.mirror.update, parts.config.base)
            snapshot = update.snapshot
            parts.engine.set_snapshot(snapshot, update.hosts, since=update.before)
            if parts.tftp is not None:
                parts.tftp.update(snapshot)
            self._list_problems()
            if parts.coverage is not None:
                parts.coverage.refresh()  # the zone and registrations follow live servers
        except Exception:
            log.failure("applying a directory change")
        finally:
            self._rebuilding = False


    def _list_problems(self) -> None:
        """List the problems of the engine's view soon (at most every PROBLEMS_EVERY s)."""
        if self._problems_scheduled or self._stopping:
            return
        self._problems_scheduled = True
        reactor = self.parts.reactor
        spacing = max(PROBLEMS_EVERY, PROBLEMS_SPACING * self._problems_cost)
        delay = max(0.0, self._problems_at + spacing - reactor.seconds())
        reactor.callLater(delay, self._problems)

    @defer.inlineCallbacks
    def _problems(self) -> Any:
        """In the snapshot thread: every problem of the current view, for the log and gauge."""
        parts = self.parts
        self._problems_scheduled = False  # a newer view from now on is listed again
        if self._stopping:
            return
        self._problems_at = parts.reactor.seconds()
        try:
            problems, self._problems_cost = yield threads.deferToThreadPool(
                parts.reactor, parts.build_pool, timed, directory_problems, parts.engine.snapshot)
            parts.engine.set_problems(problems)
        except Exception:
            log.failure("listing the directory's problems")


def timed(fn: Callable[[T], R], arg: T) -> tuple[R, float]:
    """`fn(arg)` and the seconds it took (in the thread it runs in)."""
    start = time.perf_counter()
    return fn(arg), time.perf_counter() - start


__all__ = ["FEED_RETRY", "FeedStage"]

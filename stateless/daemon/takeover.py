"""Taking over the hosts of servers whose lease ran out, and letting go of hosts taken from us.

Every third of the lease a loop looks for orphans (`federation.orphans`: hosts whose owner is
not live, of a vCenter this server serves) and moves each with one compare-and-swap
(`Directory.take_over`): when several servers race, exactly one wins and the others learn who.
It runs only while this server holds a live lease. A failure is logged and the loop goes on.

The other direction is pure: a host this server tracks whose entry names another *live*
server was taken from it (while it was fenced); it stops tracking it (`lost`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from stateless.daemon.leases import Lease
from stateless.daemon.loops import Periodic
from stateless.daemon.ports import Blocking, Clock
from stateless.daemon.served import fallback
from stateless.federation import is_live, orphans
from stateless.model.inventory import HostRecord, Server, Snapshot

log = Logger()

TakeOver = Callable[[str, str, str], str]  # Directory.take_over: uuid, old owner, new owner


def lost(snapshot: Snapshot, me: str, owned: Collection[str], now: datetime) -> dict[str, str]:
    """Tracked hosts whose entry names another live server: uuid -> that server."""
    out = {}
    for uuid in owned:
        host = snapshot.hosts.get(uuid)
        if host is None or not host.owner or host.owner == me:
            continue
        server = snapshot.servers.get(host.owner)
        if server is not None and is_live(server, now):
            out[uuid] = host.owner
    return out


class Takeover:
    """The periodic body; `take(uuid)` hands a won host to the engine."""

    def __init__(self, clock: Clock, blocking: Blocking, take_over: TakeOver, lease: Lease,
                 snapshot: Callable[[], Snapshot],
                 located: Callable[[Snapshot, datetime], Iterable[tuple[HostRecord, str | None]]],
                 take: Callable[[str, str, str], None]) -> None:
        self._clock = clock
        self._blocking = blocking
        self._take_over = take_over
        self._lease = lease
        self._snapshot = snapshot
        self._located = located
        self._take = take
        self._pending: set[str] = set()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    def run(self) -> defer.Deferred[Any]:
        """One pass: take every orphan this server may take (none while it is fenced)."""
        if not self._lease.live:
            return defer.succeed(None)
        snap = self._snapshot()
        name = self._lease.name
        me = snap.servers.get(name) or Server(name, "", "")
        now = self.now()
        found = orphans(snap, me, now, self._located(snap, now), fallback(snap, name))
        tries = []
        for uuid in found:
            if uuid in self._pending:
                continue
            old = snap.hosts[uuid].owner or ""
            server = snap.servers.get(old)
            expired = server.lease_expiry if server is not None else None
            tries.append(self._try(uuid, old, name, expired))
        return defer.gatherResults(tries, consumeErrors=True).addCallback(lambda _: None)

    @defer.inlineCallbacks
    def _try(self, uuid: str, old: str, name: str, expired: datetime | None) -> Any:
        self._pending.add(uuid)
        try:
            got = yield self._blocking(self._take_over, uuid, old, name)
            self._won(got, uuid, old, expired)
        except Exception as exc:  # the next pass tries again
            log.warn("host {uuid}: not taken over: {error}", uuid=uuid, error=str(exc))
        finally:
            self._pending.discard(uuid)

    def _won(self, got: str, uuid: str, old: str, expired: datetime | None) -> None:
        name = self._lease.name
        if got != name:
            log.info("host {host}: {winner} took it over from {old} first", host=uuid,
                     winner=got, old=old)
            return
        ran_out = expired.isoformat(timespec="milliseconds") if expired else "(no entry)"
        at = self.now().isoformat(timespec="milliseconds")
        self._take(uuid, old, f"taken from {old} by {name} at {at}; the lease of {old} ran out "
                              f"at {ran_out}")




def located(snapshot: Snapshot, where: Callable[[str], str | None], now: datetime
            ) -> Iterable[tuple[HostRecord, str | None]]:
    """Each host whose owner is not live, with its location: its entry's, else the deploy
    rule's (`where`, a resolution: only for these few, not for every host each pass)."""
    for host in snapshot.hosts.values():
        if not host.owner:
            continue
        owner = snapshot.servers.get(host.owner)
        if owner is not None and is_live(owner, now):
            continue
        yield host, host.location if host.location is not None else where(host.uuid)


def start_ownership(clock: Clock, blocking: Blocking, directory: Any, engine: Any, name: str,
                    length: float) -> defer.Deferred[tuple[Lease, Periodic]]:
    """Take this server's lease (the first renewal must succeed), hand it to the engine, and
    start the takeover loop; the service keeps both to stop them."""
    lease = Lease(clock, blocking, directory.renew_lease, name, length,
                  on_change=lambda live: engine.lease_changed(live))
    engine.lease = lease
    takeover = Takeover(clock, blocking, directory.take_over, lease, lambda: engine.snapshot,
                        lambda snap, now: located(snap, engine.location, now), engine.taken)
    loop = Periodic(clock, length / 3, takeover.run, name="host takeover")

    def started(_: object) -> tuple[Lease, Periodic]:
        loop.start(now=True)
        return lease, loop

    return lease.start().addCallback(started)


__all__ = ["Takeover", "located", "lost", "start_ownership"]

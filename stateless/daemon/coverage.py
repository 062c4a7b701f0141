"""Site coverage, as the AD DC locator does it: who answers a birth, and which SRV names a
server publishes.

A site with no live server is covered by the servers of the cheapest-linked site that has
live ones (`federation.covering_sites`). Its hosts' births are then accepted by a covering
server (never referred to a site where nobody answers), which registers the covered site's
`_stateless._tcp.<site>._sites.<domain>` records next to its own; the birth answer says
which site the host is in and whether the answering server is in it (`closest`). A host
applied through a covering server still goes through the vCenter that manages its location
(`federation.host_vcenter`).

The decisions are pure functions of a snapshot and the time; `SiteCoverage` keeps the
published records (served zone and RFC 2136 registration) in step with them as leases run
out and the directory changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from stateless.daemon.ports import Blocking, Clock
from stateless.errors import StatelessError
from stateless.federation import covering_sites, is_live, live_by_site
from stateless.model.inventory import Server, Snapshot
from stateless.sites import site_of, site_order

log = Logger()

INTERVAL = 2.0  # seconds between looks at the leases (they run out with no directory change)


@attrs.frozen
class BirthRoute:
    """Where a birth from one address belongs: accepted here, or referred elsewhere."""

    site: str | None  # the host's site (None: its address is in no site's subnets)
    closest: bool  # the answering server is in the host's site
    refer: tuple[Server, ...] = ()  # non-empty: refer the host to these servers
    sites: tuple[str, ...] = ()  # the host's site, then the others by link cost


def _key(server: Server) -> tuple[int, int, str]:
    return (server.priority, -server.weight, server.name)


def birth_route(snapshot: Snapshot, my_site: str, address: str, now: datetime) -> BirthRoute:
    """Accept a host of this server's site, of a site it covers, or of no known site; refer
    one of a site with live servers to them, and one of a site covered by another site to
    that site's servers."""
    site = site_of(snapshot.sites.values(), address) if address else None
    if site is None:
        return BirthRoute(None, True)
    order = tuple(site_order(snapshot.sites.values(), snapshot.site_links, site))
    if site == my_site:
        return BirthRoute(site, True, sites=order)
    live = live_by_site(snapshot, now)
    servers = live.get(site) or live.get(covering_sites(snapshot, now).get(site, ""), [])
    if not servers or any(s.site == my_site for s in servers):
        return BirthRoute(site, False, sites=order)  # this server covers it (or nobody can)
    return BirthRoute(site, False, tuple(sorted(servers, key=_key)), order)


def covered_by(snapshot: Snapshot, site: str, now: datetime) -> list[str]:
    """The sites the servers of `site` cover now (by name)."""
    return sorted(s for s, by in covering_sites(snapshot, now).items() if by == site)


def published(snapshot: Snapshot, now: datetime) -> tuple[list[Server], dict[str, str]]:
    """What a zone holds: the live servers, and each covered site -> the site covering it."""
    live = [s for s in snapshot.servers.values() if is_live(s, now)]
    return live, covering_sites(snapshot, now)


class SiteCoverage:
    """Keeps the served zone and this server's registered records in step with coverage."""

    def __init__(self, clock: Clock, blocking: Blocking, site: str,
                 snapshot: Callable[[], Snapshot], *, zone: Any = None,
                 registrar: Any = None) -> None:
        self._clock = clock
        self._blocking = blocking
        self.site = site
        self._snapshot = snapshot
        self.zone = zone
        self.registrar = registrar
        self.covered: tuple[str, ...] = ()
        self._zone_key: Any = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    def refresh(self) -> defer.Deferred[None]:
        """Look again (after a directory change, and every INTERVAL seconds)."""
        snap, now = self._snapshot(), self.now()
        if self.zone is not None:
            servers, covering = published(snap, now)
            key = (tuple(servers), tuple(sorted(covering.items())))
            if key != self._zone_key:
                self._zone_key = key
                self.zone.update(servers, covered=covering)
        covered = tuple(covered_by(snap, self.site, now))
        if covered == self.covered:
            return defer.succeed(None)
        gone = sorted(set(self.covered) - set(covered))
        log.info("site {site} covers {covered} (no live server of their own){gone}",
                 event="site_coverage", site=self.site, covered=", ".join(covered) or "no site",
                 gone=f"; no longer {', '.join(gone)}" if gone else "")
        self.covered = covered
        if self.registrar is None:
            return defer.succeed(None)
        d = defer.maybeDeferred(self._blocking, self.registrar.set_sites, covered)

        def failed(failure: Any) -> None:
            failure.trap(StatelessError)
            self.covered = ()  # try again at the next look
            log.warn("registering the records of covered sites: {error}",
                     event="site_coverage_failed", error=failure.value)

        d.addErrback(failed)
        return d

    def sites(self) -> Sequence[str]:
        return (self.site, *self.covered)


__all__ = ["INTERVAL", "BirthRoute", "SiteCoverage", "birth_route",
           "covered_by", "published"]

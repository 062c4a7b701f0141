"""Sites, vCenters and servers of a federated estate: who manages and who covers what (pure).

- A container names the vCenter that manages it (`Container.vcenter`), inherited downward; a
  server applies a host only through a vCenter it serves (its entry's vCenter names).
- A server holds a lease (`Server.lease_expiry`, renewed while it runs): it is *live* until the
  lease expires, and the hosts it owns are its own only while it is live. A host whose owner is
  not live is taken over by a live server that serves the host's vCenter.
- A site with no live server is *covered*, as the AD DC locator does it, by the servers of the
  cheapest-linked site that has live ones (ties: more live servers, then the site's name): they
  register its SRV records and accept its births.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from stateless.errors import ValidationError
from stateless.model.inventory import HostRecord, Server, Snapshot, path_chain
from stateless.sites import site_distances


def vcenter_of(snapshot: Snapshot, path: str | None) -> str | None:
    """The vCenter that manages `path`: the nearest container up its chain that names one."""
    for at in reversed(path_chain(path or "/")):
        container = snapshot.containers.get(at)
        if container is not None and container.vcenter:
            return container.vcenter
    return None


def host_vcenter(snapshot: Snapshot, location: str | None, fallback: str | None) -> str:
    """The vCenter a host at `location` is applied through.

    The one its containers name; else `fallback` (an estate whose containers name none: the
    serving server's own vCenter, or the only one registered). A name that is not registered
    is an error of the host, never a guess.
    """
    named = vcenter_of(snapshot, location)
    if named is None:
        if fallback is None:
            raise ValidationError(f"location {location or '/'}: no container above it names its "
                                  "vCenter; set one with `stateless container set PATH --vcenter "
                                  "NAME`")
        return fallback
    if named not in snapshot.vcenters:
        raise ValidationError(f"location {location or '/'} is managed by vCenter {named}, which is "
                              "not registered: add it with `stateless vcenter add` or fix the "
                              "container's statelessVCenterName")
    return named


def is_live(server: Server, now: datetime) -> bool:
    """Alive at `now`: its lease runs, or it is a server entry no daemon renews."""
    return server.lease_expiry is None or server.lease_expiry > now


def live_by_site(snapshot: Snapshot, now: datetime) -> dict[str, list[Server]]:
    out: dict[str, list[Server]] = {}
    for server in snapshot.servers.values():
        if is_live(server, now):
            out.setdefault(server.site, []).append(server)
    return out


def covering_sites(snapshot: Snapshot, now: datetime) -> dict[str, str]:
    """Each site with no live server -> the site whose servers cover it (when any can)."""
    live = live_by_site(snapshot, now)
    out: dict[str, str] = {}
    for site in sorted(snapshot.sites):
        if live.get(site):
            continue
        distance = site_distances(snapshot.sites.values(), snapshot.site_links, site)
        candidates = [(d, -len(live[s]), s) for s, d in distance.items() if s != site and live.get(s)]
        if candidates:
            out[site] = min(candidates)[2]
    return out


def sites_served(snapshot: Snapshot, site: str, now: datetime) -> list[str]:
    """The sites a server of `site` serves: its own, then those it covers (by name)."""
    return [site, *sorted(s for s, by in covering_sites(snapshot, now).items() if by == site)]


def orphans(snapshot: Snapshot, me: Server, now: datetime,
            located: Iterable[tuple[HostRecord, str | None]], fallback: str | None) -> list[str]:
    """Hosts whose owner is not live (its lease ran out, or its entry is gone) and whose
    vCenter `me` serves: `me` may take them over. `located` pairs each host with its location
    (from its entry or a deploy rule)."""
    out = []
    for host, location in located:
        if not host.owner or host.owner == me.name:
            continue
        owner = snapshot.servers.get(host.owner)
        if owner is not None and is_live(owner, now):
            continue
        try:
            vcenter = host_vcenter(snapshot, location, fallback)
        except ValidationError:
            continue
        if vcenter in me.vcenters or (not me.vcenters and vcenter == fallback):
            out.append(host.uuid)
    return sorted(out)


__all__ = ["covering_sites", "host_vcenter", "is_live", "live_by_site", "orphans", "sites_served",
           "vcenter_of"]

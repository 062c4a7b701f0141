"""Sites: which site an address is in, and which servers a client should try first.

Mirrors the Active Directory DC locator: the client's own site first, then other sites by
the cheapest path over site links, and RFC 2782 priority/weight order among one site's servers.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Iterable

from stateless.errors import ValidationError
from stateless.model.inventory import Server, Site, SiteLink, Snapshot

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(address: str) -> IPAddress:
    try:
        ip = ipaddress.ip_address(address.strip() if isinstance(address, str) else address)
    except ValueError:
        raise ValidationError(f"address {address!r}: not an IPv4 or IPv6 address") from None
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; they live in IPv4 subnets.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def site_of(sites: Iterable[Site], address: str) -> str | None:
    """Name of the site with the longest subnet containing `address` (ties: lowest name)."""
    ip = _address(address)
    best: tuple[int, str] | None = None
    for site in sites:
        for subnet in site.subnets:
            net = ipaddress.ip_network(subnet, strict=False)
            if net.version == ip.version and ip in net:
                candidate = (-net.prefixlen, site.name)
                if best is None or candidate < best:
                    best = candidate
    return best[1] if best else None


def site_order(sites: Iterable[Site | str], links: Iterable[SiteLink], home: str) -> list[str]:
    """`home`, then the other sites by cheapest path cost (Dijkstra), ties by name; unreachable last.

    Links naming sites that are not in `sites` are ignored, so a stale link cannot route
    through a deleted site.
    """
    names = {s if isinstance(s, str) else s.name for s in sites}
    names.add(home)
    distance = site_distances(names, links, home)
    reachable = sorted((n for n in distance if n != home), key=lambda n: (distance[n], n))
    unreachable = sorted(names - distance.keys())
    return [home, *reachable, *unreachable]


def site_distances(sites: Iterable[Site | str], links: Iterable[SiteLink], home: str) -> dict[str, int]:
    """Cheapest path cost from `home` to every site reachable over site links (home: 0)."""
    names = {s if isinstance(s, str) else s.name for s in sites}
    names.add(home)
    graph: dict[str, dict[str, int]] = {n: {} for n in names}
    for link in links:
        if link.a in names and link.b in names:
            cost = min(link.cost, graph[link.a].get(link.b, link.cost))
            graph[link.a][link.b] = cost
            graph[link.b][link.a] = cost
    distance: dict[str, int] = {}
    queue: list[tuple[int, str]] = [(0, home)]
    while queue:
        cost, name = heapq.heappop(queue)
        if name in distance:
            continue
        distance[name] = cost
        for peer, step in graph[name].items():
            if peer not in distance:
                heapq.heappush(queue, (cost + step, peer))
    return distance


def _server_key(server: Server) -> tuple[int, int, str]:
    return (server.priority, -server.weight, server.name)


def nearest_servers(snapshot: Snapshot, address: str) -> list[Server]:
    """Servers a client at `address` should try, nearest site first.

    Within one site: (priority, -weight, name). A client in no known site gets every server
    in that order; servers whose site is unknown come last.
    """
    servers = sorted(snapshot.servers.values(), key=_server_key)
    home = site_of(snapshot.sites.values(), address)
    if home is None:
        known = [s for s in servers if s.site in snapshot.sites]
        return known + [s for s in servers if s.site not in snapshot.sites]
    rank = {name: i for i, name in enumerate(site_order(snapshot.sites.values(), snapshot.site_links,
                                                        home))}
    last = len(rank)
    return sorted(servers, key=lambda s: (rank.get(s.site, last), *_server_key(s)))

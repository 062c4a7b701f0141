"""The SRV (and A) records that announce servers, as plain values.

Names mirror the AD DC locator so admins recognise them: `_stateless._tcp.<domain>` lists
every server, `_stateless._tcp.<site>._sites.<domain>` the servers of one site. The same
record set feeds the registrar (one server's own records), the twisted.names zone (all of
them) and `records_text` (zone-file lines for a zone kept by hand).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import attrs

from stateless.dns.errors import DiscoveryError
from stateless.model.inventory import Server

SERVICE = "_stateless._tcp"
DEFAULT_TTL = 300
_DEFAULT_PORTS = {"http": 80, "https": 443}


def fqdn(name: str) -> str:
    """`name` as an absolute, lower-case domain name with its trailing dot."""
    name = name.strip().lower().rstrip(".")
    if not name or any(not label or len(label) > 63 for label in name.split(".")):
        raise DiscoveryError(f"domain name {name!r}: expected dot-separated labels of 1-63 "
                             "characters, e.g. example.com")
    return name + "."


def domain_srv_name(domain: str) -> str:
    return f"{SERVICE}.{fqdn(domain)}"


def site_srv_name(site: str, domain: str) -> str:
    return f"{SERVICE}.{site.lower()}._sites.{fqdn(domain)}"


@attrs.frozen
class Endpoint:
    """Where a server's API listens, as SRV sees it: target name, port, and an address if known."""

    target: str
    port: int
    address: str | None = None


def endpoint(server: Server, domain: str) -> Endpoint:
    """The SRV target of `server`: the host of its URL, or `<name>.<domain>` when the URL uses an IP."""
    parts = urlsplit(server.url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise DiscoveryError(f"server {server.name}: url {server.url!r} must be http(s)://HOST[:PORT]/; "
                             "fix the server's URL in the directory")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise DiscoveryError(f"server {server.name}: url {server.url!r} has a bad port") from None
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return Endpoint(fqdn(parts.hostname), port)
    if address.version != 4:
        raise DiscoveryError(f"server {server.name}: url {server.url!r}: only IPv4 literals are "
                             "supported; use a host name")
    return Endpoint(fqdn(f"{server.name}.{domain}"), port, str(address))


@attrs.frozen
class ZoneRecord:
    """One resource record in presentation form: owner, TTL, type, data."""

    name: str
    ttl: int
    rdtype: str
    value: str

    def __str__(self) -> str:
        return f"{self.name} {self.ttl} IN {self.rdtype} {self.value}"


def _check(server: Server) -> None:
    for what, value in (("priority", server.priority), ("weight", server.weight)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise DiscoveryError(f"server {server.name}: SRV {what} {value!r} must be 0-65535")


def server_records(server: Server, domain: str, *, ttl: int = DEFAULT_TTL, a_records: bool = False,
                   addresses: Mapping[str, str] | None = None,
                   covers: Iterable[str] = ()) -> list[ZoneRecord]:
    """The records of one server: SRV under the domain and its site, and A for its target if asked.

    An A record is produced when asked and the address is known: from the URL when it is an
    IP literal, else from `addresses` (target name -> IPv4). `covers`: sites with no live
    server of their own that this server covers, whose site name gets its SRV record too.
    """
    _check(server)
    ep = endpoint(server, domain)
    srv = f"{server.priority} {server.weight} {ep.port} {ep.target}"
    out = [ZoneRecord(domain_srv_name(domain), ttl, "SRV", srv),
           ZoneRecord(site_srv_name(server.site, domain), ttl, "SRV", srv)]
    out += [ZoneRecord(site_srv_name(site, domain), ttl, "SRV", srv)
            for site in sorted(set(covers) - {server.site})]
    address = ep.address or (addresses or {}).get(ep.target) or (addresses or {}).get(
        ep.target.rstrip("."))
    if a_records and address:
        out.append(ZoneRecord(ep.target, ttl, "A", address))
    return out


def zone_records(servers: Iterable[Server], domain: str, *, ttl: int = DEFAULT_TTL,
                 a_records: bool = False, addresses: Mapping[str, str] | None = None,
                 covered: Mapping[str, str] | None = None) -> list[ZoneRecord]:
    """All servers' records, duplicates dropped, in a stable order (by owner name, then data).

    `covered`: site with no live server -> the site whose servers cover it.
    """
    seen: dict[ZoneRecord, None] = {}
    for server in servers:
        covers = [s for s, by in (covered or {}).items() if by == server.site]
        for record in server_records(server, domain, ttl=ttl, a_records=a_records,
                                     addresses=addresses, covers=covers):
            seen.setdefault(record)
    return sorted(seen, key=lambda r: (r.name.count("."), r.name, r.rdtype, r.value))


def records_text(servers: Iterable[Server], domain: str, *, ttl: int = DEFAULT_TTL,
                 a_records: bool = False, addresses: Mapping[str, str] | None = None) -> str:
    """Zone-file lines for a hand-kept zone (what `stateless dns records` prints)."""
    records = zone_records(servers, domain, ttl=ttl, a_records=a_records, addresses=addresses)
    header = f"; stateless servers for {fqdn(domain)} (SRV priority weight port target)\n"
    return header + "".join(f"{r}\n" for r in records)

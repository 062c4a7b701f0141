"""An authoritative zone of server records, served by twisted.names, for the embedded stack.

Where no site DNS takes dynamic updates, the daemon serves `_stateless._tcp` itself: the zone
is built from the directory's Server values and rebuilt in memory when they change (the SOA
serial goes up, so secondaries notice). Answers carry the SRV targets' A records in the
additional section, so an agent needs one query. The reactor is always passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from twisted.names import authority, server
from twisted.names import dns as tdns

from stateless.dns.records import DEFAULT_TTL, ZoneRecord, fqdn, zone_records
from stateless.model.inventory import Server


class _Reactor(Protocol):
    def listenUDP(self, port: int, protocol: Any, interface: str = ..., maxPacketSize: int = ...) -> Any:
        ...

    def listenTCP(self, port: int, factory: Any, backlog: int = ..., interface: str = ...) -> Any:
        ...


def _key(name: str) -> bytes:
    return name.rstrip(".").lower().encode("ascii")


def _payload(record: ZoneRecord) -> Any:
    if record.rdtype == "SRV":
        priority, weight, port, target = record.value.split()
        return tdns.Record_SRV(int(priority), int(weight), int(port), target.rstrip("."),
                               ttl=record.ttl)
    if record.rdtype == "A":
        return tdns.Record_A(record.value, ttl=record.ttl)
    raise ValueError(f"record type {record.rdtype} is not served")  # records.py makes only these


class ServerZone(authority.FileAuthority):
    """The zone `domain` holding SOA, NS and the servers' SRV and A records."""

    soa: tuple[bytes, Any]  # type: ignore[assignment]  # None in the base until loaded
    records: dict[bytes, list[Any]]  # type: ignore[assignment]

    _ADDITIONAL_PROCESSING_TYPES = (tdns.CNAME, tdns.MX, tdns.NS, tdns.SRV)  # type: ignore[assignment]

    def __init__(self, domain: str, servers: Iterable[Server] = (), *, nameserver: str | None = None,
                 nameserver_address: str | None = "127.0.0.1", ttl: int = DEFAULT_TTL,
                 serial: int = 1, addresses: Mapping[str, str] | None = None) -> None:
        self.domain = fqdn(domain)
        self.nameserver = fqdn(nameserver or f"ns.{self.domain}")
        self.nameserver_address = nameserver_address
        self.ttl = ttl
        self.serial = serial - 1
        self.addresses = dict(addresses or {})
        self.servers: tuple[Server, ...] = ()
        super().__init__(None)
        self.update(servers)

    def loadFile(self, filename: object) -> None:
        """Nothing to load: `update` fills the zone."""

    def update(self, servers: Iterable[Server], *, covered: Mapping[str, str] | None = None) -> None:
        """Replace the server records (all at once, so a query never sees half a change).

        `covered`: site with no live server -> the site whose servers publish its records.
        """
        servers = tuple(servers)
        records: dict[bytes, list[Any]] = {}
        for record in zone_records(servers, self.domain, ttl=self.ttl, a_records=True,
                                   addresses=self.addresses, covered=covered):
            records.setdefault(_key(record.name), []).append(_payload(record))
        origin = _key(self.domain)
        self.serial += 1
        mname = self.nameserver.rstrip(".")
        soa = tdns.Record_SOA(mname=mname, rname=f"hostmaster.{self.domain}".rstrip("."),
                              serial=self.serial, refresh=3600, retry=600, expire=86400,
                              minimum=min(self.ttl, 60), ttl=self.ttl)
        records.setdefault(origin, []).extend([soa, tdns.Record_NS(mname, ttl=self.ttl)])
        if self.nameserver_address and self.nameserver.endswith(self.domain):
            records.setdefault(_key(self.nameserver), []).append(
                tdns.Record_A(self.nameserver_address, ttl=self.ttl))
        self.servers = servers
        self.soa = (origin, soa)
        self.records = records
        self._cache = {}

    def _additionalRecords(self, answer: list[Any], authority: list[Any], ttl: int) -> Iterable[Any]:
        """A records of SRV targets too (twisted.names adds them only for NS, MX and CNAME)."""
        for record in answer + authority:
            if record.type == tdns.SRV:
                name = record.payload.target.name
            elif record.type in self._ADDITIONAL_PROCESSING_TYPES:
                name = record.payload.name.name
            else:
                continue
            for rec in self.records.get(name.lower(), ()):
                if rec.TYPE in self._ADDRESS_TYPES:
                    yield tdns.RRHeader(name, rec.TYPE, tdns.IN, rec.ttl or ttl, rec, auth=True)


class _ServerFactory(server.DNSServerFactory):
    """Hands the given reactor to every TCP connection's protocol instead of the global one."""

    noisy = False

    def __init__(self, zone: ServerZone, reactor: _Reactor) -> None:
        super().__init__(authorities=[zone])
        self.reactor = reactor

    def buildProtocol(self, addr: object) -> Any:
        proto = self.protocol(self, reactor=self.reactor)
        proto.factory = self
        return proto


def listen(zone: ServerZone, reactor: _Reactor, port: int = 53,
           interface: str = "127.0.0.1") -> tuple[Any, Any]:
    """Serve `zone` on UDP and TCP `port`; returns both listening ports (stopListening them)."""
    factory = _ServerFactory(zone, reactor)
    udp = reactor.listenUDP(port, tdns.DNSDatagramProtocol(factory, reactor=reactor), interface=interface)
    try:
        tcp = reactor.listenTCP(port, factory, interface=interface)
    except Exception:
        udp.stopListening()
        raise
    return udp, tcp

"""A server keeps its own SRV records in the zone with TSIG-signed RFC 2136 updates.

Each call is one blocking update over TCP; the daemon runs them in its thread pool at start,
on a timer, and at clean stop. Register and refresh are the same idempotent update: delete
exactly these RRs, then add them, so a refresh also repairs a record someone removed and a
TTL change takes effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from stateless.dns.errors import DiscoveryError
from stateless.dns.records import DEFAULT_TTL, ZoneRecord, fqdn, server_records
from stateless.dns.tsig import TsigKey
from stateless.model.inventory import Server

_RCODE_FIX = {
    dns.rcode.REFUSED: "the zone refused the update: allow it for this key "
                       '(allow-update { key "NAME"; }; or an update-policy grant)',
    dns.rcode.NOTAUTH: "the server is not authoritative for the zone or the key is unknown to it: "
                       "point --nameserver at the zone's primary and check the key name",
    dns.rcode.NOTZONE: "a record lies outside the zone: check the domain and zone settings",
    dns.rcode.SERVFAIL: "the name server failed: see its log (journal not writable?)",
}


class Registrar:
    """Registers, refreshes and removes one server's records in one zone."""

    def __init__(self, server: Server, domain: str, *, nameserver: str, key: TsigKey,
                 port: int = 53, zone: str | None = None, ttl: int = DEFAULT_TTL,
                 a_records: bool = False, addresses: Mapping[str, str] | None = None,
                 timeout: float = 5.0) -> None:
        self.server = server
        self.domain = fqdn(domain)
        self.zone = fqdn(zone or domain)
        self.nameserver = nameserver
        self.port = port
        self.key = key
        self.timeout = timeout
        self._options: dict[str, Any] = {"ttl": ttl, "a_records": a_records, "addresses": addresses}
        self.covers: tuple[str, ...] = ()
        self.records: tuple[ZoneRecord, ...] = self._records(())

    def _records(self, covers: Sequence[str]) -> tuple[ZoneRecord, ...]:
        records = tuple(server_records(self.server, self.domain, covers=covers, **self._options))
        zone_name = dns.name.from_text(self.zone)
        for record in records:
            if not dns.name.from_text(record.name).is_subdomain(zone_name):
                raise DiscoveryError(f"record {record.name} is outside zone {self.zone}: set the zone "
                                     "to the domain or one of its parents")
        return records

    @property
    def where(self) -> str:
        return f"name server {self.nameserver}:{self.port}, zone {self.zone}"

    def _rdata(self, record: ZoneRecord) -> dns.rdata.Rdata:
        return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(record.rdtype),
                                   record.value)

    def _message(self) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(self.zone, keyring=self.key.keyring(),
                                        keyname=self.key.keyname, keyalgorithm=self.key.algorithm)

    def register(self) -> None:
        """Put this server's records in the zone (idempotent: delete these RRs, then add them)."""
        update = self._message()
        for record in self.records:
            rdata = self._rdata(record)
            update.delete(record.name, rdata)
            update.add(record.name, record.ttl, rdata)
        self._send(update, "register")

    def set_sites(self, covers: Sequence[str]) -> None:
        """Publish this server under the site names it covers (and no longer under others)."""
        records = self._records(covers)
        update = self._message()
        for record in self.records:
            if record not in records:
                update.delete(record.name, self._rdata(record))
        for record in records:
            rdata = self._rdata(record)
            update.delete(record.name, rdata)
            update.add(record.name, record.ttl, rdata)
        self._send(update, "register")
        self.covers, self.records = tuple(covers), records

    def refresh(self) -> None:
        """Same update as register: repairs removed records and applies TTL changes."""
        self.register()

    def unregister(self) -> None:
        """Remove exactly this server's records, leaving other servers' records alone."""
        update = self._message()
        for record in self.records:
            update.delete(record.name, self._rdata(record))
        self._send(update, "remove")

    def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        prefix = f"cannot {what} DNS records of server {self.server.name} at {self.where}"
        try:
            response = dns.query.tcp(update, self.nameserver, port=self.port, timeout=self.timeout)
        except (dns.tsig.PeerBadKey, dns.tsig.PeerBadSignature, dns.tsig.PeerBadTime,
                dns.tsig.BadSignature, dns.tsig.BadTime) as exc:
            raise DiscoveryError(f"{prefix}: TSIG key {self.key.name} was rejected ({exc}); use the "
                                 "key file the name server has for this zone, and check clocks") from exc
        except dns.exception.Timeout as exc:
            raise DiscoveryError(f"{prefix}: no answer in {self.timeout}s; check that the name "
                                 "server runs and accepts TCP") from exc
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            raise DiscoveryError(f"{prefix}: {exc or type(exc).__name__}; check the name server "
                                 "address and port") from exc
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            fix = _RCODE_FIX.get(rcode, "see the name server's log")
            raise DiscoveryError(f"{prefix}: {dns.rcode.to_text(rcode)}: {fix}")

"""Find servers through SRV records, site first, in RFC 2782 priority/weight order.

The ordering is dnspython's own (`Rdataset.processing_order`, RFC 2782 weighted selection
within each priority); referral lists, which arrive as JSON, are put through the same code by
making SRV rdata of them. The daemon's `stateless.dns.lookup` shares these functions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import dns.exception
import dns.name
import dns.nameserver
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.IN.SRV
import dns.resolver

SERVICE = "_stateless._tcp"


@dataclass(frozen=True)
class Target:
    """One server to try: its base URL, SRV priority/weight, and an address when DNS gave one."""

    url: str
    priority: int = 0
    weight: int = 0
    address: str | None = None
    source: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def srv_names(domain: str, site: str | None) -> list[str]:
    """The SRV names to ask, most specific first (the AD DC locator's order)."""
    domain = domain.strip().rstrip(".").lower()
    names = [f"{SERVICE}.{site.strip().lower()}._sites.{domain}."] if site else []
    return [*names, f"{SERVICE}.{domain}."]


def parse_nameserver(text: str) -> tuple[str, int]:
    """'IP', 'IP:PORT', '[IPv6]:PORT' or a bare IPv6 address."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port


def make_resolver(nameservers: Sequence[str] = (), timeout: float = 5.0) -> dns.resolver.Resolver:
    """A resolver for the given 'IP[:PORT]' servers, or the system's (resolv.conf) when none."""
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        servers: list[str | dns.nameserver.Nameserver] = []
        for text in nameservers:
            host, port = parse_nameserver(text)
            servers.append(dns.nameserver.Do53Nameserver(host, port))
        resolver.nameservers = servers
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 2.0)
    return resolver


def _order(rdataset: dns.rdataset.Rdataset) -> list[dns.rdtypes.IN.SRV.SRV]:
    return list(rdataset.processing_order())  # type: ignore[arg-type]


def order_targets(targets: Iterable[Target]) -> list[Target]:
    """RFC 2782 order of targets that did not come from DNS (a referral's server list)."""
    items = list(targets)
    rdataset = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.SRV)
    for index, target in enumerate(items):
        rdataset.add(dns.rdtypes.IN.SRV.SRV(dns.rdataclass.IN, dns.rdatatype.SRV,
                                            target.priority, target.weight, index,
                                            dns.name.from_text(f"t{index}.invalid.")))
    return [items[rdata.port] for rdata in _order(rdataset)] if items else []


Log = Callable[[str], None]


def _addresses(answer: dns.resolver.Answer) -> dict[str, str]:
    """A records the server put in the additional section, so no second query is needed."""
    found: dict[str, str] = {}
    for rrset in answer.response.additional:
        if rrset.rdtype == dns.rdatatype.A:
            found.setdefault(rrset.name.to_text().lower(), rrset[0].address)
    return found


def lookup_srv(resolver: dns.resolver.Resolver, name: str, *, scheme: str = "http",
               log: Log | None = None, strict: bool = False) -> list[Target]:
    """The targets of one SRV name in processing order; empty when the name has none.

    Target names are resolved with the same resolver, so a host whose system resolver does not
    know the zone still connects to the right address (the URL keeps the name for Host/SNI).
    With `strict`, a failed lookup (timeout, SERVFAIL) raises instead of counting as empty.
    """
    try:
        answer = resolver.resolve(name, dns.rdatatype.SRV, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        if strict:
            raise
        if log:
            log(f"SRV lookup of {name} failed: {exc}")
        return []
    extra = _addresses(answer)
    rrset = answer.rrset
    if rrset is None:
        return []
    targets = []
    for rdata in _order(rrset):
        host = rdata.target.to_text()
        if host == ".":  # RFC 2782: the service is decidedly not available here
            continue
        address = extra.get(host.lower()) or resolve_address(resolver, host, log=log)
        targets.append(Target(f"{scheme}://{host.rstrip('.')}:{rdata.port}", rdata.priority,
                              rdata.weight, address, source=name))
    return targets


def resolve_address(resolver: dns.resolver.Resolver, host: str, *, log: Log | None = None) -> str | None:
    """IPv4 address of `host` from `resolver`, or None to leave it to the system resolver."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        answer = resolver.resolve(host, dns.rdatatype.A, search=False)
    except dns.exception.DNSException as exc:
        if log:
            log(f"no address for {host} from DNS ({type(exc).__name__}); using the system resolver")
        return None
    return str(answer[0].address) if answer.rrset else None


def locate(resolver: dns.resolver.Resolver, domain: str, site: str | None = None, *,
           scheme: str = "http", log: Log | None = None, strict: bool = False) -> list[Target]:
    """Site servers first, then the rest of the domain's, each group in RFC 2782 order, no repeats."""
    seen: dict[str, Target] = {}
    for name in srv_names(domain, site):
        for target in lookup_srv(resolver, name, scheme=scheme, log=log, strict=strict):
            seen.setdefault(target.url, target)
    return list(seen.values())

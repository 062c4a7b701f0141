"""Find servers through SRV records, site first, in RFC 2782 priority/weight order.

The ordering is dnspython's own (`Rdataset.processing_order`, RFC 2782 weighted selection
within each priority); referral lists, which arrive as JSON, are put through the same code by
making SRV rdata of them. The daemon's `stateless.dns.lookup` shares these functions.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import dns.exception
import dns.inet
import dns.message
import dns.name
import dns.nameserver
import dns.query
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


def srv_names(domain: str, site: str | None, others: Sequence[str] = ()) -> list[str]:
    """The SRV names to ask, most specific first (the AD DC locator's order): the site's, then
    those of the next closest sites (`others`, in link-cost order), then the domain's."""
    domain = domain.strip().rstrip(".").lower()
    sites = [s.strip().lower() for s in ([site] if site else []) + list(others) if s and s.strip()]
    names = [f"{SERVICE}.{s}._sites.{domain}." for s in dict.fromkeys(sites)]
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


class ConnectedDo53(dns.nameserver.Do53Nameserver):
    """Do53 over a connected UDP socket, so a name server that is down fails the query at once.

    dnspython sends from an unconnected socket, to which the kernel reports no ICMP errors, so
    a closed port or an unreachable host is waited on for the whole timeout, like a silent
    server.  A connected socket receives `ConnectionRefusedError` (or another `OSError`), which
    the resolver takes as "this name server is no good" and goes on to the next one.
    """

    def query(self, request: dns.message.QueryMessage, timeout: float, source: str | None,
              source_port: int, max_size: bool, one_rr_per_rrset: bool = False,
              ignore_trailing: bool = False) -> dns.message.Message:
        if max_size:  # TCP: a refused connection fails at once anyway
            return super().query(request, timeout, source, source_port, max_size,
                                 one_rr_per_rrset, ignore_trailing)
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            if source or source_port:
                sock.bind((source or ("::" if family == socket.AF_INET6 else "0.0.0.0"), source_port))
            sock.connect((self.address, self.port))
            return dns.query.udp(request, self.address, timeout=timeout, port=self.port,
                                 raise_on_truncation=True, one_rr_per_rrset=one_rr_per_rrset,
                                 ignore_trailing=ignore_trailing, ignore_errors=True,
                                 ignore_unexpected=True, sock=sock)


def _connected(resolver: dns.resolver.Resolver) -> list[str | dns.nameserver.Nameserver]:
    """The resolver's plain UDP name servers as `ConnectedDo53`; others (DoH, ...) as they are."""
    servers: list[str | dns.nameserver.Nameserver] = []
    for server in resolver.nameservers:
        if isinstance(server, str) and dns.inet.is_address(server):
            servers.append(ConnectedDo53(server, resolver.nameserver_ports.get(server, resolver.port)))
        elif type(server) is dns.nameserver.Do53Nameserver:
            servers.append(ConnectedDo53(server.address, server.port))
        else:
            servers.append(server)
    return servers


def make_resolver(nameservers: Sequence[str] = (), timeout: float = 2.0) -> dns.resolver.Resolver:
    """A resolver for the given 'IP[:PORT]' servers, or the system's (resolv.conf) when none.

    `timeout` is the lifetime of one lookup, all name servers and retries included; each name
    server gets an equal share of it, so a silent first server leaves time to ask the next.
    """
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [ConnectedDo53(*parse_nameserver(text)) for text in nameservers]
    else:
        resolver = dns.resolver.Resolver()
        resolver.nameservers = _connected(resolver)
    resolver.lifetime = timeout
    resolver.timeout = timeout / max(1, len(resolver.nameservers))
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


def _unanswered(exc: dns.exception.DNSException) -> bool:
    """No name server answered at all: every one refused, was unreachable or stayed silent."""
    if isinstance(exc, dns.resolver.LifetimeTimeout):
        return True
    if isinstance(exc, dns.resolver.NoNameservers):
        errors = exc.kwargs.get("errors") or []
        return bool(errors) and all(error[4] is None for error in errors)
    return False


class Lookups:
    """One round's DNS questions: each asked at most once, and none once DNS is down.

    DNS is down for the round when no name server answered a lookup at all (each refused,
    was unreachable or stayed silent for the whole lifetime).  The round's other names are
    then not asked, so the agent goes straight to its next source (the --server URLs) instead
    of waiting once more per name.  A name server that answers, even with SERVFAIL, only
    fails that name.  With `strict`, a failed SRV lookup raises instead.
    """

    def __init__(self, resolver: dns.resolver.Resolver, *, log: Log | None = None,
                 strict: bool = False) -> None:
        self.resolver = resolver
        self.log = log
        self.strict = strict
        self.down: str | None = None
        self._answers: dict[tuple[str, dns.rdatatype.RdataType], dns.resolver.Answer | None] = {}

    def _ask(self, name: str, rdtype: dns.rdatatype.RdataType, *, strict: bool,
             what: str) -> dns.resolver.Answer | None:
        key = (name.lower().rstrip("."), rdtype)
        if key in self._answers:
            return self._answers[key]
        if self.down is not None:
            return None
        answer = None
        try:
            answer = self.resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            pass
        except dns.exception.DNSException as exc:
            if strict:
                raise
            if _unanswered(exc):
                self.down = str(exc)
                if self.log:
                    self.log(f"{what} failed, no name server answered: {exc}; "
                             "skipping DNS for the rest of this round")
            elif self.log:
                self.log(f"{what} failed: {exc}")
        self._answers[key] = answer
        return answer

    def srv(self, name: str) -> dns.resolver.Answer | None:
        """The SRV answer for `name`; None when it has none or the lookup failed."""
        return self._ask(name, dns.rdatatype.SRV, strict=self.strict, what=f"SRV lookup of {name}")

    def address(self, host: str) -> str | None:
        """IPv4 address of `host` from DNS, or None to leave it to the system resolver."""
        try:
            ipaddress.ip_address(host)
            return None
        except ValueError:
            pass
        answer = self._ask(host, dns.rdatatype.A, strict=False, what=f"address lookup of {host}")
        if answer is None or answer.rrset is None:
            if self.log:
                self.log(f"no address for {host} from DNS; using the system resolver")
            return None
        return str(answer.rrset[0].address)


def _addresses(answer: dns.resolver.Answer) -> dict[str, str]:
    """A records the server put in the additional section, so no second query is needed."""
    found: dict[str, str] = {}
    for rrset in answer.response.additional:
        if rrset.rdtype == dns.rdatatype.A:
            found.setdefault(rrset.name.to_text().lower(), rrset[0].address)
    return found


def lookup_srv(lookups: Lookups, name: str, *, scheme: str = "http") -> list[Target]:
    """The targets of one SRV name in processing order; empty when the name has none.

    Target names are resolved with the same resolver, so a host whose system resolver does not
    know the zone still connects to the right address (the URL keeps the name for Host/SNI).
    """
    answer = lookups.srv(name)
    rrset = answer.rrset if answer is not None else None
    if answer is None or rrset is None:
        return []
    extra = _addresses(answer)
    targets = []
    for rdata in _order(rrset):
        host = rdata.target.to_text()
        if host == ".":  # RFC 2782: the service is decidedly not available here
            continue
        address = extra.get(host.lower()) or lookups.address(host)
        targets.append(Target(f"{scheme}://{host.rstrip('.')}:{rdata.port}", rdata.priority,
                              rdata.weight, address, source=name))
    return targets


def locate(resolver: dns.resolver.Resolver | Lookups, domain: str, site: str | None = None, *,
           scheme: str = "http", log: Log | None = None, strict: bool = False,
           others: Sequence[str] = ()) -> list[Target]:
    """Site servers first, then those of the next closest sites (`others`), then the rest of the
    domain's, each group in RFC 2782 order, no repeats.

    Given a `Lookups`, its round's answers are shared (and `log`/`strict` are its own).
    """
    lookups = resolver if isinstance(resolver, Lookups) else Lookups(resolver, log=log, strict=strict)
    seen: dict[str, Target] = {}
    for name in srv_names(domain, site, others):
        for target in lookup_srv(lookups, name, scheme=scheme):
            seen.setdefault(target.url, target)
    return list(seen.values())

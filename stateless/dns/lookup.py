"""Site-aware server lookup for the daemon and the CLI: the agent's ordering, with our errors.

The agent's `locate` module is standard library + dnspython only, so both sides share one
implementation of the locator order (site SRV name first, RFC 2782 within each).
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.exception
import dns.resolver

from stateless.agent.locate import Target, locate, make_resolver, srv_names
from stateless.dns.errors import DiscoveryError

__all__ = ["Target", "find_servers", "resolver_for", "srv_names"]


def resolver_for(nameservers: Sequence[str] = (), *, port: int = 53,
                 timeout: float = 5.0) -> dns.resolver.Resolver:
    """A resolver for 'IP' or 'IP:PORT' servers (`port` applies where none is given)."""
    try:
        specs = [ns if ":" in ns else f"{ns}:{port}" for ns in nameservers]
        return make_resolver(specs, timeout)
    except (ValueError, dns.exception.DNSException) as exc:
        raise DiscoveryError(f"name servers {', '.join(nameservers) or '(system)'}: {exc}; give "
                             "IPv4 addresses as IP or IP:PORT, or fix /etc/resolv.conf") from exc


def find_servers(domain: str, site: str | None = None, *,
                 resolver: dns.resolver.Resolver | None = None, scheme: str = "http") -> list[Target]:
    """Servers of `site` first, then the domain's others; DNS failures raise DiscoveryError.

    A name that does not exist or has no SRV records counts as no servers, not as an error.
    """
    resolver = resolver or resolver_for()
    try:
        return locate(resolver, domain, site, scheme=scheme, strict=True)
    except dns.exception.DNSException as exc:
        where = ", ".join(str(ns) for ns in resolver.nameservers) or "(no name server)"
        raise DiscoveryError(f"SRV lookup for domain {domain} (site {site or '-'}) at {where} failed: "
                             f"{exc}; check that the name server runs and serves the zone") from exc

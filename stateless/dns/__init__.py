"""Server discovery over DNS: SRV records like the AD DC locator.

`records` builds the record set (pure), `register` keeps a server's own records in a zone
with signed RFC 2136 updates, `lookup` finds servers in site order, and `zone` serves an
authoritative zone with twisted.names for the embedded stack.
"""

from stateless.dns.errors import DiscoveryError

__all__ = ["DiscoveryError"]

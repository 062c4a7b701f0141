"""`stateless dns records`: zone-file lines for hand-kept zones."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import UsageError, _connect, cmd, group


def cmd_dns_records(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.dns.records import records_text

    domain = args.domain or args.environ.get("STATELESS_DOMAIN")
    if not domain:
        raise UsageError("no DNS domain: give --domain D or set STATELESS_DOMAIN")
    if args.ttl < 0:
        raise UsageError(f"--ttl {args.ttl}: must be 0 or more seconds")
    with _connect(args) as d:
        snapshot = d.snapshot()
    servers = sorted(snapshot.servers.values(), key=lambda s: s.name)
    out.write(records_text(servers, domain, ttl=args.ttl, a_records=args.a_records))
    if not servers:
        out.write("; no servers in the directory: add them with `stateless server add`\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "dns", "DNS discovery records")
    sp = cmd(g, "records", cmd_dns_records, "zone-file lines (SRV, optional A) for every server")
    sp.add_argument("--domain", metavar="D", help="DNS domain (or STATELESS_DOMAIN)")
    sp.add_argument("--ttl", type=int, default=300, metavar="N", help="seconds (default 300)")
    sp.add_argument("--a-records", action="store_true",
                    help="A records for targets whose server URL is an IPv4 address")

"""`stateless pool`: IP pools for VMkernel NICs."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import UsageError, _connect, cmd, group
from stateless.model.inventory import IpPool


def cmd_pool_add(args: argparse.Namespace, out: TextIO) -> int:
    start, sep, end = args.range.partition("-")
    if not sep:
        raise UsageError(f"--range {args.range!r}: expected FIRST-LAST, e.g. 10.0.20.10-10.0.20.99")
    pool = IpPool(args.name, start.strip(), end.strip(), args.netmask, args.gateway)
    with _connect(args) as d:
        d.add_pool(pool)
    out.write(f"added pool {pool.name} {pool.start}-{pool.end} ({pool.size} addresses)\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "pool", "IP pools for VMkernel NICs")
    sp = cmd(g, "add", cmd_pool_add, "add a pool")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--range", required=True, metavar="FIRST-LAST")
    sp.add_argument("--netmask", required=True)
    sp.add_argument("--gateway")

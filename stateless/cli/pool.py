"""`stateless pool`: IP pools for VMkernel NICs, and which host holds which address."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import UsageError, _connect, _emit, _table, cmd, group
from stateless.directory import admin
from stateless.directory.client import Directory
from stateless.errors import NotFoundError
from stateless.model.inventory import IpPool, Snapshot, check_name


def cmd_pool_add(args: argparse.Namespace, out: TextIO) -> int:
    start, sep, end = args.range.partition("-")
    if not sep:
        raise UsageError(f"--range {args.range!r}: expected FIRST-LAST, e.g. 10.0.20.10-10.0.20.99")
    pool = IpPool(args.name, start.strip(), end.strip(), args.netmask, args.gateway)
    with _connect(args) as d:
        d.add_pool(pool)
    out.write(f"added pool {pool.name} {pool.start}-{pool.end} ({pool.size} addresses)\n")
    return 0


def _usage(d: Directory, snapshot: Snapshot, pool: IpPool) -> dict[str, Any]:
    """Size, allocated, free, and who holds each allocated address."""
    _, used = d.pool_used(pool.name)
    holders = admin.pool_holders(snapshot, pool.name)
    return {"name": pool.name, "range": f"{pool.start}-{pool.end}", "netmask": pool.netmask,
            "gateway": pool.gateway, "size": pool.size, "allocated": len(used),
            "free": pool.size - len(used),
            "addresses": [{"address": a, "host": holders.get(a, ("", ""))[0],
                           "how": holders.get(a, ("", "reserved, no host holds it"))[1]}
                          for a in sorted(used, key=lambda a: tuple(int(x) for x in a.split(".")))],
            "used_by": admin.pool_users(snapshot, pool.name), "dn": pool.dn}


def cmd_pool_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
        usage = [_usage(d, snapshot, p) for p in sorted(snapshot.pools.values(), key=lambda p: p.name)]
    if args.json:
        _emit(out, usage)
        return 0
    _table(out, ["pool", "range", "netmask", "gateway", "size", "allocated", "free"],
           [[u["name"], u["range"], u["netmask"], u["gateway"] or "", str(u["size"]),
             str(u["allocated"]), str(u["free"])] for u in usage])
    return 0


def cmd_pool_show(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
        pool = snapshot.pools.get(check_name(args.name, "pool"))
        if pool is None:
            raise NotFoundError(f"pool {args.name}: not in the directory; see `stateless pool list`")
        usage = _usage(d, snapshot, pool)
    if args.json:
        _emit(out, usage)
        return 0
    out.write(f"pool {pool.name}: {usage['range']} netmask {pool.netmask}"
              + (f" gateway {pool.gateway}" if pool.gateway else "")
              + f"\nsize {usage['size']}, allocated {usage['allocated']}, free {usage['free']}\n"
              f"used by: {'; '.join(usage['used_by']) or '(nothing)'}\n")
    if usage["addresses"]:
        _table(out, ["address", "host", "how"],
               [[a["address"], a["host"], a["how"]] for a in usage["addresses"]])
    return 0


def cmd_pool_delete(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        admin.delete_pool(d, args.name)
    out.write(f"deleted pool {args.name}\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "pool", "IP pools for VMkernel NICs")
    sp = cmd(g, "add", cmd_pool_add, "add a pool")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--range", required=True, metavar="FIRST-LAST")
    sp.add_argument("--netmask", required=True)
    sp.add_argument("--gateway")
    cmd(g, "list", cmd_pool_list, "list pools with their size, allocated and free addresses",
        json_flag=True)
    sp = cmd(g, "show", cmd_pool_show, "one pool: usage and which host holds which address",
             json_flag=True)
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "delete", cmd_pool_delete, "delete a pool nothing uses and no host holds addresses of")
    sp.add_argument("name", metavar="NAME")

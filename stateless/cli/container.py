"""`stateless container`: datacenters, folders, clusters and block inheritance."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import attrs

from stateless.cli._common import _connect, _emit, _table, cmd, group
from stateless.model.inventory import normalize_path


def cmd_container_add(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        dn = d.add_container(args.path, args.kind, args.description or "")
    out.write(f"added {args.kind} {normalize_path(args.path)} ({dn})\n")
    return 0


def cmd_container_block(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        d.set_block(args.path, not args.off)
    out.write(f"{normalize_path(args.path)}: block inheritance {'off' if args.off else 'on'}\n")
    return 0


def cmd_container_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    if args.json:
        _emit(out, [{"path": c.path, "kind": str(c.kind), "block": c.block,
                     "links": [attrs.asdict(link) for link in c.links], "dn": c.dn}
                    for c in snapshot.containers.values()])
        return 0
    rows = []
    for c in snapshot.containers.values():
        links = ", ".join(f"{link.policy}(order {link.order}"
                          + (", enforced" if link.enforced else "")
                          + (", disabled" if link.disabled else "") + ")" for link in c.links)
        rows.append([c.path, str(c.kind), "yes" if c.block else "", links])
    _table(out, ["path", "kind", "block", "links"], rows)
    return 0


def register(sub: Any) -> None:
    g = group(sub, "container", "inventory: datacenters, folders, clusters")
    sp = cmd(g, "add", cmd_container_add, "add a container below an existing one")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--kind", required=True, choices=["datacenter", "folder", "cluster"])
    sp.add_argument("--description")
    sp = cmd(g, "block", cmd_container_block, "block inheritance of non-enforced links from above")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--off", action="store_true", help="stop blocking")
    cmd(g, "list", cmd_container_list, "list containers and their links", json_flag=True)

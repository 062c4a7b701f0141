"""`stateless container`: datacenters, folders, clusters, their vCenter and block inheritance."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import attrs

from stateless.cli._common import _connect, _emit, _table, cmd, group
from stateless.directory import admin
from stateless.errors import NotFoundError
from stateless.model.inventory import Container, Snapshot, normalize_path


def _container_json(snapshot: Snapshot, c: Container) -> dict[str, Any]:
    prefix = c.path.rstrip("/") + "/"
    return {"path": c.path, "kind": str(c.kind), "block": c.block, "vcenter": c.vcenter,
            "links": [attrs.asdict(link) for link in c.links],
            "children": sorted(p for p in snapshot.containers
                               if p != c.path and p.startswith(prefix) and "/" not in p[len(prefix):]),
            "hosts": sorted(h.uuid for h in snapshot.hosts.values() if h.location == c.path),
            "dn": c.dn}


def cmd_container_add(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        dn = admin.add_container(d, args.path, args.kind, args.description or "")
    out.write(f"added {args.kind} {normalize_path(args.path)} ({dn})\n")
    return 0


def cmd_container_block(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        d.set_block(args.path, not args.off)
    out.write(f"{normalize_path(args.path)}: block inheritance {'off' if args.off else 'on'}\n")
    return 0


def cmd_container_set(args: argparse.Namespace, out: TextIO) -> int:
    path = normalize_path(args.path)
    with _connect(args) as d:
        admin.set_container(d, path, vcenter=args.vcenter, clear_vcenter=args.no_vcenter,
                            block=args.block, description=args.description)
    done = []
    if args.vcenter or args.no_vcenter:
        done.append(f"vCenter {args.vcenter}" if args.vcenter else "no vCenter of its own")
    if args.block is not None:
        done.append(f"block inheritance {'on' if args.block else 'off'}")
    if args.description is not None:
        done.append("description")
    out.write(f"changed container {path}: {', '.join(done)}\n")
    return 0


def cmd_container_delete(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        deleted = admin.delete_container(d, args.path, args.recursive)
    out.write("".join(f"deleted container {p}\n" for p in deleted))
    return 0


def cmd_container_show(args: argparse.Namespace, out: TextIO) -> int:
    path = normalize_path(args.path)
    with _connect(args) as d:
        snapshot = d.snapshot()
    found = snapshot.containers.get(path)
    if found is None:
        raise NotFoundError(f"container {path}: not in the directory; see `stateless container list`")
    data = _container_json(snapshot, found)
    if args.json:
        _emit(out, data)
        return 0
    out.write(f"path: {found.path}\nkind: {found.kind}\nvcenter: {found.vcenter or '(inherited)'}\n"
              f"block inheritance: {'yes' if found.block else 'no'}\n"
              f"links: {_links_text(found) or '(none)'}\n"
              f"children: {', '.join(data['children']) or '(none)'}\n"
              f"hosts placed here: {', '.join(data['hosts']) or '(none)'}\n")
    return 0


def _links_text(c: Container) -> str:
    return ", ".join(f"{link.policy}(order {link.order}" + (", enforced" if link.enforced else "")
                     + (", disabled" if link.disabled else "") + ")" for link in c.links)


def cmd_container_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    if args.json:
        _emit(out, [{"path": c.path, "kind": str(c.kind), "block": c.block, "vcenter": c.vcenter,
                     "links": [attrs.asdict(link) for link in c.links], "dn": c.dn}
                    for c in snapshot.containers.values()])
        return 0
    rows = [[c.path, str(c.kind), c.vcenter or "", "yes" if c.block else "", _links_text(c)]
            for c in snapshot.containers.values()]
    _table(out, ["path", "kind", "vcenter", "block", "links"], rows)
    return 0


def register(sub: Any) -> None:
    g = group(sub, "container", "inventory: datacenters, folders, clusters")
    sp = cmd(g, "add", cmd_container_add, "add a container below an existing one (datacenters at "
             "the root; folders and clusters in a datacenter or folder)")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--kind", required=True, choices=["datacenter", "folder", "cluster"])
    sp.add_argument("--description")
    sp = cmd(g, "set", cmd_container_set, "change a container's vCenter, block inheritance or "
             "description")
    sp.add_argument("path", metavar="PATH")
    vc = sp.add_mutually_exclusive_group()
    vc.add_argument("--vcenter", metavar="NAME",
                    help="the vCenter that manages this container and what is below it")
    vc.add_argument("--no-vcenter", action="store_true", help="inherit the vCenter from above")
    sp.add_argument("--block-inheritance", dest="block", action=argparse.BooleanOptionalAction,
                    default=None, help="block non-enforced links from above (or stop blocking)")
    sp.add_argument("--description")
    sp = cmd(g, "block", cmd_container_block, "block inheritance of non-enforced links from above")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--off", action="store_true", help="stop blocking")
    sp = cmd(g, "show", cmd_container_show, "show one container, its children and hosts",
             json_flag=True)
    sp.add_argument("path", metavar="PATH")
    sp = cmd(g, "delete", cmd_container_delete, "delete a container (not while hosts or rules "
             "place hosts in it)")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--recursive", action="store_true",
                    help="also delete the containers below it and their links")
    cmd(g, "list", cmd_container_list, "list containers and their links", json_flag=True)

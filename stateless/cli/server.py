"""`stateless server`: statelessd servers."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import UsageError, _connect, _emit, _table, cmd, group
from stateless.directory import admin
from stateless.errors import NotFoundError
from stateless.model.inventory import Server, check_name


def _server_json(s: Server) -> dict[str, Any]:
    return {"name": s.name, "site": s.site, "url": s.url, "vcenters": list(s.vcenters),
            "priority": s.priority, "weight": s.weight,
            "lease_expiry": s.lease_expiry.isoformat() if s.lease_expiry else None, "dn": s.dn}


def cmd_server_add(args: argparse.Namespace, out: TextIO) -> int:
    server = Server(args.name, check_name(args.site, "site"), args.url, tuple(args.vcenter or ()),
                    args.priority, args.weight)
    with _connect(args) as d:
        admin.add_server(d, server)
    out.write(f"added server {server.name} ({server.url}, site {server.site})\n")
    return 0


def cmd_server_set(args: argparse.Namespace, out: TextIO) -> int:
    fields = {"site": args.site, "url": args.url, "priority": args.priority, "weight": args.weight,
              "vcenters": tuple(args.vcenter) if args.vcenter is not None else None}
    if all(v is None for v in fields.values()):
        raise UsageError("server set: nothing to change; give --site, --url, --vcenter, --priority "
                         "or --weight")
    with _connect(args) as d:
        server = admin.set_server(d, args.name, fields)
    out.write(f"changed server {server.name} ({server.url}, site {server.site})\n")
    return 0


def cmd_server_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        servers = sorted(d.snapshot().servers.values(), key=lambda s: s.name)
    if args.json:
        _emit(out, [_server_json(s) for s in servers])
        return 0
    _table(out, ["server", "site", "url", "vcenters", "priority", "weight"],
           [[s.name, s.site, s.url, ", ".join(s.vcenters), str(s.priority), str(s.weight)]
            for s in servers])
    return 0


def cmd_server_show(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        server = d.snapshot().servers.get(check_name(args.name, "server"))
    if server is None:
        raise NotFoundError(f"server {args.name}: not in the directory; see `stateless server list`")
    data = _server_json(server)
    if args.json:
        _emit(out, data)
        return 0
    out.write("".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}\n" for k, v in data.items()))
    return 0


def cmd_server_delete(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        admin.delete_server(d, args.name)
    out.write(f"deleted server {args.name}\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "server", "statelessd servers")
    sp = cmd(g, "add", cmd_server_add, "add a server (its site and vCenters must exist)")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--site", required=True)
    sp.add_argument("--url", required=True, help="http(s)://HOST[:PORT] of its API")
    sp.add_argument("--vcenter", action="append")
    sp.add_argument("--priority", type=int, default=0)
    sp.add_argument("--weight", type=int, default=100)
    sp = cmd(g, "set", cmd_server_set, "change a server's site, URL, vCenters, priority or weight")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--site")
    sp.add_argument("--url")
    sp.add_argument("--vcenter", action="append", help="replaces the list; repeat for several")
    sp.add_argument("--priority", type=int)
    sp.add_argument("--weight", type=int)
    cmd(g, "list", cmd_server_list, "list servers", json_flag=True)
    sp = cmd(g, "show", cmd_server_show, "show one server", json_flag=True)
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "delete", cmd_server_delete, "delete a server's entry")
    sp.add_argument("name", metavar="NAME")

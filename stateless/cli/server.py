"""`stateless server`: statelessd servers."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import _connect, cmd, group
from stateless.model.inventory import Server, check_name


def cmd_server_add(args: argparse.Namespace, out: TextIO) -> int:
    server = Server(args.name, check_name(args.site, "site"), args.url, tuple(args.vcenter or ()),
                    args.priority, args.weight)
    with _connect(args) as d:
        d.add_server(server)
    out.write(f"added server {server.name} ({server.url}, site {server.site})\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "server", "statelessd servers")
    sp = cmd(g, "add", cmd_server_add, "add a server")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--site", required=True)
    sp.add_argument("--url", required=True)
    sp.add_argument("--vcenter", action="append")
    sp.add_argument("--priority", type=int, default=0)
    sp.add_argument("--weight", type=int, default=100)

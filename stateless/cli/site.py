"""`stateless site`: sites and site links."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import attrs
import ldap3

from stateless.cli._common import _connect, _emit, _table, cmd, group
from stateless.errors import NotFoundError
from stateless.model.inventory import Site, SiteLink, check_name
from stateless.model.security import admission_mode


def cmd_site_add(args: argparse.Namespace, out: TextIO) -> int:
    site = Site(args.name, tuple(args.subnet), args.description or "")
    with _connect(args) as d:
        d.add_site(site)
    out.write(f"added site {site.name} ({', '.join(site.subnets)})\n")
    return 0


def cmd_site_link(args: argparse.Namespace, out: TextIO) -> int:
    link = SiteLink(check_name(args.a, "site"), check_name(args.b, "site"), args.cost)
    with _connect(args) as d:
        d.add_site_link(link)
    out.write(f"linked sites {link.a} and {link.b} at cost {link.cost}\n")
    return 0


def cmd_site_admission(args: argparse.Namespace, out: TextIO) -> int:
    """Set how the site admits hosts it does not know (see docs/security.md)."""
    name = check_name(args.name, "site")
    mode = admission_mode(args.mode)
    with _connect(args) as d:
        dn = d.named_dn("sites", name)
        if d.read(dn, "read site", ["cn"]) is None:
            raise NotFoundError(f"site {name}: no such site (stateless site add)")
        d.modify(dn, {"statelessAdmission": [(ldap3.MODIFY_REPLACE, [str(mode)])]},
                 f"set the admission of site {name}")
    out.write(f"site {name}: admission {mode}\n")
    return 0


def cmd_site_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    if args.json:
        _emit(out, {"sites": [{"name": s.name, "subnets": list(s.subnets),
                               "description": s.description, "admission": str(s.admission)}
                              for s in snapshot.sites.values()],
                    "links": [attrs.asdict(link) for link in snapshot.site_links]})
        return 0
    _table(out, ["site", "subnets", "admission", "description"],
           [[s.name, ", ".join(s.subnets), str(s.admission), s.description]
            for s in snapshot.sites.values()])
    if snapshot.site_links:
        out.write("\n")
        _table(out, ["site link", "cost"],
               [[f"{link.a} - {link.b}", str(link.cost)] for link in snapshot.site_links])
    return 0


def register(sub: Any) -> None:
    g = group(sub, "site", "sites and site links")
    sp = cmd(g, "add", cmd_site_add, "add a site")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--subnet", action="extend", nargs="+", required=True, metavar="CIDR")
    sp.add_argument("--description")
    sp = cmd(g, "link", cmd_site_link, "link two sites with a cost")
    sp.add_argument("a", metavar="A")
    sp.add_argument("b", metavar="B")
    sp.add_argument("--cost", type=int, required=True)
    sp = cmd(g, "admission", cmd_site_admission, "set how the site admits unknown hosts: open, "
             "rules (default) or approval")
    sp.add_argument("name", metavar="SITE")
    sp.add_argument("mode", metavar="MODE", choices=("open", "rules", "approval"))
    cmd(g, "list", cmd_site_list, "list sites and site links", json_flag=True)

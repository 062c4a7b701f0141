"""`stateless host decommission`: out of vCenter, its pool addresses back, its entry gone.

The host object is removed through vCenter (maintenance mode first when it is connected), then
the addresses it held go back to their pools and its entry is deleted (`--keep-entry` keeps the
entry, without addresses, owner or state, so no server adds it again before its next birth).
A host a server owns is that server's to change: this refuses it
unless `--direct` says to act from here.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import _connect, _emit, _host, secret_key
from stateless.directory import admin
from stateless.errors import ConflictError
from stateless.model.inventory import ContainerKind


def cmd_host_decommission(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.cli.apply import _vc_secret, _vcenter_client
    from stateless.cli.fleet import _vcenter_for
    from stateless.policy import resolve
    from stateless.prepare import vcenter_name

    with _connect(args) as d:
        snapshot = d.snapshot()
        host = _host(snapshot, args.uuid)
        if host.owner and not args.direct:
            raise ConflictError(f"host {host.uuid}: server {host.owner} owns it; stop it from "
                                "applying the host, then run `stateless host decommission "
                                f"{host.uuid} --direct`")
        vcenter = _vcenter_for(args, snapshot, host)
        password = _vc_secret(args, vcenter)
        effective = resolve(snapshot, host.uuid)
        name = vcenter_name(host, effective)
        location = effective.location
        found = snapshot.containers.get(location) if location else None
        leaf = "cluster" if found is not None and found.kind == ContainerKind.CLUSTER else "folder"
        with _vcenter_client(args, vcenter, password) as client:
            ref = client.find_host(name, location, leaf) if found is not None else None
            if ref is None and found is None:
                ref = _by_name(client, name)
            if ref is not None:
                client.remove_host(ref)
        freed = admin.free_addresses(d, host)
        if args.keep_entry:
            admin.retire(d, host.uuid)
        else:
            d.delete_host(host.uuid)
    report = {"host": host.uuid, "name": name, "vcenter": vcenter.name,
              "removed_from_vcenter": ref is not None, "freed": freed,
              "entry_deleted": not args.keep_entry}
    if args.json:
        _emit(out, report)
        return 0
    out.write((f"removed {name} from vCenter {vcenter.name}\n" if ref is not None else
               f"vCenter {vcenter.name} has no host {name}: nothing to remove there\n")
              + "".join(f"freed {a}\n" for a in freed)
              + (f"deleted host {host.uuid}\n" if not args.keep_entry else
                 f"kept the entry of host {host.uuid}\n"))
    return 0


def _by_name(client: Any, name: str) -> Any:
    from stateless.errors import NotFoundError

    try:
        return client.resolve(name)
    except NotFoundError:
        return None


def add_parser(g: Any) -> None:
    from stateless.cli._common import cmd

    sp = cmd(g, "decommission", cmd_host_decommission, "remove a host from vCenter, free its pool "
             "addresses and delete its entry", json_flag=True)
    sp.add_argument("uuid", metavar="UUID")
    sp.add_argument("--keep-entry", action="store_true",
                    help="only remove it from vCenter and free its addresses")
    sp.add_argument("--direct", action="store_true",
                    help="act from here even though a server owns the host")
    sp.add_argument("--vcenter", metavar="NAME",
                    help="the vCenter (default: the one its container names, or the only one)")
    secret_key(sp)
    sp.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                    help="per vCenter call (default 60)")

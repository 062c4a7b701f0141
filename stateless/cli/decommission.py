"""`stateless host decommission`: out of vCenter, its pool addresses back, its entry gone.

The host object is removed through vCenter (maintenance mode first when it is connected), then
the addresses it held go back to their pools and its entry is deleted (`--keep-entry` keeps the
entry, without addresses, owner or state, so no server adds it again before its next birth).
A host a server owns is that server's to change: it is asked
(`POST /v1/hosts/{uuid}/decommission`), unless `--direct` says to act from here.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import _connect, _emit, _host, secret_key
from stateless.directory import admin
from stateless.errors import NotFoundError, StatelessError
from stateless.model.inventory import ContainerKind, HostRecord, Snapshot


def cmd_host_decommission(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.cli.apply import _vc_secret, _vcenter_client
    from stateless.cli.fleet import _vcenter_for
    from stateless.policy import resolve
    from stateless.prepare import vcenter_name

    with _connect(args) as d:
        snapshot = d.snapshot()
        host = _host(snapshot, args.uuid)
        if host.owner and not args.direct:
            from stateless.cli.remote import credentials

            report = _through_owner(snapshot, host, args.keep_entry, args.timeout,
                                    credentials(args))
            return _print(args, out, report, f" (by server {report['server']})")
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
    return _print(args, out, report, "")


def _print(args: argparse.Namespace, out: TextIO, report: dict[str, Any], by: str) -> int:
    if args.json:
        _emit(out, report)
        return 0
    name, vcenter, uuid = report["name"], report["vcenter"], report["host"]
    out.write((f"removed {name} from vCenter {vcenter}{by}\n" if report["removed_from_vcenter"]
               else f"vCenter {vcenter} has no host {name}: nothing to remove there\n")
              + "".join(f"freed {a}\n" for a in report["freed"])
              + (f"deleted host {uuid}\n" if report["entry_deleted"] else
                 f"kept the entry of host {uuid}\n"))
    return 0


def _through_owner(snapshot: Snapshot, host: HostRecord, keep_entry: bool,
                   timeout: float, creds: Any = None) -> dict[str, Any]:
    """POST /v1/hosts/{uuid}/decommission to the owning server, answered once done."""
    from stateless.cli.remote import _request, _server_url

    try:
        owner, base = host.owner, _server_url(snapshot, host.owner)
    except NotFoundError:
        raise NotFoundError(f"host {host.uuid}: server {host.owner} owns it and has no entry with "
                            "a URL; `stateless host decommission "
                            f"{host.uuid} --direct` acts from here instead") from None
    query = "?keep_entry=1" if keep_entry else ""
    status, doc = _request("POST", f"{base}/v1/hosts/{host.uuid}/decommission{query}", timeout,
                           creds)
    if status == 409 and doc.get("owner_url"):  # ownership moved since our snapshot: once
        owner, base = str(doc.get("owner")), str(doc["owner_url"]).rstrip("/")
        status, doc = _request("POST", f"{base}/v1/hosts/{host.uuid}/decommission{query}", timeout,
                           creds)
    if status != 202:
        raise StatelessError(f"server {owner} ({base}) did not decommission host {host.uuid}: "
                             f"{status} {doc.get('error', '')}; `stateless host decommission "
                             f"{host.uuid} --direct` acts from here instead")
    return {**doc, "server": owner}


def _by_name(client: Any, name: str) -> Any:
    try:
        return client.resolve(name)
    except NotFoundError:
        return None


def add_parser(g: Any) -> None:
    from stateless.cli._common import cmd
    from stateless.cli.remote import remote_options

    sp = cmd(g, "decommission", cmd_host_decommission, "remove a host from vCenter, free its pool "
             "addresses and delete its entry", json_flag=True)
    sp.add_argument("uuid", metavar="UUID")
    sp.add_argument("--keep-entry", action="store_true",
                    help="only remove it from vCenter and free its addresses")
    sp.add_argument("--direct", action="store_true",
                    help="act from here even when a server owns the host")
    sp.add_argument("--vcenter", metavar="NAME",
                    help="the vCenter (default: the one its container names, or the only one)")
    secret_key(sp)
    sp.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                    help="per vCenter call or server request (default 60)")
    remote_options(sp)

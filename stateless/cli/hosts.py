"""`stateless hosts quarantined|approve|deny`: an admin's decision on quarantined hosts.

The decision is the server's that recorded the quarantined birth (the host's owner), asked
through its admin API (`POST /v1/hosts/{uuid}/approve` or `/deny`) with the CLI's admin
credentials; the list is read from the directory.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import _connect, _emit, _host, _table, cmd, group
from stateless.cli.remote import _request, _server_url, credentials, remote_options
from stateless.errors import StatelessError
from stateless.model.inventory import HostState


def cmd_quarantined(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    rows = [{"host": h.uuid, "owner": h.owner, "reason": h.reason,
             "hostname": h.identity.fqdn if h.identity else "",
             "ipv4": (h.identity.ipv4 if h.identity else None) or ""}
            for h in sorted(snapshot.hosts.values(), key=lambda h: h.uuid)
            if h.state == HostState.QUARANTINED]
    if args.json:
        _emit(out, {"hosts": rows})
    elif rows:
        _table(out, ["HOST", "NAME", "IPV4", "SERVER", "REASON"],
               [[r["host"], r["hostname"], r["ipv4"], r["owner"], r["reason"]] for r in rows])
    else:
        out.write("no quarantined hosts\n")
    return 0


def _decide(args: argparse.Namespace, out: TextIO, what: str) -> int:
    creds = credentials(args)
    with _connect(args) as d:
        snapshot = d.snapshot()
    results: list[dict[str, Any]] = []
    failed = 0
    for uuid in args.uuids:
        try:
            host = _host(snapshot, uuid)
            base = _server_url(snapshot, host.owner)
            status, doc = _request("POST", f"{base}/v1/hosts/{host.uuid}/{what}", args.timeout,
                                   creds)
            if status != 200:
                raise StatelessError(f"server {host.owner} ({base}): {status} "
                                     f"{doc.get('error', '')}")
        except StatelessError as exc:
            failed += 1
            results.append({"host": uuid, "error": str(exc)})
            if not args.json:
                out.write(f"host {uuid}: not {what}d: {exc}\n")
            continue
        results.append(doc)
        if not args.json:
            done = ("approved: its identity is pinned and it is being applied" if what == "approve"
                    else "denied: its entry is deleted" if doc.get("deleted")
                    else "denied: the claim is dropped; the pinned host is applied again")
            out.write(f"host {host.uuid}: {done}\n")
    if args.json:
        _emit(out, {"hosts": results})
    return 1 if failed else 0


def cmd_approve(args: argparse.Namespace, out: TextIO) -> int:
    return _decide(args, out, "approve")


def cmd_deny(args: argparse.Namespace, out: TextIO) -> int:
    return _decide(args, out, "deny")


def register(sub: Any) -> None:
    g = group(sub, "hosts", "quarantined hosts: list, approve, deny")
    cmd(g, "quarantined", cmd_quarantined, "hosts waiting for an admin's decision", json_flag=True)
    for name, handler, help_ in (
            ("approve", cmd_approve, "pin what the quarantined birth claimed and apply the host"),
            ("deny", cmd_deny, "drop the claim: delete a never-approved host's entry, or apply "
                               "a pinned host again as pinned")):
        sp = cmd(g, name, handler, help_, json_flag=True)
        sp.add_argument("uuids", nargs="+", metavar="UUID")
        sp.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for the server (default 30)")
        remote_options(sp)

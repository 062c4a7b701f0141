"""`stateless host`: host records and their pool addresses."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any, TextIO

import attrs

from stateless.boot.select import BootPlanner, reboot_required
from stateless.cli import decommission
from stateless.cli._common import UsageError, _connect, _emit, _host, _pairs, _table, cmd, group
from stateless.cli.remote import credentials, host_events, owner_url, remote_options
from stateless.directory import admin
from stateless.directory.client import Directory
from stateless.errors import StatelessError
from stateless.model.identity import HostIdentity, normalize_uuid
from stateless.model.inventory import HostRecord, Snapshot, normalize_path
from stateless.model.settings import coerce, render_json

NEW = "new"  # the state of a host that was added but has not been born or applied yet


def _location(snapshot: Snapshot | None, host: HostRecord) -> str | None:
    """Where the host is placed: its own location, else the one a deploy rule gives it."""
    if host.location is not None or snapshot is None:
        return host.location
    from stateless.policy import resolve

    try:
        return resolve(snapshot, host.uuid).location
    except StatelessError:
        return None


def _boot(planner: BootPlanner, host: HostRecord) -> dict[str, Any]:
    """The image the host runs (as its last birth reported), the one it would boot now, and
    whether it must reboot to get it (`reboot-required`)."""
    choice = planner.choose(host.identity or HostIdentity(host.uuid))
    return {"boot_image": host.boot_image,
            "image": choice.image.name if choice.image is not None else None,
            "reboot_required": reboot_required(choice, host.boot_image)}


def _planner(snapshot: Snapshot) -> BootPlanner:
    return BootPlanner(snapshot, datetime.now(UTC), "")


def _host_json(host: HostRecord, snapshot: Snapshot | None = None,
               planner: BootPlanner | None = None) -> dict[str, Any]:
    return {
        "uuid": host.uuid, "location": _location(snapshot, host),
        "links": [attrs.asdict(link) for link in host.links],
        "answers": {k: render_json(k, v) for k, v in sorted(host.answers.items())},
        "allocations": [attrs.asdict(a) for a in host.allocations],
        "identity": attrs.asdict(host.identity) if host.identity else None,
        "state": str(host.state) if host.state else NEW, "reason": host.reason,
        "applied_digest": host.applied_digest,
        "problems": [p.to_json() for p in host.problems], "dn": host.dn,
        **(_boot(planner, host) if planner is not None else {}),
    }


def allocate_needed(directory: Directory, uuid: str) -> list[str]:
    """Allocate pool addresses for the host's pool-backed VMkernel NICs; returns what was taken."""
    from stateless.policy import resolve

    snapshot = directory.snapshot()
    host = _host(snapshot, uuid)
    missing = resolve(snapshot, host.uuid).missing_allocations(
        (a.item, a.pool) for a in host.allocations)
    made = directory.allocate_all(host.uuid, missing, snapshot.pools) if missing else []
    return [f"{a.item} {a.address} from pool {a.pool}" for a in made]


def cmd_host_add(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.secrets import refused_references  # loads the sealing code

    answers = {k: coerce(k, v, answer=True) for k, v in _pairs(args.answer or [], "--answer").items()}
    uuid = normalize_uuid(args.uuid)
    with _connect(args) as d:
        admin.refuse(refused_references(d, answers))
        dn = d.add_host(uuid, args.path, answers)
        out.write(f"added host {uuid} at {normalize_path(args.path)} ({dn})\n")
        for line in allocate_needed(d, uuid):
            out.write(f"allocated {line}\n")
    return 0


def cmd_host_set(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.secrets import refused_references  # loads the sealing code

    if not args.answer and not args.path and not args.unset_answer:
        raise UsageError("host set: nothing to change; give --answer KEY=VALUE, --unset-answer KEY "
                         "and/or --path PATH")
    uuid = normalize_uuid(args.uuid)
    answers = {k: coerce(k, v, answer=True) for k, v in _pairs(args.answer or [], "--answer").items()}
    with _connect(args) as d:
        _host(d.snapshot(), uuid)
        admin.refuse(refused_references(d, answers))  # before anything is written
        if args.path:
            d.set_location(uuid, args.path)
            out.write(f"host {uuid} now at {normalize_path(args.path)}\n")
        if args.unset_answer:
            freed = admin.unset_answers(d, uuid, args.unset_answer)
            out.write(f"host {uuid}: unset {', '.join(args.unset_answer)}\n")
            out.write("".join(f"freed {a}\n" for a in freed))
        if answers:
            d.set_answers(uuid, answers)
            out.write(f"host {uuid}: set {', '.join(sorted(answers))}\n")
        for line in allocate_needed(d, uuid):
            out.write(f"allocated {line}\n")
    return 0


def cmd_host_move(args: argparse.Namespace, out: TextIO) -> int:
    uuid = normalize_uuid(args.uuid)
    with _connect(args) as d:
        _host(d.snapshot(), uuid)
        d.set_location(uuid, args.path)
        out.write(f"host {uuid} now at {normalize_path(args.path)}\n")
        for line in allocate_needed(d, uuid):
            out.write(f"allocated {line}\n")
    return 0


def cmd_host_delete(args: argparse.Namespace, out: TextIO) -> int:
    uuid = normalize_uuid(args.uuid)
    with _connect(args) as d:
        freed = admin.delete_host(d, uuid)
    out.write("".join(f"freed {a}\n" for a in freed) + f"deleted host {uuid}\n")
    return 0


def cmd_host_allocate(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        done = allocate_needed(d, args.uuid)
    out.write("".join(f"allocated {line}\n" for line in done) or "nothing to allocate\n")
    return 0


def cmd_host_show(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    data = _host_json(_host(snapshot, args.uuid), snapshot, _planner(snapshot))
    if args.json:
        _emit(out, data)
        return 0
    for key, value in data.items():
        if key == "identity" and value:
            value = {k: v for k, v in value.items() if v not in ("", (), [], None)}
        out.write(f"{key}: {json.dumps(value) if not isinstance(value, str) else value}\n")
    return 0


def cmd_host_events(args: argparse.Namespace, out: TextIO) -> int:
    """The host's recent events, as the server that owns it (or `--server`) remembers them."""
    uuid = normalize_uuid(args.uuid)
    if args.server:
        base = args.server
    else:
        with _connect(args) as d:
            snapshot = d.snapshot()
        base = owner_url(snapshot, _host(snapshot, uuid))
    doc = host_events(base, uuid, args.timeout, credentials(args))
    if args.json:
        _emit(out, doc)
        return 0
    for event in doc.get("events", []):
        out.write(f"{event.get('time', '')}  {event.get('event', ''):<20} "
                  f"{event.get('message', '')}\n")
    if not doc.get("events"):
        out.write(f"host {uuid}: no events recorded by {base}\n")
    return 0


def cmd_host_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    planner = _planner(snapshot)
    if args.json:
        _emit(out, [_host_json(h, snapshot, planner) for h in snapshot.hosts.values()])
        return 0
    rows = []
    for h in sorted(snapshot.hosts.values(), key=lambda h: h.uuid):
        boot = _boot(planner, h)
        rows.append([h.uuid, _location(snapshot, h) or "", str(h.state or NEW), h.reason,
                     str(len(h.problems)) if h.problems else "", boot["image"] or "",
                     "reboot-required" if boot["reboot_required"] else ""])
    _table(out, ["uuid", "location", "state", "reason", "problems", "image", "boot"], rows)
    return 0


def register(sub: Any) -> None:
    g = group(sub, "host", "host records")
    sp = cmd(g, "add", cmd_host_add, "add a host at a location, allocating pool addresses")
    sp.add_argument("uuid", metavar="UUID")
    sp.add_argument("--path", required=True, metavar="PATH")
    sp.add_argument("--answer", action="append", metavar="KEY=VALUE")
    sp = cmd(g, "set", cmd_host_set, "change a host's answers or location; an address another host "
             "holds is refused")
    sp.add_argument("uuid", metavar="UUID")
    sp.add_argument("--path", metavar="PATH")
    sp.add_argument("--answer", action="append", metavar="KEY=VALUE")
    sp.add_argument("--unset-answer", action="append", metavar="KEY",
                    help="remove an answer (a pool address it held goes back)")
    sp = cmd(g, "move", cmd_host_move, "place a host at another container")
    sp.add_argument("uuid", metavar="UUID")
    sp.add_argument("--path", required=True, metavar="PATH")
    sp = cmd(g, "delete", cmd_host_delete, "delete a host's entry and free its pool addresses "
             "(vCenter is not touched: see `host decommission`)")
    sp.add_argument("uuid", metavar="UUID")
    decommission.add_parser(g)
    sp = cmd(g, "allocate", cmd_host_allocate, "allocate pool addresses the host now needs")
    sp.add_argument("uuid", metavar="UUID")
    sp = cmd(g, "show", cmd_host_show, "show one host", json_flag=True)
    sp.add_argument("uuid", metavar="UUID")
    cmd(g, "list", cmd_host_list, "list hosts", json_flag=True)
    sp = cmd(g, "events", cmd_host_events, "the host's recent events (birth, applies, drift, "
             "failures), from the server that owns it", json_flag=True)
    sp.add_argument("uuid", metavar="UUID")
    sp.add_argument("--server", metavar="URL", help="ask this server instead of the owner")
    sp.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                    help="of the HTTP request [10]")
    remote_options(sp)

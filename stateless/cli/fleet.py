"""`stateless compliance|apply` over many hosts: UUIDs, `--path PATH` or `--all`.

Each host is checked or applied as the one-host commands do it (applies go to the server that
owns the host, all requests first, then the outcomes are awaited, so the servers work in
parallel). Progress is a bar on a terminal and one line per host otherwise (on stderr with
--json, so stdout stays one JSON document); a summary table ends it. Exit status: 0 every host
compliant, 3 one differs (drifted), 1 one failed or could not be checked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import Any, TextIO

from stateless.cli._common import UsageError, _connect, _emit, _host, _table
from stateless.directory.client import Directory
from stateless.errors import NotFoundError, StatelessError
from stateless.model.inventory import HostRecord, Snapshot, VCenter, normalize_path

NOT_COMPLIANT = 3
COMPLIANT, DRIFTED, FAILED, PENDING = "compliant", "drifted", "failed", "pending"


def is_fleet(args: argparse.Namespace) -> bool:
    """More than one host asked for (a single UUID keeps the one-host output)."""
    if args.all and (args.path or args.uuids):
        raise UsageError("give UUIDs, --path PATH or --all, not several of them")
    if args.path and args.uuids:
        raise UsageError("give UUIDs or --path PATH, not both")
    if not (args.all or args.path or args.uuids):
        raise UsageError("which hosts? give UUID..., --path PATH or --all")
    return bool(args.all or args.path or len(args.uuids) > 1)


def _below(path: str, location: str | None) -> bool:
    return location is not None and (path == "/" or location == path
                                     or location.startswith(path + "/"))


def select(snapshot: Snapshot, uuids: Sequence[str], path: str | None, every: bool) -> list[HostRecord]:
    """The hosts named, placed at `path` or below (by their entry or a deploy rule), or all."""
    from stateless.cli.host import _location

    if uuids:
        return [_host(snapshot, u) for u in dict.fromkeys(uuids)]
    hosts = sorted(snapshot.hosts.values(), key=lambda h: h.uuid)
    if every:
        return hosts
    assert path is not None
    path = normalize_path(path)
    if path not in snapshot.containers:
        raise NotFoundError(f"--path {path}: no such container; see `stateless container list`")
    return [h for h in hosts if _below(path, _location(snapshot, h))]


class Progress:
    """A tqdm bar on a terminal, else one plain line per finished host."""

    def __init__(self, stream: TextIO, total: int, what: str) -> None:
        self.stream, self.total, self.done = stream, total, 0
        self.bar: Any = None
        if stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, unit="host", file=stream, leave=False)

    def step(self, row: dict[str, Any]) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"{row['host'][:8]} {row['outcome']}")
            self.bar.update(1)
        else:
            detail = ", ".join(row["keys"]) or row["reason"]
            self.stream.write(f"[{self.done}/{self.total}] {row['host']}: {row['outcome']}"
                              + (f" ({detail})" if detail else "") + "\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _row(host: str, outcome: str, keys: Sequence[str] = (), reason: str = "") -> dict[str, Any]:
    return {"host": host, "outcome": outcome, "keys": list(keys), "reason": " ".join(reason.split())}


def _finish(args: argparse.Namespace, out: TextIO, rows: list[dict[str, Any]]) -> int:
    counts = {o: sum(r["outcome"] == o for r in rows) for o in (COMPLIANT, DRIFTED, FAILED, PENDING)}
    if args.json:
        _emit(out, {"hosts": rows, "summary": counts})
    else:
        if rows:
            _table(out, ["host", "outcome", "keys / reason"],
                   [[r["host"], r["outcome"], ", ".join(r["keys"]) or r["reason"]] for r in rows])
        out.write(f"{len(rows)} host(s): {counts[COMPLIANT]} compliant, {counts[DRIFTED]} drifted, "
                  f"{counts[FAILED]} failed" + (f", {counts[PENDING]} pending" if counts[PENDING] else "")
                  + "\n")
    if counts[FAILED]:
        return 1
    return NOT_COMPLIANT if counts[DRIFTED] else 0


def _run(args: argparse.Namespace, out: TextIO, what: str, hosts: list[HostRecord],
         one: Callable[[HostRecord], Iterator[dict[str, Any]]]) -> list[dict[str, Any]]:
    stream = getattr(args, "err", None) or sys.stderr if args.json else out
    progress = Progress(stream, len(hosts), what)
    rows: list[dict[str, Any]] = []
    try:
        for host in hosts:
            for row in one(host):
                rows.append(row)
                progress.step(row)
    finally:
        progress.close()
    return rows


def _vcenter_for(args: argparse.Namespace, snapshot: Snapshot, host: HostRecord) -> VCenter:
    """--vcenter, else the vCenter the host's container names, else the only registered one."""
    from stateless.cli.apply import _pick_vcenter
    from stateless.cli.host import _location
    from stateless.federation import vcenter_of

    name = args.vcenter or vcenter_of(snapshot, _location(snapshot, host))
    return _pick_vcenter(snapshot, name)


def compliance_fleet(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.cli.apply import _vc_secret, _vcenter_client, host_diffs

    with _connect(args) as d, ExitStack() as stack:
        snapshot = d.snapshot()
        hosts = select(snapshot, args.uuids, args.path, args.all)
        clients: dict[str, Any] = {}

        def one(host: HostRecord) -> Iterator[dict[str, Any]]:
            try:
                vcenter = _vcenter_for(args, snapshot, host)
                if vcenter.name not in clients:
                    clients[vcenter.name] = stack.enter_context(
                        _vcenter_client(args, vcenter, _vc_secret(args, vcenter), d))
                _, diffs = host_diffs(clients[vcenter.name], d, snapshot, host.uuid)
            except StatelessError as exc:
                yield _row(host.uuid, FAILED, reason=exc.message)
                return
            yield _row(host.uuid, DRIFTED if diffs else COMPLIANT, [diff.key for diff in diffs])

        rows = _run(args, out, "compliance", hosts, one)
    return _finish(args, out, rows)


def _apply_direct(args: argparse.Namespace, d: Directory, snapshot: Snapshot,
                  host: HostRecord) -> dict[str, Any]:
    from stateless.cli.apply import _apply_here

    try:
        report = _apply_here(args, d, snapshot, _vcenter_for(args, snapshot, host), host.uuid)
    except StatelessError as exc:
        return _row(host.uuid, FAILED, reason=exc.message)
    if args.dry_run:
        return _row(host.uuid, DRIFTED if report["plan"] or report["placed"] else COMPLIANT,
                    reason="dry run: " + (f"{len(report['plan'])} change(s)" if report["plan"]
                                          else "no changes"))
    return _row(host.uuid, COMPLIANT, reason=f"applied, {report['calls']} vCenter call(s)")


def _outcome(uuid: str, doc: dict[str, Any]) -> dict[str, Any]:
    state = doc.get("state")
    if state == COMPLIANT:
        return _row(uuid, COMPLIANT, reason="applied by its server")
    if state == DRIFTED:
        return _row(uuid, DRIFTED, reason=str(doc.get("reason") or ""))
    return _row(uuid, FAILED, reason=f"{state}: {doc.get('reason') or ''}")


def apply_fleet(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.cli.remote import await_host, credentials, post_to_owner

    with _connect(args) as d:
        snapshot = d.snapshot()
        hosts = select(snapshot, args.uuids, args.path, args.all)
        asked: dict[str, tuple[str, str] | str] = {}  # uuid -> (owner, url), or why not
        creds = credentials(args)
        for host in hosts:  # every owning server first, so they work in parallel
            if host.owner and not args.direct and not args.dry_run:
                try:
                    asked[host.uuid] = post_to_owner(snapshot, host, "apply", args.timeout,
                                                     creds)
                except StatelessError as exc:
                    asked[host.uuid] = exc.message

        def one(host: HostRecord) -> Iterator[dict[str, Any]]:
            sent = asked.get(host.uuid)
            if sent is None:
                yield _apply_direct(args, d, snapshot, host)
            elif isinstance(sent, str):
                yield _row(host.uuid, FAILED, reason=sent)
            elif args.wait <= 0:
                yield _row(host.uuid, PENDING, reason=f"asked server {sent[0]}; not waited for")
            else:
                try:
                    yield _outcome(host.uuid, await_host(sent[1], host.uuid, args.wait, args.timeout,
                                                              creds))
                except StatelessError as exc:
                    yield _row(host.uuid, FAILED, reason=exc.message)

        rows = _run(args, out, "apply", hosts, one)
    return _finish(args, out, rows)


__all__ = ["apply_fleet", "compliance_fleet", "is_fleet", "select"]

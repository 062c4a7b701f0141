"""`stateless init` and `stateless directory start|stop|check`: the base DIT, private slapd
instances (one node or a replicated topology) and the divergence check across replicas."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from stateless.cli._common import UsageError, _connect, _emit, _table, cmd, group
from stateless.directory import replicas
from stateless.directory.connection import resolve_connection
from stateless.directory.embedded import EmbeddedDirectory

DIVERGED = 3  # exit status when replicas differ, as `compliance` exits when a host does


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        created = d.init()
    out.write(("created " + ", ".join(created) if created else f"{d.base}: already initialised")
              + "\n")
    return 0


def _shared_password(args: argparse.Namespace) -> Path | None:
    """A node joining a topology takes the admin password of the others, if one is given."""
    if not (args.peer or args.consumer_of):
        return None
    value = args.password_file or args.environ.get("STATELESS_PASSWORD_FILE")
    return Path(value) if value else None


def cmd_directory_start(args: argparse.Namespace, out: TextIO) -> int:
    if args.peer and args.consumer_of:
        raise UsageError("directory start: --peer makes a provider of a mesh, --consumer-of a "
                         "read-only consumer; give one of them")
    instance = EmbeddedDirectory(
        Path(args.data), port=args.port, server_id=args.server_id, peers=tuple(args.peer or ()),
        role="consumer" if args.consumer_of else "provider", provider=args.consumer_of,
        admin_password_file=_shared_password(args))
    message = instance.start()
    out.write(f"# slapd {message}\n")
    out.write(f"export STATELESS_LDAP={instance.url}\n")
    out.write(f"export STATELESS_BIND_DN={instance.bind_dn}\n")
    out.write(f"export STATELESS_PASSWORD_FILE={instance.password_file.resolve()}\n")
    out.write(f"export STATELESS_BASE={instance.base}\n")
    return 0


def cmd_directory_stop(args: argparse.Namespace, out: TextIO) -> int:
    instance = EmbeddedDirectory(Path(args.data))
    out.write(("stopped" if instance.stop() else "not running") + f" ({args.data})\n")
    return 0


# --- check ----------------------------------------------------------------------------------


def _summary(report: replicas.CheckReport) -> str:
    state = "converged" if report.converged else f"{len(report.diverged)} diverged"
    return (f"checked {report.checked} entries under {report.base} on "
            f"{len(report.replicas)} replicas: {state}\n")


def _write_report(out: TextIO, report: replicas.CheckReport) -> None:
    out.write(_summary(report))
    if report.diverged:
        header = ["dn", "kind", "newest", "repair", *report.replicas]
        rows = [[d.dn, d.kind, d.newest, d.action,
                 *((v.csn or "-") if v.present else "absent" for v in d.replicas.values())]
                for d in report.diverged]
        _table(out, header, rows)


def _write_action(out: TextIO, action: replicas.Action, report: replicas.CheckReport) -> None:
    verb = "rewrote" if action.action == "rewrite" else "deleted"
    why = next((d for d in report.diverged if d.dn == action.dn), None)
    reason = ""
    if why is not None and action.action == "delete":
        reason = f" (deleted on {why.newest} after its last change)"
    elif why is not None:
        reason = f" (newest version, {why.kind})"
    failed = f": FAILED: {action.error}" if action.error else ""
    out.write(f"{verb} {action.dn} on {action.replica}{reason}{failed}\n")


def cmd_directory_check(args: argparse.Namespace, out: TextIO) -> int:
    settings = resolve_connection({"ldap_urls": args.ldap, "bind_dn": args.bind_dn,
                                   "password_file": args.password_file, "base": args.base},
                                  args.environ)
    urls = tuple(args.replica or ()) or settings.ldap_urls
    if len(urls) < 2:
        raise UsageError("directory check: compares at least two replicas; give each with "
                         "--replica URL, or list them in --ldap / STATELESS_LDAP")
    if args.settle < 0 or args.timeout <= 0:
        raise UsageError("directory check: --settle must be >= 0 and --timeout > 0 seconds")
    password = settings.password()
    bind_dn = settings.bind_dn or None
    report = replicas.check(urls, bind_dn, password, settings.base, settle=args.settle)
    if not args.repair:
        if args.json:
            _emit(out, report.as_json())
        else:
            _write_report(out, report)
        return 0 if report.converged else DIVERGED
    result = replicas.repair(report, bind_dn, password, timeout=args.timeout, settle=args.settle)
    if args.json:
        _emit(out, {**report.as_json(), "repaired": [a.as_json() for a in result.actions],
                    "after": {"diverged": [d.as_json() for d in result.after.diverged],
                              "checked": result.after.checked}})
    else:
        _write_report(out, report)
        for action in result.actions:
            _write_action(out, action, report)
        out.write("after repair: " + _summary(result.after))
        if not result.converged:
            _write_report(out, result.after)
    return 0 if result.converged else DIVERGED


def register(sub: Any) -> None:
    cmd(sub, "init", cmd_init, "create the base DIT under --base (idempotent)")

    g = group(sub, "directory", "run private slapd instances; compare and repair replicas")
    sp = cmd(g, "start", cmd_directory_start, "start (or create) a private slapd; prints export lines")
    sp.add_argument("--data", required=True, metavar="DIR")
    sp.add_argument("--port", type=int)
    sp.add_argument("--server-id", type=int, default=1, metavar="N",
                    help="olcServerID, unique per provider of a mesh (default 1)")
    sp.add_argument("--peer", action="append", metavar="URL",
                    help="another provider of the mesh (repeat); the admin password comes from "
                         "--password-file / STATELESS_PASSWORD_FILE when given")
    sp.add_argument("--consumer-of", metavar="URL",
                    help="a read-only consumer of this provider, chaining writes to it")
    sp = cmd(g, "stop", cmd_directory_stop, "stop the private slapd of DIR")
    sp.add_argument("--data", required=True, metavar="DIR")
    sp = cmd(g, "check", cmd_directory_check, "compare the subtree across replicas (exit 3 when "
             "diverged); --repair makes them converge", json_flag=True)
    sp.add_argument("--replica", action="append", metavar="URL",
                    help="a replica to compare (repeat; default: every --ldap URL)")
    sp.add_argument("--repair", action="store_true",
                    help="write the newest version of each diverged entry where it is")
    sp.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                    help="how long differences may take to replicate before they count (default 2)")
    sp.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                    help="how long --repair waits for the replicas to converge (default 30)")

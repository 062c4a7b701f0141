"""`stateless apply` and `stateless compliance`: a host's effective configuration in vCenter.

One pipeline with the daemon (`stateless.prepare`, `stateless.vcenter.converge`): resolve,
allocate what the host still lacks, prepare, then converge or check. A host a server owns is
re-applied by that server (`POST /v1/hosts/{uuid}/apply`), never by two writers at once;
`--direct` applies from here and records state and digest as the server would.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import (
    UsageError,
    _connect,
    _emit,
    _host,
    _key_file,
    _table,
    _text,
    cmd,
    secret_key,
)
from stateless.cli.remote import ask_owner, credentials, remote_options
from stateless.directory.client import Directory
from stateless.directory.connection import read_secret
from stateless.errors import NotFoundError, StatelessError, ValidationError
from stateless.model.effective import json_value
from stateless.model.inventory import Allocation, HostState, Snapshot, VCenter, check_name
from stateless.prepare import Target, missing_allocations, prepare, with_allocations

NOT_COMPLIANT = 3  # `stateless compliance`: the host differs from its desired configuration


def _pick_vcenter(snapshot: Snapshot, name: str | None) -> VCenter:
    if name:
        found = snapshot.vcenters.get(check_name(name, "vcenter"))
        if found is None:
            raise NotFoundError(f"vCenter {name}: not registered; registered: "
                                f"{', '.join(sorted(snapshot.vcenters)) or '(none)'}")
        return found
    if len(snapshot.vcenters) == 1:
        return next(iter(snapshot.vcenters.values()))
    if not snapshot.vcenters:
        raise ValidationError("no vCenter is registered: add one with `stateless vcenter add NAME "
                              "--url URL --user U --password-file F`")
    raise UsageError(f"{len(snapshot.vcenters)} vCenters are registered "
                     f"({', '.join(sorted(snapshot.vcenters))}): choose one with --vcenter NAME")


def _vc_secret(args: argparse.Namespace, vcenter: VCenter) -> str:
    """The vCenter's password, decrypted with the shared key file."""
    from stateless.directory.secrets import decrypt_password

    return decrypt_password(vcenter.password, _key_file(args))


def _vcenter_client(args: argparse.Namespace, vcenter: VCenter, password: str,
                    d: Directory | None = None) -> Any:
    """A client; with the directory, it opens named secrets (CHAP, SNMP) when a call needs them."""
    from stateless.directory.secrets import secret_resolver
    from stateless.vcenter import VCenterClient

    secrets = secret_resolver(d, _key_file(args)) if d is not None else None
    return VCenterClient(vcenter.url, vcenter.user, password, name=vcenter.name,
                         thumbprint=vcenter.thumbprint, pool_size=1, timeout=args.timeout,
                         secrets=secrets)


def _target(d: Directory, snapshot: Snapshot, uuid: str, *, allocate: bool,
            dry_run: bool) -> tuple[Target, list[str]]:
    """Resolve, allocate the pool addresses the host lacks, prepare: as the daemon does.

    A dry run computes the addresses the pools would give without taking them.
    """
    from stateless.policy import next_free, resolve

    host = _host(snapshot, uuid)
    effective = resolve(snapshot, host.uuid)
    missing = missing_allocations(effective, host, snapshot.pools) if allocate else []
    made: list[Allocation] = []
    if missing and dry_run:
        for item, pool_name in missing:
            pool, used = d.pool_used(pool_name)
            made.append(Allocation(item, pool_name, next_free(pool, used)))
    elif missing:
        made = d.allocate_all(host.uuid, missing, snapshot.pools)
    if made:
        snapshot, host = with_allocations(snapshot, host, made)
        effective = resolve(snapshot, host.uuid)
    return prepare(snapshot, host, effective), [f"{a.item} {a.address} from pool {a.pool}" for a in made]


def _dry_run(client: Any, target: Target) -> tuple[bool, list[str]]:
    """(would place, plan) with reads only; advanced options are checked as an apply would.

    A host found elsewhere than its location would be placed again, as a new one."""
    from stateless.model.config import HostConfig
    from stateless.plan import plan
    from stateless.vcenter.converge import find
    from stateless.vcenter.options import needs_catalogue

    ref = find(client, target)
    view = client.view(ref, target.desired) if ref is not None else None
    if view is None or client.location(view, target.location) not in (None, target.location):
        return True, [str(c) for c in plan(HostConfig(), target.desired)]
    desired = target.desired
    if needs_catalogue(desired):
        desired = client.checked(view, desired)[0]
    return False, [str(c) for c in plan(view.config, desired)]


def _host_password(args: argparse.Namespace) -> str:
    path = args.host_password_file or args.environ.get("STATELESS_HOST_PASSWORD_FILE")
    return read_secret(path, "host password file") if path else ""


def _apply_here(args: argparse.Namespace, d: Directory, snapshot: Snapshot,
                vcenter: VCenter, uuid: str | None = None) -> dict[str, Any]:
    """Converge from this process and record the outcome as the owning server would."""
    from stateless.vcenter.converge import converge

    host_password = _host_password(args)
    password = _vc_secret(args, vcenter)  # refuse before anything is written
    target, allocated = _target(d, snapshot, uuid or args.uuid, allocate=True,
                                dry_run=args.dry_run)
    uuid = target.host.uuid
    report: dict[str, Any] = {
        "host": uuid, "name": target.name, "vcenter": vcenter.name, "location": target.location,
        "leaf": target.leaf, "dry_run": args.dry_run, "allocated": allocated, "placed": False,
        "plan": [], "calls": 0, "verified": None, "state": None, "digest": target.digest,
        "owner": target.host.owner}
    with _vcenter_client(args, vcenter, password, d) as client:
        if args.dry_run:
            report["placed"], report["plan"] = _dry_run(client, target)
            report["calls"] = client.calls
            return report
        try:
            done = converge(client, target, password=host_password)
        except StatelessError as exc:
            d.set_host_state(uuid, HostState.FAILED, str(exc)[:1000])
            raise
    result = done.result
    report.update(placed=done.placed, plan=[str(c) for c in result.plan], calls=done.calls,
                  verified=result.verified)
    if not result.verified:
        keys = ", ".join(diff.key for diff in result.diffs)
        d.set_host_state(uuid, HostState.FAILED, f"still differs after apply: {keys}")
        raise StatelessError(f"host {uuid} ({target.name}): vCenter {vcenter.name} still differs "
                             f"after apply: {keys}; see `stateless compliance {uuid}`")
    d.set_host_state(uuid, HostState.COMPLIANT, applied_digest=target.digest)
    report["state"] = str(HostState.COMPLIANT)
    return report


def _print_report(report: dict[str, Any], out: TextIO) -> None:
    dry = report["dry_run"]
    would = "would " if dry else ""
    out.write(f"host {report['host']} as {report['name']} in vCenter {report['vcenter']} at "
              f"{report['location']}" + (" (dry run: nothing written)" if dry else "") + "\n")
    for line in report["allocated"]:
        out.write(f"{would}allocate {line}\n")
    if report["placed"]:
        out.write(f"{would}add host {report['name']} to {report['leaf']} {report['location']}\n")
    if report["plan"]:
        out.write(f"plan: {len(report['plan'])} change(s)\n")
        out.write("".join(f"  {line}\n" for line in report["plan"]))
    else:
        out.write("plan: no changes (compliant)\n")
    if dry:
        out.write(f"vCenter calls: {report['calls']} (reads only)\n")
    else:
        out.write(f"applied: {report['calls']} vCenter call(s), verified; state compliant, "
                  f"digest {report['digest']}\n")


def cmd_apply(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.cli import fleet

    if fleet.is_fleet(args):
        return fleet.apply_fleet(args, out)
    args.uuid = args.uuids[0]
    with _connect(args) as d:
        snapshot = d.snapshot()
        host = _host(snapshot, args.uuid)
        if host.owner and not args.direct and not args.dry_run:
            return ask_owner(snapshot, host, wait=args.wait, timeout=args.timeout, out=out,
                             as_json=args.json, creds=credentials(args))
        vcenter = _pick_vcenter(snapshot, args.vcenter)
        if host.owner and not args.dry_run:
            out.write(f"host {host.uuid} is owned by server {host.owner}: applying directly "
                      "(--direct) and recording the outcome for it\n")
        report = _apply_here(args, d, snapshot, vcenter)
    if args.json:
        _emit(out, report)
    else:
        _print_report(report, out)
    return 0


def host_diffs(client: Any, d: Directory, snapshot: Snapshot, uuid: str) -> tuple[Target, list[Any]]:
    """The keys where vCenter differs from the host's desired configuration."""
    from stateless.vcenter.converge import check

    target, _ = _target(d, snapshot, uuid, allocate=False, dry_run=True)
    diffs = check(client, target)
    if diffs is None:
        raise NotFoundError(f"host {target.host.uuid}: vCenter {client.name} has no host named "
                            f"{target.name!r}; place and configure it with "
                            f"`stateless apply {target.host.uuid}`")
    return target, list(diffs)


def cmd_compliance(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.cli import fleet

    if fleet.is_fleet(args):
        return fleet.compliance_fleet(args, out)
    with _connect(args) as d:
        snapshot = d.snapshot()
        vcenter = _pick_vcenter(snapshot, args.vcenter)
        password = _vc_secret(args, vcenter)
        with _vcenter_client(args, vcenter, password, d) as client:
            target, diffs = host_diffs(client, d, snapshot, args.uuids[0])
    uuid, name = target.host.uuid, target.name
    if args.json:
        _emit(out, {"host": uuid, "compliant": not diffs, "differences": [
            {"key": diff.key,
             "desired": None if diff.desired is None else json_value(diff.desired),
             "actual": None if diff.actual is None else json_value(diff.actual)}
            for diff in diffs]})
    else:
        out.write(f"host {uuid} as {name} in vCenter {vcenter.name}: "
                  + ("compliant\n" if not diffs else f"{len(diffs)} key(s) differ\n"))
        if diffs:
            _table(out, ["key", "desired", "actual"], [
                [diff.key, "(removed)" if diff.desired is None else _text(diff.desired, diff.key),
                 "(unset)" if diff.actual is None else _text(diff.actual, diff.key)]
                for diff in diffs])
    return 0 if not diffs else NOT_COMPLIANT


def vcenter_options(sp: Any) -> None:
    sp.add_argument("uuids", nargs="*", metavar="UUID", help="hosts (or --path / --all)")
    sp.add_argument("--path", metavar="PATH", help="every host placed at PATH or below it")
    sp.add_argument("--all", action="store_true", help="every host in the directory")
    sp.add_argument("--vcenter", metavar="NAME",
                    help="the vCenter to use (default: the only registered one)")
    secret_key(sp)
    sp.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                    help="per vCenter call or server request (default 60)")


def register(sub: Any) -> None:
    sp = cmd(sub, "apply", cmd_apply, "apply hosts' effective configuration: through the server "
             "that owns each, else directly; exit 0 all compliant, 3 drifted, 1 failed",
             json_flag=True)
    vcenter_options(sp)
    sp.add_argument("--dry-run", action="store_true", help="print the plan only; write nothing")
    sp.add_argument("--direct", action="store_true",
                    help="apply from here even when a server owns the host (state and digest are "
                    "recorded as that server would)")
    sp.add_argument("--wait", type=float, default=300.0, metavar="SECONDS",
                    help="how long to wait for the owning server's outcome (default 300; 0: "
                    "only ask)")
    sp.add_argument("--host-password-file", metavar="FILE",
                    help="root password of the host, to add it to vCenter (or "
                    "STATELESS_HOST_PASSWORD_FILE)")
    remote_options(sp)
    sp = cmd(sub, "compliance", cmd_compliance, "desired vs actual per key; exit 0 all "
             "compliant, 3 when one differs, 1 when one could not be checked", json_flag=True)
    vcenter_options(sp)

"""`stateless apply` and `stateless compliance`: a host's effective configuration in vCenter."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import attrs

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
from stateless.directory.client import Directory
from stateless.directory.connection import read_secret
from stateless.errors import NotFoundError, StatelessError, ValidationError
from stateless.model.effective import EffectiveConfig, json_value
from stateless.model.inventory import HostRecord, Snapshot, VCenter, check_name


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


def _vcenter_client(args: argparse.Namespace, vcenter: VCenter, password: str) -> Any:
    from stateless.vcenter import VCenterClient

    return VCenterClient(vcenter.url, vcenter.user, password, name=vcenter.name,
                         thumbprint=vcenter.thumbprint, pool_size=1, timeout=args.timeout)


@attrs.frozen
class _Target:
    """A host ready for vCenter: its record (with allocations), effective and desired config."""

    host: HostRecord
    effective: EffectiveConfig
    desired: Any  # HostConfig
    allocated: tuple[str, ...]
    location: str
    leaf: str


def _missing_pools(snapshot: Snapshot, effective: EffectiveConfig,
                   host: HostRecord) -> list[tuple[str, str]]:
    """(item, pool) the host needs an address from; unknown pools stay errors of resolution."""
    have = {(a.item, a.pool) for a in host.allocations}
    out = []
    for key, setting in sorted(effective.settings.items()):
        value = setting.value
        if key.startswith("vmknic.") and key.endswith(".ip") and isinstance(value, str) \
                and value.startswith("pool:"):
            item, pool = key.removesuffix(".ip"), value.removeprefix("pool:")
            if (item, pool) not in have and pool in snapshot.pools:
                out.append((item, pool))
    return out


def _prepare(d: Directory, snapshot: Snapshot, uuid: str, *, allocate: bool,
            dry_run: bool) -> _Target:
    """Resolve like the daemon does: allocate missing pool addresses, refuse invalid config.

    A dry run computes the address the pool would give without taking it.
    """
    from stateless.daemon.engine import desired_config
    from stateless.model.inventory import Allocation, ContainerKind
    from stateless.policy import next_free, resolve

    host = _host(snapshot, uuid)
    effective = resolve(snapshot, host.uuid)
    missing = _missing_pools(snapshot, effective, host) if allocate else []
    done: list[str] = []
    if missing:
        made = []
        for item, pool_name in missing:
            if dry_run:
                pool, used = d.pool_used(pool_name)
                allocation = Allocation(item, pool_name, next_free(pool, used))
            else:
                allocation = d.allocate(host.uuid, item, pool_name)
            made.append(allocation)
            done.append(f"{allocation.item} {allocation.address} from pool {allocation.pool}")
        host = attrs.evolve(host, allocations=(*host.allocations, *made))
        effective = resolve(attrs.evolve(snapshot, hosts={**snapshot.hosts, host.uuid: host}),
                            host.uuid)
    if effective.errors:
        raise ValidationError(f"host {host.uuid}: the effective configuration has "
                              f"{len(effective.errors)} error(s), nothing applied: "
                              + "; ".join(str(e) for e in effective.errors)
                              + f" (see `stateless rsop {host.uuid}`)")
    location = effective.location
    if location is None or location not in snapshot.containers:
        raise ValidationError(f"host {host.uuid}: no location; add a deploy rule or "
                              f"`stateless host add {host.uuid} --path PATH`")
    kind = snapshot.containers[location].kind
    leaf = "cluster" if kind == ContainerKind.CLUSTER else "folder"
    return _Target(host, effective, desired_config(effective), tuple(done), location, leaf)


def _find_host(client: Any, name: str, location: str, leaf: str) -> Any:
    """The host's reference in vCenter, or None when it is not there yet.

    By DNS name first (what vCenter indexes), then by name inside the host's container,
    which is where `apply` puts it; nothing is created.
    """
    from pyVmomi import vim

    from stateless.vcenter import HostRef
    from stateless.vcenter.faults import Where
    from stateless.vcenter.lifecycle import split_path

    try:
        return client.resolve(name)
    except NotFoundError:
        pass
    session, where = client.session, Where(client.name, name)
    search = session.content.searchIndex
    dc, folders, cluster = split_path(location, leaf)
    segments = [dc, "host", *folders] + ([cluster] if cluster else [])
    path = "/".join(s.replace("%", "%25").replace("/", "%2f") for s in segments)
    container = session.call(where, "FindByInventoryPath", search.FindByInventoryPath, path)
    if container is None:
        return None
    found = session.call(where, "FindChild", search.FindChild, container, name)
    if isinstance(found, vim.ComputeResource) and not isinstance(found, vim.HostSystem):
        hosts = session.call(where, "host", lambda: list(found.host))
        found = hosts[0] if hosts else None
    if not isinstance(found, vim.HostSystem):
        return None
    return HostRef(found._moId, name)


def cmd_apply(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.daemon.engine import digest, vcenter_name
    from stateless.model.config import HostConfig
    from stateless.model.inventory import HostState
    from stateless.plan import plan

    host_password = ""
    host_password_file = args.host_password_file or args.environ.get("STATELESS_HOST_PASSWORD_FILE")
    if host_password_file:
        host_password = read_secret(host_password_file, "host password file")
    with _connect(args) as d:
        snapshot = d.snapshot()
        _host(snapshot, args.uuid)
        vcenter = _pick_vcenter(snapshot, args.vcenter)
        password = _vc_secret(args, vcenter)  # refuse before anything is written
        target = _prepare(d, snapshot, args.uuid, allocate=True, dry_run=args.dry_run)
        host, uuid = target.host, target.host.uuid
        name = vcenter_name(host)
        location = target.location
        applied = digest(target.effective.values())
        report: dict[str, Any] = {
            "host": uuid, "name": name, "vcenter": vcenter.name, "location": location,
            "dry_run": args.dry_run, "allocated": list(target.allocated), "placed": False,
            "plan": [], "calls": 0, "verified": None, "state": None, "digest": applied}
        with _vcenter_client(args, vcenter, password) as client:
            ref = _find_host(client, name, location, target.leaf)
            if args.dry_run:
                report["placed"] = ref is None
                current = HostConfig() if ref is None else client.read(ref, target.desired)
                report["plan"] = [str(c) for c in plan(current, target.desired)]
                report["calls"] = client.calls
            else:
                try:
                    if ref is None:
                        ref = client.ensure_host(name, location, target.leaf,
                                                 identity=host.identity, password=host_password)
                        report["placed"] = True
                    result = client.apply(ref, target.desired)
                except StatelessError as exc:
                    d.set_host_state(uuid, HostState.FAILED, str(exc)[:1000])
                    raise
                report.update(plan=[str(c) for c in result.plan], calls=client.calls,
                              verified=result.verified)
                if not result.verified:
                    keys = ", ".join(diff.key for diff in result.diffs)
                    d.set_host_state(uuid, HostState.FAILED, f"still differs after apply: {keys}")
                    raise StatelessError(f"host {uuid} ({name}): vCenter {vcenter.name} still "
                                         f"differs after apply: {keys}; see `stateless "
                                         f"compliance {uuid}`")
                d.set_host_state(uuid, HostState.COMPLIANT, applied_digest=applied)
                report["state"] = str(HostState.COMPLIANT)
    if args.json:
        _emit(out, report)
        return 0
    would = "would " if args.dry_run else ""
    out.write(f"host {uuid} as {name} in vCenter {vcenter.name} at {location}"
              + (" (dry run: nothing written)" if args.dry_run else "") + "\n")
    for line in target.allocated:
        out.write(f"{would}allocate {line}\n")
    if report["placed"]:
        out.write(f"{would}add host {name} to {target.leaf} {location}\n")
    if report["plan"]:
        out.write(f"plan: {len(report['plan'])} change(s)\n")
        out.write("".join(f"  {line}\n" for line in report["plan"]))
    else:
        out.write("plan: no changes (compliant)\n")
    if args.dry_run:
        out.write(f"vCenter calls: {report['calls']} (reads only)\n")
    else:
        out.write(f"applied: {report['calls']} vCenter call(s), verified; state compliant, "
                  f"digest {applied}\n")
    return 0


NOT_COMPLIANT = 3  # `stateless compliance`: the host differs from its desired configuration


def cmd_compliance(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.daemon.engine import vcenter_name

    with _connect(args) as d:
        snapshot = d.snapshot()
        vcenter = _pick_vcenter(snapshot, args.vcenter)
        password = _vc_secret(args, vcenter)
        target = _prepare(d, snapshot, args.uuid, allocate=False, dry_run=True)
    uuid, name = target.host.uuid, vcenter_name(target.host)
    with _vcenter_client(args, vcenter, password) as client:
        ref = _find_host(client, name, target.location, target.leaf)
        if ref is None:
            raise NotFoundError(f"host {uuid}: vCenter {vcenter.name} has no host named {name!r}; "
                                f"place and configure it with `stateless apply {uuid}`")
        diffs = client.compliance(ref, target.desired)
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
    sp.add_argument("uuid", metavar="UUID")
    sp.add_argument("--vcenter", metavar="NAME",
                    help="the vCenter to use (default: the only registered one)")
    secret_key(sp)
    sp.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                    help="per vCenter call (default 60)")


def register(sub: Any) -> None:
    sp = cmd(sub, "apply", cmd_apply, "place a host in vCenter and apply its effective "
             "configuration", json_flag=True)
    vcenter_options(sp)
    sp.add_argument("--dry-run", action="store_true", help="print the plan only; write nothing")
    sp.add_argument("--host-password-file", metavar="FILE",
                    help="root password of the host, to add it to vCenter (or "
                    "STATELESS_HOST_PASSWORD_FILE)")
    sp = cmd(sub, "compliance", cmd_compliance, "desired vs actual per key; exit 3 when not "
             "compliant", json_flag=True)
    vcenter_options(sp)

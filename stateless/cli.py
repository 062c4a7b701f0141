"""`stateless`: the admin command (inventory, policies, links, hosts, pools, sites, rules, rsop).

Everything it writes goes to the directory through `stateless.directory.Directory`, checked by
the model first; every failure is one line on stderr (what, where, how to fix) and a non-zero
exit status: 2 for usage errors, 1 for everything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import attrs
from ldap3.core.exceptions import LDAPException

from stateless.directory.client import DEFAULT_BASE, Directory
from stateless.directory.embedded import EmbeddedDirectory
from stateless.errors import NotFoundError, StatelessError, ValidationError
from stateless.model.effective import EffectiveConfig, json_value
from stateless.model.identity import HostIdentity, normalize_uuid
from stateless.model.inventory import (
    HostRecord,
    Image,
    IpPool,
    Policy,
    Rule,
    Server,
    Site,
    SiteLink,
    Snapshot,
    VCenter,
    check_name,
    normalize_path,
)
from stateless.model.settings import SettingValue, coerce, format_value, settings_table


class UsageError(StatelessError):
    """The command line is not valid."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the house rule) instead of usage dumps."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (in `{self.prog}`); see `{self.prog} --help`")


# --- helpers ------------------------------------------------------------------------------


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{what} {item!r}: expected KEY=VALUE, e.g. portgroup.vMotion.vlan=20")
        out[key.strip()] = value.strip()
    return out


def _emit(out: TextIO, data: Any) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    for row in [list(header), ["-" * w for w in widths], *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _text(value: SettingValue, key: str = "") -> str:
    return format_value(value, key)


def _read_password(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ValidationError(f"password file {path}: {exc.strerror}; give a readable file with "
                              "--password-file or STATELESS_PASSWORD_FILE") from exc


def _connect(args: argparse.Namespace) -> Directory:
    urls: list[str] = []
    for value in args.ldap or [os.environ.get("STATELESS_LDAP", "")]:
        urls += [u for u in value.split(",") if u.strip()]
    if not urls:
        raise UsageError("no directory given: use --ldap ldap://host:port or set STATELESS_LDAP "
                         "(`stateless directory start` prints the settings)")
    bind_dn = args.bind_dn or os.environ.get("STATELESS_BIND_DN") or None
    password = _read_password(args.password_file or os.environ.get("STATELESS_PASSWORD_FILE"))
    base = args.base or os.environ.get("STATELESS_BASE") or DEFAULT_BASE
    return Directory(urls, bind_dn, password, base=base)


def _policy_links(snapshot: Snapshot) -> dict[str, list[str]]:
    """policy name -> where it is linked (paths and host:UUID)."""
    out: dict[str, list[str]] = {}
    for path, container in snapshot.containers.items():
        for link in container.links:
            out.setdefault(link.policy, []).append(path)
    for uuid, host in snapshot.hosts.items():
        for link in host.links:
            out.setdefault(link.policy, []).append(f"host:{uuid}")
    return out


def _policy_json(policy: Policy, links: list[str]) -> dict[str, Any]:
    return {"name": policy.name, "description": policy.description,
            "settings": {k: json_value(policy.settings[k]) for k in sorted(policy.settings)},
            "removals": sorted(policy.removals), "problems": [p.to_json() for p in policy.problems],
            "linked_at": links, "dn": policy.dn}


def _host_json(host: HostRecord) -> dict[str, Any]:
    return {
        "uuid": host.uuid, "location": host.location,
        "links": [attrs.asdict(link) for link in host.links],
        "answers": {k: json_value(v) for k, v in sorted(host.answers.items())},
        "allocations": [attrs.asdict(a) for a in host.allocations],
        "identity": attrs.asdict(host.identity) if host.identity else None,
        "state": str(host.state) if host.state else None, "reason": host.reason,
        "applied_digest": host.applied_digest,
        "problems": [p.to_json() for p in host.problems], "dn": host.dn,
    }


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {"name": rule.name, "order": rule.order,
            "match": {k: list(v) for k, v in rule.match.items()}, "location": rule.location,
            "image": rule.image, "policies": list(rule.policies), "dn": rule.dn}


def _host(snapshot: Snapshot, uuid: str) -> HostRecord:
    uuid = normalize_uuid(uuid)
    host = snapshot.hosts.get(uuid)
    if host is None:
        raise NotFoundError(f"host {uuid}: not in the directory; add it with "
                            f"`stateless host add {uuid} --path PATH`")
    return host


def allocate_needed(directory: Directory, uuid: str) -> list[str]:
    """Allocate pool addresses for the host's pool-backed VMkernel NICs; returns what was taken."""
    from stateless.policy import resolve

    snapshot = directory.snapshot()
    host = _host(snapshot, uuid)
    config = resolve(snapshot, host.uuid)
    have = {a.item for a in host.allocations}
    done = []
    for key, setting in sorted(config.settings.items()):
        if not (key.startswith("vmknic.") and key.endswith(".ip")):
            continue
        value = setting.value
        if isinstance(value, str) and value.startswith("pool:"):
            item = key.removesuffix(".ip")
            if item not in have:
                allocation = directory.allocate(host.uuid, item, value[5:])
                done.append(f"{allocation.item} {allocation.address} from pool {allocation.pool}")
    return done


# --- commands -----------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace, TextIO], int]


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        created = d.init()
    out.write(("created " + ", ".join(created) if created else f"{d.base}: already initialised")
              + "\n")
    return 0


def cmd_directory_start(args: argparse.Namespace, out: TextIO) -> int:
    instance = EmbeddedDirectory(Path(args.data), port=args.port)
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


def cmd_container_add(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        dn = d.add_container(args.path, args.kind, args.description or "")
    out.write(f"added {args.kind} {normalize_path(args.path)} ({dn})\n")
    return 0


def cmd_container_block(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        d.set_block(args.path, not args.off)
    out.write(f"{normalize_path(args.path)}: block inheritance {'off' if args.off else 'on'}\n")
    return 0


def cmd_container_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    if args.json:
        _emit(out, [{"path": c.path, "kind": str(c.kind), "block": c.block,
                     "links": [attrs.asdict(link) for link in c.links], "dn": c.dn}
                    for c in snapshot.containers.values()])
        return 0
    rows = []
    for c in snapshot.containers.values():
        links = ", ".join(f"{link.policy}(order {link.order}"
                          + (", enforced" if link.enforced else "")
                          + (", disabled" if link.disabled else "") + ")" for link in c.links)
        rows.append([c.path, str(c.kind), "yes" if c.block else "", links])
    _table(out, ["path", "kind", "block", "links"], rows)
    return 0


def cmd_policy_create(args: argparse.Namespace, out: TextIO) -> int:
    settings = {k: coerce(k, v) for k, v in _pairs(args.set or [], "--set").items()}
    policy = Policy(args.name, settings, description=args.description or "")
    with _connect(args) as d:
        dn = d.create_policy(policy)
    out.write(f"created policy {policy.name} ({dn}) with {len(settings)} setting(s)\n")
    return 0


def cmd_policy_set(args: argparse.Namespace, out: TextIO) -> int:
    values = _pairs(args.pairs, "setting")
    with _connect(args) as d:
        d.policy_set(check_name(args.name, "policy"), values)
    out.write(f"policy {args.name}: set {', '.join(values)}\n")
    return 0


def cmd_policy_unset(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        d.policy_unset(check_name(args.name, "policy"), args.keys)
    out.write(f"policy {args.name}: unset {', '.join(args.keys)}\n")
    return 0


def cmd_policy_remove(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        d.policy_remove(check_name(args.name, "policy"), args.items)
    out.write(f"policy {args.name}: removes {', '.join(args.items)} when it wins\n")
    return 0


def cmd_policy_show(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    policy = snapshot.policies.get(check_name(args.name, "policy"))
    if policy is None:
        raise NotFoundError(f"policy {args.name}: not found; see `stateless policy list`")
    links = _policy_links(snapshot).get(policy.name, [])
    if args.json:
        _emit(out, _policy_json(policy, links))
        return 0
    out.write(f"policy {policy.name}  ({policy.dn})\n")
    if policy.description:
        out.write(f"  {policy.description}\n")
    out.write(f"  linked at: {', '.join(links) or '(nowhere)'}\n")
    for key in sorted(policy.settings):
        out.write(f"  {key} = {_text(policy.settings[key], key)}\n")
    for ref in sorted(policy.removals):
        out.write(f"  remove {ref}\n")
    for problem in policy.problems:
        out.write(f"  PROBLEM {problem}\n")
    return 0


def cmd_policy_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    links = _policy_links(snapshot)
    if args.json:
        _emit(out, [_policy_json(p, links.get(p.name, [])) for p in snapshot.policies.values()])
        return 0
    rows = [[p.name, str(len(p.settings)), ", ".join(links.get(p.name, [])),
             str(len(p.problems)) if p.problems else "", p.description]
            for p in sorted(snapshot.policies.values(), key=lambda p: p.name)]
    _table(out, ["policy", "settings", "linked at", "problems", "description"], rows)
    return 0


def cmd_policy_delete(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        unlinked = d.delete_policy(args.name, force=args.force)
    where = "; ".join(d.describe(dn) for dn in unlinked)
    out.write(f"deleted policy {args.name}" + (f" and its links at {where}"
                                               if unlinked else "") + "\n")
    return 0


def cmd_policy_link(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        d.link(args.name, _target(args.path), args.order, args.enforced, args.disabled)
    flags = "".join([", enforced" if args.enforced else "", ", disabled" if args.disabled else ""])
    out.write(f"linked {args.name} at {args.path} (order {args.order}{flags})\n")
    return 0


def _target(text: str) -> str:
    if text.startswith("host:"):
        return "host:" + normalize_uuid(text[5:])
    return normalize_path(text)


def cmd_policy_unlink(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        d.unlink(args.name, _target(args.path))
    out.write(f"unlinked {args.name} from {args.path}\n")
    return 0


def cmd_host_add(args: argparse.Namespace, out: TextIO) -> int:
    answers = {k: coerce(k, v, answer=True) for k, v in _pairs(args.answer or [], "--answer").items()}
    uuid = normalize_uuid(args.uuid)
    with _connect(args) as d:
        dn = d.add_host(uuid, args.path, answers)
        out.write(f"added host {uuid} at {normalize_path(args.path)} ({dn})\n")
        for line in allocate_needed(d, uuid):
            out.write(f"allocated {line}\n")
    return 0


def cmd_host_allocate(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        done = allocate_needed(d, args.uuid)
    out.write("".join(f"allocated {line}\n" for line in done) or "nothing to allocate\n")
    return 0


def cmd_host_show(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        host = _host(d.snapshot(), args.uuid)
    data = _host_json(host)
    if args.json:
        _emit(out, data)
        return 0
    for key, value in data.items():
        if key == "identity" and value:
            value = {k: v for k, v in value.items() if v not in ("", (), [], None)}
        out.write(f"{key}: {json.dumps(value) if not isinstance(value, str) else value}\n")
    return 0


def cmd_host_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    if args.json:
        _emit(out, [_host_json(h) for h in snapshot.hosts.values()])
        return 0
    rows = [[h.uuid, h.location or "", str(h.state or ""), h.reason,
             str(len(h.problems)) if h.problems else ""]
            for h in sorted(snapshot.hosts.values(), key=lambda h: h.uuid)]
    _table(out, ["uuid", "location", "state", "reason", "problems"], rows)
    return 0


def cmd_pool_add(args: argparse.Namespace, out: TextIO) -> int:
    start, sep, end = args.range.partition("-")
    if not sep:
        raise UsageError(f"--range {args.range!r}: expected FIRST-LAST, e.g. 10.0.20.10-10.0.20.99")
    pool = IpPool(args.name, start.strip(), end.strip(), args.netmask, args.gateway)
    with _connect(args) as d:
        d.add_pool(pool)
    out.write(f"added pool {pool.name} {pool.start}-{pool.end} ({pool.size} addresses)\n")
    return 0


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


def cmd_site_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    if args.json:
        _emit(out, {"sites": [{"name": s.name, "subnets": list(s.subnets),
                               "description": s.description} for s in snapshot.sites.values()],
                    "links": [attrs.asdict(link) for link in snapshot.site_links]})
        return 0
    _table(out, ["site", "subnets", "description"],
           [[s.name, ", ".join(s.subnets), s.description] for s in snapshot.sites.values()])
    if snapshot.site_links:
        out.write("\n")
        _table(out, ["site link", "cost"],
               [[f"{link.a} - {link.b}", str(link.cost)] for link in snapshot.site_links])
    return 0


def cmd_rules_add(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.rules import check_rule

    match: dict[str, list[str]] = {}
    for text in args.match or []:
        field, sep, pattern = text.partition("=")
        if not sep or not field.strip() or not pattern.strip():
            raise UsageError(f"--match {text!r}: expected FIELD=PATTERN, e.g. vendor=Dell*")
        match.setdefault(field.strip(), []).append(pattern.strip())
    rule = Rule(args.name, args.order, {k: tuple(v) for k, v in match.items()}, args.location,
                args.image, tuple(check_name(p, "policy") for p in args.policy or []))
    problems = check_rule(rule)
    if problems:
        raise ValidationError("; ".join(problems))
    with _connect(args) as d:
        d.add_rule(rule)
    out.write(f"added rule {rule.name} (order {rule.order})\n")
    return 0


def cmd_rules_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    if args.json:
        _emit(out, [_rule_json(r) for r in snapshot.rules])
        return 0
    rows = [[str(r.order), r.name,
             " ".join(f"{f}={'|'.join(p)}" for f, p in r.match.items()) or "(any host)",
             r.location or "", r.image or "", ", ".join(r.policies)] for r in snapshot.rules]
    _table(out, ["order", "rule", "match", "location", "image", "policies"], rows)
    return 0


def cmd_rules_delete(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        d.delete_rule(args.name)
    out.write(f"deleted rule {args.name}\n")
    return 0


def _load_identity(path: str) -> HostIdentity:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValidationError(f"identity file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(f"identity file {path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"identity file {path}: expected a JSON object of HostIdentity fields")
    fields = {f.name for f in attrs.fields(HostIdentity)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValidationError(f"identity file {path}: unknown field(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(fields))}")
    for key in ("oem_strings", "macs"):
        if key in data and isinstance(data[key], list):
            data[key] = tuple(data[key])
    try:
        return HostIdentity(**data)
    except TypeError as exc:
        raise ValidationError(f"identity file {path}: {exc}") from exc


def cmd_rules_test(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.rules import evaluate

    identity = _load_identity(args.identity)
    with _connect(args) as d:
        snapshot = d.snapshot()
    result = evaluate(snapshot.rules, identity)
    data = {"location": result.location, "image": result.image, "policies": list(result.policies),
            "matched": dict(result.matched)}
    if args.json:
        _emit(out, data)
        return 0
    for key in ("location", "image"):
        out.write(f"{key}: {data[key] or '(none)'}" + (f"  (rule {result.matched[key]})"
                                                        if key in result.matched else "") + "\n")
    out.write(f"policies: {', '.join(result.policies) or '(none)'}"
              + (f"  (rule {result.matched['policies']})" if "policies" in result.matched else "")
              + "\n")
    return 0


def render_rsop(config: EffectiveConfig, out: TextIO) -> None:
    """gpresult-like table: key, value, winning policy, where linked, enforced, overridden."""
    out.write(f"host {config.host}  location {config.location or '(none)'}\n\n")
    rows = []
    for key in sorted(config.settings):
        s = config.settings[key]
        overridden = "; ".join(f"{o.policy}@{o.linked_at}={_text(o.value, key)}"
                               for o in s.overridden)
        rows.append([key, _text(s.value, key), s.policy, s.linked_at,
                     "yes" if s.enforced else "", overridden])
    _table(out, ["key", "value", "winning policy", "linked at", "enforced", "overridden"], rows)
    for removal in config.removed:
        out.write(f"\nremoved {removal.target} by {removal.policy} (linked at {removal.linked_at})")
    if config.removed:
        out.write("\n")
    if config.errors:
        out.write("\nerrors (these values are not applied):\n")
        for problem in config.errors:
            out.write(f"  {problem}\n")


def cmd_rsop(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.policy import resolve

    with _connect(args) as d:
        snapshot = d.snapshot()
    host = _host(snapshot, args.uuid)
    config = resolve(snapshot, host.uuid)
    if args.json:
        _emit(out, config.to_json())
    else:
        render_rsop(config, out)
    return 0


def cmd_settings(args: argparse.Namespace, out: TextIO) -> int:
    rows = settings_table()
    if args.json:
        _emit(out, [{"key": k, "meaning": m, "example": e} for k, m, e in rows])
        return 0
    _table(out, ["key", "meaning", "example"], [list(r) for r in rows])
    return 0


def cmd_image_add(args: argparse.Namespace, out: TextIO) -> int:
    image = Image(args.name, args.version or "", args.kernel, tuple(args.module or ()),
                  args.options or "", args.url or "")
    with _connect(args) as d:
        d.add_image(image)
    out.write(f"added image {image.name}\n")
    return 0


def cmd_vcenter_add(args: argparse.Namespace, out: TextIO) -> int:
    password = _read_password(args.vc_password_file) or ""
    vcenter = VCenter(args.name, args.url, args.user, password, args.thumbprint)
    with _connect(args) as d:
        d.add_vcenter(vcenter)
    out.write(f"added vCenter {vcenter.name} ({vcenter.url})\n")
    return 0


def cmd_server_add(args: argparse.Namespace, out: TextIO) -> int:
    server = Server(args.name, check_name(args.site, "site"), args.url, tuple(args.vcenter or ()),
                    args.priority, args.weight)
    with _connect(args) as d:
        d.add_server(server)
    out.write(f"added server {server.name} ({server.url}, site {server.site})\n")
    return 0


def cmd_load(args: argparse.Namespace, out: TextIO) -> int:
    """Run a file of `stateless` command lines (# comments), stopping at the first failure."""
    import shlex

    try:
        lines = Path(args.file).read_text().splitlines()
    except OSError as exc:
        raise ValidationError(f"load {args.file}: {exc.strerror}") from exc
    parser = build_parser()
    count = 0
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{args.file}:{number}"
        try:
            tokens = shlex.split(text)
            if tokens and tokens[0] == "stateless":
                tokens = tokens[1:]
            if tokens and tokens[0] in ("load", "directory"):
                raise UsageError(f"`{tokens[0]}` cannot be used inside a loaded file")
            sub = parser.parse_args(tokens)
            for name in ("ldap", "bind_dn", "password_file", "base"):
                if getattr(sub, name) is None:
                    setattr(sub, name, getattr(args, name))
            sub.handler(sub, out)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc.message}") from exc
        except StatelessError as exc:
            raise StatelessError(f"{where}: {exc.message}") from exc
        except ValueError as exc:  # shlex: unbalanced quotes
            raise UsageError(f"{where}: {exc}") from exc
        count += 1
    out.write(f"loaded {args.file}: {count} command(s)\n")
    return 0


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stateless", description="Administer stateless ESXi configuration in the "
                "directory.")
    conn = p.add_argument_group("directory connection (or STATELESS_LDAP, STATELESS_BIND_DN, "
                                "STATELESS_PASSWORD_FILE, STATELESS_BASE)")
    conn.add_argument("--ldap", action="append", metavar="URL",
                      help="directory URL; repeat or comma-separate for failover in order")
    conn.add_argument("--bind-dn", metavar="DN")
    conn.add_argument("--password-file", metavar="FILE")
    conn.add_argument("--base", metavar="DN", help=f"subtree (default {DEFAULT_BASE})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(parent: Any, name: str, handler: Handler, help_: str, json_flag: bool = False) -> Any:
        sp = parent.add_parser(name, help=help_, description=help_)
        sp.set_defaults(handler=handler)
        if json_flag:
            sp.add_argument("--json", action="store_true", help="machine-readable output")
        return sp

    def group(name: str, help_: str) -> Any:
        return sub.add_parser(name, help=help_, description=help_).add_subparsers(
            dest="subcommand", required=True, metavar="SUBCOMMAND")

    cmd(sub, "init", cmd_init, "create the base DIT under --base (idempotent)")

    g = group("directory", "run a private slapd (development, demos)")
    sp = cmd(g, "start", cmd_directory_start, "start (or create) a private slapd; prints export lines")
    sp.add_argument("--data", required=True, metavar="DIR")
    sp.add_argument("--port", type=int)
    sp = cmd(g, "stop", cmd_directory_stop, "stop the private slapd of DIR")
    sp.add_argument("--data", required=True, metavar="DIR")

    g = group("container", "inventory: datacenters, folders, clusters")
    sp = cmd(g, "add", cmd_container_add, "add a container below an existing one")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--kind", required=True, choices=["datacenter", "folder", "cluster"])
    sp.add_argument("--description")
    sp = cmd(g, "block", cmd_container_block, "block inheritance of non-enforced links from above")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--off", action="store_true", help="stop blocking")
    cmd(g, "list", cmd_container_list, "list containers and their links", json_flag=True)

    g = group("policy", "named setting bundles and their links")
    sp = cmd(g, "create", cmd_policy_create, "create a policy")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--description")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE")
    sp = cmd(g, "set", cmd_policy_set, "set keys of a policy")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    sp = cmd(g, "unset", cmd_policy_unset, "remove keys or whole items from a policy")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("keys", nargs="+", metavar="KEY")
    sp = cmd(g, "remove", cmd_policy_remove,
             "make the policy remove an inherited item or key (explicit removal)")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("items", nargs="+", metavar="ITEM")
    sp = cmd(g, "show", cmd_policy_show, "show one policy", json_flag=True)
    sp.add_argument("name", metavar="NAME")
    cmd(g, "list", cmd_policy_list, "list policies", json_flag=True)
    sp = cmd(g, "delete", cmd_policy_delete, "delete a policy (refused while linked)")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--force", action="store_true", help="unlink it everywhere first")
    sp = cmd(g, "link", cmd_policy_link, "link a policy at a container PATH or host:UUID")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--order", type=int, default=1, help="link order, 1 first (default 1)")
    sp.add_argument("--enforced", action="store_true")
    sp.add_argument("--disabled", action="store_true")
    sp = cmd(g, "unlink", cmd_policy_unlink, "remove a link")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("path", metavar="PATH")

    g = group("host", "host records")
    sp = cmd(g, "add", cmd_host_add, "add a host at a location, allocating pool addresses")
    sp.add_argument("uuid", metavar="UUID")
    sp.add_argument("--path", required=True, metavar="PATH")
    sp.add_argument("--answer", action="append", metavar="KEY=VALUE")
    sp = cmd(g, "allocate", cmd_host_allocate, "allocate pool addresses the host now needs")
    sp.add_argument("uuid", metavar="UUID")
    sp = cmd(g, "show", cmd_host_show, "show one host", json_flag=True)
    sp.add_argument("uuid", metavar="UUID")
    cmd(g, "list", cmd_host_list, "list hosts", json_flag=True)

    g = group("pool", "IP pools for VMkernel NICs")
    sp = cmd(g, "add", cmd_pool_add, "add a pool")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--range", required=True, metavar="FIRST-LAST")
    sp.add_argument("--netmask", required=True)
    sp.add_argument("--gateway")

    g = group("site", "sites and site links")
    sp = cmd(g, "add", cmd_site_add, "add a site")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--subnet", action="extend", nargs="+", required=True, metavar="CIDR")
    sp.add_argument("--description")
    sp = cmd(g, "link", cmd_site_link, "link two sites with a cost")
    sp.add_argument("a", metavar="A")
    sp.add_argument("b", metavar="B")
    sp.add_argument("--cost", type=int, required=True)
    cmd(g, "list", cmd_site_list, "list sites and site links", json_flag=True)

    g = group("rules", "deploy rules")
    sp = cmd(g, "add", cmd_rules_add, "add a rule")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--order", type=int, default=100)
    sp.add_argument("--match", action="append", metavar="FIELD=PATTERN")
    sp.add_argument("--location", metavar="PATH")
    sp.add_argument("--image", metavar="NAME")
    sp.add_argument("--policy", action="append", metavar="NAME")
    cmd(g, "list", cmd_rules_list, "list rules in order", json_flag=True)
    sp = cmd(g, "delete", cmd_rules_delete, "delete a rule")
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "test", cmd_rules_test, "which rules match a host identity", json_flag=True)
    sp.add_argument("--identity", required=True, metavar="FILE.json")

    g = group("image", "boot images")
    sp = cmd(g, "add", cmd_image_add, "add a boot image")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--version")
    sp.add_argument("--kernel", default="mboot.c32")
    sp.add_argument("--module", action="append")
    sp.add_argument("--options")
    sp.add_argument("--url")

    g = group("vcenter", "vCenters")
    sp = cmd(g, "add", cmd_vcenter_add, "add a vCenter")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--url", required=True)
    sp.add_argument("--user", required=True)
    sp.add_argument("--vc-password-file", metavar="FILE")
    sp.add_argument("--thumbprint")

    g = group("server", "statelessd servers")
    sp = cmd(g, "add", cmd_server_add, "add a server")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--site", required=True)
    sp.add_argument("--url", required=True)
    sp.add_argument("--vcenter", action="append")
    sp.add_argument("--priority", type=int, default=0)
    sp.add_argument("--weight", type=int, default=100)

    sp = cmd(sub, "rsop", cmd_rsop, "effective configuration of a host with provenance",
             json_flag=True)
    sp.add_argument("uuid", metavar="UUID")
    cmd(sub, "settings", cmd_settings, "the setting keys", json_flag=True)
    sp = cmd(sub, "load", cmd_load, "run a file of stateless command lines (e.g. an example estate)")
    sp.add_argument("file", metavar="FILE")
    return p


def _fail(code: int, message: str, err: TextIO) -> int:
    err.write("stateless: error: " + " ".join(message.split()) + "\n")
    return code


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        return int(args.handler(args, out))
    except UsageError as exc:
        return _fail(2, exc.message, err)
    except StatelessError as exc:
        return _fail(1, exc.message, err)
    except LDAPException as exc:
        return _fail(1, f"directory: {exc}; check --ldap and that the server runs", err)
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return _fail(1, "interrupted", err)


if __name__ == "__main__":
    raise SystemExit(main())

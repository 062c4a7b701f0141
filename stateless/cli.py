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


def _key_file(args: argparse.Namespace) -> Path:
    """The shared Fernet key file: --secret-key-file, else STATELESS_SECRET_KEY_FILE."""
    from stateless.directory.secrets import key_path

    value = args.secret_key_file or os.environ.get("STATELESS_SECRET_KEY_FILE")
    if not value:
        raise UsageError("no secret key file: vCenter passwords are stored encrypted; give "
                         "--secret-key-file FILE or set STATELESS_SECRET_KEY_FILE (the servers' "
                         "--secret-key-file, default STATE_DIR/secret.key)")
    path = key_path(Path(value))
    if not path.exists() and not getattr(args, "create_key", False):
        raise ValidationError(f"secret key file {path}: does not exist; copy the servers' key "
                              "file there, or create a new one with `vcenter add ... --create-key`")
    return path


def _vc_password(path: str) -> str:
    try:
        password = Path(path).read_text().strip()
    except OSError as exc:
        raise ValidationError(f"vCenter password file {path}: {exc.strerror}; give a readable "
                              "file with `vcenter add ... --password-file F`") from exc
    if not password:
        raise ValidationError(f"vCenter password file {path}: empty; put the password in it")
    return password


def cmd_vcenter_add(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.secrets import encrypt_password

    password = _vc_password(args.vc_password_file)
    key = _key_file(args)
    existed = key.exists()
    stored = encrypt_password(password, key, create=args.create_key)
    vcenter = VCenter(args.name, args.url, args.user, stored, args.thumbprint)
    with _connect(args) as d:
        d.add_vcenter(vcenter)
    if not existed:
        out.write(f"created secret key file {key} (mode 0600): give the same file to every "
                  "server (--secret-key-file)\n")
    out.write(f"added vCenter {vcenter.name} ({vcenter.url}, password encrypted)\n")
    return 0


def _password_state(stored: str) -> str:
    from stateless.directory.secrets import PREFIX

    if not stored:
        return "none"
    return "encrypted" if stored.startswith(PREFIX) else "clear (register again)"


def cmd_vcenter_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    vcenters = sorted(snapshot.vcenters.values(), key=lambda v: v.name)
    if args.json:
        _emit(out, [{"name": v.name, "url": v.url, "user": v.user, "thumbprint": v.thumbprint,
                     "password": _password_state(v.password), "dn": v.dn} for v in vcenters])
        return 0
    _table(out, ["vcenter", "url", "user", "thumbprint", "password"],
           [[v.name, v.url, v.user, v.thumbprint or "", _password_state(v.password)]
            for v in vcenters])
    return 0


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
    if args.host_password_file or os.environ.get("STATELESS_HOST_PASSWORD_FILE"):
        host_password = _read_password(args.host_password_file
                                       or os.environ.get("STATELESS_HOST_PASSWORD_FILE")) or ""
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


def cmd_dns_records(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.dns.records import records_text

    domain = args.domain or os.environ.get("STATELESS_DOMAIN")
    if not domain:
        raise UsageError("no DNS domain: give --domain D or set STATELESS_DOMAIN")
    if args.ttl < 0:
        raise UsageError(f"--ttl {args.ttl}: must be 0 or more seconds")
    with _connect(args) as d:
        snapshot = d.snapshot()
    servers = sorted(snapshot.servers.values(), key=lambda s: s.name)
    out.write(records_text(servers, domain, ttl=args.ttl, a_records=args.a_records))
    if not servers:
        out.write("; no servers in the directory: add them with `stateless server add`\n")
    return 0


def cmd_agent_bundle(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.agent.bundle import build_zipapp

    try:
        build_zipapp(args.output, vendor_dnspython=not args.no_dnspython)
    except OSError as exc:
        raise ValidationError(f"agent bundle {args.output}: {exc.strerror or exc}; choose a "
                              "writable path with -o") from exc
    size = Path(args.output).stat().st_size
    out.write(f"wrote {args.output} ({size} bytes); run it with `python3 {args.output} --help`\n")
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

    def secret_key(sp: Any) -> None:
        sp.add_argument("--secret-key-file", metavar="FILE",
                        help="the servers' Fernet key file (or STATELESS_SECRET_KEY_FILE)")

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
    sp = cmd(g, "add", cmd_vcenter_add, "register a vCenter; its password is stored encrypted")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--url", required=True, help="http(s)://HOST[:PORT]/sdk")
    sp.add_argument("--user", required=True)
    sp.add_argument("--password-file", "--vc-password-file", dest="vc_password_file",
                    required=True, metavar="FILE", help="file holding the vCenter password")
    sp.add_argument("--thumbprint", help="SHA-1 or SHA-256 of the vCenter's certificate")
    secret_key(sp)
    sp.add_argument("--create-key", action="store_true",
                    help="create the secret key file when it does not exist")
    cmd(g, "list", cmd_vcenter_list, "list vCenters (never their passwords)", json_flag=True)

    g = group("server", "statelessd servers")
    sp = cmd(g, "add", cmd_server_add, "add a server")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--site", required=True)
    sp.add_argument("--url", required=True)
    sp.add_argument("--vcenter", action="append")
    sp.add_argument("--priority", type=int, default=0)
    sp.add_argument("--weight", type=int, default=100)

    def vcenter_options(sp: Any) -> None:
        sp.add_argument("uuid", metavar="UUID")
        sp.add_argument("--vcenter", metavar="NAME",
                        help="the vCenter to use (default: the only registered one)")
        secret_key(sp)
        sp.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="per vCenter call (default 60)")

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

    g = group("dns", "DNS discovery records")
    sp = cmd(g, "records", cmd_dns_records, "zone-file lines (SRV, optional A) for every server")
    sp.add_argument("--domain", metavar="D", help="DNS domain (or STATELESS_DOMAIN)")
    sp.add_argument("--ttl", type=int, default=300, metavar="N", help="seconds (default 300)")
    sp.add_argument("--a-records", action="store_true",
                    help="A records for targets whose server URL is an IPv4 address")

    g = group("agent", "the boot agent")
    sp = cmd(g, "bundle", cmd_agent_bundle, "write the agent as one zipapp file")
    sp.add_argument("-o", "--output", required=True, metavar="FILE.pyz")
    sp.add_argument("--no-dnspython", action="store_true",
                    help="leave dnspython out (the host has it)")

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

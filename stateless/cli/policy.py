"""`stateless policy`: named setting bundles and their links."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless import validate
from stateless.cli._common import _connect, _emit, _pairs, _table, _text, cmd, group
from stateless.directory.admin import refuse
from stateless.errors import NotFoundError
from stateless.model.identity import normalize_uuid
from stateless.model.inventory import Policy, Snapshot, check_name, normalize_path
from stateless.model.settings import coerce, render_json


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
            "settings": {k: render_json(k, policy.settings[k]) for k in sorted(policy.settings)},
            "removals": sorted(policy.removals), "problems": [p.to_json() for p in policy.problems],
            "linked_at": links, "dn": policy.dn}


def cmd_policy_create(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.secrets import refused_references  # loads the sealing code

    settings = {k: coerce(k, v) for k, v in _pairs(args.set or [], "--set").items()}
    policy = Policy(args.name, settings, description=args.description or "")
    with _connect(args, policy_edit=True) as d:
        refuse(validate.pools(d.snapshot(), f"policy {policy.name}", settings))
        refuse(refused_references(d, settings))
        dn = d.create_policy(policy)
    out.write(f"created policy {policy.name} ({dn}) with {len(settings)} setting(s)\n")
    return 0


def cmd_policy_set(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.secrets import refused_references  # loads the sealing code

    values = _pairs(args.pairs, "setting")
    checked = {k: coerce(k, v) for k, v in values.items()}
    with _connect(args, policy_edit=True) as d:
        refuse(validate.pools(d.snapshot(), f"policy {args.name}", checked))
        refuse(refused_references(d, checked))
        d.policy_set(check_name(args.name, "policy"), values)
    out.write(f"policy {args.name}: set {', '.join(values)}\n")
    return 0


def cmd_policy_unset(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args, policy_edit=True) as d:
        d.policy_unset(check_name(args.name, "policy"), args.keys)
    out.write(f"policy {args.name}: unset {', '.join(args.keys)}\n")
    return 0


def cmd_policy_remove(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args, policy_edit=True) as d:
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
    with _connect(args, policy_edit=True) as d:
        unlinked = d.delete_policy(args.name, force=args.force)
    where = "; ".join(d.describe(dn) for dn in unlinked)
    out.write(f"deleted policy {args.name}" + (f" and its links at {where}"
                                               if unlinked else "") + "\n")
    return 0


def cmd_policy_link(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args, policy_edit=True) as d:
        d.link(args.name, _target(args.path), args.order, args.enforced, args.disabled)
    flags = "".join([", enforced" if args.enforced else "", ", disabled" if args.disabled else ""])
    out.write(f"linked {args.name} at {args.path} (order {args.order}{flags})\n")
    return 0


def _target(text: str) -> str:
    if text.startswith("host:"):
        return "host:" + normalize_uuid(text[5:])
    return normalize_path(text)


def cmd_policy_unlink(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args, policy_edit=True) as d:
        d.unlink(args.name, _target(args.path))
    out.write(f"unlinked {args.name} from {args.path}\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "policy", "named setting bundles and their links")
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

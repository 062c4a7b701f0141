"""`stateless rules`: deploy rules, and which of them match a host identity."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless import validate
from stateless.cli import rulecheck
from stateless.cli._common import UsageError, _connect, _emit, _table, cmd, group
from stateless.directory import admin
from stateless.directory.admin import refuse
from stateless.errors import NotFoundError
from stateless.inputs import read_identity
from stateless.model.inventory import Rule, check_name


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {"name": rule.name, "order": rule.order,
            "match": {k: list(v) for k, v in rule.match.items()}, "location": rule.location,
            "image": rule.image, "policies": list(rule.policies), "dn": rule.dn}


def _match(items: list[str]) -> dict[str, tuple[str, ...]]:
    match: dict[str, list[str]] = {}
    for text in items:
        field, sep, pattern = text.partition("=")
        if not sep or not field.strip() or not pattern.strip():
            raise UsageError(f"--match {text!r}: expected FIELD=PATTERN, e.g. vendor=Dell*")
        match.setdefault(field.strip(), []).append(pattern.strip())
    return {k: tuple(v) for k, v in match.items()}


def cmd_rules_add(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.rules import check_rule

    rule = Rule(args.name, args.order, _match(args.match or []), args.location,
                args.image, tuple(check_name(p, "policy") for p in args.policy or []))
    refuse(check_rule(rule))
    with _connect(args) as d:
        refuse(validate.rule_references(d.snapshot(), rule))
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


def cmd_rules_set(args: argparse.Namespace, out: TextIO) -> int:
    fields: dict[str, Any] = {"order": args.order, "image": args.image,
                              "match": _match(args.match) if args.match is not None else None,
                              "policies": tuple(check_name(p, "policy") for p in args.policy)
                              if args.policy is not None else None}
    fields["location"] = args.location
    clear = ["location"] if args.no_location else []
    if all(v is None for v in fields.values()) and not clear:
        raise UsageError("rules set: nothing to change; give --order, --match, --location, "
                         "--no-location, --image or --policy")
    with _connect(args) as d:
        rule = admin.set_rule(d, args.name, fields, clear)
    out.write(f"changed rule {rule.name} (order {rule.order})\n")
    return 0


def cmd_rules_show(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    rule = next((r for r in snapshot.rules if r.name == check_name(args.name, "rule")), None)
    if rule is None:
        raise NotFoundError(f"rule {args.name}: not in the directory; see `stateless rules list`")
    data = _rule_json(rule)
    if args.json:
        _emit(out, data)
        return 0
    out.write(f"rule: {rule.name}\norder: {rule.order}\nmatch: "
              + (" ".join(f"{f}={'|'.join(p)}" for f, p in rule.match.items()) or "(any host)")
              + f"\nlocation: {rule.location or ''}\nimage: {rule.image or ''}\n"
              f"policies: {', '.join(rule.policies)}\n")
    return 0


def cmd_rules_delete(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        try:
            d.delete_rule(args.name)
        except NotFoundError:
            raise NotFoundError(f"rule {args.name}: not in the directory; see "
                                "`stateless rules list`") from None
    out.write(f"deleted rule {args.name}\n")
    return 0


def cmd_rules_test(args: argparse.Namespace, out: TextIO) -> int:
    """Every rule that matches the identity, and which one wins each item (like Auto Deploy's
    Get-VMHostMatchingRules); the image is also what a container assignment makes it."""
    from stateless.rules import ITEM_TYPES, evaluate, rule_matches, sort_rules

    if args.all == bool(args.identity):
        raise UsageError("rules test: give --identity FILE.json or --all")
    if args.all:
        return rulecheck.cmd_rules_test_all(args, out)
    identity = read_identity(args.identity)
    with _connect(args) as d:
        snapshot = d.snapshot()
    result = evaluate(snapshot.rules, identity)
    matching = [r for r in sort_rules(snapshot.rules) if rule_matches(r, identity)]
    wins = {r.name: [t for t in ITEM_TYPES if result.matched.get(t) == r.name] for r in matching}
    data: dict[str, Any] = {
            "location": result.location, "image": result.image, "policies": list(result.policies),
            "matched": dict(result.matched),
            "matching": [{"rule": r.name, "order": r.order,
                          "gives": {t: (list(r.policies) if t == "policies" else getattr(r, t))
                                    for t in ITEM_TYPES if getattr(r, t)},
                          "wins": wins[r.name]}
                         for r in matching]}
    if args.json:
        _emit(out, data)
        return 0
    for key in ("location", "image"):
        out.write(f"{key}: {data[key] or '(none)'}" + (f"  (rule {result.matched[key]})"
                                                        if key in result.matched else "") + "\n")
    out.write(f"policies: {', '.join(result.policies) or '(none)'}"
              + (f"  (rule {result.matched['policies']})" if "policies" in result.matched else "")
              + "\n")
    rows = [[str(r.order), r.name,
             " ".join(f"{t}={','.join(r.policies) if t == 'policies' else getattr(r, t)}"
                      for t in ITEM_TYPES if getattr(r, t)),
             ", ".join(wins[r.name]) or "(earlier rules win)"] for r in matching]
    out.write("matching rules:\n")
    _table(out, ["order", "rule", "gives", "wins"], rows)
    return 0


def register(sub: Any) -> None:
    g = group(sub, "rules", "deploy rules")
    sp = cmd(g, "add", cmd_rules_add, "add a rule")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--order", type=int, default=100)
    sp.add_argument("--match", action="append", metavar="FIELD=PATTERN")
    sp.add_argument("--location", metavar="PATH")
    sp.add_argument("--image", metavar="NAME")
    sp.add_argument("--policy", action="append", metavar="NAME")
    cmd(g, "list", cmd_rules_list, "list rules in order", json_flag=True)
    sp = cmd(g, "set", cmd_rules_set, "change a rule (checked as `rules add` checks a new one)")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--order", type=int)
    sp.add_argument("--match", action="append", metavar="FIELD=PATTERN",
                    help="replaces every match; repeat for several")
    loc = sp.add_mutually_exclusive_group()
    loc.add_argument("--location", metavar="PATH")
    loc.add_argument("--no-location", action="store_true", help="the rule gives no location")
    sp.add_argument("--image", metavar="NAME")
    sp.add_argument("--policy", action="append", metavar="NAME",
                    help="replaces the policies; repeat for several")
    sp = cmd(g, "show", cmd_rules_show, "show one rule", json_flag=True)
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "delete", cmd_rules_delete, "delete a rule")
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "test", cmd_rules_test, "which rules match a host identity; with --all, the "
             "known hosts the current rules would change (exit 3 when any)", json_flag=True)
    sp.add_argument("--identity", metavar="FILE.json")
    sp.add_argument("--all", action="store_true", help="every known host")
    cmd(g, "repair", rulecheck.cmd_rules_repair, "move hosts to the location the rules give and "
        "list those to apply")

"""`stateless rules`: deploy rules, and which of them match a host identity."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

import attrs

from stateless.cli._common import UsageError, _connect, _emit, _table, cmd, group
from stateless.errors import ValidationError
from stateless.model.identity import HostIdentity
from stateless.model.inventory import Rule, check_name


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {"name": rule.name, "order": rule.order,
            "match": {k: list(v) for k, v in rule.match.items()}, "location": rule.location,
            "image": rule.image, "policies": list(rule.policies), "dn": rule.dn}


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
    """Every rule that matches the identity, and which one wins each item (like Auto Deploy's
    Get-VMHostMatchingRules); the image is also what a container assignment makes it."""
    from stateless.rules import ITEM_TYPES, evaluate, rule_matches, sort_rules

    identity = _load_identity(args.identity)
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
    sp = cmd(g, "delete", cmd_rules_delete, "delete a rule")
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "test", cmd_rules_test, "which rules match a host identity", json_flag=True)
    sp.add_argument("--identity", required=True, metavar="FILE.json")

"""`stateless rules test --all` and `stateless rules repair` (Auto Deploy's
Test-/Repair-DeployRuleSetCompliance).

Deploy rules are evaluated whenever a host is resolved, so what they change shows in two ways:
a host whose entry pins a location other than the one the rules give now (the entry wins until
repaired), and a host whose effective configuration under the current rules differs from what
was last applied to it. The image the rules give takes effect at the host's next boot.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import _connect, _emit, _table
from stateless.model.inventory import Snapshot


def changes(snapshot: Snapshot) -> list[dict[str, Any]]:
    """One row per known host the current rules would change (pure)."""
    from stateless.policy import resolve
    from stateless.prepare import effective_digest
    from stateless.rules import compile_rules

    compiled = compile_rules(snapshot.rules)
    rows = []
    for host in sorted(snapshot.hosts.values(), key=lambda h: h.uuid):
        if host.identity is None:
            continue  # never born: nothing for rules to match yet
        result = compiled.evaluate(host.identity)
        what = []
        moved = bool(result.location and host.location and result.location != host.location)
        if moved:
            what.append(f"location {host.location} -> {result.location} (rule "
                        f"{result.matched.get('location')})")
        if host.applied_digest and effective_digest(resolve(snapshot, host.uuid)) != host.applied_digest:
            what.append("effective configuration differs from the one applied")
        if what:
            rows.append({"host": host.uuid, "location": host.location,
                         "rule_location": result.location if moved else None,
                         "image": result.image, "policies": list(result.policies),
                         "changes": what})
    return rows


def cmd_rules_test_all(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        rows = changes(d.snapshot())
    if args.json:
        _emit(out, rows)
    elif rows:
        _table(out, ["host", "would change", "image (next boot)"],
               [[r["host"], "; ".join(r["changes"]), r["image"] or ""] for r in rows])
    else:
        out.write("every known host matches the current rules\n")
    return 3 if rows else 0


def cmd_rules_repair(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        rows = changes(d.snapshot())
        for row in rows:
            if row["rule_location"]:
                d.set_location(row["host"], row["rule_location"])
                out.write(f"host {row['host']}: now at {row['rule_location']}\n")
    todo = [r["host"] for r in rows]
    if todo:
        out.write(f"{len(todo)} host(s) to apply: `stateless apply {' '.join(todo)}`\n")
    else:
        out.write("nothing to repair\n")
    return 0

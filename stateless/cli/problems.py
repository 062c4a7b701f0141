"""`stateless problems`: everything in the directory an admin must fix, and where."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import _connect, _emit, _table, cmd
from stateless.policy.problems import directory_problems

PROBLEMS_FOUND = 3  # the exit status when there is something to fix, as `compliance` drift


def cmd_problems(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        problems = directory_problems(d.snapshot())
    if args.json:
        _emit(out, {"problems": [p.to_json() for p in problems]})
    elif problems:
        _table(out, ["dn", "attribute", "value", "reason"],
               [[p.dn, p.attribute, p.value, p.reason] for p in problems])
    else:
        out.write("no problems\n")
    return PROBLEMS_FOUND if problems else 0


def register(sub: Any) -> None:
    cmd(sub, "problems", cmd_problems, "list every entry or value of the directory that cannot be "
        "used, with DN, attribute, value and reason (exit 3 when there is any)", json_flag=True)

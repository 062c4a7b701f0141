"""`stateless agent bundle`: the boot agent as one zipapp."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from stateless.cli._common import cmd, group
from stateless.errors import ValidationError


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


def register(sub: Any) -> None:
    g = group(sub, "agent", "the boot agent")
    sp = cmd(g, "bundle", cmd_agent_bundle, "write the agent as one zipapp file")
    sp.add_argument("-o", "--output", required=True, metavar="FILE.pyz")
    sp.add_argument("--no-dnspython", action="store_true",
                    help="leave dnspython out (the host has it)")

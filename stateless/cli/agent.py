"""`stateless agent bundle`: the boot agent as one zipapp."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from stateless.cli._common import cmd, group
from stateless.errors import ValidationError


def cmd_agent_bundle(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.agent.bundle import build_module, build_zipapp

    try:
        if args.module:
            members = build_module(args.output, vendor_dnspython=not args.no_dnspython)
        else:
            build_zipapp(args.output, vendor_dnspython=not args.no_dnspython)
    except OSError as exc:
        raise ValidationError(f"agent bundle {args.output}: {exc.strerror or exc}; choose a "
                              "writable path with -o") from exc
    size = Path(args.output).stat().st_size
    if args.module:
        out.write(f"wrote ESXi boot module {args.output} ({size} bytes: {', '.join(members)}); "
                  "put it beside the image's files, where the rendered boot.cfg lists it\n")
    else:
        out.write(f"wrote {args.output} ({size} bytes); run it with `python3 {args.output} "
                  "--help`\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "agent", "the boot agent")
    sp = cmd(g, "bundle", cmd_agent_bundle, "write the agent as one zipapp file")
    sp.add_argument("-o", "--output", required=True, metavar="FILE",
                    help="FILE.pyz, or with --module the boot module (stateless.tgz)")
    sp.add_argument("--module", action="store_true",
                    help="write the ESXi boot module: the agent and its start-up hook, which "
                         "rendered boot configs append to the image's modules")
    sp.add_argument("--no-dnspython", action="store_true",
                    help="leave dnspython out (the host has it)")

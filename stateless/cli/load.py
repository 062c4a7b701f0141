"""`stateless load`: a file of command lines, such as an example estate."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import UsageError, cmd
from stateless.errors import StatelessError
from stateless.inputs import read_text


def cmd_load(args: argparse.Namespace, out: TextIO) -> int:
    """Run a file of `stateless` command lines (# comments), stopping at the first failure."""
    import shlex

    from stateless.cli import build_parser

    lines = read_text(args.file, "load").splitlines()
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
            sub.environ = args.environ
            sub.err = getattr(args, "err", None)
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


def register(sub: Any) -> None:
    sp = cmd(sub, "load", cmd_load, "run a file of stateless command lines (e.g. an example estate)")
    sp.add_argument("file", metavar="FILE")

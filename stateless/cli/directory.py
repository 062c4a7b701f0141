"""`stateless init` and `stateless directory start|stop`: the base DIT and a private slapd."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from stateless.cli._common import _connect, cmd, group
from stateless.directory.embedded import EmbeddedDirectory


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


def register(sub: Any) -> None:
    cmd(sub, "init", cmd_init, "create the base DIT under --base (idempotent)")

    g = group(sub, "directory", "run a private slapd (development, demos)")
    sp = cmd(g, "start", cmd_directory_start, "start (or create) a private slapd; prints export lines")
    sp.add_argument("--data", required=True, metavar="DIR")
    sp.add_argument("--port", type=int)
    sp = cmd(g, "stop", cmd_directory_stop, "stop the private slapd of DIR")
    sp.add_argument("--data", required=True, metavar="DIR")

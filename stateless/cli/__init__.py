"""`stateless`: the admin command (inventory, policies, links, hosts, pools, sites, rules, rsop).

Everything it writes goes to the directory through `stateless.directory.Directory`, checked by
the model first; every failure is one line on stderr (what, where, how to fix) and a non-zero
exit status: 2 for usage errors, 1 for everything else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from ldap3.core.exceptions import LDAPException

from stateless import package_version
from stateless.cli import (
    agent,
    apply,
    container,
    directory,
    dns,
    enroll,
    host,
    hosts,
    image,
    load,
    pki,
    policy,
    pool,
    problems,
    rsop,
    rules,
    secret,
    server,
    settings,
    site,
    vcenter,
)
from stateless.cli._common import UsageError, _Parser
from stateless.directory.connection import DEFAULT_BASE
from stateless.errors import StatelessError


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stateless", description="Administer stateless ESXi configuration in the "
                "directory.")
    conn = p.add_argument_group("directory connection (or STATELESS_LDAP, STATELESS_BIND_DN, "
                                "STATELESS_PASSWORD_FILE, STATELESS_BASE, "
                                "STATELESS_WRITE_SERVER)")
    conn.add_argument("--ldap", action="append", metavar="URL",
                      help="directory URL; repeat or comma-separate for failover in order")
    conn.add_argument("--bind-dn", metavar="DN")
    conn.add_argument("--password-file", metavar="FILE")
    conn.add_argument("--base", metavar="DN", help=f"subtree (default {DEFAULT_BASE})")
    conn.add_argument("--write-server", metavar="URL",
                      help="the policy write server: policy edits go there (default: "
                           "STATELESS_WRITE_SERVER, else --ldap); reads stay on --ldap")
    p.add_argument("--version", action="version", version=f"stateless {package_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    directory.register(sub)
    container.register(sub)
    policy.register(sub)
    host.register(sub)
    hosts.register(sub)
    pool.register(sub)
    site.register(sub)
    rules.register(sub)
    image.register(sub)
    vcenter.register(sub)
    server.register(sub)
    apply.register(sub)
    dns.register(sub)
    agent.register(sub)
    rsop.register(sub)
    problems.register(sub)
    settings.register(sub)
    load.register(sub)
    pki.register(sub)
    enroll.register(sub)
    secret.register(sub)
    return p


def _fail(code: int, message: str, err: TextIO) -> int:
    err.write("stateless: error: " + " ".join(message.split()) + "\n")
    return code


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The `stateless` command; `environ` (default: the process's) supplies STATELESS_* settings."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        args.environ = os.environ if environ is None else environ
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


__all__ = ["UsageError", "build_parser", "main"]

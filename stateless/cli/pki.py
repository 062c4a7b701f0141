"""`stateless pki init|issue|fingerprint`: the service's CA and certificates (no directory needed)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from stateless.cli._common import UsageError, cmd, group


def cmd_pki_init(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.security import pki

    made = pki.init_ca(Path(args.dir), args.name)
    out.write(f"created CA {args.name!r}: {made.cert} and {made.key} (mode 0600)\n"
              f"fingerprint {made.fingerprint}\n"
              f"agents pin it with --ca-fingerprint {made.fingerprint} "
              f"(boot line: stateless.ca={made.fingerprint})\n")
    return 0


def cmd_pki_issue(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.security import pki

    if bool(args.server) == bool(args.client):
        raise UsageError("pki issue: give exactly one of --server NAME and --client NAME")
    if args.client and (args.dns or args.ip):
        raise UsageError("pki issue: --dns and --ip name servers; a --client certificate has "
                         "only its name")
    name = args.server or args.client
    made = pki.issue(Path(args.dir), name, client=bool(args.client), dns=args.dns or (),
                     ips=args.ip or ())
    kind = "client" if args.client else "server"
    out.write(f"issued {kind} certificate {made.cert} (then the CA's) and key {made.key} "
              f"(mode 0600)\nfingerprint {made.fingerprint}\n")
    return 0


def cmd_pki_fingerprint(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.security import pki

    out.write(pki.fingerprint(pki.load_certificates(Path(args.file))[0]) + "\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "pki", "the service's CA, server and client certificates")
    sp = cmd(g, "init", cmd_pki_init, "create a CA (ECDSA P-256, 10 years) in DIR")
    sp.add_argument("--dir", required=True, metavar="DIR")
    sp.add_argument("--name", default="stateless CA", metavar="CN",
                    help="the CA's common name (default 'stateless CA')")
    sp = cmd(g, "issue", cmd_pki_issue,
             "issue a server or client certificate (825 days) signed by the CA in DIR")
    sp.add_argument("--dir", required=True, metavar="DIR")
    sp.add_argument("--server", metavar="NAME", help="server certificate for NAME (a DNS name or IP)")
    sp.add_argument("--client", metavar="NAME", help="client certificate for NAME")
    sp.add_argument("--dns", action="append", metavar="N", help="another DNS name (repeatable)")
    sp.add_argument("--ip", action="append", metavar="A", help="an IP address (repeatable)")
    sp = cmd(g, "fingerprint", cmd_pki_fingerprint,
             "SHA-256 of a certificate's DER (what agents pin with --ca-fingerprint)")
    sp.add_argument("file", metavar="FILE")

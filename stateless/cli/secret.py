"""`stateless secret set|rotate`: sealed secrets in the directory and the key file that opens them."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from stateless.cli._common import _connect, _key_file, cmd, group, secret_key
from stateless.directory.connection import read_secret
from stateless.errors import StatelessError, ValidationError


def _read(source: str) -> str:
    """The secret from a file, or from stdin for `-`: its text without the line ending."""
    text = sys.stdin.readline().rstrip("\r\n") if source == "-" else read_secret(source, "secret file")
    if not text:
        raise ValidationError(f"secret from {'stdin' if source == '-' else source}: empty")
    return text


def cmd_secret_set(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.secrets import SecretKind, set_secret
    from stateless.security.seal import load_keyring

    kind = SecretKind(args.kind)
    secret = _read(args.from_file)
    key = _key_file(args)
    existed = key.exists()
    ring = load_keyring(key, create=args.create_key)
    with _connect(args) as d:
        dn = set_secret(d, kind, args.name, secret, ring)
    if not existed:
        out.write(f"created secret key file {key} (mode 0600): give the same file to every "
                  "server (--secret-key-file)\n")
    out.write(f"sealed {kind} secret {args.name} with key {ring.newest.key_id} ({dn})\n")
    return 0


def cmd_secret_rotate(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.secrets import reseal_all
    from stateless.security.seal import add_key, load_keyring

    key = _key_file(args)
    if not args.reseal:
        added = add_key(key)
        out.write(f"added key {added.key_id} to {key}: it seals from now on; copy the file to "
                  "every server\n")
    ring = load_keyring(key)
    with _connect(args) as d:
        report = reseal_all(d, ring)
    out.write(f"re-sealed {report.resealed} value(s) with key {ring.newest.key_id}; "
              f"{report.current} already were\n")
    for line in report.failed:
        out.write(f"not re-sealed: {line}\n")
    if report.failed:
        raise StatelessError(f"{len(report.failed)} value(s) could not be re-sealed (listed "
                             f"above); fix them and run `stateless secret rotate --reseal`")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "secret", "sealed secrets (AES-GCM) and their key file")
    sp = cmd(g, "set", cmd_secret_set, "seal a secret into the directory: a vCenter's password, "
             "or a named CHAP secret, SNMP community or root password")
    sp.add_argument("kind", metavar="KIND", choices=("vcenter", "chap", "snmp", "root-password"),
                    help="vcenter, chap, snmp or root-password")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--from-file", default="-", metavar="FILE",
                    help="read the secret from FILE (default -, stdin); never from the command line")
    secret_key(sp)
    sp.add_argument("--create-key", action="store_true",
                    help="create the secret key file when it does not exist")
    sp = cmd(g, "rotate", cmd_secret_rotate, "add a new key to the key file and re-seal every "
             "sealed value of the directory with it")
    sp.add_argument("--reseal", action="store_true",
                    help="add no key: re-seal what is not sealed with the newest key yet")
    secret_key(sp)


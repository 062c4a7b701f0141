"""`stateless enroll-key rotate|show`: the per-site keys booting hosts sign their births with."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any, TextIO

from stateless.cli._common import _connect, _emit, _key_file, _table, cmd, group, secret_key
from stateless.model.security import format_time


def cmd_enroll_rotate(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory import enrollkeys
    from stateless.security.seal import load_keyring

    ring = load_keyring(_key_file(args))
    with _connect(args) as d:
        done = enrollkeys.rotate(d, args.site, ring, datetime.now(UTC))
    out.write(f"site {args.site}: new enrollment key {done.new.key.key_id}; valid now: "
              f"{', '.join(k.key_id for k in done.kept)}"
              + (f"; no longer valid: {', '.join(done.dropped)}" if done.dropped else "") + "\n"
              f"put it on the boot line: `stateless enroll-key show {args.site} --reveal`\n")
    return 0


def cmd_enroll_show(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.agent.signing import format_enrollment_key
    from stateless.directory import enrollkeys
    from stateless.security.enroll import boot_option
    from stateless.security.seal import load_keyring

    ring = load_keyring(_key_file(args)) if args.reveal else None
    with _connect(args) as d:
        if ring is not None:
            pairs = enrollkeys.reveal(d, args.site, ring)
        else:
            pairs = [(k, b"") for k in enrollkeys.read_keys(d, args.site)]
    rows = []
    for key, secret in pairs:
        row: dict[str, Any] = {"key_id": key.key_id, "created": format_time(key.created)}
        if args.reveal:
            row["secret"] = format_enrollment_key(key.key_id, secret)
            row["boot_option"] = boot_option(key.key_id, secret)
        rows.append(row)
    if args.json:
        _emit(out, {"site": args.site, "keys": rows})
        return 0
    if not rows:
        out.write(f"site {args.site}: no enrollment key; create one with `stateless enroll-key "
                  f"rotate {args.site}`\n")
        return 0
    header = ["key", "created"] + (["boot option"] if args.reveal else [])
    _table(out, header, [[r["key_id"], r["created"]] + ([r["boot_option"]] if args.reveal else [])
                         for r in rows])
    return 0


def register(sub: Any) -> None:
    g = group(sub, "enroll-key", "per-site enrollment keys that sign births")
    sp = cmd(g, "rotate", cmd_enroll_rotate, "add a new enrollment key to SITE (the first, or "
             "the next: the previous one stays valid, older ones are dropped)")
    sp.add_argument("site", metavar="SITE")
    secret_key(sp)
    sp = cmd(g, "show", cmd_enroll_show, "key ids and creation times of SITE's keys, newest first",
             json_flag=True)
    sp.add_argument("site", metavar="SITE")
    sp.add_argument("--reveal", action="store_true",
                    help="also print each secret as the boot line takes it (needs the key file)")
    secret_key(sp)

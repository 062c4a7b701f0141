"""What every `stateless` command shares: errors, output, the directory connection, the parser."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

from stateless.directory.client import Directory
from stateless.directory.connection import resolve_connection
from stateless.errors import NotFoundError, StatelessError, ValidationError
from stateless.model.identity import normalize_uuid
from stateless.model.inventory import HostRecord, Snapshot
from stateless.model.settings import SettingValue, render_value


class UsageError(StatelessError):
    """The command line is not valid."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the house rule) instead of usage dumps."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (in `{self.prog}`); see `{self.prog} --help`")


# --- helpers ------------------------------------------------------------------------------


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{what} {item!r}: expected KEY=VALUE, e.g. portgroup.vMotion.vlan=20")
        out[key.strip()] = value.strip()
    return out


def _emit(out: TextIO, data: Any) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    for row in [list(header), ["-" * w for w in widths], *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _text(value: SettingValue, key: str = "") -> str:
    """A value for output: `<secret>` for secret-bearing keys (model.settings.render_value)."""
    return render_value(key, value)


def _connect(args: argparse.Namespace, *, policy_edit: bool = False) -> Directory:
    """The directory of the connection options, else of the STATELESS_* environment; for a
    policy edit, the policy write server when one is set (--write-server, STATELESS_WRITE_SERVER)."""
    settings = resolve_connection({"ldap_urls": args.ldap, "bind_dn": args.bind_dn,
                                   "password_file": args.password_file, "base": args.base,
                                   "write_server": getattr(args, "write_server", None)},
                                  args.environ)
    urls = settings.write_urls if policy_edit else settings.ldap_urls
    if not urls:
        raise UsageError("no directory given: use --ldap ldap://host:port or set STATELESS_LDAP "
                         "(`stateless directory start` prints the settings)")
    for url in settings.write_server:
        if urlsplit(url).scheme not in ("ldap", "ldaps", "ldapi"):
            raise UsageError(f"write server {url!r}: expected ldap://HOST[:PORT]")
    return Directory(urls, settings.bind_dn or None, settings.password(), base=settings.base)


def _host(snapshot: Snapshot, uuid: str) -> HostRecord:
    uuid = normalize_uuid(uuid)
    host = snapshot.hosts.get(uuid)
    if host is None:
        raise NotFoundError(f"host {uuid}: not in the directory; add it with "
                            f"`stateless host add {uuid} --path PATH`")
    return host


Handler = Callable[[argparse.Namespace, TextIO], int]


def _key_file(args: argparse.Namespace) -> Path:
    """The shared sealing key file: --secret-key-file, else STATELESS_SECRET_KEY_FILE."""
    from stateless.directory.secrets import key_path

    value = args.secret_key_file or args.environ.get("STATELESS_SECRET_KEY_FILE")
    if not value:
        raise UsageError("no secret key file: vCenter passwords are stored encrypted; give "
                         "--secret-key-file FILE or set STATELESS_SECRET_KEY_FILE (the servers' "
                         "--secret-key-file, default STATE_DIR/secret.key)")
    path = key_path(Path(value))
    if not path.exists() and not getattr(args, "create_key", False):
        raise ValidationError(f"secret key file {path}: does not exist; copy the servers' key "
                              "file there, or create a new one with `vcenter add ... --create-key`")
    return path


# --- parser -------------------------------------------------------------------------------


def cmd(parent: Any, name: str, handler: Handler, help_: str, json_flag: bool = False) -> Any:
    sp = parent.add_parser(name, help=help_, description=help_)
    sp.set_defaults(handler=handler)
    if json_flag:
        sp.add_argument("--json", action="store_true", help="machine-readable output")
    return sp


def secret_key(sp: Any) -> None:
    sp.add_argument("--secret-key-file", metavar="FILE",
                    help="the servers' sealing key file (or STATELESS_SECRET_KEY_FILE)")


def group(sub: Any, name: str, help_: str) -> Any:
    return sub.add_parser(name, help=help_, description=help_).add_subparsers(
        dest="subcommand", required=True, metavar="SUBCOMMAND")

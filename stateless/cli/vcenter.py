"""`stateless vcenter add|list|show|set|delete`: vCenters, their passwords stored encrypted."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless import validate
from stateless.cli._common import (
    UsageError,
    _connect,
    _emit,
    _key_file,
    _table,
    cmd,
    group,
    secret_key,
)
from stateless.directory import admin
from stateless.directory.admin import refuse
from stateless.directory.connection import read_secret
from stateless.errors import NotFoundError, ValidationError
from stateless.model.inventory import Snapshot, VCenter, check_name


def _vc_password(path: str) -> str:
    password = read_secret(path, "vCenter password file")
    if not password:
        raise ValidationError(f"vCenter password file {path}: empty; put the password in it")
    return password


def cmd_vcenter_add(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.secrets import encrypt_password

    refuse(validate.vcenter_url(args.name, args.url))
    password = _vc_password(args.vc_password_file)
    key = _key_file(args)
    existed = key.exists()
    stored = encrypt_password(password, key, create=args.create_key)
    vcenter = VCenter(args.name, args.url, args.user, stored, args.thumbprint)
    with _connect(args) as d:
        d.add_vcenter(vcenter)
    if not existed:
        out.write(f"created secret key file {key} (mode 0600): give the same file to every "
                  "server (--secret-key-file)\n")
    out.write(f"added vCenter {vcenter.name} ({vcenter.url}, password encrypted)\n")
    return 0


def _password_state(stored: str) -> str:
    from stateless.directory.secrets import is_sealed

    if not stored:
        return "none"
    return "encrypted" if is_sealed(stored) else "clear (run `stateless secret rotate --reseal`)"


def cmd_vcenter_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    vcenters = sorted(snapshot.vcenters.values(), key=lambda v: v.name)
    if args.json:
        _emit(out, [{"name": v.name, "url": v.url, "user": v.user, "thumbprint": v.thumbprint,
                     "password": _password_state(v.password), "dn": v.dn} for v in vcenters])
        return 0
    _table(out, ["vcenter", "url", "user", "thumbprint", "password"],
           [[v.name, v.url, v.user, v.thumbprint or "", _password_state(v.password)]
            for v in vcenters])
    return 0


def _vcenter_json(snapshot: Snapshot, v: VCenter) -> dict[str, Any]:
    return {"name": v.name, "url": v.url, "user": v.user, "thumbprint": v.thumbprint,
            "password": _password_state(v.password), "used_by": admin.vcenter_users(snapshot, v.name),
            "dn": v.dn}


def cmd_vcenter_show(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        snapshot = d.snapshot()
    found = snapshot.vcenters.get(check_name(args.name, "vcenter"))
    if found is None:
        raise NotFoundError(f"vCenter {args.name}: not registered; see `stateless vcenter list`")
    data = _vcenter_json(snapshot, found)
    if args.json:
        _emit(out, data)
        return 0
    out.write("".join(f"{k}: {', '.join(v) if isinstance(v, list) else v or ''}\n"
                      for k, v in data.items()))
    return 0


def cmd_vcenter_set(args: argparse.Namespace, out: TextIO) -> int:
    if args.url is None and args.user is None and args.thumbprint is None:
        raise UsageError("vcenter set: nothing to change; give --url, --user or --thumbprint "
                         "(the password: `stateless secret set`)")
    with _connect(args) as d:
        admin.set_vcenter(d, args.name, args.url, args.user, args.thumbprint)
    out.write(f"changed vCenter {args.name}\n")
    return 0


def cmd_vcenter_delete(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as d:
        admin.delete_vcenter(d, args.name)
    out.write(f"deleted vCenter {args.name}\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "vcenter", "vCenters")
    sp = cmd(g, "add", cmd_vcenter_add, "register a vCenter; its password is stored encrypted")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--url", required=True, help="http(s)://HOST[:PORT]/sdk")
    sp.add_argument("--user", required=True)
    sp.add_argument("--password-file", "--vc-password-file", dest="vc_password_file",
                    required=True, metavar="FILE", help="file holding the vCenter password")
    sp.add_argument("--thumbprint", help="SHA-1 or SHA-256 of the vCenter's certificate")
    secret_key(sp)
    sp.add_argument("--create-key", action="store_true",
                    help="create the secret key file when it does not exist")
    cmd(g, "list", cmd_vcenter_list, "list vCenters (never their passwords)", json_flag=True)
    sp = cmd(g, "show", cmd_vcenter_show, "show one vCenter and what names it", json_flag=True)
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "set", cmd_vcenter_set, "change a vCenter's URL, user or thumbprint")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--url", help="http(s)://HOST[:PORT]/sdk")
    sp.add_argument("--user")
    sp.add_argument("--thumbprint", help="empty to forget it")
    sp = cmd(g, "delete", cmd_vcenter_delete, "delete a vCenter no server or container names")
    sp.add_argument("name", metavar="NAME")

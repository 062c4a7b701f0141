"""`stateless image`: boot images, imported from an ESXi boot.cfg and assigned to containers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from stateless.cli._common import _connect, _emit, _table, cmd, group
from stateless.errors import NotFoundError, ValidationError
from stateless.model.inventory import Image


def _image_json(image: Image) -> dict[str, Any]:
    return {"name": image.name, "version": image.version, "kernel": image.kernel,
            "modules": list(image.modules), "options": image.options, "url": image.url,
            "dn": image.dn}


def cmd_image_add(args: argparse.Namespace, out: TextIO) -> int:
    image = Image(args.name, args.version or "", args.kernel, tuple(args.module or ()),
                  args.options or "", args.url or "")
    with _connect(args) as d:
        d.add_image(image)
    out.write(f"added image {image.name}\n")
    return 0


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")) and not text.startswith("/"):
        raise ValidationError(f"--url {text!r}: expected the http(s) URL of the directory "
                              "holding the image's files (or a TFTP path starting with /)")
    return text.rstrip("/")


def cmd_image_import(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.boot.bootcfg import parse_bootcfg, relative
    from stateless.directory.images import replace_image

    try:
        text = Path(args.boot_cfg).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"--boot-cfg {args.boot_cfg}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ValidationError(f"--boot-cfg {args.boot_cfg}: not a text file") from None
    cfg = parse_bootcfg(text, args.boot_cfg)
    image = Image(args.name, cfg.build or "", relative(cfg.kernel),
                  tuple(relative(m) for m in cfg.modules), cfg.kernelopt, _url(args.url))
    with _connect(args) as d:
        if args.replace:
            replace_image(d, image)
        else:
            d.add_image(image)
    out.write(f"imported image {image.name} (build {image.version or 'unknown'}, "
              f"{len(image.modules)} modules) from {args.boot_cfg}\n")
    return 0


def cmd_image_list(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.images import users_of

    with _connect(args) as d:
        snapshot = d.snapshot()
    images = [snapshot.images[n] for n in sorted(snapshot.images)]
    if args.json:
        _emit(out, [{**_image_json(i), "used_by": users_of(snapshot, i.name)} for i in images])
        return 0
    _table(out, ["image", "version", "modules", "url", "used by"],
           [[i.name, i.version, str(len(i.modules)), i.url,
             ", ".join(users_of(snapshot, i.name)) or "-"] for i in images])
    return 0


def cmd_image_show(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.images import users_of

    with _connect(args) as d:
        snapshot = d.snapshot()
    image = snapshot.images.get(args.name)
    if image is None:
        raise NotFoundError(f"image {args.name}: no such image; see `stateless image list`")
    doc = {**_image_json(image), "used_by": users_of(snapshot, image.name)}
    if args.json:
        _emit(out, doc)
        return 0
    for key in ("name", "version", "kernel", "options", "url", "dn"):
        out.write(f"{key}: {doc[key]}\n")
    out.write(f"modules ({len(image.modules)}): {' --- '.join(image.modules)}\n")
    out.write(f"used by: {', '.join(doc['used_by']) or '(nothing)'}\n")
    return 0


def cmd_image_delete(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.images import delete_image

    with _connect(args) as d:
        delete_image(d, args.name)
    out.write(f"deleted image {args.name}\n")
    return 0


def cmd_image_assign(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.images import assign_image

    with _connect(args) as d:
        image, previous = assign_image(d, args.path, args.name)
    out.write(f"assigned image {image} to {args.path} (previous: {previous or 'none'}; "
              f"`stateless image rollback {args.path}` restores it)\n")
    return 0


def cmd_image_rollback(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.directory.images import rollback_image

    with _connect(args) as d:
        image, previous = rollback_image(d, args.path)
    out.write(f"rolled {args.path} back to image {image or 'none'} (from {previous or 'none'}); "
              "its hosts boot it next time\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "image", "boot images")
    sp = cmd(g, "add", cmd_image_add, "add a boot image by hand")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--version")
    sp.add_argument("--kernel", default="mboot.c32")
    sp.add_argument("--module", action="append")
    sp.add_argument("--options")
    sp.add_argument("--url")
    sp = cmd(g, "import", cmd_image_import, "add a boot image from an ESXi boot.cfg")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--boot-cfg", required=True, metavar="FILE",
                    help="the image's boot.cfg (from its ISO or offline bundle)")
    sp.add_argument("--url", required=True, metavar="BASE",
                    help="URL of the directory holding the image's files (boot.cfg's prefix=)")
    sp.add_argument("--replace", action="store_true", help="replace an image of the same name")
    cmd(g, "list", cmd_image_list, "list images and what uses them", json_flag=True)
    sp = cmd(g, "show", cmd_image_show, "one image, its modules and what uses it", json_flag=True)
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "delete", cmd_image_delete, "delete an image no rule or container uses")
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "assign", cmd_image_assign,
             "boot the hosts at and below a container from an image (the previous one is kept)")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("name", metavar="NAME")
    sp = cmd(g, "rollback", cmd_image_rollback,
             "give a container its previous image again")
    sp.add_argument("path", metavar="PATH")

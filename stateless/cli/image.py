"""`stateless image`: boot images."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import _connect, cmd, group
from stateless.model.inventory import Image


def cmd_image_add(args: argparse.Namespace, out: TextIO) -> int:
    image = Image(args.name, args.version or "", args.kernel, tuple(args.module or ()),
                  args.options or "", args.url or "")
    with _connect(args) as d:
        d.add_image(image)
    out.write(f"added image {image.name}\n")
    return 0


def register(sub: Any) -> None:
    g = group(sub, "image", "boot images")
    sp = cmd(g, "add", cmd_image_add, "add a boot image")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--version")
    sp.add_argument("--kernel", default="mboot.c32")
    sp.add_argument("--module", action="append")
    sp.add_argument("--options")
    sp.add_argument("--url")

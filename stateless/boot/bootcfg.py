"""ESXi `boot.cfg`: parse the file an ESXi 7/8 image ships, render one per host (pure).

The format is `key=value` lines read by ESXi's `mboot` loader: `bootstate`, `title`, `timeout`,
`prefix` (prepended to relative file names), `kernel`, `kernelopt` (the boot line),
`modules` (file names separated by ` --- `), `build`, `updated`, `nobootif`. Keys this parser
does not know are kept in order, so a vendor's file renders back as it was read.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from stateless.errors import ValidationError
from stateless.model.inventory import str_tuple

MODULE_SEPARATOR = " --- "
INTEGER_KEYS = ("bootstate", "timeout", "updated", "nobootif")
TEXT_KEYS = ("title", "prefix", "kernel", "kernelopt", "build")
KNOWN_KEYS = (*INTEGER_KEYS, *TEXT_KEYS, "modules")
MAX_BYTES = 256 * 1024  # real files are a few kB; anything near this is not a boot.cfg


class BootCfgError(ValidationError):
    """A boot.cfg line that cannot be read: the file, line number and reason."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}: line {line}: {reason}")


def _pairs(values: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in values)


@attrs.frozen
class BootCfg:
    """One boot.cfg; `None` means the key was absent (and is rendered absent)."""

    kernel: str
    modules: tuple[str, ...] = attrs.field(converter=str_tuple)
    kernelopt: str = ""
    title: str | None = None
    prefix: str | None = None
    build: str | None = None
    bootstate: int | None = None
    timeout: int | None = None
    updated: int | None = None
    nobootif: int | None = None
    extra: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)

    def render(self) -> str:
        """The file, keys in the order ESXi's own files use, unknown keys last."""
        lines: list[str] = []

        def put(key: str, value: object) -> None:
            if value is not None:
                lines.append(f"{key}={value}")

        put("bootstate", self.bootstate)
        put("title", self.title)
        put("timeout", self.timeout)
        put("prefix", self.prefix)
        put("kernel", self.kernel)
        put("kernelopt", self.kernelopt)
        put("modules", MODULE_SEPARATOR.join(self.modules))
        put("build", self.build)
        put("updated", self.updated)
        put("nobootif", self.nobootif)
        lines.extend(f"{k}={v}" for k, v in self.extra)
        return "\n".join(lines) + "\n"


def _modules(text: str, source: str, number: int) -> tuple[str, ...]:
    parts = [p.strip() for p in text.split("---")]
    for index, part in enumerate(parts, 1):
        if not part:
            raise BootCfgError(source, number, f"modules: module {index} is empty (modules are "
                               "file names separated by ' --- ')")
        if any(c.isspace() for c in part):
            raise BootCfgError(source, number, f"modules: {part!r} has a space; separate modules "
                               "with ' --- '")
    return tuple(parts)


def _integer(key: str, value: str, source: str, number: int) -> int:
    if not value.strip().isdigit():
        raise BootCfgError(source, number, f"{key}={value!r}: expected a whole number")
    return int(value.strip())


def parse_bootcfg(text: str, source: str = "boot.cfg") -> BootCfg:
    """Read a boot.cfg; a line that cannot be read raises BootCfgError (line and reason)."""
    if len(text) > MAX_BYTES:
        raise BootCfgError(source, 1, f"larger than {MAX_BYTES} bytes: not a boot.cfg")
    seen: dict[str, int] = {}
    values: dict[str, object] = {}
    extra: list[tuple[str, str]] = []
    lines = text.splitlines()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if any(ord(c) < 32 and c != "\t" for c in line):
            raise BootCfgError(source, number, "control character in the line")
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise BootCfgError(source, number, f"{line[:60]!r}: expected key=value")
        if not key or not all(c.isalnum() or c in "_-." for c in key):
            raise BootCfgError(source, number, f"{key!r}: not a key name")
        if key in seen:
            raise BootCfgError(source, number, f"{key} given again (first on line {seen[key]})")
        seen[key] = number
        if key in INTEGER_KEYS:
            values[key] = _integer(key, value, source, number)
        elif key == "modules":
            values[key] = _modules(value, source, number)
        elif key in TEXT_KEYS:
            values[key] = value.strip()
        else:
            extra.append((key, value.strip()))
    if not values.get("kernel"):
        raise BootCfgError(source, len(lines) or 1, "no kernel= line: every boot.cfg names "
                           "its kernel (kernel=/b.b00)")
    if "modules" not in values:
        raise BootCfgError(source, len(lines) or 1, "no modules= line: an ESXi image has its "
                           "modules listed (modules=/jumpstrt.gz --- /useropts.gz --- ...)")
    return BootCfg(extra=extra, **values)  # type: ignore[arg-type]


def relative(name: str) -> str:
    """A file name relative to `prefix=`: ESXi's own files start with '/', which would make
    mboot ignore the prefix and read from the root of the boot server."""
    return name.lstrip("/")


__all__ = ["MODULE_SEPARATOR", "BootCfg", "BootCfgError", "parse_bootcfg", "relative"]

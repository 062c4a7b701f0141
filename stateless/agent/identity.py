"""Who this host is: from a JSON file (simulation, tests) or, best effort, from ESXi itself.

The ESXi readers run `esxcli` and read the kernel command line; they cannot run off a host,
so they stay small and separate, and their text parsing is what the unit tests check.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid as uuidlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Runner = Callable[[list[str]], str]


class IdentityError(Exception):
    """The host's identity could not be read."""


def from_file(path: str | Path) -> dict[str, Any]:
    """The identity document written by hand or by a simulator (fields as in the birth message)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise IdentityError(f"identity file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise IdentityError(f"identity file {path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("uuid"), str):
        raise IdentityError(f"identity file {path}: expected a JSON object with a 'uuid' string")
    return doc


def parse_cmdline(text: str) -> dict[str, str]:
    """`key=value` words of a kernel command line (`bootOption -o` on ESXi, /proc/cmdline on Linux)."""
    out: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value.strip('"')
    return out


def bootif_mac(value: str | None) -> str | None:
    """pxelinux/iPXE `BOOTIF=01-aa-bb-cc-dd-ee-ff` (ARP type 1 prefix) as aa:bb:cc:dd:ee:ff."""
    if not value:
        return None
    parts = value.lower().replace(":", "-").split("-")
    if len(parts) == 7 and parts[0] == "01":
        parts = parts[1:]
    return ":".join(parts) if len(parts) == 6 and all(len(p) == 2 for p in parts) else None


def parse_colon_fields(text: str) -> dict[str, str]:
    """`   Key Name: value` lines of esxcli's default output."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key and not key.startswith("-"):
            out.setdefault(key.strip(), value.strip())
    return out


def smbios_uuid(text: str) -> str | None:
    """esxcli prints the system UUID as 16 bytes (`0x4c 0x4c ...`) or as hyphenated hex."""
    hexbytes = re.findall(r"0x([0-9a-fA-F]{2})", text)
    try:
        if len(hexbytes) == 16:
            return str(uuidlib.UUID(bytes=bytes(int(h, 16) for h in hexbytes)))
        return str(uuidlib.UUID(text.strip()))
    except ValueError:
        return None


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def from_esxi(run: Runner = _run, cmdline: str = "") -> dict[str, Any]:
    """Best effort on an ESXi host: `esxcli hardware platform get`, `esxcli network nic list`,
    the IPv4 of vmk0, the host certificate's SHA-1 thumbprint and BOOTIF from the boot options.
    """
    platform = parse_colon_fields(run(["esxcli", "hardware", "platform", "get"]))
    ident: dict[str, Any] = {
        "uuid": smbios_uuid(platform.get("UUID", "")),
        "serial": platform.get("Serial Number", ""),
        "vendor": platform.get("Vendor Name", ""),
        "model": platform.get("Product Name", ""),
        "asset": platform.get("BIOS Asset Tag", ""),
    }
    nics = run(["esxcli", "network", "nic", "list"])
    ident["macs"] = sorted(set(re.findall(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b", nics.lower())))
    ipv4 = run(["esxcli", "network", "ip", "interface", "ipv4", "get", "-i", "vmk0"])
    found = re.search(r"\bvmk0\s+(\d+\.\d+\.\d+\.\d+)", ipv4)
    ident["ipv4"] = found.group(1) if found else None
    hostname = parse_colon_fields(run(["esxcli", "system", "hostname", "get"]))
    ident["hostname"] = hostname.get("Host Name", "")
    ident["domain"] = hostname.get("Domain Name", "")
    cert = run(["openssl", "x509", "-in", "/etc/vmware/ssl/rui.crt", "-noout", "-fingerprint",
                "-sha1"])
    thumb = re.search(r"=\s*([0-9A-Fa-f:]{59})", cert)
    ident["thumbprint"] = thumb.group(1).upper() if thumb else None
    ident["boot_mac"] = bootif_mac(parse_cmdline(cmdline).get("BOOTIF"))
    if not ident["uuid"]:
        raise IdentityError("cannot read the system UUID from `esxcli hardware platform get`; "
                            "pass --identity FILE instead")
    return {k: v for k, v in ident.items() if v not in (None, "", [])}


def merge(identity: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Fields given on the command line fill in what the identity lacks."""
    return {**{k: v for k, v in extra.items() if v not in (None, "", [])}, **identity}

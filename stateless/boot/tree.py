"""The TFTP root's contents for pxelinux, computed from a snapshot (pure).

`pxelinux.cfg/<uuid>` and `pxelinux.cfg/01-<mac>` per known host, chaining mboot.c32 with
`stateless/<uuid>/boot.cfg`; `pxelinux.cfg/default` and `stateless/default/boot.cfg` for hosts
the directory does not know (the default rule's image, or "no image" and a reboot). A MAC
that two host entries claim gets no file: which host boots from it cannot be told.
"""

from __future__ import annotations

from collections.abc import Callable

from stateless.boot.render import (
    BootSettings,
    host_bootcfg,
    host_pxelinux,
    no_image_pxelinux,
    pxelinux_names,
)
from stateless.boot.select import BootChoice, BootPlanner
from stateless.errors import StatelessError
from stateless.model.identity import HostIdentity

UNKNOWN_UUID = "00000000-0000-0000-0000-000000000000"  # a host no rule pattern can match
OWN_DIR = "stateless"  # the boot.cfg files under the TFTP root


def _files_of(choice: BootChoice, settings_for: Callable[[str], BootSettings],
              key: str) -> tuple[str, str | None]:
    """(pxelinux config, boot.cfg or None) of one host (`key`: its UUID, or "default").

    Settings that cannot be had (the site's enrollment key does not open) give the host
    no image, with the reason, rather than a boot line without its key."""
    if choice.image is None:
        return no_image_pxelinux(choice.reason), None
    try:
        settings = settings_for(choice.site)
    except StatelessError as exc:
        return no_image_pxelinux(str(exc)), None
    return (host_pxelinux(choice, f"{OWN_DIR}/{key}/boot.cfg"), host_bootcfg(choice, settings))


def tftp_files(planner: BootPlanner,
               settings_for: Callable[[str], BootSettings]) -> dict[str, str]:
    """Relative path -> content of every file the TFTP root should hold.

    `settings_for(site)` gives the boot-line settings of a site (its enrollment key).
    """
    files: dict[str, str] = {}
    claims: dict[str, list[str]] = {}
    for uuid, host in sorted(planner.snapshot.hosts.items()):
        identity = host.identity or HostIdentity(uuid)
        choice = planner.choose(identity)
        pxe, cfg = _files_of(choice, settings_for, uuid)
        names = pxelinux_names(uuid, identity.field_values("mac"))
        files[f"pxelinux.cfg/{names[0]}"] = pxe
        for name in names[1:]:
            claims.setdefault(name, []).append(pxe)
        if cfg is not None:
            files[f"{OWN_DIR}/{uuid}/boot.cfg"] = cfg
    for name, configs in claims.items():
        if len(configs) == 1:
            files[f"pxelinux.cfg/{name}"] = configs[0]
    anyone = planner.choose(HostIdentity(UNKNOWN_UUID))
    pxe, cfg = _files_of(anyone, settings_for, "default")
    files["pxelinux.cfg/default"] = pxe
    if cfg is not None:
        files[f"{OWN_DIR}/default/boot.cfg"] = cfg
    return files


__all__ = ["OWN_DIR", "UNKNOWN_UUID", "tftp_files"]

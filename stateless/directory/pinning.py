"""A host's pinned identity in its entry: written once, at first approval, never by a birth."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ldap3

from stateless.errors import ConflictError, ValidationError
from stateless.model.security import PinnedIdentity, format_time

if TYPE_CHECKING:
    from stateless.directory.client import Directory

PINNED_ATTRIBUTES = ("statelessPinnedAt", "statelessPinnedThumbprint", "statelessPinnedSerial",
                     "statelessPinnedMac", "statelessPinnedName")


def pinned_attrs(pinned: PinnedIdentity) -> dict[str, list[str]]:
    out = {"statelessPinnedAt": [format_time(pinned.pinned_at)]}
    for attr, value in (("statelessPinnedThumbprint", pinned.thumbprint),
                        ("statelessPinnedSerial", pinned.serial),
                        ("statelessPinnedName", pinned.name)):
        if value:
            out[attr] = [value]
    if pinned.macs:
        out["statelessPinnedMac"] = list(pinned.macs)
    return out


def pin(directory: Directory, uuid: str, pinned: PinnedIdentity) -> bool:
    """Pin the identity; False (nothing written) when the host is pinned already.

    One modify that *adds* every value: the single-valued statelessPinnedAt makes the
    directory refuse a second pin, also one racing from another server.
    """
    if not pinned.name:
        raise ValidationError(f"host {uuid}: a pin needs the name vCenter adds the host under")
    dn = directory.host_dn(uuid)
    changes = {attr: [(ldap3.MODIFY_ADD, values)] for attr, values in pinned_attrs(pinned).items()}
    try:
        directory.modify(dn, changes, f"pin the identity of host {uuid}")
    except (ConflictError, ValidationError):
        current = directory.read(dn, "read host", ["statelessPinnedAt"]) or {}
        if current.get("statelessPinnedAt"):
            return False
        raise
    return True


def unpin(directory: Directory, uuid: str) -> None:
    """Forget the pin (an admin approving a host whose hardware changed); the next approved
    birth pins again."""
    directory.modify(directory.host_dn(uuid),
                     {attr: [(ldap3.MODIFY_REPLACE, [])] for attr in PINNED_ATTRIBUTES},
                     f"unpin host {uuid}")

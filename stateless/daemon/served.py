"""Which vCenter a host is applied through, and whether this server may do it (pure).

A host's vCenter is the one its containers name (`federation.host_vcenter`); this server
applies only hosts of the vCenters its entry names, so a host of another vCenter fails with a
reason that says who serves it, or that nobody does: never silently skipped, never applied
through the wrong vCenter.
"""

from __future__ import annotations

from stateless.errors import ValidationError
from stateless.federation import host_vcenter
from stateless.model.inventory import Snapshot
from stateless.prepare import serving_vcenter


def fallback(snapshot: Snapshot, me: str) -> str | None:
    """This server's own vCenter for hosts no container assigns (the first it serves, or the
    only one registered); None when it has none."""
    try:
        return serving_vcenter(snapshot, me)
    except ValidationError:
        return None


def served(snapshot: Snapshot, me: str) -> frozenset[str]:
    """The vCenters `me` applies through: those its entry names, else its fallback."""
    server = snapshot.servers.get(me)
    names = frozenset(server.vcenters) if server is not None else frozenset()
    if names:
        return names
    own = fallback(snapshot, me)
    return frozenset({own}) if own else frozenset()


def vcenter_for(snapshot: Snapshot, me: str, location: str | None) -> str:
    """The vCenter `me` applies a host at `location` through; ValidationError when it may not."""
    vcenter = host_vcenter(snapshot, location, fallback(snapshot, me))
    if vcenter in served(snapshot, me):
        return vcenter
    others = sorted(s.name for s in snapshot.servers.values() if vcenter in s.vcenters)
    who = f"served by {', '.join(others)}" if others else "no server serves it"
    raise ValidationError(f"not served: location {location or '/'} is managed by vCenter "
                          f"{vcenter}, which server {me} does not serve ({who})")


__all__ = ["fallback", "served", "vcenter_for"]

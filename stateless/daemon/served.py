"""Which vCenter a host is applied through, and whether this server may do it (pure).

A host's vCenter is the one its containers name (`federation.host_vcenter`), else this
server's own. A server whose entry names vCenters applies only through those, and through
the vCenters named by the servers of the sites it covers (a covered site's hosts are applied
through their own site's vCenter). A server whose entry names none applies through any
registered vCenter that no other live server names. A host of a vCenter this server may not
use fails with a reason that says who serves it, or that nobody does: never silently skipped,
never applied through the wrong vCenter.
"""

from __future__ import annotations

from datetime import datetime

from stateless.errors import ValidationError
from stateless.federation import covering_sites, host_vcenter, is_live
from stateless.model.inventory import Snapshot
from stateless.prepare import serving_vcenter


def fallback(snapshot: Snapshot, me: str) -> str | None:
    """This server's own vCenter for hosts no container assigns (the first it serves, or the
    only one registered); None when it has none."""
    try:
        return serving_vcenter(snapshot, me)
    except ValidationError:
        return None


def served(snapshot: Snapshot, me: str, now: datetime) -> frozenset[str]:
    """The vCenters `me` may apply through now."""
    server = snapshot.servers.get(me)
    names = frozenset(server.vcenters) if server is not None else frozenset()
    if not names:
        claimed = {v for s in snapshot.servers.values()
                   if s.name != me and is_live(s, now) for v in s.vcenters}
        return frozenset(v for v in snapshot.vcenters if v not in claimed)
    assert server is not None
    covered = {site for site, by in covering_sites(snapshot, now).items() if by == server.site}
    return names | {v for s in snapshot.servers.values() if s.site in covered for v in s.vcenters}


def vcenter_for(snapshot: Snapshot, me: str, location: str | None, now: datetime) -> str:
    """The vCenter `me` applies a host at `location` through; ValidationError when it may not."""
    vcenter = host_vcenter(snapshot, location, fallback(snapshot, me))
    if vcenter in served(snapshot, me, now):
        return vcenter
    others = sorted(s.name for s in snapshot.servers.values()
                    if vcenter in s.vcenters and s.name != me and is_live(s, now))
    who = f"served by {', '.join(others)}" if others else "no server serves it"
    raise ValidationError(f"not served: location {location or '/'} is managed by vCenter "
                          f"{vcenter}, which server {me} does not serve ({who})")


__all__ = ["fallback", "served", "vcenter_for"]

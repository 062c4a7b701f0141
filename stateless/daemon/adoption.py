"""Which hosts a server takes as its own without a birth (pure).

A host applied with `stateless apply --direct` records its state and digest but may have no
owner; a host's owner may also be set to this server by an admin. Such a host must still get
later policy edits applied (or be flagged), so the server serving it takes it: hosts already
naming it, and unowned hosts that were applied at least once and belong to its site (a host
whose site is unknown is taken by whichever server claims it first: the claim is atomic).
"""

from __future__ import annotations

from collections.abc import Collection

from stateless.model.inventory import Snapshot
from stateless.sites import site_of


def adoptable(before: Snapshot, snapshot: Snapshot, me: str, site: str,
              owned: Collection[str], changed: Collection[str] | None = None
              ) -> tuple[list[str], list[str]]:
    """(hosts naming `me` as owner, unowned hosts to claim) among those changed since `before`.

    `changed`, when given, names every host whose record differs between the two snapshots:
    only those are looked at, instead of every host of the directory.
    """
    mine: list[str] = []
    claim: list[str] = []
    candidates = snapshot.hosts.keys() if changed is None else changed
    for uuid in candidates:
        host = snapshot.hosts.get(uuid)
        if host is None or before.hosts.get(uuid) is host or uuid in owned or host.state is None:
            continue
        if host.owner == me:
            mine.append(uuid)
        elif not host.owner:
            address = host.identity.ipv4 if host.identity else None
            at = site_of(snapshot.sites.values(), address) if address else None
            if at is None or at == site:
                claim.append(uuid)
    return sorted(mine), sorted(claim)

"""Which hosts must reboot to run the image their rules and containers now give them.

A host runs the image it booted: the one its last birth reported (`stateless.image=` on the
boot line the daemon rendered, kept in its entry's `statelessBootImage`), else, for a host
that reported none, the one it was given when this server first saw it. When a rule or an
image assignment changes, the hosts whose image differs are `reboot_required` (host
document, `stateless_hosts_reboot_required`); the flag clears when the host is born again
with the image it should have, or when the change is undone.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from stateless.boot.select import BootPlanner, reboot_required
from stateless.model.identity import HostIdentity
from stateless.model.inventory import Snapshot


class Reboots:
    def __init__(self, site: str, registry: CollectorRegistry) -> None:
        self.site = site
        self.seen: dict[str, str | None] = {}  # image when first seen, for hosts reporting none
        self.wanted: dict[str, str | None] = {}
        self.booted: dict[str, str | None] = {}
        self._required: set[str] = set()  # kept with the two above: the gauge's value
        self.gauge = Gauge("stateless_hosts_reboot_required", "hosts whose image changed since "
                           "they booted: they run the new one after a reboot", registry=registry)

    def born(self, snapshot: Snapshot, identity: HostIdentity, reported: str | None,
             now: float) -> None:
        """The host just booted: it runs what it reports, else what it was given (its entry
        may not be in the snapshot yet: the birth's identity says what its rules see)."""
        planner = BootPlanner(snapshot, datetime.fromtimestamp(now, UTC), self.site)
        choice = planner.choose(identity)
        image = choice.image.name if choice.image is not None else None
        self.seen[identity.uuid] = reported or image
        self._set(identity.uuid, image, reported or image)
        self.gauge.set(len(self._required))

    def update(self, snapshot: Snapshot, uuids: Collection[str], now: float,
               before: Snapshot | None = None, changed: Collection[str] | None = None) -> list[str]:
        """Recompute each host's image; the hosts that now need a reboot come back.

        With `before`, and no change to what images are chosen from (rules, containers,
        images), only hosts whose own entry changed are worked out again: those in `changed`
        when the caller knows them (a change feed entry costs what it changed, not what the
        directory holds), else those whose record differs."""
        planner = BootPlanner(snapshot, datetime.fromtimestamp(now, UTC), self.site)
        if before is not None and (before.rules, before.containers, before.images) == (
                snapshot.rules, snapshot.containers, snapshot.images):
            if changed is not None:  # and the hosts owned since the last update
                uuids = {u for u in changed if u in uuids} | (set(uuids) - self.wanted.keys())
            else:
                uuids = [u for u in uuids if u not in self.wanted
                         or before.hosts.get(u) != snapshot.hosts.get(u)]
        flagged = []
        for uuid in sorted(set(uuids)):
            host = snapshot.hosts.get(uuid)
            identity = host.identity if host is not None and host.identity else HostIdentity(uuid)
            choice = planner.choose(identity)
            image = choice.image.name if choice.image is not None else None
            was = self.required(uuid)
            self.seen.setdefault(uuid, image)
            self._set(uuid, image, host.boot_image if host is not None and host.boot_image
                      else self.seen[uuid])
            if reboot_required(choice, self.booted[uuid]) and not was:
                flagged.append(uuid)
        gone = self.wanted.keys() - snapshot.hosts.keys() if changed is None else [
            u for u in changed if u in self.wanted and u not in snapshot.hosts]
        for uuid in gone:
            for known in (self.seen, self.wanted, self.booted):
                known.pop(uuid, None)
            self._required.discard(uuid)
        self.gauge.set(len(self._required))
        return flagged

    def required(self, uuid: str) -> bool:
        return uuid in self._required

    def document(self, uuid: str) -> dict[str, Any]:
        """Fields of the host document: the image it runs, the one it should, and the flag."""
        return {"reboot_required": self.required(uuid), "boot_image": self.booted.get(uuid),
                "image": self.wanted.get(uuid)}

    def _set(self, uuid: str, wanted: str | None, booted: str | None) -> None:
        self.wanted[uuid], self.booted[uuid] = wanted, booted
        if booted is not None and booted != wanted:
            self._required.add(uuid)
        else:
            self._required.discard(uuid)


__all__ = ["Reboots"]

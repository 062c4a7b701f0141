"""Which hosts this server owns: adoption of unowned or handed-over hosts, and an admin's
re-apply (which takes an unowned host first).

A part of the engine (`Engine` inherits it); kept apart because ownership is its own concern
and federation's leases will grow it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from stateless.daemon.adoption import adoptable
from stateless.daemon.hoststate import IN_PROGRESS
from stateless.daemon.outcomes import OwnedElsewhere, Reapplying
from stateless.errors import ConflictError, NotFoundError
from stateless.model.inventory import HostState, Snapshot

if TYPE_CHECKING:
    from stateless.daemon.audit import Audit
    from stateless.daemon.births import Births
    from stateless.daemon.config import DaemonConfig
    from stateless.daemon.hoststate import HostStates, StateWriter
    from stateless.daemon.ports import Blocking, HostDirectory
    from stateless.daemon.queue import ApplyQueue
    from stateless.directory import Directory

log = Logger()


class Ownership:
    """Taking hosts over; the engine provides the attributes declared here."""

    config: DaemonConfig
    blocking: Blocking
    directory: HostDirectory
    snapshot: Snapshot
    owned: set[str]
    states: HostStates
    writer: StateWriter
    queue: ApplyQueue
    births: Births
    audit: Audit
    _place: dict[str, str | None]
    _leaving: set[str]
    vcenters: Any  # VCenterClients

    if TYPE_CHECKING:  # the engine's
        def reconsider(self, uuid: str) -> None: ...

        def quarantined(self, uuid: str) -> bool: ...

        def _state(self, uuid: str) -> HostState | None: ...

        def _forget(self, uuid: str, why: str) -> None: ...

        def _vcenter(self, location: str | None) -> str: ...

        def location(self, uuid: str) -> str | None: ...

    def own(self, uuid: str, state: HostState, reason: str) -> None:
        """Track a host this server owns (after a start, or taken over) and finish its work."""
        self.owned.add(uuid)
        self.states.set(uuid, state, reason)
        if state in IN_PROGRESS:
            self._place[uuid] = None  # placement finds what a killed apply left
            self.queue.add(uuid)
        elif state == HostState.FAILED or (state == HostState.DRIFTED
                                           and self.config.mode == "enforce"):
            self.queue.add(uuid)
        else:
            self.reconsider(uuid)

    def taken(self, uuid: str, previous: str, why: str) -> None:
        """This server took the host over from a server whose lease ran out (`takeover`)."""
        host = self.snapshot.hosts.get(uuid)
        if host is None or uuid in self.owned:
            return
        self.audit.host_taken(host=uuid, owner=self.config.name, previous=previous, why=why)
        self.own(uuid, host.state or HostState.PENDING, host.reason)

    def _adopt(self, before: Snapshot, snapshot: Snapshot,
               changed: Collection[str] | None = None) -> None:
        """Take hosts applied without an owner, or handed to this server (see `adoption`);
        `changed`: the hosts whose record changed since `before`, when the mirror knows."""
        mine, unowned = adoptable(before, snapshot, self.config.name, self.config.site, self.owned,
                                  changed)
        for uuid in mine:
            if self.births.admission.writing(uuid) or self.births.waiting(uuid):
                continue  # this server's own birth, seen before its write returned
            self._take(uuid, "handed to this server")
        for uuid in unowned:
            d = self.blocking(self.directory.claim_owner, uuid, self.config.name)
            d.addCallbacks(self._claimed, self._not_claimed, callbackArgs=(uuid,),
                           errbackArgs=(uuid,))

    def _claimed(self, got: str, uuid: str) -> None:
        if got == self.config.name:
            self._take(uuid, "applied without an owner", previous="")

    def _not_claimed(self, failure: Failure, uuid: str) -> None:
        log.warn("host {uuid}: not taken over: {error}", uuid=uuid, error=failure.getErrorMessage())

    def _take(self, uuid: str, why: str, previous: str | None = None) -> None:
        host = self.snapshot.hosts.get(uuid)
        if host is None or host.state is None or uuid in self.owned or uuid in self._leaving:
            return
        self.audit.host_taken(host=uuid, owner=self.config.name,
                              previous=host.owner if previous is None else previous, why=why)
        self.owned.add(uuid)
        self.states.set(uuid, host.state, host.reason)
        if host.state in IN_PROGRESS:  # as after a restart: finish what was left
            self._place[uuid] = None
            self.queue.add(uuid)
            return
        self.reconsider(uuid)

    def reapply(self, uuid: str) -> defer.Deferred[Reapplying | OwnedElsewhere]:
        """Apply the host again now (a full read, plan, apply, verify), if this server owns it
        or nobody does (then it takes the host first)."""
        host = self.snapshot.hosts.get(uuid)
        if host is None and uuid not in self.owned:
            raise NotFoundError(f"host {uuid}: unknown; it has not been born nor added")
        if self.quarantined(uuid):
            raise ConflictError(f"host {uuid} is quarantined: `stateless hosts approve` or "
                                "`deny` it first")
        owner = host.owner if host is not None else self.config.name
        if owner == self.config.name:
            self._reapply(uuid)
            return defer.succeed(Reapplying(uuid))
        if owner:
            return defer.succeed(self._elsewhere(owner))
        d = defer.maybeDeferred(self.blocking, self.directory.claim_owner, uuid, self.config.name)

        def claimed(got: str) -> Reapplying | OwnedElsewhere:
            if got != self.config.name:
                return self._elsewhere(got)
            self.audit.host_taken(host=uuid, owner=got, previous="", why="an admin's re-apply")
            self.owned.add(uuid)
            self._reapply(uuid)
            return Reapplying(uuid)

        return d.addCallback(claimed)

    def _reapply(self, uuid: str) -> None:
        self.owned.add(uuid)
        if self.births.waiting(uuid):
            return  # a birth's apply is about to start anyway
        if self._state(uuid) not in IN_PROGRESS:
            self.states.set(uuid, HostState.PENDING, "re-apply requested", next_try=None)
            self.writer.write(uuid, HostState.PENDING, "re-apply requested")
        self.queue.add(uuid)

    def decommission(self, uuid: str,
                     keep_entry: bool) -> defer.Deferred[dict[str, Any] | OwnedElsewhere]:
        """Out of vCenter, addresses freed, entry deleted (or retired), if this server owns the
        host or nobody does; refused while the host is being applied."""
        from stateless.daemon.decommission import decommission

        host = self.snapshot.hosts.get(uuid)
        if host is None:
            raise NotFoundError(f"host {uuid}: unknown; it has not been born nor added")
        if host.owner and host.owner != self.config.name:
            return defer.succeed(self._elsewhere(host.owner))
        if self._state(uuid) in IN_PROGRESS or self.queue.running(uuid):
            raise ConflictError(f"host {uuid}: being applied; decommission it once that settled")
        vcenter = self._vcenter(self.location(uuid))
        if not vcenter:
            raise ConflictError(f"host {uuid}: this server applies no vCenter of its location")
        self._forget(uuid, "decommissioned")  # no apply, retry or scan of it from now on
        self._leaving.add(uuid)
        d = self.blocking(decommission, cast("Directory", self.directory), self.vcenters,
                          self.snapshot, uuid, vcenter, keep_entry=keep_entry,
                          host_domain=self.config.host_domain)

        def failed(failure: Failure) -> Failure:
            self._leaving.discard(uuid)
            self._take(uuid, "its decommission failed")  # still ours: tracked again
            return failure

        return cast("defer.Deferred[dict[str, Any] | OwnedElsewhere]", d.addErrback(failed))

    def _elsewhere(self, owner: str) -> OwnedElsewhere:
        server = self.snapshot.servers.get(owner)
        return OwnedElsewhere(owner, server.url if server is not None else None)


__all__ = ["Ownership"]

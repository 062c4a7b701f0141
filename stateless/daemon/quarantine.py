"""Quarantined hosts in the engine: recorded, never applied, until an admin decides.

A birth the admission refuses to trust (`security.admission`) is recorded with its claimed
identity; nothing of the host is allocated or sent to vCenter. `approvals` pins the claimed
identity and applies the host, or drops the claim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from stateless.model.inventory import HostState, Snapshot

if TYPE_CHECKING:
    from stateless.daemon.approvals import Approvals
    from stateless.daemon.config import DaemonConfig
    from stateless.daemon.hoststate import HostStates, StateWriter
    from stateless.daemon.queue import ApplyQueue


class Quarantine:
    """The engine's quarantine bookkeeping; the engine provides the attributes declared here."""

    config: DaemonConfig
    snapshot: Snapshot
    owned: set[str]
    states: HostStates
    writer: StateWriter
    queue: ApplyQueue
    approvals: Approvals
    _place: dict[str, str | None]

    if TYPE_CHECKING:  # the engine's
        def _state(self, uuid: str) -> HostState | None: ...

        def _forget(self, uuid: str, why: str) -> None: ...

    def _hold(self, uuid: str, reason: str) -> None:
        """A birth was quarantined: nothing of the host is applied until an admin decides.
        A host another server owns stays that server's (it sees the state in the feed)."""
        host = self.snapshot.hosts.get(uuid)
        if host is not None and host.owner not in ("", self.config.name):
            return
        self.owned.add(uuid)
        self.queue.discard(uuid)
        self.writer.drop(uuid)  # a pending state write must not overwrite `quarantined`
        self._place.pop(uuid, None)
        self.states.set(uuid, HostState.QUARANTINED, reason, next_try=None)

    def quarantined(self, uuid: str) -> bool:
        """In memory (this server quarantined it) or in the directory (another one did)."""
        host = self.snapshot.hosts.get(uuid)
        return self._state(uuid) == HostState.QUARANTINED or (
            host is not None and host.state == HostState.QUARANTINED)

    def approve(self, uuid: str) -> defer.Deferred[dict[str, Any]]:
        return self.approvals.approve(uuid)

    def deny(self, uuid: str) -> defer.Deferred[dict[str, Any]]:
        return self.approvals.deny(uuid)

    def drop(self, uuid: str, why: str) -> None:
        self._forget(uuid, why)

    def release_quarantine(self, uuid: str, reason: str) -> None:
        """A denied claim of a pinned host: apply the host as it was pinned."""
        self.owned.add(uuid)
        self.states.set(uuid, HostState.PENDING, reason, next_try=None)
        self.queue.add(uuid)


__all__ = ["Quarantine"]

"""An admin's decision on a quarantined host: approve (pin what it claimed, apply) or deny.

Approve pins the identity the quarantined birth claimed — replacing an earlier pin, for a
host whose hardware changed — records it as the host's identity, and applies the host like a
fresh birth. Deny drops the claim: a host that was never approved loses its entry (it booting
again is a new birth, quarantined or refused as the site's admission mode says); a pinned
host keeps its pin and is applied again as it was pinned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from stateless.daemon.births import pin_name
from stateless.directory import pinning, quarantine
from stateless.errors import ConflictError, NotFoundError
from stateless.model.birth import BirthMessage
from stateless.model.inventory import HostState
from stateless.security.admission import pin_from_birth

if TYPE_CHECKING:
    from stateless.daemon.engine import Engine

log = Logger()


class Approvals:
    """Approve and deny, for the engine (its directory, its births, its states)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _quarantined(self, uuid: str) -> None:
        engine = self._engine
        host = engine.snapshot.hosts.get(uuid)
        status = engine.states.get(uuid)
        state = status.state if status is not None else (host.state if host else None)
        if host is None and status is None:
            raise NotFoundError(f"host {uuid}: unknown; it has not been born nor added")
        if not engine.quarantined(uuid):
            raise ConflictError(f"host {uuid} is not quarantined (state {state or 'none'}); "
                                "only a quarantined host can be approved or denied")

    def approve(self, uuid: str) -> defer.Deferred[dict[str, Any]]:
        self._quarantined(uuid)
        engine = self._engine
        when = datetime.fromtimestamp(engine.reactor.seconds(), UTC)
        d = defer.maybeDeferred(engine.blocking, self._pin_claim, uuid, when)

        def pinned(claim: BirthMessage) -> dict[str, Any]:
            log.info("host {uuid}: approved by an admin; identity pinned", event="approved",
                     uuid=uuid)
            engine.births.expect(uuid, claim)
            return {"host": uuid, "approved": True, "state": "pending",
                    "status_url": f"/v1/hosts/{uuid}"}

        return d.addCallback(pinned)

    def _pin_claim(self, uuid: str, when: datetime) -> BirthMessage:
        """In a thread: the claim becomes the host's identity and its pin."""
        engine = self._engine
        directory: Any = engine.directory
        claim = quarantine.read_claim(directory, uuid)
        if claim is None:
            raise ConflictError(f"host {uuid}: quarantined without a recorded claim; it is "
                                "approved when it boots again")
        host = engine.snapshot.hosts.get(uuid)
        name = pin_name(host, claim.identity, engine.resolver.resolve)
        directory.record_birth(claim.identity, when, engine.config.name, known=True,
                               thumbprint=claim.thumbprint)
        if host is not None and host.pinned is not None:
            pinning.unpin(directory, uuid)
        if not pinning.pin(directory, uuid, pin_from_birth(claim, when, name)):
            raise ConflictError(f"host {uuid}: pinned meanwhile by another server; approve again")
        quarantine.clear(directory, uuid, HostState.PENDING, "approved by an admin")
        return claim

    def deny(self, uuid: str) -> defer.Deferred[dict[str, Any]]:
        self._quarantined(uuid)
        engine = self._engine
        host = engine.snapshot.hosts.get(uuid)
        directory: Any = engine.directory
        if host is None or host.pinned is None:
            d = defer.maybeDeferred(engine.blocking, directory.delete_host, uuid)

            def deleted(_: object) -> dict[str, Any]:
                log.info("host {uuid}: denied by an admin; its entry is deleted", event="denied",
                         uuid=uuid)
                engine.drop(uuid, "denied by an admin")
                return {"host": uuid, "denied": True, "deleted": True}

            return d.addCallback(deleted)
        reason = "claim denied by an admin; applying the pinned host"
        d = defer.maybeDeferred(engine.blocking, quarantine.clear, directory, uuid,
                                HostState.PENDING, reason)

        def cleared(_: object) -> dict[str, Any]:
            log.info("host {uuid}: claim denied by an admin; the pinned host stays",
                     event="denied", uuid=uuid)
            engine.release_quarantine(uuid, reason)
            return {"host": uuid, "denied": True, "deleted": False, "state": "pending"}

        return d.addCallback(cleared)


__all__ = ["Approvals"]

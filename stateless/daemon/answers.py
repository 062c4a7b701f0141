"""The HTTP API's questions about hosts and the server: documents built from the engine's state.

A part of the engine (`Engine` inherits it), kept apart from what the engine decides.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from stateless.daemon.documents import health_document, host_document
from stateless.errors import NotFoundError, StatelessError
from stateless.sites import nearest_servers

if TYPE_CHECKING:
    from stateless.daemon.audit import Audit
    from stateless.daemon.config import DaemonConfig
    from stateless.daemon.hoststate import HostStates
    from stateless.daemon.leases import Lease
    from stateless.daemon.reboots import Reboots
    from stateless.model.inventory import Snapshot
    from stateless.policy import Resolver


class Answers:
    """What `/v1/hosts…`, `/v1/locate` and `/healthz` answer; the engine provides the state."""

    config: DaemonConfig
    snapshot: Snapshot
    resolver: Resolver
    states: HostStates
    audit: Audit
    ready: bool
    directory_state: str
    directory_reason: str
    health_fields: list[Callable[[], dict[str, Any]]]
    reboots: Reboots
    lease: Lease | None

    if TYPE_CHECKING:  # the engine's
        @property
        def backlog(self) -> int: ...

    def location(self, uuid: str) -> str | None:
        """The host's location: its entry's, else the one a deploy rule chooses."""
        host = self.snapshot.hosts.get(uuid)
        location = host.location if host else None
        if host is not None and location is None:
            with contextlib.suppress(StatelessError):
                location = self.resolver.resolve(uuid).location  # chosen by a deploy rule
        return location

    def _document(self, uuid: str) -> dict[str, Any]:
        return {**host_document(uuid, self.snapshot.hosts.get(uuid), self.states.get(uuid),
                                self.location(uuid)),
                **self.reboots.document(uuid)}

    def hosts(self) -> list[dict[str, Any]]:
        return [self._document(u) for u in sorted(set(self.snapshot.hosts) | self.states.uuids())]

    def host(self, uuid: str) -> dict[str, Any]:
        if uuid not in self.snapshot.hosts and uuid not in self.states:
            raise NotFoundError(f"host {uuid}: unknown; it has not been born nor added")
        return self._document(uuid)

    def settled(self, uuid: str, timeout: float) -> defer.Deferred[dict[str, Any]]:
        """The host's document once it is no longer pending or applying, or after `timeout`.

        Agents that wait for their host hold one request each instead of polling, which
        during a boot storm would cost the server a request per host per poll interval.
        """
        self.host(uuid)  # NotFoundError when unknown
        return self.states.settled(uuid, timeout).addCallback(lambda _: self.host(uuid))

    def effective(self, uuid: str) -> dict[str, Any]:
        return self.resolver.resolve(uuid).to_json()

    def locate(self, address: str) -> list[dict[str, Any]]:
        return [{"name": s.name, "site": s.site, "url": s.url, "priority": s.priority,
                 "weight": s.weight} for s in nearest_servers(self.snapshot, address)]

    def health(self) -> dict[str, Any]:
        directory = self.directory_state if self.ready else "loading"
        reason = self.directory_reason if self.ready else "loading the directory"
        doc = health_document(ready=self.ready, directory=directory, reason=reason,
                              name=self.config.name, site=self.config.site,
                              hosts=len(self.snapshot.hosts), queue=self.backlog,
                              vcenters=sorted(self.snapshot.vcenters),
                              lease=self.lease.document() if self.lease is not None else None)
        for extra in self.health_fields:  # what other parts of the service add
            doc.update({k: v for k, v in extra().items() if k not in doc})
        return doc

    def events(self, uuid: str) -> dict[str, Any]:
        """`GET /v1/hosts/{uuid}/events`: the host's last events, oldest first."""
        if uuid not in self.audit.history and uuid not in self.snapshot.hosts \
                and uuid not in self.states:
            raise NotFoundError(f"host {uuid}: unknown; it has not been born nor added")
        return {"host": uuid, "events": self.audit.history.of(uuid)}


__all__ = ["Answers"]

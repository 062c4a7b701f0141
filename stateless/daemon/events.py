"""Each host's recent history: its last N audit events, in memory (`GET /v1/hosts/{uuid}/events`).

Fed by the audit emitter (`audit`), so the history and the audit log tell the same story.
Old events fall off the front once a host has `limit` of them; hosts are kept until the
process ends (one small deque per host the daemon has seen).
"""

from __future__ import annotations

from collections import deque
from typing import Any

DEFAULT_LIMIT = 50


class HostEvents:
    """host UUID -> its last `limit` events, oldest first."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit <= 0:
            raise ValueError("a host's event history must hold at least one event")
        self.limit = limit
        self._events: dict[str, deque[dict[str, Any]]] = {}

    def add(self, host: str, event: dict[str, Any]) -> None:
        self._events.setdefault(host, deque(maxlen=self.limit)).append(event)

    def __contains__(self, host: object) -> bool:
        return host in self._events

    def of(self, host: str) -> list[dict[str, Any]]:
        """A copy of the host's events, oldest first (empty when none were recorded)."""
        return [dict(e) for e in self._events.get(host, ())]


__all__ = ["DEFAULT_LIMIT", "HostEvents"]

"""Admission of births: `--max-pending` counted exactly.

A birth takes its slot before its directory write starts, on the reactor thread, so no number
of concurrent births can slip past the limit while writes are in flight.  The slot is given
back when the write fails, or handed over to the engine's own backlog (births waiting for the
change feed, hosts queued or being applied), which the caller passes in.
"""

from __future__ import annotations

import random
from collections import Counter

import attrs


@attrs.frozen
class Admitted:
    """A slot, given back with `Admission.release` whatever becomes of the write."""

    uuid: str


class Admission:
    """Slots of births whose write is in flight."""

    def __init__(self, limit: int, rng: random.Random, seconds_per_host: float = 2.0) -> None:
        self.limit = limit
        self._rng = rng
        self._seconds_per_host = seconds_per_host
        self._writing: Counter[str] = Counter()

    @property
    def in_flight(self) -> int:
        """Distinct hosts whose birth write is in flight."""
        return len(self._writing)

    def admit(self, uuid: str, backlog: int, tracked: bool) -> Admitted | None:
        """A slot for the birth, or None when `backlog` plus the writes in flight fill the limit.

        A host already `tracked` (queued, being applied, waiting for the feed, or with a
        birth write in flight) takes no new slot: its agent only asked again.
        """
        if not tracked and uuid not in self._writing and backlog + self.in_flight >= self.limit:
            return None
        self._writing[uuid] += 1
        return Admitted(uuid)

    def release(self, ticket: Admitted) -> None:
        left = self._writing[ticket.uuid] - 1
        if left > 0:
            self._writing[ticket.uuid] = left
        else:
            del self._writing[ticket.uuid]

    def writing(self, uuid: str) -> bool:
        return uuid in self._writing

    def retry_after(self, backlog: int, concurrency: int) -> int:
        """Seconds until the backlog has room, roughly; jittered so retries spread out."""
        per_host = self._seconds_per_host / max(1, concurrency)
        total = backlog + self.in_flight
        return max(1, int(total * per_host * (0.5 + self._rng.random())))


__all__ = ["Admission", "Admitted"]

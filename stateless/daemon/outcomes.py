"""What the controller answers the HTTP API: births, re-applies, and what a birth signs.

Plain values, apart from the API that encodes them and the engine that decides them, so
either side imports them without importing the other.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Accepted:
    host: str
    site: str | None = None  # the host's site (None: in no site's subnets)
    closest: bool = True  # the answering server is in the host's site
    sites: tuple[str, ...] = ()  # the host's site, then the others by link cost


@attrs.frozen
class Referral:
    site: str
    servers: tuple[dict[str, Any], ...]
    sites: tuple[str, ...] = ()  # the host's site, then the others by link cost


@attrs.frozen
class Busy:
    retry_after: int


@attrs.frozen
class Quarantined:
    """Recorded with its identity, applied only once an admin approves it."""

    host: str
    reason: str


@attrs.frozen
class Refused:
    """Not authenticated (401) or not admitted (403); nothing was recorded."""

    status: int
    reason: str


BirthOutcome = Accepted | Referral | Busy | Quarantined | Refused


@attrs.frozen
class Signed:
    """What a birth's signature covers: its Authorization header and the exact body bytes."""

    header: str | None
    body: bytes


@attrs.frozen
class Reapplying:
    host: str


@attrs.frozen
class OwnedElsewhere:
    owner: str
    url: str | None


ReapplyOutcome = Reapplying | OwnedElsewhere

__all__ = [
    "Accepted",
    "BirthOutcome",
    "Busy",
    "OwnedElsewhere",
    "Quarantined",
    "ReapplyOutcome",
    "Reapplying",
    "Referral",
    "Refused",
    "Signed",
]

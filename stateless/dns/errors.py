"""The one error type of the discovery adapter."""

from __future__ import annotations

from stateless.errors import StatelessError


class DiscoveryError(StatelessError):
    """DNS discovery failed: a name server could not be reached or refused an update."""

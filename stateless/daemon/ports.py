"""What the engine needs from the world, as typed interfaces.

The directory and vCenter adapters satisfy these structurally; unit tests pass small fakes.
Every method here blocks: the engine calls them through a `Blocking` runner (the daemon's
thread pool), never on the reactor thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:  # annotations only: the pure modules that import this stay free of pyvmomi
    from twisted.internet import defer

    from stateless.model.birth import BirthMessage
    from stateless.model.identity import HostIdentity
    from stateless.model.inventory import Allocation, HostState, IpPool
    from stateless.model.security import PinnedIdentity
    from stateless.plan import KeyDiff
    from stateless.prepare import Target
    from stateless.vcenter.converge import Converged

T = TypeVar("T")


class HostDirectory(Protocol):
    """The host-entry writes of `stateless.directory.Directory`."""

    def record_birth(self, identity: HostIdentity, when: datetime, owner: str, *,
                     known: bool = True, thumbprint: str | None = None,
                     image: str | None = None, pin: PinnedIdentity | None = None) -> bool: ...

    def pin_identity(self, uuid: str, pinned: PinnedIdentity) -> bool: ...

    def record_quarantine(self, message: BirthMessage, when: datetime, owner: str, reason: str,
                          *, known: bool) -> None: ...

    def set_host_state(self, uuid: str, state: HostState | str, reason: str = "", *,
                       applied_digest: str | None = None) -> None: ...

    def allocate_all(self, uuid: str, wanted: Sequence[tuple[str, str]],
                     pools: Mapping[str, IpPool] | None = None) -> list[Allocation]: ...

    def claim_owner(self, uuid: str, owner: str) -> str: ...


class VCenters(Protocol):
    """The vCenters this server applies through, by name."""

    def converge(self, vcenter: str, target: Target, *, place: bool,
                 thumbprint: str | None) -> Converged: ...

    def check(self, vcenter: str, target: Target) -> list[KeyDiff] | None: ...

    def remove(self, vcenter: str, name: str, location: str | None, leaf: str) -> bool: ...


class Delayed(Protocol):
    """A call scheduled with `Clock.callLater`."""

    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The reactor's time: the real reactor in the daemon, `task.Clock` in tests."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], /, *args: Any,
                  **kwargs: Any) -> Delayed: ...


class Blocking(Protocol):
    """Runs a blocking call off the reactor thread; its result arrives as a Deferred."""

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> defer.Deferred[T]: ...


__all__ = ["Blocking", "Clock", "Delayed", "HostDirectory", "VCenters"]

"""The periodic compliance scan: compliant, drifted and failed hosts, one after the other.

Compliant and drifted hosts are compared with vCenter; a failed host is looked at again (its
inputs may have changed, or its retry timer may be overdue).  What to do about a finding is
the engine's decision (`Fleet`); a host whose check fails is logged and skipped, and the scan
goes on with the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from stateless.daemon.hoststate import HostStatus
from stateless.errors import StatelessError
from stateless.model.inventory import HostState
from stateless.plan import KeyDiff

log = Logger()


class Fleet(Protocol):
    """The engine as the scan sees it."""

    def scan_hosts(self) -> list[str]: ...

    def status(self, uuid: str) -> HostStatus | None: ...

    def check(self, uuid: str) -> defer.Deferred[list[KeyDiff] | None]: ...

    def vcenter_drift(self, uuid: str, reason: str, keys: Sequence[str] = ()) -> None: ...

    def vcenter_matches(self, uuid: str) -> None: ...

    def reconsider(self, uuid: str) -> None: ...


def describe(diffs: list[KeyDiff] | None) -> str:
    if diffs is None:
        return "not in vCenter"
    return "differs in vCenter: " + ", ".join(d.key for d in diffs[:5])


class ComplianceScan:
    """One pass over the fleet per `run()`."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        self.checked = 0  # hosts compared with vCenter, over all runs
        self.errors = 0  # hosts whose check failed, over all runs

    @defer.inlineCallbacks
    def run(self) -> Any:
        for uuid in self._fleet.scan_hosts():
            try:
                yield self._one(uuid)
            except Exception as exc:  # one host's trouble must not end the scan
                self.errors += 1
                if isinstance(exc, StatelessError):
                    log.warn("compliance scan of {uuid}: {reason}", uuid=uuid, reason=str(exc))
                else:
                    log.failure("compliance scan of {uuid}", uuid=uuid)

    @defer.inlineCallbacks
    def _one(self, uuid: str) -> Any:
        status = self._fleet.status(uuid)
        if status is None:
            return
        if status.state == HostState.FAILED:
            self._fleet.reconsider(uuid)
            return
        if status.state not in (HostState.COMPLIANT, HostState.DRIFTED):
            return
        diffs = yield self._fleet.check(uuid)
        self.checked += 1
        if diffs is None or diffs:
            self._fleet.vcenter_drift(uuid, describe(diffs), [d.key for d in diffs or ()])
        else:
            self._fleet.vcenter_matches(uuid)


__all__ = ["ComplianceScan", "Fleet", "describe"]

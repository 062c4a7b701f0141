"""The JSON documents of the HTTP API, built from what the engine knows.

Pure: the engine passes records and statuses in, a dict comes out; what a field means is
documented in docs/daemon.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stateless.daemon.hoststate import HostStatus
from stateless.model.inventory import HostRecord


def iso(seconds: float | None) -> str | None:
    """Clock seconds as ISO-8601 UTC, or None."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


def host_document(uuid: str, host: HostRecord | None, status: HostStatus | None,
                  location: str | None) -> dict[str, Any]:
    """`GET /v1/hosts/{uuid}`: the daemon's status of the host, else what the directory says."""
    state = status.state if status else (host.state if host else None)
    reason = status.reason if status else (host.reason if host else "")
    doc: dict[str, Any] = {
        "host": uuid, "state": str(state) if state else None, "reason": reason,
        "location": location,
        "owner": host.owner if host else None,
        "applied_digest": host.applied_digest if host else "",
        "next_try": iso(status.next_try) if status else None,
        "attempts": status.attempts if status else 0,
    }
    if status is not None:
        if status.applied is not None:
            doc["applied_digest"] = status.applied  # the directory may not show it yet
        doc.update(plan_changes=status.plan, vcenter_calls=status.calls, since=iso(status.since))
    return doc


def health_document(*, ready: bool, directory: str, reason: str, name: str, site: str,
                    hosts: int, queue: int, vcenters: list[str],
                    lease: dict[str, Any] | None = None) -> dict[str, Any]:
    """`GET /healthz`: ok only when serving from a synchronized directory, holding a lease."""
    ok = ready and directory == "synchronized"
    if ok and lease is not None and lease["fenced"]:
        ok, reason = False, lease["reason"]
    doc = {"ok": ok, "name": name, "site": site, "directory": directory,
           "reason": "" if ok else reason, "hosts": hosts, "queue": queue,
           "vcenters": vcenters}
    if lease is not None:
        doc["lease"] = lease
    return doc


__all__ = ["health_document", "host_document", "iso"]

"""Decommissioning a host this server owns: out of vCenter, addresses freed, entry deleted.

Blocking (vCenter and directory calls): the engine runs it in its thread pool after it stopped
tracking the host, so no apply of the host races it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stateless.directory import admin
from stateless.model.inventory import ContainerKind, Snapshot
from stateless.policy import resolve
from stateless.prepare import vcenter_name

if TYPE_CHECKING:
    from stateless.daemon.ports import VCenters
    from stateless.directory.client import Directory


def decommission(directory: Directory, vcenters: VCenters, snapshot: Snapshot, uuid: str,
                 vcenter: str, *, keep_entry: bool, host_domain: str = "") -> dict[str, Any]:
    """Remove the host from `vcenter`, free its pool addresses, delete (or retire) its entry."""
    host = snapshot.hosts[uuid]
    effective = resolve(snapshot, uuid)
    name = vcenter_name(host, effective, host_domain)
    container = snapshot.containers.get(effective.location or "")
    leaf = "cluster" if container is not None and container.kind == ContainerKind.CLUSTER \
        else "folder"
    removed = vcenters.remove(vcenter, name, container.path if container else None, leaf)
    freed = admin.free_addresses(directory, host)
    if keep_entry:
        admin.retire(directory, uuid)
    else:
        directory.delete_host(uuid)
    return {"host": uuid, "name": name, "vcenter": vcenter, "removed_from_vcenter": removed,
            "freed": freed, "entry_deleted": not keep_entry}


__all__ = ["decommission"]

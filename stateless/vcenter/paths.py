"""Where vSphere keeps each kind of item: the one table the read, the verify, compliance and
the push-drift watch all narrow their reads with.

A host's read asks only for the HostSystem properties that hold the item kinds its desired
configuration names (`stateless.plan.managed_kinds`), so a policy without NIC-type tagging
never decodes `config.virtualNicManagerInfo` (a full VMkernel NIC per candidate and NIC
type), and one without NFS or iSCSI never decodes the storage inventory.  `config.network`
is read in its parts, never whole: physical NICs, routes and proxy switches are not managed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stateless.model.config import HostConfig
from stateless.model.inventory import frozen_map
from stateless.plan import managed_kinds

# The parts of config.network the items live in, as `config.network.<part>` paths.
NETWORK_PARTS = ("vswitch", "portgroup", "vnic", "dnsConfig")

# Item kind (the kinds of `stateless.plan`) -> the HostSystem property paths that hold it.
# SNMP lives on the host's SNMP agent, not on the HostSystem, and lockdown exceptions are
# asked of the access manager: the client reads those when the kind is managed.
KIND_PATHS: Mapping[str, tuple[str, ...]] = frozen_map({
    "vswitch": ("config.network.vswitch",),
    "portgroup": ("config.network.portgroup",),
    "vmknic": ("config.network.vnic",),
    "nictype": ("config.network.vnic", "config.virtualNicManagerInfo"),
    "dns": ("config.network.dnsConfig",),
    "ntp": ("config.dateTimeInfo",),
    "service": ("config.service",),
    "advanced": ("config.option",),
    "nfs": ("config.fileSystemVolume",),
    "iscsi": ("config.storageDevice",),
    "lockdown": ("config.lockdownMode",),
    "snmp": (),
    "account": ("customValue",),  # the stamp of the root password applied (vcenter.account)
})

# Where the host sits (its cluster, or a standalone host's compute resource): read and watched
# with every host, whatever it manages, so a host moved in vCenter is seen (`placement`).
PLACEMENT_PATHS = ("parent",)

# Every path, in a stable order: what a read of "everything" (desired unknown) asks for.
ALL_PATHS: tuple[str, ...] = tuple(dict.fromkeys(
    [*PLACEMENT_PATHS, *(p for ps in KIND_PATHS.values() for p in ps)]))


def paths_of_kinds(kinds: Iterable[str]) -> frozenset[str]:
    """The property paths that hold items of these kinds, and where the host sits."""
    return frozenset([*PLACEMENT_PATHS, *(p for kind in kinds for p in KIND_PATHS[kind])])


def paths_for(desired: HostConfig | None) -> frozenset[str]:
    """The properties that hold what `desired` manages (every one when None)."""
    if desired is None:
        return frozenset(ALL_PATHS)
    return paths_of_kinds(managed_kinds(desired))


def covered_kinds(paths: Iterable[str]) -> frozenset[str]:
    """The item kinds whose properties are all among `paths` (lockdown never: its exceptions
    are not a HostSystem property; SNMP neither: it has none)."""
    have = set(paths)
    return frozenset(kind for kind, needed in KIND_PATHS.items()
                     if needed and kind != "lockdown" and have.issuperset(needed))


def ordered(paths: Iterable[str]) -> tuple[str, ...]:
    """`paths` in the order of ALL_PATHS (stable filters and requests)."""
    wanted = set(paths)
    return tuple(p for p in ALL_PATHS if p in wanted)


__all__ = ["ALL_PATHS", "KIND_PATHS", "NETWORK_PARTS", "PLACEMENT_PATHS", "covered_kinds", "ordered",
           "paths_for", "paths_of_kinds"]

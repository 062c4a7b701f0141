"""Where a host sits in vCenter, as the directory writes it: `/DC/cluster`, `/DC/folder/sub`.

A host's `parent` (read with its configuration, no call of its own) is its cluster, or the
compute resource vCenter makes for a standalone host.  The inventory path of that parent is
read with one RetrievePropertiesEx over the chain of parents (`name`, `parent`) and kept per
managed object id: parents are few and rarely renamed, so a host's location usually costs no
call at all.  A kept path that disagrees with the one expected is read once more before it is
believed (the cluster may have been renamed or moved since), so a report of a misplaced host
never rests on a stale path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from pyVmomi import vim

from stateless.vcenter.faults import Where
from stateless.vcenter.session import PC, Session

# vCenter escapes these in names (`%2f` for "/"): the directory holds the plain names.
_ESCAPES = (("%2f", "/"), ("%2F", "/"), ("%5c", "\\"), ("%5C", "\\"), ("%25", "%"))


@attrs.frozen
class Entity:
    """One inventory object of a parent chain."""

    moid: str
    kind: str  # the vim type's name: Folder, Datacenter, ClusterComputeResource, ...
    name: str
    parent: str | None  # the parent's moid; None at the root folder


def unescape(name: str) -> str:
    for escaped, plain in _ESCAPES:
        name = name.replace(escaped, plain)
    return name


def location_of(start: str, chain: Mapping[str, Entity]) -> str | None:
    """The directory's location of the inventory object `start` (a host's parent), or None
    when its chain does not reach a datacenter.

    A cluster is its own location; a standalone host's compute resource sits in its host
    folder, whose path is the location; the datacenter's `host` folder is not in the path.
    """
    names: list[str] = []
    current = chain.get(start)
    while current is not None:
        parent = chain.get(current.parent) if current.parent else None
        if current.kind == "Datacenter":
            return "/" + "/".join([unescape(current.name), *reversed(names)])
        skip = (current.kind == "ComputeResource"  # a standalone host's own container
                or (current.kind == "Folder" and parent is not None
                    and parent.kind == "Datacenter"))  # the datacenter's host folder
        if not skip:
            names.append(unescape(current.name))
        current = parent
    return None


Reader = Callable[[Any], Mapping[str, Entity]]  # a parent object -> its chain, by moid


class Locations:
    """Inventory paths of hosts' parents, by moid: read once, then trusted until a mismatch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, str] = {}

    def get(self, moid: str) -> str | None:
        with self._lock:
            return self._paths.get(moid)

    def put(self, moid: str, path: str) -> None:
        with self._lock:
            self._paths[moid] = path

    def locate(self, parent: Any, read: Reader, expected: str | None = None) -> str | None:
        """Where a host whose parent is `parent` sits; None when vCenter does not say.

        A kept path is used as it is when it is the `expected` one (or nothing is expected);
        otherwise the chain is read (once) and kept.
        """
        if parent is None:
            return None
        moid = parent._moId
        known = self.get(moid)
        if known is not None and (expected is None or known == expected):
            return known
        path = location_of(moid, read(parent))
        with self._lock:
            if path is None:
                self._paths.pop(moid, None)
            else:
                self._paths[moid] = path
        return path


def read_chain(session: Session, where: Where, obj: Any) -> dict[str, Entity]:
    """`obj` and every parent up to the root folder, in one RetrievePropertiesEx."""
    up = PC.TraversalSpec(name="up", type=vim.ManagedEntity, path="parent", skip=False,
                          selectSet=[PC.SelectionSpec(name="up")])
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=obj, skip=False, selectSet=[up])],
                         propSet=[PC.PropertySpec(type=vim.ManagedEntity,
                                                  pathSet=["name", "parent"])])
    chain: dict[str, Entity] = {}
    for content in session.retrieve(where, "read location", [spec]):
        values = {p.name: p.val for p in content.propSet or ()}
        parent = values.get("parent")
        chain[content.obj._moId] = Entity(
            content.obj._moId, type(content.obj).__name__.rsplit(".", 1)[-1],
            str(values.get("name", "")), parent._moId if parent is not None else None)
    return chain


__all__ = ["Entity", "Locations", "location_of", "read_chain", "unescape"]

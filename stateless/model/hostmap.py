"""A persistent map for the snapshot's hosts.

A directory of tens of thousands of hosts changes one host at a time; copying a dict of all of
them for each change costs in proportion to the directory. `HostMap` wraps a HAMT
(`immutables.Map`): `set` and `delete` return a new map sharing all but a few nodes with the
old one, in O(log n). It is a read-only `Mapping` (its `keys()` takes part in set operations as
a dict's does) and compares equal to any mapping with the same items.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import immutables

K = TypeVar("K")
V = TypeVar("V")


class HostMap(Mapping[K, V], Generic[K, V]):
    """An immutable mapping with cheap derived copies (structural sharing)."""

    __slots__ = ("_map",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] | None = None) -> None:
        if isinstance(items, HostMap):
            self._map: immutables.Map[K, V] = items._map
        elif isinstance(items, immutables.Map):
            self._map = items
        else:
            self._map = immutables.Map(items or ())

    def __getitem__(self, key: K) -> V:
        return self._map[key]

    def get(self, key: K, default: Any = None) -> Any:
        return self._map.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __iter__(self) -> Iterator[K]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HostMap):
            return self._map == other._map
        if isinstance(other, Mapping):
            return len(self) == len(other) and all(
                key in other and other[key] == value for key, value in self._map.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._map)

    def __repr__(self) -> str:
        return f"HostMap({dict(self._map.items())!r})"

    def set(self, key: K, value: V) -> HostMap[K, V]:
        return HostMap(self._map.set(key, value))

    def delete(self, key: K) -> HostMap[K, V]:
        return HostMap(self._map.delete(key))

    def updated(self, changes: Mapping[K, V | None]) -> HostMap[K, V]:
        """A new map with `changes` applied: a value of None deletes the key."""
        m = self._map.mutate()
        for key, value in changes.items():
            if value is None:
                m.pop(key, None)
            else:
                m[key] = value
        return HostMap(m.finish())


def host_map(value: Mapping[Any, Any] | None) -> HostMap[Any, Any]:
    """The converter of `Snapshot.hosts`: a HostMap kept as is, anything else copied once."""
    return value if isinstance(value, HostMap) else HostMap(value)

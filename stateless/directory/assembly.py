"""The model snapshot kept up to date entry by entry (pure: works on mirror entries).

A full build reads every entry, and with tens of thousands of hosts that costs seconds; the
change feed brings one entry at a time. So the entries are split in two:

- a host's *group*: the host entry directly below ou=hosts and the policy links below it. A
  host record depends on nothing else, so a change in a group re-reads that group only, and
  the hosts live in a persistent map (`HostMap`) that shares every other record with the last
  snapshot;
- the *rest* (policies, containers and their links, rules, sites, pools, servers, vCenters,
  images, anything misplaced): few entries, rebuilt together with `build_snapshot` whenever
  one of them changes, so every rule about them (links, blocks, problems, what blocks whom)
  stays in one place.

The result equals `mapping.build_snapshot` of the same entries, problems included (a property
test checks random sequences of changes), and `apply` names the hosts whose record changed,
which is all the resolver needs to look at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stateless.directory.mapping import (
    RDN,
    UNMODELLED,
    Attrs,
    blame,
    build_snapshot,
    canonical_attrs,
    dn_key,
    host_from,
    relative,
)
from stateless.directory.mirror import entry_order
from stateless.errors import StatelessError
from stateless.model.hostmap import HostMap
from stateless.model.inventory import HostRecord, Problem, Snapshot

if TYPE_CHECKING:
    from stateless.directory.mirror import MirrorEntry

REST = ""  # the location of an entry outside every host's group
_NOT_PLAIN = frozenset({"statelesspolicylink", "statelesspolicy"})


def _modelled(attributes: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in attributes.items() if k not in UNMODELLED}


def _classes(attributes: Mapping[str, Iterable[bytes | str]],
             seen: dict[tuple[bytes | str, ...], frozenset[str]] | None = None) -> frozenset[str]:
    """An entry's object classes, lower-case; `seen` remembers those of the value tuples
    already read (the mirror shares one tuple among the hosts with the same classes)."""
    for name, values in attributes.items():
        if name.lower() == "objectclass":
            given = tuple(values)
            found = seen.get(given) if seen is not None else None
            if found is None:
                found = frozenset((v.decode("utf-8", "replace") if isinstance(v, bytes) else v).lower()
                                  for v in given)
                if seen is not None:
                    seen[given] = found
            return found
    return frozenset()


class _Group:
    """A host entry and the links below it: the inputs of one host record."""

    __slots__ = ("host", "links", "problems", "record")

    def __init__(self) -> None:
        self.host: str | None = None  # entryUUID of the host entry
        self.links: frozenset[str] = frozenset()  # entryUUIDs of the links below it
        self.record: HostRecord | None = None
        self.problems: tuple[Problem, ...] = ()


class Assembly:
    """One base's snapshot and what it was assembled from; not thread-safe (the mirror
    serializes its calls)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._base = dn_key(base)
        self._where: dict[str, str] = {}  # entryUUID -> REST or its group's key
        self._rest: dict[str, tuple[tuple[int, str], str, Attrs]] = {}
        self._groups: dict[str, _Group] = {}
        # host uuid -> key of the group whose record has it (a list when several claim it)
        self._claims: dict[str, str | list[str]] = {}
        self._group_problems: dict[str, tuple[Problem, ...]] = {}
        self._hosts: HostMap[str, HostRecord] = HostMap()
        self._others = Snapshot()  # the rest's snapshot
        self._class_sets: dict[tuple[bytes | str, ...], frozenset[str]] = {}
        self.snapshot = Snapshot()

    # --- the two entry points ------------------------------------------------------------

    def build(self, entries: Mapping[str, MirrorEntry]) -> Snapshot:
        """The snapshot of `entries` (entryUUID -> entry), from nothing."""
        self.apply(entries, {}, entries.keys())
        return self.snapshot

    def apply(self, entries: Mapping[str, MirrorEntry], before: Mapping[str, MirrorEntry],
              touched: Iterable[str]) -> frozenset[str]:
        """Bring the snapshot to `entries` after the entries `touched` (by entryUUID) were
        added, modified or deleted since `before`; the uuids of hosts whose record changed."""
        dirty: set[str] = set()
        rest = False
        for eid in touched:
            entry, old = entries.get(eid), before.get(eid)
            if entry is not None and old is not None and entry.dn == old.dn and (
                    entry.attributes == old.attributes
                    or _modelled(entry.attributes) == _modelled(old.attributes)):
                continue  # e.g. only a pool's statelessAllocated, the lock of each allocation
            where = self._where.pop(eid, None)
            if where == REST:
                del self._rest[eid]
                rest = True
            elif where is not None:
                self._detach(where, eid)
                dirty.add(where)
            if entry is None:
                continue
            where, link = self._locate(entry)
            self._where[eid] = where
            if where == REST:
                self._rest[eid] = (entry_order(entry.dn), entry.dn, canonical_attrs(entry.attributes))
                rest = True
            else:
                self._attach(where, eid, link)
                dirty.add(where)
        if rest:
            self._others = _reuse(self._others, build_snapshot(
                self.base, ((dn, a) for _, dn, a in sorted(self._rest.values(), key=lambda r: r[0]))))
        changed = self._regroup(entries, dirty)
        if rest or dirty:
            problems = list(self._others.problems)
            for group_problems in self._group_problems.values():
                problems.extend(group_problems)
            self.snapshot = attrs.evolve(self._others, hosts=self._hosts, problems=problems)
        return changed

    # --- where an entry belongs ----------------------------------------------------------

    def _locate(self, entry: MirrorEntry) -> tuple[str, bool]:
        """(REST or the key of the host group the entry belongs to, whether it is a link)."""
        rel = relative(entry.dn, self._base)
        if rel is None or len(rel) < 2 or len(rel) > 3 or (rel[-1][0], rel[-1][1].lower()) != ("ou", "hosts"):
            return REST, False
        classes = _classes(entry.attributes, self._class_sets)
        if len(rel) == 2:  # a policy or a link here is read as one (or refused): not a host
            return (REST, False) if classes & _NOT_PLAIN else (_key(rel[0]), False)
        if "statelesspolicylink" not in classes:
            return REST, False  # nested below a host and not a link: a problem of its own
        return _key(rel[1]), True

    def _attach(self, key: str, eid: str, link: bool) -> None:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        if link:
            group.links = group.links | {eid}
        else:
            group.host = eid

    def _detach(self, key: str, eid: str) -> None:
        group = self._groups[key]
        if group.host == eid:
            group.host = None
        else:
            group.links = group.links - {eid}

    # --- host records --------------------------------------------------------------------

    def _regroup(self, entries: Mapping[str, MirrorEntry], dirty: Iterable[str]) -> frozenset[str]:
        """Re-read the dirty groups; settle which record each affected uuid maps to."""
        uuids: set[str] = set()
        for key in dirty:
            group = self._groups[key]
            if group.record is not None:
                uuids.add(group.record.uuid)
                self._release(group.record.uuid, key)
            record, problems = self._read(entries, group)
            group.record, group.problems = record, problems
            if problems:
                self._group_problems[key] = problems
            else:
                self._group_problems.pop(key, None)
            if record is not None:
                uuids.add(record.uuid)
                self._claim(record.uuid, key)
            if group.host is None and not group.links:
                del self._groups[key]
        changes: dict[str, HostRecord | None] = {}
        for uuid in uuids:
            keys = self._claims.get(uuid)
            if isinstance(keys, list):
                keys = max(keys, key=lambda k: _order(entries, self._groups[k]))
            winner = self._groups[keys].record if keys is not None else None
            if winner is not self._hosts.get(uuid):
                changes[uuid] = winner
        if changes:
            self._hosts = self._hosts.updated(changes)
        return frozenset(changes)

    def _claim(self, uuid: str, key: str) -> None:
        keys = self._claims.setdefault(uuid, key)
        if keys is key:
            return
        if isinstance(keys, list):
            keys.append(key)
        else:
            self._claims[uuid] = [keys, key]

    def _release(self, uuid: str, key: str) -> None:
        keys = self._claims[uuid]
        if not isinstance(keys, list):
            del self._claims[uuid]
            return
        keys.remove(key)
        if len(keys) == 1:
            self._claims[uuid] = keys[0]

    def _read(self, entries: Mapping[str, MirrorEntry],
              group: _Group) -> tuple[HostRecord | None, tuple[Problem, ...]]:
        """The record of a group and the problems it adds to the snapshot, as a full build
        would make them."""
        host = entries[group.host] if group.host is not None else None
        if host is not None and not group.links:
            classes = _classes(host.attributes, self._class_sets)
            if "statelesshost" in classes and not classes & _NOT_PLAIN:  # the common case
                values = canonical_attrs(host.attributes)
                try:
                    return host_from(host.dn, values, ()), ()
                except StatelessError as exc:
                    return None, (Problem(host.dn, *blame(exc, values), str(exc)),)
        members = [entries[eid] for eid in group.links]
        if host is not None:
            members.append(host)
        members.sort(key=lambda e: entry_order(e.dn))
        built = build_snapshot(self.base, ((e.dn, canonical_attrs(e.attributes)) for e in members))
        record = next(iter(built.hosts.values()), None)
        return record, built.problems


def _order(entries: Mapping[str, MirrorEntry], group: _Group) -> str:
    """Among host entries claiming one uuid the last read wins, as in a full build (the
    order is worked out when there are twins, not kept for every host)."""
    return entry_order(entries[group.host].dn)[1] if group.host is not None else ""


_SHARED = ("containers", "policies", "pools", "sites", "images", "vcenters", "servers")


def _reuse(old: Snapshot, new: Snapshot) -> Snapshot:
    """`new` with every value equal to one of `old` replaced by that very object, so that
    the resolver (which compares identity first) skips what did not change."""
    kept: dict[str, Any] = {}
    for name in _SHARED:
        before, after = getattr(old, name), getattr(new, name)
        kept[name] = {key: before[key] if before.get(key) == value else value
                      for key, value in after.items()}
    return attrs.evolve(new, **kept)


def _key(rdn: RDN) -> str:
    """A host group's key: the host entry's RDN, compared as the directory compares it."""
    return f"{rdn[0]}={rdn[1].lower()}"


__all__ = ["Assembly"]

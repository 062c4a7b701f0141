"""The in-memory mirror of `ou=stateless`, fed by the change feed.

The daemon resolves hosts from this mirror rather than searching the directory each time;
every batch of changes names the DNs it touched so that only the hosts depending on them are
re-resolved. Its methods have the callback signatures of `SyncConsumer`:

    mirror = Mirror(on_batch=...)
    SyncConsumer(urls, base, mirror.on_change, mirror.on_refresh_done,
                 on_refresh_start=mirror.on_refresh_start, ...)
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stateless.model.hostmap import HostMap

if TYPE_CHECKING:
    from stateless.directory.assembly import Assembly
    from stateless.model.inventory import Snapshot

Values = tuple[bytes | str, ...]
# Attributes (lower-case) whose values repeat across many entries: stored once per value.
SHARED_VALUES = frozenset({
    "objectclass", "statelessstate", "statelesslocation", "statelessowner", "statelessvendor",
    "statelessmodel", "statelessdomain", "statelessstatereason", "statelesslinkpolicy",
    "statelessorder", "statelessenforced", "statelessdisabled"})


def dn_norm(dn: str) -> str:
    """A comparison key for DNs as the server sends them (case and blanks around separators)."""
    return ",".join(part.strip() for part in dn.lower().split(","))


_RDN_SEP = re.compile(r"(?<!\\),")


def _depth(dn: str) -> int:
    return len(_RDN_SEP.split(dn))


def entry_order(dn: str) -> tuple[int, str]:
    """The order `build_snapshot` reads entries in: parents first, then by normalized DN."""
    return (_depth(dn), dn_norm(dn))


def _ordered(entries: Iterable[MirrorEntry]) -> list[MirrorEntry]:
    """Parents before children, as `build_snapshot` expects them."""
    return sorted(entries, key=lambda e: entry_order(e.dn))


class Attributes(Mapping[str, Values]):
    """An entry's attributes in little memory: its names as a tuple (shared by the entries
    with the same names), a single value unwrapped from its tuple."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: tuple[str, ...], values: tuple[bytes | str | Values, ...]) -> None:
        self._names = names
        self._values = values

    def __getitem__(self, name: str) -> Values:
        try:
            value = self._values[self._names.index(name)]
        except ValueError:
            raise KeyError(name) from None
        return value if isinstance(value, tuple) else (value,)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def items(self) -> list[tuple[str, Values]]:  # type: ignore[override]
        """Pairs without looking each name up again (read for every entry at a start)."""
        return [(name, value if isinstance(value, tuple) else (value,))
                for name, value in zip(self._names, self._values, strict=True)]

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Attributes):
            return self._names == other._names and self._values == other._values
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Attributes({dict(self.items())!r})"


@attrs.frozen
class MirrorEntry:
    """One directory entry as last seen."""

    entry_uuid: str
    dn: str
    attributes: Mapping[str, Values]

    def text(self) -> dict[str, list[str]]:
        """Values as text (directory strings are UTF-8)."""
        return {
            name: [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
            for name, values in self.attributes.items()
        }


@attrs.frozen
class ChangeBatch:
    """DNs changed since the previous batch; `refresh` marks a batch that ends a refresh,
    after which the mirror is complete and consistent with one server."""

    generation: int
    added: frozenset[str] = frozenset()
    modified: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()
    refresh: bool = False

    @property
    def changed(self) -> frozenset[str]:
        return self.added | self.modified | self.deleted

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.deleted or self.refresh)


@attrs.frozen
class MirrorView:
    """An immutable picture of the mirror at one generation."""

    generation: int
    refreshed: bool
    entries: Mapping[str, MirrorEntry]

    def by_dn(self) -> dict[str, MirrorEntry]:
        """Entries keyed by `dn_norm(dn)`."""
        return {dn_norm(e.dn): e for e in self.entries.values()}

    def pairs(self) -> list[tuple[str, dict[str, list[str]]]]:
        """(dn, {attribute: [text]}) of every entry, parents before children."""
        return [(e.dn, e.text()) for e in _ordered(self.entries.values())]

    def snapshot(self, base: str) -> Snapshot:
        """The model `Snapshot` of the subtree at `base` (bad entries become problems)."""
        from stateless.directory.mapping import build_snapshot, canonical_attrs

        return build_snapshot(base, ((e.dn, canonical_attrs(e.attributes))
                                     for e in _ordered(self.entries.values())))


@attrs.frozen
class _Built:
    """The last snapshot built, and the assembly that keeps it up to date."""

    base: str
    view: MirrorView
    assembly: Assembly

    @property
    def snapshot(self) -> Snapshot:
        return self.assembly.snapshot


@attrs.frozen
class Update:
    """A snapshot and the hosts whose record changed since `before` (None: unknown, after
    a full build), which is all the resolver has to look at."""

    before: Snapshot | None
    snapshot: Snapshot
    hosts: frozenset[str] | None


class Mirror:
    """The latest entries by entryUUID, updated from the consumer's thread, read from any.

    Changes accumulate into a batch: during a refresh until it ends, afterwards one batch per
    change. With `on_batch` each batch is handed over (in the consumer's thread) as it closes;
    otherwise `take_changes()` collects whatever accumulated.

    Besides the batches, the mirror notes which entries were added, modified or deleted since
    the last `update()`, so that the next snapshot is the last one with just those entries
    applied (`assembly.Assembly`): rebuilding every entry for each change costs in proportion
    to the directory, seconds with tens of thousands of hosts.
    """

    def __init__(self, on_batch: Callable[[ChangeBatch], None] | None = None) -> None:
        self._on_batch = on_batch
        self._lock = threading.Lock()
        # A persistent map: a view of it costs nothing to take and stays as it was.
        self._entries: HostMap[str, MirrorEntry] = HostMap()
        self._generation = 0
        self._refreshing = True
        self._refreshed = False
        self._added: set[str] = set()
        self._modified: set[str] = set()
        self._deleted: set[str] = set()
        self._pending_refresh = False
        self._view: MirrorView | None = None
        # Since `_built`: entries (by entryUUID) added, modified or deleted; whether to build anew.
        self._touched: set[str] = set()
        self._full = True
        self._shared: dict[bytes | str, bytes | str] = {}  # see `_compact`
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._shared_tuples: dict[Values, Values] = {}
        self._build_lock = threading.Lock()  # one snapshot() at a time; taken before `_lock`
        self._built: _Built | None = None

    # --- feed side ---------------------------------------------------------------------------

    def on_refresh_start(self) -> None:
        """A (re)connection began a refresh: hold changes until it ends."""
        with self._lock:
            self._refreshing = True

    def on_change(self, kind: str, entry_uuid: str, dn: str, attributes: Mapping[str, Any]) -> None:
        batch = None
        with self._lock:
            if kind == "present":
                return
            old = self._entries.get(entry_uuid)
            if kind == "delete":
                if old is None:
                    return
                self._entries = self._entries.delete(entry_uuid)
                self._mark(self._deleted, old.dn)
                self._touch(entry_uuid)
            else:
                self._entries = self._entries.set(
                    entry_uuid, MirrorEntry(entry_uuid, dn, self._compact(attributes)))
                if old is None:
                    self._mark(self._added, dn)
                    self._touch(entry_uuid)
                elif dn_norm(old.dn) != dn_norm(dn):
                    self._mark(self._deleted, old.dn)
                    self._mark(self._added, dn)
                    self._touch(entry_uuid)
                    self._move_children(old.dn, dn)
                else:
                    self._mark(self._modified, dn)
                    self._touch(entry_uuid)
            self._generation += 1
            self._view = None
            if not self._refreshing:
                batch = self._maybe_close(refresh=False)
        self._deliver(batch)

    def on_refresh_done(self) -> None:
        with self._lock:
            self._refreshing = False
            self._refreshed = True
            self._generation += 1
            self._view = None
            batch = self._maybe_close(refresh=True)
        self._deliver(batch)

    def load(self, entries: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Fill from (entryUUID, dn, attributes) triples, as after a plain search."""
        for entry_uuid, dn, attributes in entries:
            self.on_change("add", entry_uuid, dn, attributes)
        self.on_refresh_done()

    # --- reader side -------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    def view(self) -> MirrorView:
        with self._lock:
            return self._current_view()

    def snapshot(self, base: str) -> Snapshot:
        """The model snapshot of the subtree at `base` (see `update`)."""
        return self.update(base).snapshot

    def update(self, base: str) -> Update:
        """The model snapshot, brought up to date with what changed since the last call.

        Each entry added, modified or deleted since is applied to the last snapshot
        (`assembly.Assembly`): the result equals a full build and shares every host not
        changed with the last one, at a cost in proportion to the change (a renamed entry
        touches its whole subtree). A full build happens first, for another base than last
        time, after a failed build, and when most entries changed at once. Calls from several
        threads take turns.
        """
        from stateless.directory.assembly import Assembly

        with self._build_lock:
            built = self._built
            with self._lock:  # the view and what changed since `built`, together
                view = self._current_view()
                if built is not None and built.base == base and built.view.generation == view.generation:
                    return Update(built.snapshot, built.snapshot, frozenset())
                touched, full = self._touched, self._full
                self._touched, self._full = set(), False
            self._built = None  # until the new one stands: a failed build leaves a full one next
            if built is None or built.base != base or full or 2 * len(touched) > len(view.entries):
                assembly = Assembly(base)
                assembly.build(view.entries)
                self._built = _Built(base, view, assembly)
                return Update(None, assembly.snapshot, None)
            before = built.snapshot
            hosts = built.assembly.apply(view.entries, built.view.entries, touched)
            self._built = _Built(base, view, built.assembly)
            return Update(before, built.assembly.snapshot, hosts)

    def take_changes(self) -> ChangeBatch:
        """Everything changed since the previous take (when no `on_batch` is set)."""
        with self._lock:
            refresh, self._pending_refresh = self._pending_refresh, False
            return self._close_batch(refresh)

    # --- internals ---------------------------------------------------------------------------

    def _current_view(self) -> MirrorView:
        if self._view is None:
            self._view = MirrorView(self._generation, self._refreshed, self._entries)
        return self._view

    def _compact(self, attributes: Mapping[str, Iterable[bytes | str]]) -> Attributes:
        """An entry's attributes as `Attributes`: the tuple of names shared by every entry
        with the same names, and the values that repeat across entries (`SHARED_VALUES`)
        stored once. With tens of thousands of hosts, every copy counts."""
        names = tuple(sys.intern(name) for name in attributes)
        names = self._shapes.setdefault(names, names)
        shared = self._shared
        values: list[bytes | str | Values] = []
        for name, given in attributes.items():
            one = tuple(given)
            if name.lower() in SHARED_VALUES:
                one = tuple(shared.setdefault(v, v) for v in one)
                if len(one) > 1:  # the same classes on every host: one tuple for all
                    one = self._shared_tuples.setdefault(one, one)
            values.append(one[0] if len(one) == 1 else one)
        return Attributes(names, tuple(values))

    def _touch(self, entry_uuid: str) -> None:
        if not self._full:
            self._touched.add(entry_uuid)

    def _mark(self, bucket: set[str], dn: str) -> None:
        # A DN that was added and changed again in the same batch stays "added"; one deleted
        # and added back is "modified".
        if bucket is self._modified and dn in self._added:
            return
        if bucket is self._added and dn in self._deleted:
            self._deleted.discard(dn)
            bucket = self._modified
        if bucket is self._deleted:
            if dn in self._added:
                self._added.discard(dn)
                return
            self._modified.discard(dn)
        bucket.add(dn)

    def _move_children(self, old_dn: str, new_dn: str) -> None:
        """A renamed container moves its subtree; the feed sends only the container."""
        suffix = "," + dn_norm(old_dn)
        depth = len(_RDN_SEP.split(old_dn))
        for entry_uuid, entry in list(self._entries.items()):
            if dn_norm(entry.dn).endswith(suffix):
                head = _RDN_SEP.split(entry.dn)[:-depth]
                moved = ",".join([*head, new_dn])
                self._entries = self._entries.set(entry_uuid, attrs.evolve(entry, dn=moved))
                self._touch(entry_uuid)
                self._mark(self._deleted, entry.dn)
                self._mark(self._added, moved)

    def _maybe_close(self, refresh: bool) -> ChangeBatch | None:
        if self._on_batch is None:
            self._pending_refresh |= refresh
            return None
        return self._close_batch(refresh)

    def _close_batch(self, refresh: bool) -> ChangeBatch:
        batch = ChangeBatch(self._generation, frozenset(self._added), frozenset(self._modified),
                            frozenset(self._deleted), refresh)
        self._added.clear()
        self._modified.clear()
        self._deleted.clear()
        return batch

    def _deliver(self, batch: ChangeBatch | None) -> None:
        if batch is not None and batch and self._on_batch is not None:
            self._on_batch(batch)

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
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from stateless.model.inventory import Snapshot

Values = tuple[bytes | str, ...]


def dn_norm(dn: str) -> str:
    """A comparison key for DNs as the server sends them (case and blanks around separators)."""
    return ",".join(part.strip() for part in dn.lower().split(","))


_RDN_SEP = re.compile(r"(?<!\\),")


def _depth(dn: str) -> int:
    return len(_RDN_SEP.split(dn))


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
        ordered = sorted(self.entries.values(), key=lambda e: (_depth(e.dn), dn_norm(e.dn)))
        return [(e.dn, e.text()) for e in ordered]

    def snapshot(self, base: str) -> Snapshot:
        """The model `Snapshot` of the subtree at `base` (bad entries become problems)."""
        from stateless.directory.mapping import build_snapshot, canonical_attrs

        ordered = sorted(self.entries.values(), key=lambda e: (_depth(e.dn), dn_norm(e.dn)))
        return build_snapshot(base, ((e.dn, canonical_attrs(e.attributes)) for e in ordered))


class Mirror:
    """The latest entries by entryUUID, updated from the consumer's thread, read from any.

    Changes accumulate into a batch: during a refresh until it ends, afterwards one batch per
    change. With `on_batch` each batch is handed over (in the consumer's thread) as it closes;
    otherwise `take_changes()` collects whatever accumulated.
    """

    def __init__(self, on_batch: Callable[[ChangeBatch], None] | None = None) -> None:
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self._entries: dict[str, MirrorEntry] = {}
        self._generation = 0
        self._refreshing = True
        self._refreshed = False
        self._added: set[str] = set()
        self._modified: set[str] = set()
        self._deleted: set[str] = set()
        self._pending_refresh = False
        self._view: MirrorView | None = None
        self._snapshots: dict[str, tuple[int, Snapshot]] = {}

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
                del self._entries[entry_uuid]
                self._mark(self._deleted, old.dn)
            else:
                values = {name: tuple(v) for name, v in attributes.items()}
                self._entries[entry_uuid] = MirrorEntry(entry_uuid, dn, values)
                if old is None:
                    self._mark(self._added, dn)
                elif dn_norm(old.dn) != dn_norm(dn):
                    self._mark(self._deleted, old.dn)
                    self._mark(self._added, dn)
                    self._move_children(old.dn, dn)
                else:
                    self._mark(self._modified, dn)
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
            if self._view is None:
                self._view = MirrorView(self._generation, self._refreshed, dict(self._entries))
            return self._view

    def snapshot(self, base: str) -> Snapshot:
        """The model snapshot, rebuilt only when something changed since the last call."""
        view = self.view()
        cached = self._snapshots.get(base)
        if cached is not None and cached[0] == view.generation:
            return cached[1]
        snapshot = view.snapshot(base)
        self._snapshots[base] = (view.generation, snapshot)
        return snapshot

    def take_changes(self) -> ChangeBatch:
        """Everything changed since the previous take (when no `on_batch` is set)."""
        with self._lock:
            refresh, self._pending_refresh = self._pending_refresh, False
            return self._close_batch(refresh)

    # --- internals ---------------------------------------------------------------------------

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
                self._entries[entry_uuid] = attrs.evolve(entry, dn=moved)
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

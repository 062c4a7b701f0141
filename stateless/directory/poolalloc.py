"""Pool addresses of the directory client: taking them for hosts and giving them back.

The pool entry's `statelessAllocated` values are the lock (an add another writer made first
fails with attributeOrValueExists); the host entry records what it holds. A mixin of
`Directory`, which provides the connection and the generic operations declared here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import ldap3

from stateless.directory import mapping, syntax
from stateless.errors import (
    ConflictError,
    HostEntryMissing,
    NotFoundError,
    StatelessError,
    ValidationError,
)
from stateless.model.identity import normalize_uuid
from stateless.model.inventory import Allocation, IpPool, check_name

if TYPE_CHECKING:
    from stateless.policy.pools import Allocator


class PoolAllocations:
    """Allocation and release of pool addresses; `Directory` provides what is declared here."""

    _lock: threading.Lock
    _taken: dict[str, Allocator]  # pool name -> addresses known taken

    if TYPE_CHECKING:  # the directory client's
        def named_dn(self, ou: str, name: str) -> str: ...

        def host_dn(self, uuid: str) -> str: ...

        def modify(self, dn: str, changes: Mapping[str, list[tuple[str, list[str]]]],
                   what: str = "") -> None: ...

        def read(self, dn: str, what: str = "read",
                 attributes: Sequence[str] | None = None) -> dict[str, list[str]] | None: ...

    def pool_used(self, name: str) -> tuple[IpPool, frozenset[str]]:
        raw = self.read(self.named_dn("pools", check_name(name, "pool")), f"read pool {name}")
        if raw is None:
            raise NotFoundError(f"pool {name}: not found; add it with `stateless pool add`")
        return mapping.pool_from(self.named_dn("pools", name), raw), frozenset(
            raw.get("statelessAllocated", []))

    def allocate(self, uuid: str, item: str, pool_name: str) -> Allocation:
        """Take a free address of the pool for `item` (vmknic.PG) of the host; idempotent."""
        return self.allocate_all(uuid, [(item, pool_name)])[0]

    def allocate_all(self, uuid: str, wanted: Sequence[tuple[str, str]],
                     pools: Mapping[str, IpPool] | None = None) -> list[Allocation]:
        """Addresses for every (item, pool) the host needs, in as few operations as possible.

        One read of the host (what it already holds is returned as is), one add per new
        address on its pool entry, one modify recording them all on the host.  The pool
        entry's statelessAllocated values are the lock: adding a value another writer added
        first fails with attributeOrValueExists, and the next candidate is tried.  `pools`
        (the definitions as the caller's snapshot has them) saves reading each pool; the
        addresses known to be taken are remembered between calls, and concurrent callers of
        this client never pick the same candidate, so a storm of allocations rarely conflicts.
        """
        uuid = normalize_uuid(uuid)
        for item, _ in wanted:
            if not item.startswith("vmknic."):
                raise ValidationError(f"allocate {item}: only vmknic.<portgroup> items take pool "
                                      "addresses")
        host = self.read(self.host_dn(uuid), f"read host {uuid}", ["statelessAllocation"])
        if host is None:
            raise HostEntryMissing(uuid)
        held: dict[tuple[str, str], Allocation] = {}
        for text in host.get("statelessAllocation", []):
            try:
                existing = syntax.parse_allocation(text)
            except StatelessError:
                continue
            held.setdefault((existing.item, existing.pool), existing)
        made: list[Allocation] = []
        for item, pool_name in wanted:
            if (item, pool_name) not in held:
                allocation = Allocation(item, pool_name, self._take(pool_name, pools))
                held[(item, pool_name)] = allocation
                made.append(allocation)
        if made:
            self.modify(self.host_dn(uuid), {"statelessAllocation": [
                (ldap3.MODIFY_ADD, [syntax.format_allocation(a) for a in made])]},
                f"record allocation of host {uuid}")
        return [held[w] for w in wanted]

    def _take(self, pool_name: str, pools: Mapping[str, IpPool] | None) -> str:
        """Claim one address on the pool entry (see allocate_all)."""
        from stateless.policy.pools import Allocator

        pool = pools.get(pool_name) if pools is not None else None
        pool_dn = self.named_dn("pools", pool_name)
        refreshed = False
        while True:
            with self._lock:
                allocator = self._taken.get(pool_name)
            if allocator is None or (pool is not None and allocator.pool != pool):
                # First use, or the pool was redefined: what is taken, from the directory.
                current, used = self.pool_used(pool_name)
                allocator = Allocator(pool or current, used)
                with self._lock:
                    self._taken[pool_name] = allocator
            try:
                with self._lock:
                    address = allocator.take()  # reserved: no other thread of this client tries it
            except ConflictError:
                if refreshed:
                    raise
                # Full as far as this client knows: addresses may have been released since.
                refreshed = True
                with self._lock:
                    self._taken.pop(pool_name, None)
                continue
            try:
                self.modify(pool_dn, {"statelessAllocated": [(ldap3.MODIFY_ADD, [address])]},
                            f"allocate from pool {pool_name}")
            except ConflictError:
                continue  # another writer had it; it stays marked taken
            return address

    def release(self, uuid: str, allocation: Allocation) -> None:
        self.modify(self.host_dn(uuid), {"statelessAllocation": [
            (ldap3.MODIFY_DELETE, [syntax.format_allocation(allocation)])]}, f"release {uuid}")
        self.modify(self.named_dn("pools", allocation.pool),
                    {"statelessAllocated": [(ldap3.MODIFY_DELETE, [allocation.address])]},
                    f"release {allocation.address}")
        with self._lock:
            allocator = self._taken.get(allocation.pool)
            if allocator is not None:
                allocator.discard(allocation.address)


__all__ = ["PoolAllocations"]

"""IP pool arithmetic: which address a pool hands out next.

Pools are small IPv4 ranges inside one network; the directory records every allocation on
the host entry, so the next free address is derived from the recorded ones, never stored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

from stateless.errors import ConflictError
from stateless.model.inventory import IpPool


class PoolExhaustedError(ConflictError):
    """An IP pool has no free address left."""

    def __init__(self, pool: IpPool, used: int) -> None:
        self.pool = pool.name
        super().__init__(
            f"pool {pool.name} ({pool.start}-{pool.end}) is full: {used} of its addresses are "
            f"allocated; widen its range or remove hosts that no longer exist")


def ipv4_number(address: object) -> int | None:
    """The address as an integer, or None; the canonical dotted quad without ipaddress."""
    if not isinstance(address, str):
        return None
    try:
        a, b, c, d = map(int, address.split("."))
        if min(a, b, c, d) >= 0 and max(a, b, c, d) < 256 and f"{a}.{b}.{c}.{d}" == address:
            return (a << 24) | (b << 16) | (c << 8) | d
    except ValueError:
        pass
    try:
        return int(ipaddress.IPv4Address(address.strip()))
    except ValueError:
        return None


def reserved(pool: IpPool) -> frozenset[int]:
    """Addresses never handed out: the network and broadcast addresses, and the gateway."""
    net = ipaddress.IPv4Network(f"{pool.start}/{pool.netmask}", strict=False)
    out = set()
    if net.prefixlen < 31:
        out |= {int(net.network_address), int(net.broadcast_address)}
    if pool.gateway:
        out.add(int(ipaddress.IPv4Address(pool.gateway)))
    return frozenset(out)


class Span(NamedTuple):
    """A pool's range as integers, for checking many addresses against one pool."""

    low: int
    high: int
    reserved: frozenset[int]
    gateway: str | None  # canonical text form

    def __contains__(self, address: object) -> bool:
        number = ipv4_number(address)
        return number is not None and self.low <= number <= self.high and number not in self.reserved


def span(pool: IpPool) -> Span:
    gateway = str(ipaddress.IPv4Address(pool.gateway)) if pool.gateway else None
    return Span(int(ipaddress.IPv4Address(pool.start)), int(ipaddress.IPv4Address(pool.end)),
                reserved(pool), gateway)


def in_pool(pool: IpPool, address: str) -> bool:
    """True when `address` is an address the pool could have handed out."""
    return address in span(pool)


def next_free(pool: IpPool, used: Iterable[str]) -> str:
    """Lowest address of `pool` not in `used` (and not reserved); PoolExhaustedError when full.

    Entries of `used` that are not IPv4 addresses or lie outside the pool are ignored, so a
    caller can pass every allocation it knows of.
    """
    low, high = int(ipaddress.IPv4Address(pool.start)), int(ipaddress.IPv4Address(pool.end))
    taken = set(reserved(pool))
    count = 0
    for address in used:
        number = ipv4_number(address)
        if number is not None and low <= number <= high and number not in taken:
            taken.add(number)
            count += 1
    for number in range(low, high + 1):
        if number not in taken:
            return str(ipaddress.IPv4Address(number))
    raise PoolExhaustedError(pool, count)


class Allocator:
    """The addresses of one pool known to be taken, handing out the lowest free one.

    For a caller that allocates many addresses from one pool (a daemon during a boot storm):
    `next_free` converts every used address on each call, which makes N allocations cost N².
    Here each address is converted once and the search starts above the addresses known to be
    all taken.
    """

    def __init__(self, pool: IpPool, used: Iterable[str] = ()) -> None:
        self.pool = pool
        bounds = span(pool)
        self._low, self._high = bounds.low, bounds.high
        self._reserved = bounds.reserved
        self._taken: set[int] = set()
        self._floor = self._low  # every address below it is taken or reserved
        self.update(used)

    def update(self, used: Iterable[str]) -> None:
        """Mark addresses taken (those outside the pool are ignored, as by `next_free`)."""
        for address in used:
            number = ipv4_number(address)
            if number is not None and self._low <= number <= self._high:
                self._taken.add(number)

    def discard(self, address: str) -> None:
        """An address given back: it may be handed out again."""
        number = ipv4_number(address)
        if number is not None and number in self._taken:
            self._taken.discard(number)
            self._floor = min(self._floor, number)

    def take(self) -> str:
        """The lowest free address, now marked taken; PoolExhaustedError when there is none."""
        for number in range(self._floor, self._high + 1):
            if number not in self._taken and number not in self._reserved:
                self._taken.add(number)
                self._floor = number + 1
                return str(ipaddress.IPv4Address(number))
        self._floor = self._high + 1
        raise PoolExhaustedError(self.pool, len(self._taken - self._reserved))


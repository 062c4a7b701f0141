"""An address belongs to one host: checks and reservations made when answers and pools are written.

A pool entry's `statelessAllocated` values are the lock of its addresses (see
`Directory.allocate_all`). A host answer that falls inside a pool's range takes the same lock,
so the pool never hands that address to another host; an answer outside every pool is checked
against the answers and allocations of the other hosts. What slips past (an answer written with
`ldapmodify`, two writers racing) is caught by the resolver, which blocks both holders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import ldap3
from ldap3.utils.conv import escape_filter_chars

from stateless.directory import mapping, syntax
from stateless.errors import ConflictError, NotFoundError, StatelessError
from stateless.model.inventory import IpPool
from stateless.policy.addresses import held_addresses
from stateless.policy.pools import in_pool, ipv4_number

if TYPE_CHECKING:
    from stateless.directory.client import Directory


def answered_addresses(answers: Mapping[str, object]) -> list[str]:
    """The addresses among host answers (`vmknic.<pg>.address`)."""
    return [str(v) for k, v in answers.items() if k.startswith("vmknic.") and k.endswith(".address")]


def holders(d: Directory, address: str) -> dict[str, str]:
    """uuid -> how it holds `address`, for every host entry that answers or was allocated it."""
    value = escape_filter_chars(address)
    found = d.search(d.ou("hosts"), f"(&(objectClass=statelessHost)(|(statelessAnswer=vmknic.*.address="
                                    f"{value})(statelessAllocation=vmknic.*address={value})))",
                     ("statelessUuid", "statelessAnswer", "statelessAllocation"), "find address holders")
    out = {}
    for dn, attrs in found:
        try:
            host = mapping.host_from(dn, attrs, ())
        except StatelessError:
            continue
        how = held_addresses(host).get(address)
        if how is not None:  # the filter is a superset (substrings); this is the exact test
            out[host.uuid] = how
    return out


def pools(d: Directory) -> list[IpPool]:
    out = []
    for dn, attrs in d.search(d.ou("pools"), "(objectClass=statelessIpPool)",
                              ("cn", "statelessRangeStart", "statelessRangeEnd", "statelessNetmask",
                               "statelessGateway"), "list pools"):
        try:
            out.append(mapping.pool_from(dn, attrs))
        except StatelessError:
            continue  # an unreadable pool is a problem of its own (`stateless problems`)
    return out


def claim(d: Directory, uuid: str, addresses: Iterable[str]) -> list[tuple[str, str]]:
    """Refuse addresses another host holds; reserve those inside a pool for `uuid`.

    Returns the (pool, address) reservations made, for `release` if the host write fails.
    """
    wanted = list(dict.fromkeys(addresses))
    if not wanted:
        return []
    held = {address: holders(d, address) for address in wanted}
    for address, by in held.items():
        others = {u: h for u, h in by.items() if u != uuid}
        if others:
            who = "; ".join(f"host {u} ({h})" for u, h in sorted(others.items()))
            raise ConflictError(f"host {uuid}: address {address} is already held by {who}; an "
                                "address belongs to one host: choose another one")
    made: list[tuple[str, str]] = []
    try:
        for pool in pools(d):
            for address in wanted:
                if in_pool(pool, address) and uuid not in held[address]:  # not its own already
                    _reserve(d, pool, address, uuid)
                    made.append((pool.name, address))
    except StatelessError:
        release(d, made)
        raise
    return made


def _reserve(d: Directory, pool: IpPool, address: str, uuid: str) -> None:
    try:
        d.modify(d.named_dn("pools", pool.name), {"statelessAllocated": [(ldap3.MODIFY_ADD, [address])]},
                 f"reserve {address} in pool {pool.name} for host {uuid}")
    except ConflictError:
        raise ConflictError(
            f"host {uuid}: address {address} is taken in pool {pool.name} (its statelessAllocated "
            "values), though no host entry holds it: another allocation is in flight, or a deleted "
            f"host left it behind; choose another address, or remove the value from cn={pool.name},"
            f"{d.ou('pools')} if no host uses it") from None


def release(d: Directory, reservations: Iterable[tuple[str, str]]) -> None:
    """Give reserved addresses back to their pools (a value already gone is fine)."""
    for pool_name, address in reservations:
        try:
            d.modify(d.named_dn("pools", pool_name),
                     {"statelessAllocated": [(ldap3.MODIFY_DELETE, [address])]},
                     f"release {address} in pool {pool_name}")
        except (ConflictError, NotFoundError):
            continue


def check_pool(d: Directory, pool: IpPool) -> list[str]:
    """Refuse a pool whose range overlaps another's; the answered addresses it must reserve."""
    low, high = _number(pool.start), _number(pool.end)
    for other in pools(d):
        if other.name != pool.name and low <= _number(other.end) and _number(other.start) <= high:
            raise ConflictError(f"pool {pool.name} ({pool.start}-{pool.end}) overlaps pool {other.name} "
                                f"({other.start}-{other.end}); an address belongs to one pool: "
                                "choose a range outside it")
    found = d.search(d.ou("hosts"), "(&(objectClass=statelessHost)(statelessAnswer=vmknic.*.address=*))",
                     ("statelessAnswer",), "find answered addresses")
    taken = {a for _, attrs in found for a in answered_addresses(answers_of(attrs))}
    return sorted((a for a in taken if in_pool(pool, a)), key=_number)


def answers_of(attrs: Mapping[str, list[str]]) -> dict[str, object]:
    """The readable answers of a host entry's attributes."""
    out: dict[str, object] = {}
    for text in attrs.get("statelessAnswer", []):
        try:
            key, value = syntax.parse_answer(text)
        except StatelessError:
            continue  # a problem of that host's own
        out[key] = value
    return out


def _number(address: str) -> int:
    number = ipv4_number(address)
    assert number is not None, address  # pools hold canonical addresses
    return number

"""IP pool arithmetic: lowest free address, reserved addresses, full pools."""

from __future__ import annotations

import pytest

from stateless.errors import StatelessError
from stateless.model import IpPool
from stateless.policy import PoolExhaustedError, in_pool, next_free
from stateless.policy.pools import Allocator, ipv4_number

POOL = IpPool("vmotion", "10.0.20.10", "10.0.20.14", "255.255.255.0", gateway="10.0.20.12")


@pytest.mark.parametrize(("pool", "used", "expected"), [
    (POOL, [], "10.0.20.10"),
    (POOL, ["10.0.20.10"], "10.0.20.11"),
    (POOL, ["10.0.20.11"], "10.0.20.10"),
    (POOL, ["10.0.20.10", "10.0.20.11"], "10.0.20.13"),  # .12 is the gateway
    (POOL, ["10.0.20.10", "10.0.20.11", "10.0.20.13"], "10.0.20.14"),
    (POOL, ["10.0.20.10", "not-an-address", "10.9.9.9", "10.0.20.10"], "10.0.20.11"),
    (IpPool("net", "10.0.0.0", "10.0.0.3", "255.255.255.0"), [], "10.0.0.1"),  # network address
    (IpPool("net", "10.0.0.254", "10.0.0.255", "255.255.255.0"), [], "10.0.0.254"),
    (IpPool("p2p", "10.0.0.0", "10.0.0.1", "255.255.255.254"), [], "10.0.0.0"),  # /31 has no network
])
def test_next_free(pool: IpPool, used: list[str], expected: str) -> None:
    assert next_free(pool, used) == expected
    assert in_pool(pool, expected)
    assert Allocator(pool, used).take() == expected  # the same choice, kept incrementally


def test_allocator_hands_out_what_next_free_would() -> None:
    pool = IpPool("wide", "10.8.0.0", "10.8.3.255", "255.255.252.0", gateway="10.8.0.1")
    allocator = Allocator(pool, ["10.8.0.5", "10.8.0.9", "192.0.2.1"])
    used = ["10.8.0.5", "10.8.0.9"]
    for _ in range(300):
        address = allocator.take()
        assert address == next_free(pool, used)
        used.append(address)
    allocator.discard("10.8.0.7")  # given back: the lowest free again
    used.remove("10.8.0.7")
    assert allocator.take() == "10.8.0.7"
    assert allocator.take() == next_free(pool, [*used, "10.8.0.7"])
    allocator.discard("10.9.0.1")  # outside: ignored


def test_allocator_exhaustion_and_release() -> None:
    allocator = Allocator(POOL)
    allocator.update(["10.0.20.10", "10.0.21.10"])  # learnt later (e.g. lost to another writer)
    assert [allocator.take() for _ in range(3)] == ["10.0.20.11", "10.0.20.13", "10.0.20.14"]
    with pytest.raises(PoolExhaustedError, match="4 of its addresses"):
        allocator.take()
    allocator.discard("10.0.20.13")
    assert allocator.take() == "10.0.20.13"


@pytest.mark.parametrize(("pool", "used"), [
    (POOL, ["10.0.20.10", "10.0.20.11", "10.0.20.13", "10.0.20.14"]),
    (IpPool("one", "10.0.0.5", "10.0.0.5", "255.255.255.0"), ["10.0.0.5"]),
    (IpPool("gw", "10.0.0.1", "10.0.0.1", "255.255.255.0", gateway="10.0.0.1"), []),
    (IpPool("bcast", "10.0.0.255", "10.0.0.255", "255.255.255.0"), []),
])
def test_full_pool_raises_naming_the_pool(pool: IpPool, used: list[str]) -> None:
    with pytest.raises(PoolExhaustedError, match=f"pool {pool.name} .* is full") as info:
        next_free(pool, used)
    assert isinstance(info.value, StatelessError)
    assert info.value.pool == pool.name


@pytest.mark.parametrize(("address", "expected"), [
    ("10.0.20.10", True), ("10.0.20.14", True), ("10.0.20.12", False), ("10.0.20.9", False),
    ("10.0.20.15", False), ("garbage", False),
])
def test_in_pool(address: str, expected: bool) -> None:
    assert in_pool(POOL, address) is expected


def test_large_pool_is_fast_enough() -> None:
    pool = IpPool("big", "10.8.0.1", "10.8.255.254", "255.255.0.0")
    used = [f"10.8.{i // 256}.{i % 256}" for i in range(1, 20000)]
    assert next_free(pool, used) == "10.8.78.32"


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0.0.1", 0x0A000001), ("255.255.255.255", 0xFFFFFFFF), (" 10.0.0.1", 0x0A000001),
    ("010.0.0.1", None), ("-1.0.0.1", None), ("1.2.3.256", None), ("10.0.0", None), ("a.b.c.d", None),
    ("", None), (None, None),
])
def test_ipv4_number(text: object, expected: int | None) -> None:
    assert ipv4_number(text) == expected

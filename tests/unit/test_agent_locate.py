"""The agent's locator order: SRV names, name server syntax and RFC 2782 ordering."""

from __future__ import annotations

import collections
import random

import pytest

from stateless.agent.locate import Target, make_resolver, order_targets, parse_nameserver, srv_names


@pytest.mark.parametrize(
    ("domain", "site", "names"),
    [
        ("example.com", None, ["_stateless._tcp.example.com."]),
        ("Example.com.", "Paris", ["_stateless._tcp.paris._sites.example.com.",
                                   "_stateless._tcp.example.com."]),
    ],
)
def test_srv_names(domain: str, site: str | None, names: list[str]) -> None:
    assert srv_names(domain, site) == names


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.1", ("10.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
     ("::1", ("::1", 53)), ("[::1]:5353", ("::1", 5353))],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["ns.example.com", "10.0.0.1:0", "10.0.0.1:x", "10.0.0.1:70000"])
def test_parse_nameserver_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(text)


def test_make_resolver_uses_the_given_ports() -> None:
    resolver = make_resolver(["127.0.0.1:5353", "127.0.0.2"], timeout=3)
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [  # type: ignore[union-attr]
        ("127.0.0.1", 5353), ("127.0.0.2", 53)]
    assert resolver.lifetime == 3


def test_order_respects_priority_always() -> None:
    targets = [Target(f"http://t{i}", priority=p, weight=w)
               for i, (p, w) in enumerate([(20, 1), (10, 0), (10, 50), (0, 5), (20, 100)])]
    for _ in range(200):
        order = order_targets(targets)
        assert [t.priority for t in order] == [0, 10, 10, 20, 20]
        assert sorted(t.url for t in order) == sorted(t.url for t in targets)


def test_order_follows_weights_within_a_priority() -> None:
    """RFC 2782: the chance to come first is proportional to weight (dnspython's selection)."""
    saved = random.getstate()
    random.seed(20)  # dnspython draws from the module's generator
    try:
        heavy, light = Target("http://heavy", weight=90), Target("http://light", weight=10)
        firsts = collections.Counter(order_targets([light, heavy])[0].url for _ in range(2000))
    finally:
        random.setstate(saved)
    assert 1650 < firsts["http://heavy"] < 1950


def test_order_of_nothing_and_of_one() -> None:
    assert order_targets([]) == []
    one = Target("http://only", priority=3)
    assert order_targets([one]) == [one]

"""The agent's locator order: SRV names, name server syntax and RFC 2782 ordering."""

from __future__ import annotations

import collections
import random
from collections.abc import Callable

import dns.exception
import dns.message
import dns.rcode
import dns.resolver
import pytest

from stateless.agent.locate import (
    ConnectedDo53,
    Lookups,
    Target,
    locate,
    make_resolver,
    order_targets,
    parse_nameserver,
    srv_names,
)


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


def test_srv_names_ask_the_next_closest_sites_before_the_domain() -> None:
    assert srv_names("example.com", "paris", ["Lyon", "paris", "nice", "lyon"]) == [
        "_stateless._tcp.paris._sites.example.com.", "_stateless._tcp.lyon._sites.example.com.",
        "_stateless._tcp.nice._sites.example.com.", "_stateless._tcp.example.com."]


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
    assert all(isinstance(ns, ConnectedDo53) for ns in resolver.nameservers)


@pytest.mark.parametrize(("servers", "per_server"), [(1, 2.0), (2, 1.0), (4, 0.5)])
def test_dns_timeout_is_the_lookups_lifetime_shared_by_the_servers(servers: int,
                                                                   per_server: float) -> None:
    """Each server can be tried once before the lifetime runs out, the last one included."""
    resolver = make_resolver([f"127.0.0.{i + 1}" for i in range(servers)], timeout=2)
    assert resolver.lifetime == 2 and resolver.timeout == per_server


# -- one round's lookups ------------------------------------------------------------------------

QUERY = dns.message.make_query("_stateless._tcp.example.com.", "SRV")


def unanswered() -> dns.exception.DNSException:
    return dns.resolver.NoNameservers(request=QUERY, errors=[
        ("127.0.0.1", False, 53, ConnectionRefusedError(111, "refused"), None),
        ("127.0.0.2", False, 53, dns.exception.Timeout(), None)])


def servfail() -> dns.exception.DNSException:
    response = dns.message.make_response(QUERY)
    response.set_rcode(dns.rcode.SERVFAIL)
    return dns.resolver.NoNameservers(request=QUERY,
                                      errors=[("127.0.0.1", False, 53, "SERVFAIL", response)])


class Resolver:
    """Scripted results per name (an exception is raised); records every name asked."""

    def __init__(self, results: dict[str, object]) -> None:
        self.results = results
        self.asked: list[str] = []

    def resolve(self, name: str, rdtype: object, search: bool = False) -> object:
        self.asked.append(name)
        result = self.results.get(name, dns.resolver.NXDOMAIN())
        if isinstance(result, Exception):
            raise result
        return result


SITE, DOMAIN = srv_names("example.com", "paris")


def expired() -> dns.exception.DNSException:
    return dns.resolver.LifetimeTimeout(timeout=2.0, errors=[])


@pytest.mark.parametrize("failure", [unanswered, expired])
def test_dns_down_skips_the_rest_of_the_round(failure: Callable[[], Exception]) -> None:
    resolver = Resolver({SITE: failure()})
    logs: list[str] = []
    lookups = Lookups(resolver, log=logs.append)  # type: ignore[arg-type]
    assert locate(lookups, "example.com", "paris") == []
    assert lookups.address("pxe.example.com") is None
    assert resolver.asked == [SITE]  # neither the domain-wide name nor the address
    assert lookups.down is not None and "no name server answered" in logs[0]


def test_a_name_server_that_answers_fails_only_that_name() -> None:
    resolver = Resolver({SITE: servfail()})
    lookups = Lookups(resolver)  # type: ignore[arg-type]
    assert locate(lookups, "example.com", "paris") == []
    assert resolver.asked == [SITE, DOMAIN] and lookups.down is None


def test_each_name_is_asked_once() -> None:
    resolver = Resolver({})
    lookups = Lookups(resolver)  # type: ignore[arg-type]
    for _ in range(3):
        assert locate(lookups, "example.com", "paris") == []
        assert lookups.address("pxe.example.com.") is None
        assert lookups.address("PXE.example.com") is None
    assert resolver.asked == [SITE, DOMAIN, "pxe.example.com."]


def test_strict_raises_instead_of_skipping() -> None:
    with pytest.raises(dns.resolver.NoNameservers):
        locate(Resolver({SITE: unanswered()}), "example.com", "paris",  # type: ignore[arg-type]
               strict=True)


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

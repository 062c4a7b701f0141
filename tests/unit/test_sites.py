"""Sites: longest-prefix site of an address, site order by link cost, nearest servers."""

from __future__ import annotations

import pytest

from stateless.errors import ValidationError
from stateless.model import Server, Site, SiteLink, Snapshot
from stateless.sites import nearest_servers, site_of, site_order

SITES = [
    Site("hq", subnets=("10.0.0.0/8", "2001:db8::/32")),
    Site("hq-lab", subnets=("10.1.0.0/16",)),
    Site("hq-lab-rack", subnets=("10.1.2.0/24", "2001:db8:1::/48")),
    Site("branch", subnets=("192.168.10.0/24",)),
    Site("twin", subnets=("172.16.0.0/12",)),
    Site("atwin", subnets=("172.16.0.0/12",)),
]


@pytest.mark.parametrize(("address", "expected"), [
    ("10.9.9.9", "hq"),
    ("10.1.9.9", "hq-lab"),
    ("10.1.2.3", "hq-lab-rack"),
    ("192.168.10.200", "branch"),
    ("192.168.11.1", None),
    ("172.20.0.1", "atwin"),
    ("2001:db8:5::1", "hq"),
    ("2001:db8:1::7", "hq-lab-rack"),
    ("2001:db9::1", None),
    ("::ffff:10.1.2.3", "hq-lab-rack"),
    (" 10.1.2.3 ", "hq-lab-rack"),
])
def test_site_of(address: str, expected: str | None) -> None:
    assert site_of(SITES, address) == expected


def test_site_of_rejects_garbage() -> None:
    with pytest.raises(ValidationError, match="not an IPv4 or IPv6 address"):
        site_of(SITES, "esx01.example.com")


NAMES = ["a", "b", "c", "d", "e", "f"]
LINKS = [SiteLink("a", "b", 10), SiteLink("b", "c", 10), SiteLink("a", "c", 50), SiteLink("a", "d", 20),
         SiteLink("d", "e", 100), SiteLink("c", "e", 5)]


@pytest.mark.parametrize(("links", "home", "expected"), [
    (LINKS, "a", ["a", "b", "c", "d", "e", "f"]),  # c via b (20) not direct (50); e via b, c (25)
    (LINKS, "e", ["e", "c", "b", "a", "d", "f"]),
    (LINKS, "f", ["f", "a", "b", "c", "d", "e"]),  # nothing reachable: the rest by name
    ([SiteLink("a", "b", 7), SiteLink("a", "c", 7)], "a", ["a", "b", "c", "d", "e", "f"]),  # tie by name
    ([SiteLink("a", "c", 7), SiteLink("a", "c", 3), SiteLink("a", "b", 5)], "a",
     ["a", "c", "b", "d", "e", "f"]),  # parallel links: the cheaper counts
    ([SiteLink("a", "zz", 1), SiteLink("zz", "b", 1), SiteLink("a", "b", 9)], "a",
     ["a", "b", "c", "d", "e", "f"]),  # links through unknown sites are ignored
    ([], "a", ["a", "b", "c", "d", "e", "f"]),
])
def test_site_order(links: list[SiteLink], home: str, expected: list[str]) -> None:
    assert site_order([Site(n) for n in NAMES], links, home) == expected
    assert site_order(NAMES, links, home) == expected


def snapshot(*servers: Server) -> Snapshot:
    sites = [Site("hq", subnets=("10.0.0.0/16",)), Site("dr", subnets=("10.1.0.0/16",)),
             Site("edge", subnets=("10.2.0.0/16",)), Site("moon", subnets=("10.3.0.0/16",))]
    return Snapshot(sites={s.name: s for s in sites}, servers={s.name: s for s in servers},
                    site_links=(SiteLink("hq", "dr", 10), SiteLink("dr", "edge", 10),
                                SiteLink("hq", "edge", 30)))


SERVERS = [
    Server("hq1", "hq", "https://hq1:8443", priority=10, weight=50),
    Server("hq2", "hq", "https://hq2:8443", priority=10, weight=100),
    Server("hq0", "hq", "https://hq0:8443", priority=20, weight=500),
    Server("dr1", "dr", "https://dr1:8443"),
    Server("edge1", "edge", "https://edge1:8443"),
    Server("moon1", "moon", "https://moon1:8443"),
    Server("lost1", "gone", "https://lost1:8443"),
]


@pytest.mark.parametrize(("address", "expected"), [
    ("10.0.0.5", ["hq2", "hq1", "hq0", "dr1", "edge1", "moon1", "lost1"]),
    ("10.2.0.5", ["edge1", "dr1", "hq2", "hq1", "hq0", "moon1", "lost1"]),
    ("10.3.0.5", ["moon1", "dr1", "edge1", "hq2", "hq1", "hq0", "lost1"]),
    ("192.0.2.1", ["dr1", "edge1", "moon1", "hq2", "hq1", "hq0", "lost1"]),  # no site: RFC 2782 order
])
def test_nearest_servers(address: str, expected: list[str]) -> None:
    assert [s.name for s in nearest_servers(snapshot(*SERVERS), address)] == expected


def test_nearest_servers_without_servers() -> None:
    assert nearest_servers(snapshot(), "10.0.0.5") == []

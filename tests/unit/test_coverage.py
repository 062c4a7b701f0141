"""Site coverage: which server answers a birth, what a zone publishes, the vCenter of a host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from twisted.internet import defer, task

from stateless.daemon.coverage import (
    SiteCoverage,
    birth_route,
    covered_by,
    published,
)
from stateless.daemon.served import vcenter_for
from stateless.dns.records import zone_records
from stateless.errors import DirectoryError, ValidationError
from stateless.model.inventory import Container, Server, Site, SiteLink, Snapshot, VCenter

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LIVE, DEAD = NOW + timedelta(seconds=30), NOW - timedelta(seconds=1)


def server(name: str, site: str, lease: datetime | None = LIVE, vcenters: tuple[str, ...] = ()) -> Server:
    return Server(name, site, f"http://10.9.0.{len(name) + ord(name[0]) % 50}:8480", vcenters,
                  lease_expiry=lease)


def estate(*servers: Server) -> Snapshot:
    """Sites a-b-c in a line (a-b 10, b-c 20), d linked to a (100); a and b have a vCenter each."""
    return Snapshot(
        containers={"/": Container("/", "root"),
                    "/A": Container("/A", "datacenter", vcenter="vcA"),
                    "/B": Container("/B", "datacenter", vcenter="vcB"),
                    "/N": Container("/N", "datacenter")},
        sites={n: Site(n, (f"10.{i}.0.0/16",)) for i, n in enumerate("abcd")},
        site_links=[SiteLink("a", "b", 10), SiteLink("b", "c", 20), SiteLink("a", "d", 100)],
        vcenters={n: VCenter(n, f"http://{n}/sdk", "u") for n in ("vcA", "vcB")},
        servers={s.name: s for s in servers})


def names(servers: tuple[Server, ...]) -> list[str]:
    return [s.name for s in servers]


def test_a_host_of_this_site_is_accepted_and_told_so() -> None:
    route = birth_route(estate(server("a1", "a")), "a", "10.0.0.5", NOW)
    assert (route.site, route.closest, route.refer) == ("a", True, ())
    assert route.sites == ("a", "b", "c", "d")


def test_a_host_in_no_site_is_accepted() -> None:
    assert birth_route(estate(server("a1", "a")), "a", "192.0.2.1", NOW) == \
        birth_route(estate(), "a", "", NOW)
    assert birth_route(estate(), "a", "", NOW).site is None


def test_a_host_of_a_site_with_live_servers_is_referred_to_them_only() -> None:
    snap = estate(server("a1", "a"), server("b1", "b"), server("b2", "b", DEAD),
                  Server("b3", "b", "http://10.1.0.3:8480", priority=5))  # no lease: live
    route = birth_route(snap, "a", "10.1.0.9", NOW)
    assert (route.site, route.closest, names(route.refer)) == ("b", False, ["b1", "b3"])
    assert route.sites == ("b", "a", "c", "d")


def test_a_site_with_no_live_server_is_accepted_by_its_covering_site() -> None:
    snap = estate(server("a1", "a"), server("b1", "b", DEAD), server("c1", "c"))
    route = birth_route(snap, "a", "10.1.0.9", NOW)  # b's nearest live site is a (10 < 20)
    assert (route.site, route.closest, route.refer) == ("b", False, ())
    # c's server refers it to the covering site's servers, keeping the host's own site
    route = birth_route(snap, "c", "10.1.0.9", NOW)
    assert (route.site, route.closest, names(route.refer)) == ("b", False, ["a1"])


def test_nobody_can_cover_an_unlinked_site_so_any_server_accepts() -> None:
    snap = Snapshot(sites={"x": Site("x", ("10.0.0.0/16",)), "y": Site("y", ("10.1.0.0/16",))},
                    servers={"y1": server("y1", "y")})
    assert birth_route(snap, "y", "10.0.0.1", NOW) == birth_route(snap, "y", "10.0.0.1", NOW)
    route = birth_route(snap, "y", "10.0.0.1", NOW)
    assert (route.site, route.closest, route.refer) == ("x", False, ())


def test_published_records_put_covering_servers_under_the_covered_site() -> None:
    snap = estate(server("a1", "a"), server("b1", "b", DEAD), server("c1", "c", DEAD),
                  server("d1", "d"))
    servers, covering = published(snap, NOW)
    assert sorted(s.name for s in servers) == ["a1", "d1"]
    assert covering == {"b": "a", "c": "a"}
    assert covered_by(snap, "a", NOW) == ["b", "c"] and covered_by(snap, "d", NOW) == []
    records = zone_records(servers, "example.test", covered=covering)
    by_name: dict[str, set[str]] = {}
    for r in records:
        if r.rdtype == "SRV":
            by_name.setdefault(r.name, set()).add(r.value.split()[-1])
    assert by_name == {
        "_stateless._tcp.example.test.": {"a1.example.test.", "d1.example.test."},
        "_stateless._tcp.a._sites.example.test.": {"a1.example.test."},
        "_stateless._tcp.b._sites.example.test.": {"a1.example.test."},
        "_stateless._tcp.c._sites.example.test.": {"a1.example.test."},
        "_stateless._tcp.d._sites.example.test.": {"d1.example.test."}}


def test_a_covered_host_is_applied_through_its_own_sites_vcenter() -> None:
    # b1 (site b, serving vcB) is dead: site a covers b, so a1 applies /B through vcB.
    snap = estate(server("a1", "a", vcenters=("vcA",)), server("b1", "b", DEAD, ("vcB",)))
    assert vcenter_for(snap, "a1", "/B", NOW) == "vcB"
    assert vcenter_for(snap, "a1", "/A", NOW) == "vcA"
    assert vcenter_for(snap, "a1", "/N", NOW) == "vcA"  # no container names one: the server's own
    # b1 alive again: its site is not covered, its vCenter is its own.
    live = estate(server("a1", "a", vcenters=("vcA",)), server("b1", "b", vcenters=("vcB",)))
    with pytest.raises(ValidationError, match=r"which server a1 does not serve \(served by b1\)"):
        vcenter_for(live, "a1", "/B", NOW)


def test_a_server_naming_no_vcenter_uses_those_no_other_live_server_names() -> None:
    snap = estate(server("a1", "a"), server("b1", "b", vcenters=("vcB",)))
    assert vcenter_for(snap, "a1", "/A", NOW) == "vcA"
    with pytest.raises(ValidationError, match="served by b1"):
        vcenter_for(snap, "a1", "/B", NOW)
    assert vcenter_for(estate(server("a1", "a"), server("b1", "b", DEAD, ("vcB",))),
                       "a1", "/B", NOW) == "vcB"


class FakeZone:
    def __init__(self) -> None:
        self.updates: list[tuple[list[str], dict[str, str]]] = []

    def update(self, servers: Any, *, covered: Any = None) -> None:
        self.updates.append((sorted(s.name for s in servers), dict(covered or {})))


class FakeRegistrar:
    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail

    def set_sites(self, covers: Any) -> None:
        self.calls.append(tuple(covers))
        if self.fail:
            self.fail -= 1
            raise DirectoryError("name server down")


def test_coverage_follows_leases_as_they_run_out() -> None:
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    state = {"snap": estate(server("a1", "a"), server("b1", "b", NOW + timedelta(seconds=5)))}
    zone, registrar = FakeZone(), FakeRegistrar(fail=1)
    cov = SiteCoverage(clock, lambda fn, *a: defer.maybeDeferred(fn, *a), "a",
                       lambda: state["snap"], zone=zone, registrar=registrar)
    cov.refresh()  # d has no server: a covers it, but the registration fails
    assert registrar.calls == [("d",)] and not cov.covered
    assert zone.updates == [(["a1", "b1"], {"c": "b", "d": "a"})]
    cov.refresh()  # asked again
    assert registrar.calls == [("d",), ("d",)] and list(cov.covered) == ["d"]
    cov.refresh()
    assert len(registrar.calls) == 2 and len(zone.updates) == 1  # nothing changed
    clock.advance(6)  # b1's lease ran out: a covers b and c too
    cov.refresh()
    assert registrar.calls[-1] == ("b", "c", "d") and cov.sites() == ("a", "b", "c", "d")
    assert zone.updates[-1] == (["a1"], {"b": "a", "c": "a", "d": "a"})
    state["snap"] = estate(server("a1", "a"), server("b1", "b", NOW + timedelta(seconds=60)))
    cov.refresh()  # b1 is back
    assert registrar.calls[-1] == ("d",) and list(cov.covered) == ["d"]


@pytest.mark.parametrize("lease", [None, LIVE])
def test_a_site_whose_server_lives_is_not_covered(lease: datetime | None) -> None:
    snap = estate(server("a1", "a"), server("b1", "b", lease), server("c1", "c"),
                  server("d1", "d"))
    assert published(snap, NOW)[1] == {}

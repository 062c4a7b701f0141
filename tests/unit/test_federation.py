"""Who manages, who covers, who may take over: vCenters of containers, live servers, covering sites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stateless.directory import mapping
from stateless.errors import ValidationError
from stateless.federation import covering_sites, host_vcenter, is_live, orphans, sites_served, vcenter_of
from stateless.model.inventory import Container, HostRecord, Server, Site, SiteLink, Snapshot, VCenter

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LIVE, DEAD = NOW + timedelta(seconds=30), NOW - timedelta(seconds=1)
BASE = "ou=stateless,dc=example,dc=com"


def server(name: str, site: str, lease: datetime | None = LIVE, vcenters: tuple[str, ...] = ()) -> Server:
    return Server(name, site, f"http://{name}:8480", vcenters, lease_expiry=lease)


def estate(*servers: Server) -> Snapshot:
    """Sites a-b-c in a line (a-b 10, b-c 10) and d linked to a (100); containers per site."""
    return Snapshot(
        containers={"/": Container("/", "root"),
                    "/A": Container("/A", "datacenter", vcenter="vcA"),
                    "/A/C1": Container("/A/C1", "cluster"),
                    "/B": Container("/B", "datacenter", vcenter="vcB"),
                    "/B/C2": Container("/B/C2", "cluster", vcenter="vcX"),
                    "/N": Container("/N", "datacenter")},
        sites={n: Site(n, (f"10.{i}.0.0/16",)) for i, n in enumerate("abcd")},
        site_links=[SiteLink("a", "b", 10), SiteLink("b", "c", 10), SiteLink("a", "d", 100)],
        vcenters={n: VCenter(n, f"http://{n}/sdk", "u") for n in ("vcA", "vcB")},
        servers={s.name: s for s in servers})


@pytest.mark.parametrize(("path", "vcenter"), [
    ("/A/C1", "vcA"), ("/A", "vcA"), ("/B/C2", "vcX"), ("/N", None), ("/", None), (None, None)])
def test_a_container_names_its_vcenter_for_everything_below(path: str | None, vcenter: str | None) -> None:
    assert vcenter_of(estate(), path) == vcenter


def test_the_vcenter_of_a_host() -> None:
    snap = estate()
    assert host_vcenter(snap, "/A/C1", "vcB") == "vcA"  # named above: the fallback plays no part
    assert host_vcenter(snap, "/N", "vcB") == "vcB"
    with pytest.raises(ValidationError, match="vCenter vcX, which is not registered"):
        host_vcenter(snap, "/B/C2", None)
    with pytest.raises(ValidationError, match="container set PATH --vcenter"):
        host_vcenter(snap, "/N", None)


def test_a_server_is_live_while_its_lease_runs() -> None:
    assert is_live(server("s", "a"), NOW) and not is_live(server("s", "a", DEAD), NOW)
    assert is_live(server("s", "a", None), NOW)  # an entry no daemon renews


@pytest.mark.parametrize(("servers", "covered"), [
    ((server("a1", "a"), server("b1", "b"), server("c1", "c"), server("d1", "d")), {}),
    ((server("a1", "a"), server("c1", "c"), server("d1", "d")), {"b": "a"}),  # tie at 10: name
    ((server("a1", "a"), server("c1", "c"), server("c2", "c"), server("d1", "d")),
     {"b": "c"}),  # tie at 10: more live servers
    ((server("b1", "b"), server("d1", "d")), {"a": "b", "c": "b"}),
    ((server("b1", "b", DEAD), server("d1", "d")), {"a": "d", "b": "d", "c": "d"}),
    ((server("a1", "a", DEAD),), {}),  # nobody live: nobody covers
])
def test_a_site_without_a_live_server_is_covered_by_the_cheapest_linked_one(
        servers: tuple[Server, ...], covered: dict[str, str]) -> None:
    assert covering_sites(estate(*servers), NOW) == covered


def test_the_sites_a_server_serves() -> None:
    snap = estate(server("b1", "b"), server("d1", "d"))
    assert sites_served(snap, "b", NOW) == ["b", "a", "c"]
    assert sites_served(snap, "d", NOW) == ["d"]


def test_hosts_of_a_dead_owner_are_taken_by_a_server_of_their_vcenter() -> None:
    me = server("a2", "a", vcenters=("vcA",))
    snap = estate(server("a1", "a", DEAD), server("b1", "b"), me)
    hosts = [(HostRecord("4c4c4544-0000-4000-8000-000000000001", owner="a1"), "/A/C1"),  # dead owner
             (HostRecord("4c4c4544-0000-4000-8000-000000000002", owner="b1"), "/A/C1"),  # live owner
             (HostRecord("4c4c4544-0000-4000-8000-000000000003", owner="a1"), "/B"),  # not my vCenter
             (HostRecord("4c4c4544-0000-4000-8000-000000000004", owner="gone"), "/A"),  # entry gone
             (HostRecord("4c4c4544-0000-4000-8000-000000000005"), "/A"),  # nobody's: adoption's
             (HostRecord("4c4c4544-0000-4000-8000-000000000006", owner="a2"), "/A")]  # mine
    assert orphans(snap, me, NOW, hosts, None) == [
        "4c4c4544-0000-4000-8000-000000000001", "4c4c4544-0000-4000-8000-000000000004"]


def _entries(**container: list[str]) -> list[tuple[str, dict[str, list[str]]]]:
    return [(BASE, {"objectClass": ["organizationalUnit"]}),
            (f"ou=inventory,{BASE}", {"objectClass": ["organizationalUnit", "statelessInventoryRoot"],
                                      "statelessVCenterName": ["vcRoot"]}),
            (f"cn=DC1,ou=inventory,{BASE}", {"objectClass": ["statelessContainer"], "cn": ["DC1"],
                                             "statelessKind": ["datacenter"], **container}),
            (f"ou=servers,{BASE}", {"objectClass": ["organizationalUnit"]}),
            (f"cn=s1,ou=servers,{BASE}", {"objectClass": ["statelessServer"], "cn": ["s1"],
                                          "statelessSite": ["a"], "statelessUrl": ["http://s1"],
                                          "statelessLeaseExpiry": ["20261128120030Z"]})]


def test_the_mapping_reads_vcenters_of_containers_and_leases_of_servers() -> None:
    snap = mapping.build_snapshot(BASE, _entries(statelessVCenterName=["vc1"]))
    assert snap.containers["/"].vcenter == "vcRoot" and snap.containers["/DC1"].vcenter == "vc1"
    assert snap.servers["s1"].lease_expiry == LIVE
    assert snap.problems == ()


@pytest.mark.parametrize("values", [["vc1", "vc2"], ["not a name"]])
def test_a_container_with_a_bad_vcenter_name_is_a_problem_that_blocks_below(values: list[str]) -> None:
    snap = mapping.build_snapshot(BASE, _entries(statelessVCenterName=values))
    assert "/DC1" not in snap.containers
    assert [p.attribute for p in snap.problems] == ["statelessVCenterName"]
    assert list(snap.blocking) == [(mapping.Scope.PATH, "/DC1")]

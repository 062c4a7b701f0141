"""The status page's files and the JSON documents behind it (`/v1/summary`, `/v1/problems`)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stateless.daemon.api import Api, routes
from stateless.daemon.overview import Overview, host_sites, summary_document
from stateless.model.identity import HostIdentity
from stateless.model.inventory import HostRecord, Problem, Site, Snapshot
from tests.unit.test_api import Controller, call, doc

U = [f"4c4c4544-0000-4000-8000-{n:012x}" for n in range(6)]


def host(n: int, state: str | None, location: str | None = "/DC1/C1", reason: str = "",
         since: str = "2026-01-01T00:00:00+00:00") -> dict[str, Any]:
    return {"host": U[n], "state": state, "reason": reason, "location": location, "since": since}


def test_summary_counts_by_state_site_and_cluster_and_lists_who_needs_attention() -> None:
    hosts = [host(0, "compliant"), host(1, "failed", reason="vlan 5000", since="2026-01-02"),
             host(2, "drifted", "/DC1/C2", "ntp", since="2026-01-01T00:00:01"),
             host(3, "quarantined", "/DC1/C2"), host(4, None, None), host(5, "applying")]
    sites = {U[0]: "a", U[1]: "a", U[2]: "b", U[3]: "b", U[5]: "a"}
    got = summary_document(hosts=hosts, sites=sites, health={"name": "sd1", "site": "a", "ok": 1},
                           problems=3, mode="report", now=0.0, vcenters={})
    assert got["states"] == {"applying": 1, "compliant": 1, "drifted": 1, "failed": 1,
                             "quarantined": 1, "registered": 1}
    assert got["sites"] == {"": {"registered": 1},
                            "a": {"applying": 1, "compliant": 1, "failed": 1},
                            "b": {"drifted": 1, "quarantined": 1}}
    assert got["clusters"]["/DC1/C2"] == {"drifted": 1, "quarantined": 1}
    assert got["clusters"][""] == {"registered": 1}
    assert [(a["host"], a["state"], a["reason"]) for a in got["attention"]] == [
        (U[3], "quarantined", ""), (U[2], "drifted", "ntp"), (U[1], "failed", "vlan 5000")]
    assert got["attention_total"] == 3 and got["problems"] == 3
    assert (got["name"], got["mode"], got["time"]) == ("sd1", "report", "1970-01-01T00:00:00+00:00")
    assert got["replicas"] is None


def test_attention_is_capped_but_counted() -> None:
    hosts = [host(n, "failed") for n in range(5)]
    got = summary_document(hosts=hosts, sites={}, health={}, problems=0, mode="enforce", now=0,
                           vcenters={}, attention_limit=2)
    assert len(got["attention"]) == 2 and got["attention_total"] == 5


def test_a_host_site_is_the_site_of_its_birth_address() -> None:
    snapshot = Snapshot(
        sites={"a": Site("a", ("10.1.0.0/16",)), "b": Site("b", ("10.2.0.0/16",))},
        hosts={U[0]: HostRecord(U[0], identity=HostIdentity(U[0], ipv4="10.2.3.4")),
               U[1]: HostRecord(U[1]), U[2]: HostRecord(U[2], identity=HostIdentity(U[2]))})
    assert host_sites(snapshot) == {U[0]: "b", U[1]: "", U[2]: ""}


class Source:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.known_problems: frozenset[Problem] = frozenset()

    def hosts(self) -> list[dict[str, Any]]:
        return []

    def health(self) -> dict[str, Any]:
        return {}


def test_problems_are_the_engines_in_listing_order() -> None:
    first = Problem("cn=b", "statelessOrder", "0", "must be >= 1")
    second = Problem("CN=a", "statelessValue", "x", "not a number")
    source = Source(Snapshot())
    source.known_problems = frozenset({first, second})
    overview = Overview(source, lambda: 0.0, "enforce")
    assert overview.problems_document() == {"problems": [second.to_json(), first.to_json()]}
    assert overview.summary()["problems"] == 2


@pytest.mark.parametrize(("path", "kind"), [("/", "text/html"), ("/static/status.js", "text/javascript"),
                                            ("/static/status.css", "text/css")])
def test_the_page_files_are_served_with_a_strict_policy(path: str, kind: str) -> None:
    status, headers, body = call(Api(routes(Controller(), CollectorRegistry())), "GET", path)
    assert status == 200 and headers["content-type"].startswith(kind)
    assert "default-src 'none'" in headers["content-security-policy"] and body


def test_the_page_loads_nothing_from_elsewhere() -> None:
    api = Api(routes(Controller(), CollectorRegistry()))
    html = call(api, "GET", "/")[2].decode()
    script = call(api, "GET", "/static/status.js")[2].decode()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "http" not in re.sub(r"//.*", "", script)  # no absolute URL outside comments
    for path in re.findall(r"getJSON\(`?\"?(/[^`\"$]*)", script):
        assert path in ("/v1/summary", "/v1/problems", "/v1/hosts/"), path


def test_summary_and_problems_are_json_routes() -> None:
    api = Api(routes(Controller(), CollectorRegistry()))
    assert doc(call(api, "GET", "/v1/summary")[2]) == {"hosts": 0, "states": {}}
    assert doc(call(api, "GET", "/v1/problems")[2]) == {"problems": []}

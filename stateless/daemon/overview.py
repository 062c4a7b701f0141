"""What the status page shows, as JSON a script can read too: `/v1/summary`, `/v1/problems`.

Built from what the engine already answers (its host documents, `/healthz`) and its current
directory view; the counting itself is pure (`summary_document`).  The directory problems are
computed once per snapshot: the page polls, the directory changes far less often.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from stateless.daemon.documents import iso
from stateless.model.inventory import Problem, Snapshot
from stateless.policy.problems import problem_order
from stateless.sites import site_of

# States that need an operator: the host is not as its policy says, or not allowed to be.
ATTENTION = ("failed", "drifted", "quarantined")
UNKNOWN_SITE = ""  # a host whose address no site's subnets contain (or with no address yet)
UNPLACED = ""  # a host with no location yet
REGISTERED = "registered"  # in the directory (added by an admin), never born yet


class Source(Protocol):
    """The engine, as the overview reads it."""

    snapshot: Snapshot
    known_problems: frozenset[Problem]  # listed in the snapshot thread by the change feed

    def hosts(self) -> list[dict[str, Any]]: ...

    def health(self) -> dict[str, Any]: ...


def host_sites(snapshot: Snapshot) -> dict[str, str]:
    """Each host's site: the site whose subnets hold the address of its last birth."""
    sites = list(snapshot.sites.values())
    found = {}
    for uuid, host in snapshot.hosts.items():
        address = host.identity.ipv4 if host.identity is not None else None
        found[uuid] = (site_of(sites, address) if address else None) or UNKNOWN_SITE
    return found


def _count(rows: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """{group: {state: hosts}} from (group, state) pairs."""
    groups: dict[str, Counter[str]] = {}
    for group, state in rows:
        groups.setdefault(group, Counter())[state] += 1
    return {group: dict(sorted(counts.items())) for group, counts in sorted(groups.items())}


def summary_document(*, hosts: list[dict[str, Any]], sites: Mapping[str, str],
                     health: dict[str, Any], problems: int, mode: str, now: float,
                     vcenters: Mapping[str, dict[str, Any]], attention_limit: int = 200
                     ) -> dict[str, Any]:
    """`GET /v1/summary`: hosts by state overall, per site and per cluster, and who needs
    attention (at most `attention_limit`, the longest-standing first)."""
    states = [(doc["host"], doc.get("state") or REGISTERED) for doc in hosts]
    by_uuid = {doc["host"]: doc for doc in hosts}
    attention = [by_uuid[uuid] for uuid, state in states if state in ATTENTION]
    attention.sort(key=lambda doc: (doc.get("since") or "", doc["host"]))
    return {
        "name": health.get("name"), "site": health.get("site"), "mode": mode, "time": iso(now),
        "health": health,
        "hosts": len(hosts),
        "states": dict(sorted(Counter(state for _, state in states).items())),
        "sites": _count((sites.get(uuid, UNKNOWN_SITE), state) for uuid, state in states),
        "clusters": _count((by_uuid[uuid].get("location") or UNPLACED, state)
                           for uuid, state in states),
        "attention": [{"host": doc["host"], "state": doc.get("state"),
                       "reason": doc.get("reason", ""), "location": doc.get("location"),
                       "site": sites.get(doc["host"], UNKNOWN_SITE), "since": doc.get("since")}
                      for doc in attention[:attention_limit]],
        "attention_total": len(attention),
        "problems": problems,
        "vcenters": dict(sorted(vcenters.items())),
        "replicas": None,
    }


class Overview:
    """The summary and problems documents of one engine."""

    def __init__(self, source: Source, clock: Callable[[], float], mode: str) -> None:
        self._source = source
        self._clock = clock
        self._mode = mode
        # name -> {"state", "reason", ...}: the health of each vCenter, when something watches it
        self.vcenter_health: Callable[[], Mapping[str, dict[str, Any]]] = dict

    def problems(self) -> list[Problem]:
        """The engine's problems in `stateless problems` order."""
        return sorted(self._source.known_problems, key=problem_order)

    def problems_document(self) -> dict[str, Any]:
        """`GET /v1/problems`: what `stateless problems --json` prints, from this daemon's view."""
        return {"problems": [p.to_json() for p in self.problems()]}

    def summary(self) -> dict[str, Any]:
        snapshot = self._source.snapshot
        return summary_document(hosts=self._source.hosts(), sites=host_sites(snapshot),
                                health=self._source.health(), problems=len(self.problems()),
                                mode=self._mode, now=self._clock(),
                                vcenters=self.vcenter_health())


__all__ = ["ATTENTION", "Overview", "host_sites", "summary_document"]

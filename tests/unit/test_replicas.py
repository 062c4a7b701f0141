"""Which replica's version wins, and what a repair does: the pure comparison, table-driven."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stateless.directory import replicas
from stateless.directory.replicas import Divergence, Entry, ReplicaView, Version
from stateless.errors import DirectoryError, ValidationError

A, B, C = "ldap://a", "ldap://b", "ldap://c"
BASE = "ou=stateless,dc=example,dc=com"
P = f"cn=P,ou=policies,{BASE}"


def csn(second: int, sid: int) -> str:
    return f"20260101000{second:03d}.000000Z#000000#{sid:03x}#000000"


def entry(dn: str, at: int, sid: int = 1, uuid: str = "u1", **values: str) -> Entry:
    attrs = {"objectclass": frozenset({b"organizationalUnit"}),
             **{k.lower(): frozenset({v.encode()}) for k, v in values.items()}}
    return Entry(dn, csn(at, sid), uuid, frozenset(attrs.items()))


def view(url: str, *entries: Entry, seen: dict[int, int] | None = None) -> ReplicaView:
    context = {sid: csn(at, sid) for sid, at in (seen or {}).items()}
    return ReplicaView(url, {e.dn.lower(): e for e in entries}, context)


def kinds(found: list[Divergence]) -> list[tuple[str, str, str, str]]:
    return [(d.dn, d.kind, d.newest, d.action) for d in found]


def test_identical_replicas_have_nothing_to_report() -> None:
    e = entry(P, 1, description="x")
    assert replicas.compare([view(A, e), view(B, e), view(C, e)]) == []


@pytest.mark.parametrize(("views", "expected"), [
    # different values: the highest entryCSN wins, wherever it is
    ([view(A, entry(P, 2, 2, description="older")), view(B, entry(P, 3, 1, description="newer"))],
     [(P, "values", B, "rewrite")]),
    # same values, different CSN
    ([view(A, entry(P, 2, 1)), view(B, entry(P, 3, 2))], [(P, "csn", B, "rewrite")]),
    # same DN created twice (different entryUUID)
    ([view(A, entry(P, 2, 1, uuid="u1")), view(B, entry(P, 2, 1, uuid="u2"))],
     [(P, "values", A, "rewrite")]),
    # equal CSNs, different values: the first replica in the order given
    ([view(A, entry(P, 2, description="a")), view(B, entry(P, 2, description="b"))],
     [(P, "values", A, "rewrite")]),
    # missing where the version never arrived (b has seen server 1 only up to second 1)
    ([view(A, entry(P, 2, 1)), view(B, seen={1: 1})], [(P, "missing", A, "rewrite")]),
    # missing where b saw that version and deleted it since: the deletion wins
    ([view(A, entry(P, 2, 1)), view(B, seen={1: 5})], [(P, "missing", B, "delete")]),
    # ... unless something was added below it meanwhile: then it comes back
    ([view(A, entry(P, 2, 1), entry(f"ou=kid,{P}", 6, 1)),
      view(B, entry(f"ou=kid,{P}", 6, 1), seen={1: 6})], [(P, "missing", A, "rewrite")]),
    # a replica that knows nothing of the server that wrote it has not seen it
    ([view(A, entry(P, 2, 3)), view(B, seen={1: 9})], [(P, "missing", A, "rewrite")]),
])
def test_divergence_and_the_winner(views: list[ReplicaView], expected: list[tuple[str, ...]]) -> None:
    assert kinds(replicas.compare(views)) == expected


def test_versions_per_replica_and_json() -> None:
    [d] = replicas.compare([view(A, entry(P, 2)), view(B), view(C, entry(P, 2))])
    assert d.replicas == {A: Version(csn(2, 1), True), B: Version(None, False),
                          C: Version(csn(2, 1), True)}
    assert d.as_json() == {"dn": P, "kind": "missing", "newest": A, "action": "rewrite",
                           "replicas": {A: {"csn": csn(2, 1), "present": True},
                                        B: {"csn": None, "present": False},
                                        C: {"csn": csn(2, 1), "present": True}}}


def test_parents_come_before_children_and_the_plan_orders_repairs() -> None:
    parent, child = f"ou=x,{BASE}", f"ou=y,ou=x,{BASE}"
    gone = f"ou=gone,{BASE}"
    found = replicas.compare([
        view(A, entry(child, 2), entry(parent, 2), entry(gone, 1), seen={1: 1}),
        view(B, seen={1: 5}),  # b deleted `gone` (and x, y) after seeing them...
        view(C, entry(gone, 1), seen={1: 1}),
    ])
    assert [d.dn for d in found] == [gone, parent, child]
    report = replicas.CheckReport(BASE, (A, B, C), tuple(found), 3)
    assert [(a.dn, a.action, a.replica) for a in replicas.plan(report)] == [
        (child, "delete", A), (gone, "delete", A), (gone, "delete", C), (parent, "delete", A)]


def test_csn_server() -> None:
    assert replicas.csn_server("20260101000000.000000Z#000000#00a#000000") == 10
    with pytest.raises(ValidationError, match="TIME#COUNT#SID#MOD"):
        replicas.csn_server("garbage")


# --- the settle period: replication in flight is not divergence --------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, ReplicaView]]]:
    """Each item is what one round of reads returns per replica; the last one repeats."""
    rounds: list[dict[str, ReplicaView]] = []
    calls: dict[str, int] = {}

    def read(url: str, bind_dn: str | None, password: str | None, base: str) -> ReplicaView:
        n = calls.get(url, 0)
        calls[url] = n + 1
        return rounds[min(n, len(rounds) - 1)][url]

    monkeypatch.setattr(replicas, "read_replica", read)
    yield rounds


def test_an_entry_that_catches_up_within_the_settle_period_is_not_reported(
    reads: list[dict[str, ReplicaView]]
) -> None:
    e = entry(P, 2)
    reads += [{A: view(A, e), B: view(B)}, {A: view(A, e), B: view(B)}, {A: view(A, e), B: view(B, e)}]
    clock = Clock()
    report = replicas.check([A, B], None, None, BASE, settle=2.0, poll=0.5, clock=clock,
                            sleep=clock.sleep)
    assert report.converged and report.checked == 1
    assert clock.now == 1.0  # stopped as soon as it caught up


def test_a_divergence_that_stays_is_reported_after_the_settle_period(
    reads: list[dict[str, ReplicaView]]
) -> None:
    diverged = {A: view(A, entry(P, 2, description="a")), B: view(B, entry(P, 3, 2, description="b"))}
    new = entry(f"ou=new,{BASE}", 4)
    # a write that arrives during the settle period is not reported either
    reads += [diverged, {A: view(A, *diverged[A].entries.values(), new), B: diverged[B]}]
    clock = Clock()
    report = replicas.check([A, B], None, None, BASE, settle=2.0, poll=0.5, clock=clock,
                            sleep=clock.sleep)
    assert kinds(list(report.diverged)) == [(P, "values", B, "rewrite")]
    assert clock.now == 2.0 and report.as_json()["checked"] == 1


def test_check_needs_two_replicas_and_the_base(reads: list[dict[str, ReplicaView]]) -> None:
    with pytest.raises(ValidationError, match="at least two"):
        replicas.check([A, A + "/"], None, None, BASE)
    reads.append({A: view(A), B: view(B)})
    with pytest.raises(DirectoryError, match="not found on any of ldap://a, ldap://b"):
        replicas.check([A, B], None, None, BASE, settle=0)

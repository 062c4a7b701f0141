"""The host-name index: kept in step incrementally, it finds exactly what a full scan finds."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from stateless.model import HostIdentity
from stateless.model.inventory import HostRecord, HostState, Snapshot
from stateless.model.names import HostNames
from stateless.model.security import PinnedIdentity
from stateless.prepare import name_clash

UUIDS = [f"4c4c4544-0000-4000-8000-{n:012d}" for n in range(6)]
LABELS = ["esx1", "ESX1", "esx2", "esx10", "10.0.0.1"]
DOMAINS = ["", "example.com", "lab.example.com"]


@st.composite
def records(draw: st.DrawFn, uuid: str) -> HostRecord:
    hostname = draw(st.sampled_from([None, *LABELS]))
    ident = HostIdentity(uuid, hostname=hostname, domain=draw(st.sampled_from(DOMAINS)) or None,
                         ipv4=draw(st.sampled_from([None, "10.0.0.1", "10.0.0.2"])))
    answers = {"dns.hostname": draw(st.sampled_from(LABELS))} if draw(st.booleans()) else {}
    pinned = PinnedIdentity(datetime(2026, 1, 1, tzinfo=UTC),
                            name=draw(st.sampled_from(LABELS)) + ".example.com") \
        if draw(st.booleans()) else None
    state = draw(st.sampled_from([HostState.COMPLIANT, HostState.QUARANTINED, None]))
    return HostRecord(uuid, identity=draw(st.sampled_from([None, ident])), answers=answers,
                      pinned=pinned, state=state)


views = st.lists(st.fixed_dictionaries({}, optional={u: records(u) for u in UUIDS}),
                 min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(views, st.sampled_from([f"{label}.{d}".rstrip(".") for label in LABELS for d in DOMAINS]))
def test_the_index_follows_each_view_and_finds_what_a_full_scan_finds(
        sequence: list[dict[str, HostRecord]], name: str) -> None:
    names = HostNames()
    before: dict[str, HostRecord] = {}
    for hosts in sequence:
        changed = {u for u in before.keys() | hosts.keys() if before.get(u) != hosts.get(u)}
        names.update(before, hosts, changed)
        before = hosts
    rebuilt = HostNames()
    rebuilt.update({}, before)
    assert names.candidates(name) == rebuilt.candidates(name)
    snapshot = Snapshot(hosts=before)
    for host in before.values():
        for domain in DOMAINS:
            found = name_clash(snapshot, host, name, domain, names)
            assert (found is None) == (name_clash(snapshot, host, name, domain) is None)
            if found is not None:  # one of the clashing hosts (a scan may meet another first)
                alone = Snapshot(hosts={found: before[found]})
                assert name_clash(alone, host, name, domain) == found
    assert set(names.candidates(name)) >= {
        u for u, h in before.items() if name.casefold() in
        {(h.pinned.name if h.pinned else "").casefold(),
         (h.identity.fqdn if h.identity else "").casefold()}}


def test_a_host_leaves_the_index_with_its_entry() -> None:
    names = HostNames()
    host = HostRecord(UUIDS[0], identity=HostIdentity(UUIDS[0], hostname="esx1",
                                                      domain="example.com"))
    names.update({}, {UUIDS[0]: host})
    assert names.candidates("ESX1.example.com") == [UUIDS[0]]
    names.update({UUIDS[0]: host}, {}, [UUIDS[0]])
    assert names.candidates("esx1.example.com") == []

"""Mirror snapshots: derived from the last one change by change, always equal to a full build."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from stateless.directory import mapping
from stateless.directory.assembly import Assembly
from stateless.directory.mirror import Mirror, dn_norm
from stateless.model.inventory import Snapshot

BASE = "ou=stateless,dc=example,dc=com"
HOSTS = f"ou=hosts,{BASE}"
Raw = dict[str, list[bytes]]


def uuid_of(n: int) -> str:
    return f"4c4c4544-0042-3510-8052-{n:012x}"


def raw(**values: Sequence[str]) -> Raw:
    """Attributes as the change feed delivers them: bytes values, names as the server spells them."""
    return {name: [v.encode() for v in vs] for name, vs in values.items()}


def host(n: int, state: str = "compliant", **extra: Sequence[str]) -> tuple[str, str, Raw]:
    uuid = uuid_of(n)
    values: dict[str, Sequence[str]] = {
        "objectclass": ["top", "statelessHost"], "statelessUuid": [uuid.upper()],
        "statelessLocation": ["/DC1"], "statelessMac": [f"00:50:56:00:00:{n:02x}"],
        "statelessState": [state], "statelessAnswer": [f"dns.hostname=esx{n:02d}"]}
    values.update(extra)
    return f"entry-host-{n}", f"statelessUuid={uuid},{HOSTS}", raw(**values)


def link(entry_uuid: str, parent: str, policy: str, order: int = 1) -> tuple[str, str, Raw]:
    return entry_uuid, f"statelessLinkPolicy={policy},{parent}", raw(
        objectClass=["statelessPolicyLink"], statelessLinkPolicy=[policy], statelessOrder=[str(order)])


def directory() -> list[tuple[str, str, Raw]]:
    inv = f"ou=inventory,{BASE}"
    return [
        ("entry-base", BASE, raw(objectClass=["organizationalUnit"])),
        ("entry-inv", inv, raw(objectClass=["organizationalUnit", "statelessInventoryRoot"])),
        ("entry-dc1", f"cn=DC1,{inv}", raw(objectClass=["statelessContainer"], cn=["DC1"],
                                             statelessKind=["datacenter"])),
        link("entry-dc1-link", f"cn=DC1,{inv}", "Base"),
        ("entry-policies", f"ou=policies,{BASE}", raw(objectClass=["organizationalUnit"])),
        ("entry-policy", f"cn=Base,ou=policies,{BASE}", raw(
            objectClass=["statelessPolicy"], cn=["Base"], statelessNtp=["servers=10.0.0.1"])),
        ("entry-pools", f"ou=pools,{BASE}", raw(objectClass=["organizationalUnit"])),
        ("entry-pool", f"cn=vmotion,ou=pools,{BASE}", raw(
            objectClass=["statelessIpPool"], cn=["vmotion"], statelessRangeStart=["10.0.0.10"],
            statelessRangeEnd=["10.0.0.50"], statelessNetmask=["255.255.255.0"])),
        ("entry-hosts", HOSTS, raw(objectClass=["organizationalUnit"])),
        *(host(n) for n in range(1, 6)),
        link("entry-host-1-link", host(1)[1], "Base", 2),
    ]


class Feed:
    """A mirror and the entries it should hold, to build the expected snapshot independently."""

    def __init__(self, entries: list[tuple[str, str, Raw]], monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries = {entry_uuid: (dn, values) for entry_uuid, dn, values in entries}
        self.full_builds = 0
        real = Assembly.build

        def counting(assembly: Assembly, view: Any) -> Snapshot:
            self.full_builds += 1
            return real(assembly, view)

        monkeypatch.setattr(Assembly, "build", counting)
        self.mirror = Mirror()
        self.mirror.load(entries)
        self.last = self.mirror.snapshot(BASE)

    def change(self, kind: str, entry: tuple[str, str, Raw]) -> None:
        entry_uuid, dn, values = entry
        if kind == "delete":
            del self.entries[entry_uuid]
            values = {}
        else:
            self.entries[entry_uuid] = (dn, values)
        self.mirror.on_change(kind, entry_uuid, dn, values)

    def expected(self, base: str = BASE) -> Snapshot:
        ordered = sorted(self.entries.values(), key=lambda e: (len(mapping.split_dn(e[0])), dn_norm(e[0])))
        return mapping.build_snapshot(base, [(dn, mapping.canonical_attrs(values)) for dn, values in ordered])

    def snapshot(self, base: str = BASE) -> tuple[Snapshot, bool]:
        """The mirror's snapshot (checked against a full build), and whether it was derived
        from the last one rather than built in full."""
        before = self.full_builds
        snap = self.mirror.snapshot(base)
        assert snap == self.expected(base)
        self.last = snap
        return snap, self.full_builds == before


@pytest.fixture
def feed(monkeypatch: pytest.MonkeyPatch) -> Feed:
    return Feed(directory(), monkeypatch)


def same_hosts_but(before: Snapshot, after: Snapshot, *changed: int) -> bool:
    """Every host of `before` but `changed` is the very object of `after`."""
    skip = {uuid_of(n) for n in changed}
    return all(after.hosts.get(uuid) is record for uuid, record in before.hosts.items()
               if uuid not in skip)


def test_a_host_write_replaces_that_host_only(feed: Feed) -> None:
    before = feed.last
    assert feed.full_builds == 1
    feed.change("modify", host(3, "applying", statelessStateReason=["birth"],
                               statelessAllocation=["vmknic.vMotion; pool=vmotion; address=10.0.0.11"]))
    update = feed.mirror.update(BASE)
    assert update.before is before and update.hosts == {uuid_of(3)}
    snap = update.snapshot
    assert snap == feed.expected()
    changed = uuid_of(3)
    assert snap.hosts[changed].state == "applying"
    assert snap.hosts[changed].allocations[0].address == "10.0.0.11"
    for uuid, record in snap.hosts.items():
        assert (record is before.hosts[uuid]) == (uuid != changed)
    assert snap.policies["Base"] is before.policies["Base"]
    assert feed.mirror.snapshot(BASE) is snap  # nothing changed since
    assert feed.mirror.update(BASE).hosts == frozenset()


def test_a_modified_host_keeps_its_links_and_an_added_one_has_none(feed: Feed) -> None:
    assert [lk.policy for lk in feed.last.hosts[uuid_of(1)].links] == ["Base"]
    feed.change("modify", host(1, "drifted"))
    feed.change("add", host(9, "pending"))
    feed.change("modify", host(9, "applying"))
    snap, derived = feed.snapshot()
    assert derived
    assert [lk.policy for lk in snap.hosts[uuid_of(1)].links] == ["Base"]
    assert snap.hosts[uuid_of(9)].links == () and snap.hosts[uuid_of(9)].state == "applying"


def test_a_dn_sent_in_other_case_is_the_same_host(feed: Feed) -> None:
    entry_uuid, dn, values = host(2, "failed")
    feed.change("modify", (entry_uuid, dn.replace("ou=hosts", "OU=Hosts"), values))
    snap, derived = feed.snapshot()
    assert derived and snap.hosts[uuid_of(2)].dn.endswith(f"OU=Hosts,{BASE}")


# What each change touches besides host 4: the hosts whose record may change.
CHANGES = {"host link": (1,), "container link": (), "policy": (), "delete host": (2,),
           "delete link": (1,), "rename host": (5, 55), "uuid changed": (5, 56),
           "outside hosts": (), "host turned policy": (5,), "host turned link": (5,),
           "delete policy": (), "bad container": ()}


@pytest.mark.parametrize("what", sorted(CHANGES))
def test_every_change_is_applied_without_a_full_build(feed: Feed, what: str) -> None:
    before = feed.last
    feed.change("modify", host(4, "drifted"))  # in the same batch as the change below
    entry_uuid, dn, values = host(5)
    if what == "host link":
        feed.change("modify", link("entry-host-1-link", host(1)[1], "Base", 7))
    elif what == "container link":
        feed.change("add", link("entry-dc1-link2", f"cn=DC1,ou=inventory,{BASE}", "Base", 3))
    elif what == "policy":
        feed.change("modify", ("entry-policy", f"cn=Base,ou=policies,{BASE}", raw(
            objectClass=["statelessPolicy"], cn=["Base"], statelessNtp=["servers=10.0.0.2"])))
    elif what == "delete policy":
        feed.change("delete", ("entry-policy", f"cn=Base,ou=policies,{BASE}", {}))
    elif what == "bad container":
        feed.change("modify", ("entry-dc1", f"cn=DC1,ou=inventory,{BASE}", raw(
            objectClass=["statelessContainer"], cn=["DC1"], statelessKind=["galaxy"])))
    elif what == "delete host":
        feed.change("delete", host(2))
    elif what == "delete link":
        feed.change("delete", link("entry-host-1-link", host(1)[1], "Base", 2))
    elif what == "rename host":
        feed.change("modify", (entry_uuid, f"statelessUuid={uuid_of(55)},{HOSTS}",
                               host(55)[2]))
    elif what == "uuid changed":
        feed.change("modify", (entry_uuid, dn, host(56)[2]))
    elif what in ("host turned policy", "host turned link"):
        kind = "statelessPolicy" if what == "host turned policy" else "statelessPolicyLink"
        values = {**values, **raw(objectclass=["statelessHost", kind], cn=["Extra"],
                                  statelessLinkPolicy=["Base"])}
        feed.change("modify", (entry_uuid, dn, values))
    elif what == "outside hosts":
        feed.change("add", ("entry-stray", f"statelessUuid={uuid_of(57)},ou=pools,{BASE}", host(57)[2]))
    update = feed.mirror.update(BASE)
    assert update.snapshot == feed.expected()
    assert feed.full_builds == 1
    snap = update.snapshot
    assert snap.hosts[uuid_of(4)].state == "drifted"
    assert same_hosts_but(before, snap, 4, *CHANGES[what])
    assert update.hosts == {uuid_of(n) for n in (4, *CHANGES[what])} & (
        before.hosts.keys() | snap.hosts.keys())
    if what not in ("policy", "delete policy"):
        assert snap.policies["Base"] is before.policies["Base"]


def test_a_renamed_container_moves_its_links(feed: Feed) -> None:
    inv = f"ou=inventory,{BASE}"
    feed.change("modify", ("entry-dc1", f"cn=DC2,{inv}", raw(
        objectClass=["statelessContainer"], cn=["DC2"], statelessKind=["datacenter"])))
    moved = link("entry-dc1-link", f"cn=DC2,{inv}", "Base")  # the server moves the subtree
    feed.entries[moved[0]] = (moved[1], moved[2])
    snap, derived = feed.snapshot()
    assert derived and [lk.policy for lk in snap.containers["/DC2"].links] == ["Base"]
    assert "/DC1" not in snap.containers


def test_refreshes_are_applied_and_another_base_builds_in_full(feed: Feed) -> None:
    feed.mirror.on_refresh_start()
    assert feed.mirror.snapshot(BASE) is feed.last  # nothing changed yet
    feed.change("modify", host(1, "failed"))
    assert feed.snapshot()[1]
    feed.change("modify", host(1, "applying"))
    feed.change("delete", host(3))
    feed.mirror.on_refresh_done()
    assert feed.snapshot()[1]
    other = "ou=Stateless,dc=example,dc=com"
    feed.change("modify", host(1, "drifted"))
    assert not feed.snapshot(other)[1]
    feed.change("modify", host(1, "failed"))
    assert feed.snapshot(other)[1]
    assert not feed.snapshot(BASE)[1]


def test_a_host_turned_bad_and_back(feed: Feed) -> None:
    feed.change("modify", host(2, "exploded", statelessAllocation=["vmknic.x; pool=vmotion"],
                               statelessAnswer=["dns.hostname"]))
    snap, derived = feed.snapshot()
    assert derived
    assert {p.attribute for p in snap.hosts[uuid_of(2)].problems} == {
        "statelessState", "statelessAllocation", "statelessAnswer"}
    feed.change("modify", host(2, "compliant"))
    snap, derived = feed.snapshot()
    assert derived and snap.hosts[uuid_of(2)].problems == ()


def test_a_host_that_fails_to_load_is_a_problem_until_it_loads(feed: Feed) -> None:
    broken = ("entry-host-8", f"statelessUuid=bad,{HOSTS}", raw(objectClass=["statelessHost"],
                                                                statelessUuid=["bad"]))
    feed.change("add", broken)
    snap, derived = feed.snapshot()
    assert derived and any(p.dn == broken[1] for p in snap.problems)
    feed.change("modify", (broken[0], broken[1], raw(objectClass=["statelessHost"], statelessUuid=["bad"],
                                                    statelessState=["failed"])))
    snap, derived = feed.snapshot()
    assert derived and any(p.dn == broken[1] for p in snap.problems)
    feed.change("modify", (broken[0], broken[1], host(8)[2]))
    snap, derived = feed.snapshot()
    assert derived and uuid_of(8) in snap.hosts and not snap.problems


def test_an_added_host_takes_links_that_were_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    waiting = link("entry-early-link", host(7)[1], "Base", 4)
    feed = Feed([*directory(), waiting], monkeypatch)
    feed.change("add", host(7))
    snap, derived = feed.snapshot()
    assert derived and [lk.policy for lk in snap.hosts[uuid_of(7)].links] == ["Base"]


def test_of_hosts_claiming_one_uuid_the_last_dn_wins(feed: Feed) -> None:
    twin = ("entry-twin", f"statelessUuid=twin,{HOSTS}", host(3, "failed")[2])
    feed.change("add", twin)
    snap, derived = feed.snapshot()
    assert derived and snap.hosts[uuid_of(3)].dn == twin[1]  # the later DN wins
    feed.change("modify", (twin[0], twin[1], host(3, "drifted")[2]))
    snap, derived = feed.snapshot()
    assert derived and snap.hosts[uuid_of(3)].state == "drifted"
    feed.change("modify", host(3, "pending"))  # the loser: its record is not in the snapshot
    snap, derived = feed.snapshot()
    assert derived and snap.hosts[uuid_of(3)].state == "drifted"
    feed.change("delete", twin)  # the loser takes over
    snap, derived = feed.snapshot()
    assert derived and snap.hosts[uuid_of(3)].state == "pending"


def test_a_change_during_a_build_lands_in_the_next_snapshot(feed: Feed,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = Assembly.apply

    def racing(*args: Any) -> frozenset[str]:
        monkeypatch.setattr(Assembly, "apply", real)
        feed.change("modify", host(5, "failed"))  # the consumer's thread, mid-build
        return real(*args)

    monkeypatch.setattr(Assembly, "apply", racing)
    feed.change("modify", host(4, "drifted"))
    snap = feed.mirror.snapshot(BASE)
    assert snap.hosts[uuid_of(4)].state == "drifted" and snap.hosts[uuid_of(5)].state == "compliant"
    snap, derived = feed.snapshot()
    assert derived and snap.hosts[uuid_of(5)].state == "failed"


def test_a_failed_build_is_followed_by_a_full_one(feed: Feed, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Assembly.apply

    def failing(*args: Any) -> frozenset[str]:
        raise MemoryError

    monkeypatch.setattr(Assembly, "apply", failing)
    feed.change("modify", host(4, "drifted"))
    with pytest.raises(MemoryError):
        feed.mirror.snapshot(BASE)
    monkeypatch.setattr(Assembly, "apply", real)
    snap, derived = feed.snapshot()
    assert not derived and snap.hosts[uuid_of(4)].state == "drifted"


def test_snapshots_from_two_threads_take_turns(feed: Feed, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Assembly.apply
    inside, most = 0, 0
    lock = threading.Lock()
    entered = threading.Event()

    def slow(*args: Any) -> frozenset[str]:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        entered.set()
        time.sleep(0.2)
        with lock:
            inside -= 1
        return real(*args)

    monkeypatch.setattr(Assembly, "apply", slow)

    def write_and_read(n: int) -> None:
        feed.change("modify", host(n, "drifted"))
        feed.mirror.snapshot(BASE)

    first = threading.Thread(target=write_and_read, args=(1,))
    first.start()
    entered.wait(5)
    second = threading.Thread(target=write_and_read, args=(2,))
    second.start()
    first.join()
    second.join()
    assert most == 1
    assert feed.mirror.snapshot(BASE) == feed.expected()


def _random_host(rng: random.Random, n: int) -> tuple[str, str, Raw]:
    extra: dict[str, Sequence[str]] = {}
    if rng.random() < 0.5:
        extra["statelessAllocation"] = [rng.choice([
            f"vmknic.vMotion; pool=vmotion; address=10.0.0.{rng.randrange(10, 51)}",
            "vmknic.vMotion; pool=vmotion", "vMotion; pool=vmotion; address=10.0.0.12"])]
    if rng.random() < 0.5:
        extra["statelessAnswer"] = rng.sample(["dns.hostname=esx", "dns.domain=example.com",
                                               "dns.hostname", "ntp.servers=10.1.1.1"], 2)
    if rng.random() < 0.3:
        extra["statelessAppliedDigest"] = [f"{rng.getrandbits(64):016x}"]
    if rng.random() < 0.2:
        extra["statelessIpv4"] = [rng.choice(["10.0.0.7", "not-an-address"])]
    state = rng.choice(["pending", "applying", "compliant", "drifted", "failed", "Quarantined", "bogus"])
    return host(n, state, **extra)


@pytest.mark.parametrize("seed", range(8))
def test_random_host_writes_match_a_full_build(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    feed = Feed(directory(), monkeypatch)
    numbers = list(range(1, 6))
    for _ in range(60):
        before = feed.last
        touched: set[str] = set()
        for _ in range(rng.randrange(1, 4)):
            if rng.random() < 0.2:
                numbers.append(max(numbers) + 1)
                n = numbers[-1]
                feed.change("add", _random_host(rng, n))
            else:
                n = rng.choice(numbers)
                feed.change("modify", _random_host(rng, n))
            touched.add(uuid_of(n))
        if rng.random() < 0.1:
            feed.change("modify", link("entry-host-1-link", host(1)[1], "Base", rng.randrange(1, 5)))
            touched.add(uuid_of(1))
        snap, derived = feed.snapshot()
        assert derived
        assert set(snap.hosts) == set(before.hosts) | touched
        assert all(snap.hosts[uuid] is record for uuid, record in before.hosts.items()
                   if uuid not in touched)


def test_pool_allocations_alone_keep_the_snapshot_derived(feed: Feed) -> None:
    """Each allocation adds a value to its pool entry; no model reads it, so nothing changes."""
    _, dn, values = directory()[7]
    taken = raw(statelessAllocated=["10.0.0.10", "10.0.0.11"])
    feed.change("modify", ("entry-pool", dn, {**values, **taken}))
    snap, derived = feed.snapshot()
    assert derived and snap.pools["vmotion"] is feed.last.pools["vmotion"]
    # Allocation and host write in one batch: still derived, the host replaced.
    feed.change("modify", ("entry-pool", dn, {**values, **raw(statelessAllocated=["10.0.0.10"])}))
    feed.change("modify", host(3, "applying"))
    snap, derived = feed.snapshot()
    assert derived and snap.hosts[uuid_of(3)].state == "applying"
    # A change of the range itself is modelled: the pool is read again.
    feed.change("modify", ("entry-pool", dn, {**values, **raw(statelessRangeEnd=["10.0.0.60"])}))
    snap, derived = feed.snapshot()
    assert derived and snap.pools["vmotion"].end == "10.0.0.60"

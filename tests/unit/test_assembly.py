"""Random sequences of changes of every kind: the snapshot applied change by change equals a
full build of the same entries, problems and what they block included."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from stateless.directory import mapping
from stateless.directory.mirror import Mirror, dn_norm
from stateless.model.inventory import Snapshot

BASE = "ou=stateless,dc=example,dc=com"
Raw = dict[str, list[bytes]]


def raw(**values: Sequence[str]) -> Raw:
    return {name: [v.encode() for v in vs] for name, vs in values.items()}


def uuid_of(n: int) -> str:
    return f"4c4c4544-0042-3510-8052-{n:012x}"


def _ou(name: str) -> tuple[str, Raw]:
    return f"ou={name},{BASE}", raw(objectClass=["organizationalUnit"])


# Each slot is one entry (entryUUID) that the sequence adds, rewrites with one of its variants,
# or deletes; variants include values the mapping refuses, so problems come and go.
def _slots() -> dict[str, list[tuple[str, Raw]]]:
    inv, pol, hosts = f"ou=inventory,{BASE}", f"ou=policies,{BASE}", f"ou=hosts,{BASE}"
    dc1, cl1 = f"cn=DC1,{inv}", f"cn=C1,cn=DC1,{inv}"

    def container(dn: str, name: str, kind: str, block: str = "FALSE") -> tuple[str, Raw]:
        return dn, raw(objectClass=["statelessContainer"], cn=[name], statelessKind=[kind],
                       statelessBlockInheritance=[block])

    def link(parent: str, policy: str, order: str, enforced: str = "FALSE") -> tuple[str, Raw]:
        return f"statelessLinkPolicy={policy},{parent}", raw(
            objectClass=["statelessPolicyLink"], statelessLinkPolicy=[policy],
            statelessOrder=[order], statelessEnforced=[enforced])

    def policy(name: str, ntp: str) -> tuple[str, Raw]:
        return f"cn={name},{pol}", raw(objectClass=["statelessPolicy"], cn=[name], statelessNtp=[ntp])

    def host(n: int, dn_n: int | None = None, state: str = "compliant", **extra: Sequence[str]
             ) -> tuple[str, Raw]:
        values: dict[str, Sequence[str]] = {
            "objectClass": ["statelessHost"], "statelessUuid": [uuid_of(n)],
            "statelessLocation": ["/DC1/C1"], "statelessState": [state], **extra}
        return f"statelessUuid={uuid_of(dn_n or n)},{hosts}", raw(**values)

    slots: dict[str, list[tuple[str, Raw]]] = {
        name: [_ou(name)] for name in ("inventory", "policies", "hosts", "pools", "rules", "sites",
                                       "servers", "vcenters", "images")}
    slots.update({
        "dc1": [container(dc1, "DC1", "datacenter"), container(dc1, "DC1", "galaxy"),
                container(dc1, "DC1", "datacenter", "TRUE")],
        "cl1": [container(cl1, "C1", "cluster"), container(cl1, "C1", "cluster", "maybe")],
        "dc1-link": [link(dc1, "Base", "1"), link(dc1, "Base", "1", "TRUE"), link(dc1, "Base", "x")],
        "cl1-link": [link(cl1, "Extra", "2"), link(cl1, "bad name!", "1")],
        "base": [policy("Base", "servers=10.0.0.1"), policy("Base", "servers=10.0.0.2"),
                 policy("Base", "servers=")],
        "extra": [policy("Extra", "servers=10.0.0.9"), policy("Extra", "nonsense")],
        "pool": [(f"cn=vmotion,ou=pools,{BASE}", raw(
            objectClass=["statelessIpPool"], cn=["vmotion"], statelessRangeStart=[start],
            statelessRangeEnd=["10.0.0.50"], statelessNetmask=["255.255.255.0"]))
            for start in ("10.0.0.10", "10.0.0.60")],
        "rule": [(f"cn=r1,ou=rules,{BASE}", raw(
            objectClass=["statelessRule"], cn=["r1"], statelessOrder=["10"],
            statelessMatch=[match], statelessLocation=["/DC1/C1"]))
            for match in ("vendor=Dell*", "colour=blue")],
        "site": [(f"cn=s1,ou=sites,{BASE}", raw(objectClass=["statelessSite"], cn=["s1"],
                                                 statelessSubnet=[net]))
                 for net in ("10.0.0.0/24", "10.0.0.0/33")],
        "server": [(f"cn=d1,ou=servers,{BASE}", raw(
            objectClass=["statelessServer"], cn=["d1"], statelessSite=["s1"],
            statelessUrl=["https://d1:8443/"], statelessPriority=[prio]))
            for prio in ("0", "high")],
        "vcenter": [(f"cn=vc1,ou=vcenters,{BASE}", raw(
            objectClass=["statelessVCenter"], cn=["vc1"], statelessUrl=[url]))
            for url in ("https://vc1/sdk", "https://vc2/sdk")],
        "image": [(f"cn=esx8,ou=images,{BASE}", raw(
            objectClass=["statelessImage"], cn=["esx8"], statelessVersion=[v])) for v in ("8.0", "8.0u2")],
        "stray": [(f"cn=stray,ou=pools,{BASE}", raw(objectClass=["statelessHost"], cn=["stray"])),
                  (f"cn=odd,{BASE}", raw(objectClass=["organizationalUnit"]))],
    })
    for n in range(1, 7):
        slots[f"host{n}"] = [host(n), host(n, state="drifted"), host(n, state="bogus"),
                             host(n, statelessIpv4=["not-an-address"]),
                             host(n, statelessAnswer=["dns.hostname=esx"]),
                             host(1 if n > 4 else n, dn_n=n)]  # twins of host 1
        slots[f"host{n}-link"] = [link(host(n)[0], "Base", "3"), link(host(n)[0], "Extra", "0")]
    slots["host-policy"] = [(host(7)[0], raw(objectClass=["statelessHost", "statelessPolicy"],
                                             cn=["Odd"], statelessUuid=[uuid_of(7)]))]
    slots["deep"] = [(f"cn=deeper,{host(2)[0]}", raw(objectClass=["statelessHost"]))]
    return slots


class Directory:
    """The entries a mirror should hold, and a full build of them."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, Raw]] = {}
        self.mirror = Mirror()
        self.mirror.on_refresh_done()

    def put(self, slot: str, entry: tuple[str, Raw]) -> None:
        kind = "modify" if slot in self.entries else "add"
        self.entries[slot] = entry
        self.mirror.on_change(kind, slot, entry[0], entry[1])

    def delete(self, slot: str) -> None:
        dn, _ = self.entries.pop(slot)
        self.mirror.on_change("delete", slot, dn, {})

    def full_build(self) -> Snapshot:
        ordered = sorted(self.entries.values(), key=lambda e: (len(mapping.split_dn(e[0])), dn_norm(e[0])))
        return mapping.build_snapshot(BASE, [(dn, mapping.canonical_attrs(v)) for dn, v in ordered])


@pytest.mark.parametrize("seed", range(12))
def test_random_changes_match_a_full_build(seed: int) -> None:
    rng = random.Random(seed)
    slots = _slots()
    names = sorted(slots)
    directory = Directory()
    for name in names:
        if rng.random() < 0.8:
            directory.put(name, slots[name][0])
    first = directory.mirror.update(BASE)
    assert first.hosts is None and first.snapshot == directory.full_build()
    seen_problems = seen_blocking = 0
    for _ in range(120):
        before = directory.mirror.snapshot(BASE)
        for _ in range(rng.choice((1, 1, 1, 2, 5))):
            name = rng.choice(names)
            if name in directory.entries and rng.random() < 0.25:
                directory.delete(name)
            else:
                directory.put(name, rng.choice(slots[name]))
        update = directory.mirror.update(BASE)
        expected = directory.full_build()
        assert update.snapshot == expected
        assert update.before is before and update.hosts is not None
        changed = {u for u in before.hosts.keys() | expected.hosts.keys()
                   if before.hosts.get(u) != expected.hosts.get(u)}
        assert changed <= update.hosts  # every host that changed is named
        assert all(update.snapshot.hosts[u] is before.hosts[u]
                   for u in before.hosts.keys() & update.snapshot.hosts.keys() - update.hosts)
        seen_problems += bool(expected.problems)
        seen_blocking += bool(expected.blocking)
    assert seen_problems and seen_blocking  # the sequence exercised failing closed

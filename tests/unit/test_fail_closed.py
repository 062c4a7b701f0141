"""Fail closed: any value the mapping refuses is a problem and blocks exactly the hosts it affects.

The estate below resolves without a single error. Each case breaks one attribute of one entry
with arbitrary text; whatever the mapping makes of it, nothing may vanish silently: either the
entry is in the model as it was, or a problem names the entry and attribute and every host that
depends on the entry (and only those) has an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateless.directory import mapping
from stateless.model.inventory import Snapshot
from stateless.policy import Resolver, resolve

BASE = "ou=stateless,dc=example,dc=com"
INV = f"ou=inventory,{BASE}"
H = {n: f"4c4c4544-0042-3510-8052-b4c04f4b4e{n}" for n in ("01", "02", "03", "04", "05")}
ALL = frozenset(H.values())
A_B, LAB, RULED, LINKED, BARE = (H[n] for n in ("01", "02", "03", "04", "05"))

Entries = dict[str, dict[str, list[str]]]


def _host(uuid: str, **attrs: list[str]) -> tuple[str, dict[str, list[str]]]:
    return f"statelessUuid={uuid},ou=hosts,{BASE}", {
        "objectClass": ["top", "statelessHost"], "statelessUuid": [uuid], **attrs}


def _link(owner: str, policy: str, order: str = "1",
          enforced: str = "FALSE") -> tuple[str, dict[str, list[str]]]:
    return f"statelessLinkPolicy={policy},{owner}", {
        "objectClass": ["top", "statelessPolicyLink"], "statelessLinkPolicy": [policy],
        "statelessOrder": [order], "statelessEnforced": [enforced], "statelessDisabled": ["FALSE"]}


def _container(path: str, kind: str) -> tuple[str, dict[str, list[str]]]:
    parts = [p for p in path.split("/") if p]
    dn = ",".join([*(f"cn={p}" for p in reversed(parts)), INV])
    return dn, {"objectClass": ["top", "statelessContainer"], "cn": [parts[-1]],
                "statelessKind": [kind], "statelessBlockInheritance": ["FALSE"]}


def _named(ou: str, cls: str, name: str, **attrs: list[str]) -> tuple[str, dict[str, list[str]]]:
    return f"cn={name},ou={ou},{BASE}", {"objectClass": ["top", cls], "cn": [name], **attrs}


def _dell(n: str) -> list[str]:
    return [f"SER{n}"]


def estate() -> Entries:
    """A small estate: root, two datacenters, a rule, a pool; five hosts placed five ways."""
    dc1, lab = _container("/DC1", "datacenter"), _container("/DC1/Lab", "folder")
    ca, cb = _container("/DC1/Prod/ClusterA", "cluster"), _container("/DC1/Lab/ClusterB", "cluster")
    cc = _container("/DC2/ClusterC", "cluster")
    entries = [
        (BASE, {"objectClass": ["organizationalUnit"]}),
        *((f"ou={b},{BASE}", {"objectClass": ["organizationalUnit"]}) for b in mapping.BRANCHES),
        _link(INV, "Root"),
        dc1, _link(dc1[0], "Security", enforced="TRUE"),
        _container("/DC1/Prod", "folder"), ca, _link(ca[0], "NetA"),
        lab, cb, _link(cb[0], "Lab"),
        _container("/DC2", "datacenter"), cc,
        _named("policies", "statelessPolicy", "Root", statelessNtp=["servers=10.0.0.1"]),
        _named("policies", "statelessPolicy", "Security", statelessService=["TSM-SSH; policy=off"]),
        _named("policies", "statelessPolicy", "NetA",
               statelessPortGroup=["vMotion; vswitch=vSwitch0; vlan=20"],
               statelessVmknic=["vMotion; ip=pool:vmotion-a"]),
        _named("policies", "statelessPolicy", "Lab", statelessService=["TSM-SSH; policy=on"]),
        _named("policies", "statelessPolicy", "Extra", statelessAdvanced=["UserVars.SuppressShellWarning=1"]),
        _named("pools", "statelessIpPool", "vmotion-a", statelessRangeStart=["10.1.20.10"],
               statelessRangeEnd=["10.1.20.250"], statelessNetmask=["255.255.255.0"]),
        _named("rules", "statelessRule", "dell", statelessOrder=["10"], statelessMatch=["vendor=Dell*"],
               statelessLocation=["/DC2/ClusterC"]),
        _named("sites", "statelessSite", "siteA", statelessSubnet=["10.1.0.0/16"]),
        _named("servers", "statelessServer", "sd1", statelessSite=["siteA"],
               statelessUrl=["http://127.0.0.1:8480"], statelessPriority=["0"], statelessWeight=["100"]),
        _named("vcenters", "statelessVCenter", "vc1", statelessUrl=["http://127.0.0.1:1/sdk"],
               statelessUser=["user"]),
        _named("images", "statelessImage", "esxi8", statelessVersion=["8.0"]),
        _host(A_B, statelessLocation=["/DC1/Prod/ClusterA"], statelessSerial=_dell("1"),
              statelessAllocation=["vmknic.vMotion; pool=vmotion-a; address=10.1.20.10"]),
        _host(LAB, statelessLocation=["/DC1/Lab/ClusterB"], statelessSerial=_dell("2")),
        _host(RULED, statelessVendor=["Dell Inc."]),
        _host(LINKED, statelessLocation=["/DC2/ClusterC"], statelessSerial=_dell("4"),
              statelessAnswer=["vmknic.Storage.address=10.9.0.4"]),
        _link(f"statelessUuid={LINKED},ou=hosts,{BASE}", "Extra"),
        _host(BARE, statelessLocation=["/DC2/ClusterC"]),
    ]
    return dict(entries)


def snapshot(entries: Entries) -> Snapshot:
    ordered = sorted(entries.items(), key=lambda e: len(mapping.split_dn(e[0])))
    return mapping.build_snapshot(BASE, ordered)


def blocked(snap: Snapshot) -> frozenset[str]:
    """Hosts with errors, resolved both ways (the incremental resolver and from scratch)."""
    resolver = Resolver(snap)
    cached = frozenset(u for u in snap.hosts if resolver.resolve(u).errors)
    direct = frozenset(u for u in snap.hosts if resolve(snap, u).errors)
    assert cached == direct
    return cached


def test_the_estate_resolves_without_errors() -> None:
    snap = snapshot(estate())
    assert snap.problems == () and not snap.blocking
    assert set(snap.hosts) == ALL and blocked(snap) == frozenset()
    assert resolve(snap, RULED).location == "/DC2/ClusterC"


class Case(NamedTuple):
    dn: str
    attribute: str
    affected: frozenset[str]  # the hosts that depend on the entry
    present: Callable[[Snapshot], bool]  # the entry is in the model as it was
    related: frozenset[str] = frozenset()  # attributes a check across several may name instead

    def names(self, attribute: str) -> bool:
        return attribute == self.attribute or attribute in self.related


RANGE = frozenset({"statelessRangeStart", "statelessRangeEnd", "statelessNetmask"})


def _link_at(path: str, policy: str) -> Callable[[Snapshot], bool]:
    return lambda s: path in s.containers and any(lk.policy == policy for lk in s.containers[path].links)


def _host_clean(uuid: str) -> Callable[[Snapshot], bool]:
    return lambda s: uuid in s.hosts and not s.hosts[uuid].problems


DC1 = _container("/DC1", "datacenter")[0]
LAB_DN = _container("/DC1/Lab", "folder")[0]
CASES = {
    "enforced link at /DC1": [Case(f"statelessLinkPolicy=Security,{DC1}", a, frozenset({A_B, LAB}),
                                   _link_at("/DC1", "Security"))
                              for a in ("statelessOrder", "statelessEnforced", "statelessDisabled")],
    "root link": [Case(f"statelessLinkPolicy=Root,{INV}", "statelessOrder", ALL, _link_at("/", "Root"))],
    "container /DC1/Lab": [Case(LAB_DN, a, frozenset({LAB}), lambda s: "/DC1/Lab" in s.containers)
                           for a in ("statelessKind", "statelessBlockInheritance", "objectClass")],
    "policy Security": [Case(f"cn=Security,ou=policies,{BASE}", "statelessService", frozenset({A_B, LAB}),
                             lambda s: not s.policies["Security"].problems)],
    "pool vmotion-a": [Case(f"cn=vmotion-a,ou=pools,{BASE}", a, frozenset({A_B}),
                            lambda s: "vmotion-a" in s.pools, RANGE)
                       for a in ("statelessRangeStart", "statelessRangeEnd", "statelessNetmask")],
    "rule dell": [Case(f"cn=dell,ou=rules,{BASE}", a, ALL,
                       lambda s: [r.name for r in s.rules] == ["dell"])
                  for a in ("statelessOrder", "statelessMatch", "statelessLocation")],
    "host link": [Case(f"statelessLinkPolicy=Extra,statelessUuid={LINKED},ou=hosts,{BASE}",
                       a, frozenset({LINKED}),
                       lambda s: [lk.policy for lk in s.hosts[LINKED].links] == ["Extra"])
                  for a in ("statelessOrder", "statelessEnforced")],
    "host entry": [Case(f"statelessUuid={LINKED},ou=hosts,{BASE}", a, frozenset({LINKED}),
                        _host_clean(LINKED))
                   for a in ("statelessAnswer", "statelessState", "statelessMac", "statelessAllocation")],
    "site": [Case(f"cn=siteA,ou=sites,{BASE}", "statelessSubnet", frozenset(), lambda s: "siteA" in s.sites)],
    "server": [Case(f"cn=sd1,ou=servers,{BASE}", a, frozenset(), lambda s: "sd1" in s.servers)
               for a in ("statelessPriority", "statelessWeight")],
}
ALL_CASES = [c for cases in CASES.values() for c in cases]

# Arbitrary text, weighted towards what an admin's typo or a wrong tool writes.
VALUES = st.one_of(st.sampled_from(["0", "-1", "", " ", "yes", "TRUE ", "2", "x", "10.0.0.300",
                                    "255.0.255.0", "galaxy", "root", "vendor", "no-slash", "=",
                                    "organizationalUnit", "1e3", "٣"]),
                   st.text(max_size=12))


@settings(max_examples=400, deadline=None)
@given(case=st.sampled_from(ALL_CASES), value=VALUES)
def test_a_refused_value_is_a_problem_that_blocks_exactly_the_affected_hosts(case: Case, value: str) -> None:
    entries = estate()
    entries[case.dn] = {**entries[case.dn], case.attribute: [value]}
    snap = snapshot(entries)
    named = [p for p in [*snap.problems, *(p for h in snap.hosts.values() for p in h.problems),
                         *(p for pol in snap.policies.values() for p in pol.problems)]
             if p.dn == case.dn]
    if not named:
        assert case.present(snap), f"{case.dn} {case.attribute}={value!r} vanished without a problem"
        return
    assert any(case.names(p.attribute) for p in named), named
    assert blocked(snap) == case.affected, (case.attribute, value, named)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_kind_has_a_refused_value(kind: str) -> None:
    """The property above is not vacuous: each kind has a value that is refused."""
    case = CASES[kind][0]
    bad = {"statelessOrder": "0", "statelessKind": "galaxy", "statelessService": "TSM-SSH; policy=maybe",
           "statelessRangeStart": "10.0.0.300", "statelessAnswer": "garbage",
           "statelessSubnet": "10.0.0.0/33", "statelessPriority": "x"}[case.attribute]
    if kind == "rule dell":
        bad = "first"  # a rule's order may be 0 or negative, not a word
    entries = estate()
    entries[case.dn] = {**entries[case.dn], case.attribute: [bad]}
    snap = snapshot(entries)
    assert blocked(snap) == case.affected


def test_directory_problems_lists_each_problem_once() -> None:
    from stateless.policy.problems import directory_problems

    entries = estate()
    link = f"statelessLinkPolicy=Security,{DC1}"
    entries[link] = {**entries[link], "statelessOrder": ["0"]}
    entries.update([_link(LAB_DN, "Nowhere")])
    host = f"statelessUuid={BARE},ou=hosts,{BASE}"
    entries[host] = {**entries[host], "statelessAnswer": ["vmknic.Storage.address=10.9.0.4"]}
    problems = directory_problems(snapshot(entries))
    where = [(p.dn.split(",")[0], p.attribute, p.value) for p in problems]
    assert where == [
        ("statelessLinkPolicy=Nowhere", "statelessLinkPolicy", "Nowhere"),
        ("statelessLinkPolicy=Security", "statelessOrder", "0"),
        (f"statelessUuid={LINKED}", "statelessAnswer", "10.9.0.4"),
        (f"statelessUuid={BARE}", "statelessAnswer", "10.9.0.4"),
    ], where
    assert directory_problems(snapshot(estate())) == []


@pytest.mark.parametrize("snmp", ["enabled=true; communities=clear-canary",
                                  "enabled=true; communities=secret:ro; targets=10.0.0.7:162/clear-canary"])
def test_an_snmp_community_in_clear_blocks_the_hosts_of_the_policy(snmp: str) -> None:
    """Written behind the CLI's back (ldapmodify), a clear community blocks, never applies."""
    entries = estate()
    dn = f"cn=Security,ou=policies,{BASE}"
    entries[dn] = {**entries[dn], "statelessSnmp": [snmp]}
    snap = snapshot(entries)
    problems = snap.policies["Security"].problems
    assert [p.attribute for p in problems] == ["statelessSnmp"]
    assert "stateless secret set snmp" in problems[0].reason
    assert all("clear-canary" not in f"{p.value} {p.reason}" for p in problems)
    assert blocked(snap) == frozenset({A_B, LAB})


def test_an_snmp_reference_resolves_and_blocks_nothing() -> None:
    entries = estate()
    dn = f"cn=Security,ou=policies,{BASE}"
    entries[dn] = {**entries[dn], "statelessSnmp": ["communities=secret:ro; targets=t.example.com/secret:ro"]}
    snap = snapshot(entries)
    assert not snap.policies["Security"].problems and blocked(snap) == frozenset()
    assert resolve(snap, A_B).settings["snmp.communities"].value == ("secret:ro",)


def test_an_snmp_community_in_clear_in_a_host_answer_blocks_that_host() -> None:
    entries = estate()
    dn = f"statelessUuid={LINKED},ou=hosts,{BASE}"
    entries[dn] = {**entries[dn], "statelessAnswer": ["snmp.communities=clear-canary"]}
    snap = snapshot(entries)
    assert blocked(snap) == frozenset({LINKED})
    assert all("clear-canary" not in f"{p.value} {p.reason}" for p in snap.hosts[LINKED].problems)

"""Entries -> model: DN handling, and bad entries becoming problems instead of exceptions."""

from __future__ import annotations

import pytest

from stateless.directory import mapping

BASE = "ou=stateless,dc=example,dc=com"
UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"


@pytest.mark.parametrize("value", ["ClusterA", "VM Network", "a,b", "x+y=z", " lead", "trail ",
                                   "#hash", 'q"uote', "back\\slash", "semi;colon", "ü"])
def test_escape_and_split_round_trip(value: str) -> None:
    dn = f"cn={mapping.escape_value(value)},cn=DC1,ou=inventory,{BASE}"
    rdns = mapping.split_dn(dn)
    assert rdns[0] == ("cn", value)
    assert rdns[1] == ("cn", "DC1")
    assert mapping.relative(dn, mapping.dn_key(BASE)) == rdns[:3]


def test_plain_dns_split_as_the_full_parser_splits_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNs without escapes, quotes or '+' take plain string splits: the same pairs."""
    import random
    import re

    rng = random.Random(7)
    dns = ["".join(rng.choice("abAB= ,\tx1") for _ in range(rng.randrange(14))) for _ in range(20000)]
    dns += [f"statelessUuid=4C4C4544-{n:04d} , OU=Hosts,{BASE}" for n in range(10)]
    fast = [mapping.split_dn(dn) for dn in dns]
    monkeypatch.setattr(mapping, "_NEEDS_PARSER", re.compile("|"))  # always the full parser
    assert fast == [mapping.split_dn(dn) for dn in dns]


def test_relative_is_case_insensitive_and_rejects_other_trees() -> None:
    base = mapping.dn_key(BASE)
    assert mapping.relative("cn=X,OU=Policies,OU=Stateless,DC=Example,DC=com", base) == [
        ("cn", "X"), ("ou", "Policies")]
    assert mapping.relative("cn=X,ou=other,dc=example,dc=com", base) is None


def entries() -> list[tuple[str, dict[str, list[str]]]]:
    inv = f"ou=inventory,{BASE}"
    return [
        (BASE, {"objectClass": ["organizationalUnit"]}),
        (inv, {"objectClass": ["organizationalUnit", "statelessInventoryRoot"]}),
        (f"statelessLinkPolicy=Base,{inv}", {"objectClass": ["statelessPolicyLink"],
                                             "statelessLinkPolicy": ["Base"], "statelessOrder": ["2"]}),
        (f"statelessLinkPolicy=Sec,{inv}", {"objectClass": ["statelessPolicyLink"],
                                            "statelessLinkPolicy": ["Sec"], "statelessOrder": ["1"],
                                            "statelessEnforced": ["TRUE"]}),
        (f"cn=DC1,{inv}", {"objectClass": ["statelessContainer"], "cn": ["DC1"],
                           "statelessKind": ["datacenter"], "statelessBlockInheritance": ["TRUE"]}),
        (f"statelessLinkPolicy=Bad,cn=DC1,{inv}", {"objectClass": ["statelessPolicyLink"],
                                                   "statelessLinkPolicy": ["Bad"],
                                                   "statelessOrder": ["0"]}),
        (f"cn=Odd,cn=DC1,{inv}", {"objectClass": ["statelessContainer"], "cn": ["Odd"],
                                  "statelessKind": ["galaxy"]}),
        (f"cn=Base,ou=policies,{BASE}", {"objectClass": ["statelessPolicy"], "cn": ["Base"],
                                         "statelessNtp": ["servers=10.0.0.1"]}),
        (f"cn=Broken,ou=policies,{BASE}", {"objectClass": ["statelessPolicy"], "cn": ["Broken"],
                                           "statelessPortGroup": ["vMotion; vlan=5000"],
                                           "statelessNtp": ["policy=on"]}),
        (f"statelessUuid={UUID},ou=hosts,{BASE}", {
            "objectClass": ["statelessHost"], "statelessUuid": [UUID.upper()],
            "statelessLocation": ["/DC1"], "statelessAnswer": ["dns.hostname=esx01", "dns.hostname"],
            "statelessMac": ["00:50:56:aa:bb:cc"], "statelessState": ["compliant"],
            "statelessAllocation": ["vmknic.vMotion; pool=p; address=10.0.0.5"]}),
        (f"statelessLinkPolicy=Base,statelessUuid={UUID},ou=hosts,{BASE}", {
            "objectClass": ["statelessPolicyLink"], "statelessLinkPolicy": ["Base"],
            "statelessOrder": ["1"]}),
        (f"statelessUuid=nope,ou=hosts,{BASE}", {"objectClass": ["statelessHost"],
                                                 "statelessUuid": ["nope"]}),
        (f"cn=p,ou=pools,{BASE}", {"objectClass": ["statelessIpPool"], "cn": ["p"],
                                   "statelessRangeStart": ["10.0.0.20"], "statelessRangeEnd": ["10.0.0.10"],
                                   "statelessNetmask": ["255.255.255.0"]}),
        (f"cn=A-B,ou=sitelinks,{BASE}", {"objectClass": ["statelessSiteLink"], "cn": ["A-B"],
                                         "statelessSiteList": ["B", "A"], "statelessCost": ["10"]}),
        (f"cn=r2,ou=rules,{BASE}", {"objectClass": ["statelessRule"], "cn": ["r2"],
                                    "statelessOrder": ["20"], "statelessMatch": ["vendor=Dell*"],
                                    "statelessLocation": ["/DC1"]}),
        (f"cn=r1,ou=rules,{BASE}", {"objectClass": ["statelessRule"], "cn": ["r1"],
                                    "statelessOrder": ["10"], "statelessMatch": ["colour=red"]}),
    ]


def test_build_snapshot_maps_good_entries_and_reports_bad_ones() -> None:
    snap = mapping.build_snapshot(BASE, entries())
    root = snap.containers["/"]
    assert [link.policy for link in root.links] == ["Sec", "Base"]  # by order
    assert root.links[0].enforced
    assert snap.containers["/DC1"].block and snap.containers["/DC1"].links == ()
    assert "/DC1/Odd" not in snap.containers
    assert snap.policies["Base"].settings == {"ntp.servers": ("10.0.0.1",)}
    broken = snap.policies["Broken"]
    assert broken.problems and broken.problems[0].attribute == "statelessPortGroup"
    assert broken.problems[0].value == "vMotion; vlan=5000"
    host = snap.hosts[UUID]
    assert host.answers == {"dns.hostname": "esx01"}
    assert [p.attribute for p in host.problems] == ["statelessAnswer"]
    assert host.links[0].policy == "Base" and host.identity and host.identity.macs
    assert host.allocations[0].address == "10.0.0.5"
    assert [r.name for r in snap.rules] == ["r2"]
    assert snap.site_links[0].a == "A" and snap.site_links[0].cost == 10
    assert snap.pools == {}
    where = {(p.dn.split(",")[0], p.attribute) for p in snap.problems}
    assert ("statelessLinkPolicy=Bad", "statelessOrder") in where
    assert ("cn=Odd", "statelessKind") in where
    assert ("statelessUuid=nope", "statelessUuid") in where
    assert ("cn=p", "statelessRangeStart") in where
    assert ("cn=r1", "statelessMatch") in where


@pytest.mark.parametrize(("text", "ok"), [("TRUE", True), ("false", False)])
def test_bool(text: str, ok: bool) -> None:
    assert mapping.parse_bool(text) is ok

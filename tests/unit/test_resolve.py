"""Policy resolution: precedence, merge, removals, invalid policies, answers, pools, updates."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

import attrs
import pytest

from stateless.errors import NotFoundError, ValidationError
from stateless.model import (
    Allocation,
    Container,
    HostIdentity,
    HostRecord,
    HostState,
    IpPool,
    Link,
    Policy,
    Problem,
    Rule,
    Snapshot,
)
from stateless.model.effective import ANSWER, EffectiveConfig, Removal
from stateless.model.inventory import Server, path_chain
from stateless.model.settings import item_of
from stateless.policy import Resolver, resolve
from stateless.rules import evaluate

U1 = "00000000-0000-0000-0000-000000000001"
U2 = "00000000-0000-0000-0000-000000000002"
CHAIN = ("/", "/DC", "/DC/F", "/DC/F/C")
KINDS = {0: "root", 1: "datacenter", 3: "cluster"}


def link(token: str) -> Link:
    """'a' plain, 'a!' enforced, 'a-' disabled, 'a:2' order 2."""
    name, _, order = token.rstrip("!-").partition(":")
    return Link(name, order=int(order or 1), enforced=token.endswith("!"), disabled=token.endswith("-"))


def container(path: str, *tokens: str, block: bool = False) -> Container:
    depth = 0 if path == "/" else path.count("/")
    return Container(path, KINDS.get(depth, "folder"), links=[link(t) for t in tokens], block=block,
                     dn=f"dn:{path}")


def ntp(name: str, **extra: object) -> Policy:
    """A policy whose ntp.servers value names it, so the winner is visible."""
    return Policy(name, {"ntp.servers": (f"{name}.example.com",), **extra}, dn=f"cn={name}")


def snapshot(containers: Iterable[Container] = (), policies: Iterable[Policy] = (),
             hosts: Iterable[HostRecord] = (), **kw: object) -> Snapshot:
    return Snapshot(containers={c.path: c for c in containers}, policies={p.name: p for p in policies},
                    hosts={h.uuid: h for h in hosts}, **kw)  # type: ignore[arg-type]


def names_in(levels: Mapping[str, tuple[str, ...]]) -> set[str]:
    return {link(t).policy for tokens in levels.values() for t in tokens}


def chain_snapshot(levels: Mapping[str, tuple[str, ...]], blocks: Iterable[str] = (),
                   rules: Iterable[Rule] = (), identity: HostIdentity | None = None) -> Snapshot:
    containers = [container(p, *levels.get(p, ()), block=p in blocks) for p in CHAIN]
    host = HostRecord(U1, location="/DC/F/C", links=[link(t) for t in levels.get("host", ())],
                      identity=identity, dn="dn:host")
    return snapshot(containers, [ntp(n) for n in sorted(names_in(levels))], [host], rules=rules)


def order_of(config: EffectiveConfig, key: str = "ntp.servers") -> list[str]:
    setting = config.settings[key]
    return [setting.policy, *(o.policy for o in setting.overridden)]


# --- precedence ------------------------------------------------------------------------------

PRECEDENCE = [
    ("nearest wins", {"/": ("a",), "/DC": ("b",), "/DC/F": ("c",), "/DC/F/C": ("d",)}, (),
     ["d", "c", "b", "a"]),
    ("host link beats containers", {"/": ("a",), "/DC/F/C": ("d",), "host": ("h",)}, (), ["h", "d", "a"]),
    ("enforced at DC beats nearer", {"/": ("a",), "/DC": ("b!",), "/DC/F/C": ("d",), "host": ("h",)}, (),
     ["b", "h", "d", "a"]),
    ("two enforced: root-most wins", {"/": ("a!",), "/DC/F/C": ("d!",), "/DC/F": ("c",)}, (),
     ["a", "d", "c"]),
    ("host enforced after container enforced", {"/DC": ("b!",), "host": ("h!",), "/DC/F/C": ("d",)}, (),
     ["b", "h", "d"]),
    ("block cuts links above", {"/": ("a",), "/DC": ("b",), "/DC/F": ("c",), "/DC/F/C": ("d",)},
     ("/DC/F",), ["d", "c"]),
    ("enforced passes through block", {"/": ("a!",), "/DC": ("b",), "/DC/F": ("c",), "/DC/F/C": ("d",)},
     ("/DC/F",), ["a", "d", "c"]),
    ("block at cluster keeps own links", {"/": ("a",), "/DC": ("b!",), "/DC/F/C": ("d",)}, ("/DC/F/C",),
     ["b", "d"]),
    ("enforced below a block unaffected", {"/": ("a",), "/DC/F": ("c",), "/DC/F/C": ("d!",)}, ("/DC/F",),
     ["d", "c"]),
    ("block on root is harmless", {"/": ("a",), "/DC": ("b",)}, ("/",), ["b", "a"]),
    ("disabled link contributes nothing", {"/": ("a",), "/DC/F/C": ("d-",), "host": ("h-",)}, (), ["a"]),
    ("disabled enforced link contributes nothing", {"/": ("a!-", "b")}, (), ["b"]),
    ("link order inside a container", {"/DC/F/C": ("x:2", "y:1", "z:3")}, (), ["y", "x", "z"]),
    ("enforced order inside a container", {"/": ("x:2!", "y:1!"), "/DC": ("z",)}, (), ["y", "x", "z"]),
    ("host link order", {"host": ("x:2", "y:1")}, (), ["y", "x"]),
    ("same policy at two levels", {"/": ("a",), "/DC/F/C": ("a",)}, (), ["a", "a"]),
]


@pytest.mark.parametrize(("levels", "blocks", "expected"), [c[1:] for c in PRECEDENCE],
                         ids=[c[0] for c in PRECEDENCE])
def test_precedence(levels: dict[str, tuple[str, ...]], blocks: tuple[str, ...], expected: list[str]) -> None:
    config = resolve(chain_snapshot(levels, blocks), U1)
    assert config.errors == ()
    assert order_of(config) == expected
    assert config.settings["ntp.servers"].value == (f"{expected[0]}.example.com",)


def test_provenance_names_link_and_enforcement() -> None:
    config = resolve(chain_snapshot({"/DC": ("b!",), "/DC/F/C": ("d",), "host": ("h",)}), U1)
    setting = config.settings["ntp.servers"]
    assert (setting.policy, setting.linked_at, setting.enforced) == ("b", "/DC", True)
    assert [(o.policy, o.linked_at, o.value) for o in setting.overridden] == [
        ("h", f"host:{U1}", ("h.example.com",)), ("d", "/DC/F/C", ("d.example.com",))]


def test_rule_links_come_after_host_links() -> None:
    rule = Rule("r1", match={"vendor": "Dell*"}, policies=("r", "s"), dn="cn=r1")
    levels = {"/": ("a",), "/DC/F/C": ("d",), "host": ("h",), "rule": ("r", "s")}
    snap = chain_snapshot(levels, rules=[rule], identity=HostIdentity(U1, vendor="Dell Inc."))
    config = resolve(snap, U1)
    assert order_of(config) == ["h", "r", "s", "d", "a"]
    assert config.settings["ntp.servers"].overridden[0].linked_at == "rule:r1"


def test_rule_links_need_a_match() -> None:
    rule = Rule("r1", match={"vendor": "HPE"}, policies=("r",))
    levels = {"/": ("a",), "rule": ("r",)}
    snap = chain_snapshot(levels, rules=[rule], identity=HostIdentity(U1, vendor="Dell Inc."))
    assert order_of(resolve(snap, U1)) == ["a"]


# --- merge -----------------------------------------------------------------------------------

PG = "portgroup.VM Network"


def two_level(low: Policy, high: Policy, top: Policy | None = None) -> EffectiveConfig:
    """`low` linked at the root, `high` at the cluster, `top` at the host."""
    host = HostRecord(U1, location="/DC", links=[Link(top.name)] if top else [])
    snap = snapshot([container("/", low.name), container("/DC", high.name)],
                    [low, high, *([top] if top else [])], [host])
    return resolve(snap, U1)


MERGE = [
    ("keyed items merge per field",
     Policy("low", {f"{PG}.vlan": 10, f"{PG}.vswitch": "vSwitch0", "portgroup.Other.vlan": 3}),
     Policy("high", {f"{PG}.vlan": 20}), None,
     {f"{PG}.vlan": (20, "high"), f"{PG}.vswitch": ("vSwitch0", "low"), "portgroup.Other.vlan": (3, "low")}),
    ("lists are replaced whole",
     Policy("low", {"ntp.servers": ("a.example.com", "b.example.com")}),
     Policy("high", {"ntp.servers": ("c.example.com",)}), None,
     {"ntp.servers": (("c.example.com",), "high")}),
    ("advanced options merge per option",
     Policy("low", {"advanced.Net.TcpipHeapSize": 32, "advanced.Misc.LogLevel": "info"}),
     Policy("high", {"advanced.Net.TcpipHeapSize": 64}), None,
     {"advanced.Net.TcpipHeapSize": (64, "high"), "advanced.Misc.LogLevel": ("info", "low")}),
    ("removal of an item drops all its keys below",
     Policy("low", {f"{PG}.vlan": 10, f"{PG}.vswitch": "vSwitch0", "ntp.policy": "on"}),
     Policy("high", {}, removals={PG}), None,
     {"ntp.policy": ("on", "low")}),
    ("removal of one key keeps the others",
     Policy("low", {f"{PG}.vlan": 10, f"{PG}.vswitch": "vSwitch0"}),
     Policy("high", {}, removals={f"{PG}.vlan"}), None,
     {f"{PG}.vswitch": ("vSwitch0", "low")}),
    ("removal of a global key",
     Policy("low", {"ntp.servers": ("a.example.com",), "ntp.policy": "on"}),
     Policy("high", {}, removals={"ntp.servers"}), None,
     {"ntp.policy": ("on", "low")}),
    ("removal does not touch higher policies",
     Policy("low", {f"{PG}.vlan": 10}, removals={PG}),
     Policy("high", {f"{PG}.vlan": 20}), None,
     {f"{PG}.vlan": (20, "high")}),
    ("a higher policy re-adds after a removal",
     Policy("low", {f"{PG}.vlan": 10, f"{PG}.vswitch": "vSwitch0"}),
     Policy("high", {}, removals={PG}),
     Policy("top", {f"{PG}.vlan": 30}),
     {f"{PG}.vlan": (30, "top")}),
    ("host-level policy overrides containers",
     Policy("low", {"ntp.policy": "on", "lockdown.mode": "normal"}),
     Policy("high", {"ntp.policy": "off"}),
     Policy("top", {"lockdown.mode": "strict"}),
     {"ntp.policy": ("off", "high"), "lockdown.mode": ("strict", "top")}),
]


@pytest.mark.parametrize(("low", "high", "top", "expected"), [c[1:] for c in MERGE],
                         ids=[c[0] for c in MERGE])
def test_merge(low: Policy, high: Policy, top: Policy | None,
               expected: dict[str, tuple[object, str]]) -> None:
    config = two_level(low, high, top)
    assert config.errors == ()
    assert {k: (s.value, s.policy) for k, s in config.settings.items()} == expected


def test_removed_key_is_not_listed_as_overridden() -> None:
    config = two_level(Policy("low", {f"{PG}.vlan": 10}), Policy("high", {}, removals={PG}),
                       Policy("top", {f"{PG}.vlan": 30}))
    assert config.settings[f"{PG}.vlan"].overridden == ()
    assert config.removed == (Removal(PG, "high", "/DC"),)


def test_overridden_lists_every_lower_setter_in_order() -> None:
    config = two_level(Policy("low", {"ntp.policy": "on"}), Policy("high", {"ntp.policy": "off"}),
                       Policy("top", {"ntp.policy": "automatic"}))
    overridden = config.settings["ntp.policy"].overridden
    assert [(o.policy, o.value) for o in overridden] == [("high", "off"), ("low", "on")]


# --- invalid policies ----------------------------------------------------------------------------

BAD = Problem(dn="cn=bad", attribute="statelessNtp", value="ntp.servers=x y", reason="not a host")

INVALID = [
    ("policy with problems", Policy("bad", {"ntp.policy": "off"}, problems=[BAD], dn="cn=bad"),
     [BAD]),
    ("host-specific key", Policy("bad", {"ntp.policy": "off", "vmknic.vMotion.address": "10.0.0.5"},
                                 dn="cn=bad"),
     [Problem("cn=bad", "statelessSetting", "vmknic.vMotion.address=10.0.0.5",
              "host-specific: give it as a host answer, not in a policy")]),
    ("host name in a policy", Policy("bad", {"dns.hostname": "esx1"}, dn="cn=bad"),
     [Problem("cn=bad", "statelessSetting", "dns.hostname=esx1",
              "host-specific: give it as a host answer, not in a policy")]),
    ("unknown key", Policy("bad", {"ntp.policy": "off", "frobnicate.level": 3}, dn="cn=bad"), None),
    ("bad removal", Policy("bad", {"ntp.policy": "off"}, removals={"frobnicate"}, dn="cn=bad"), None),
]


@pytest.mark.parametrize(("bad", "problems"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_policy_contributes_nothing(bad: Policy, problems: list[Problem] | None) -> None:
    good = Policy("good", {"ntp.policy": "on", "lockdown.mode": "normal"})
    config = two_level(good, bad)
    assert config.values() == {"ntp.policy": "on", "lockdown.mode": "normal"}
    assert config.settings["ntp.policy"].overridden == ()
    assert config.errors
    assert all(e.dn == "cn=bad" for e in config.errors)
    if problems is not None:
        assert list(config.errors) == problems


def test_missing_policy_is_an_error_naming_the_link() -> None:
    snap = snapshot([container("/", "nope", "a")], [ntp("a")], [HostRecord(U1, location="/")])
    config = resolve(snap, U1)
    assert config.values() == {"ntp.servers": ("a.example.com",)}
    assert [(e.dn, e.attribute, e.value) for e in config.errors] == [("dn:/", "statelessPolicyLink", "nope")]
    assert "no such policy exists" in config.errors[0].reason


def test_disabled_link_to_missing_policy_is_quiet() -> None:
    snap = snapshot([container("/", "nope-")], [], [HostRecord(U1, location="/")])
    assert resolve(snap, U1).errors == ()


def test_host_problems_are_reported() -> None:
    problem = Problem("dn:host", "statelessAnswer", "x", "bad answer")
    snap = snapshot([container("/")], [], [HostRecord(U1, location="/", problems=[problem])])
    assert resolve(snap, U1).errors == (problem,)


# --- answers and pools ---------------------------------------------------------------------------

POOL = IpPool("vmotion", "10.0.20.10", "10.0.20.50", "255.255.255.0", gateway="10.0.20.1")


def vmk_snapshot(ip: str, answers: Mapping[str, object] = (), allocations: Iterable[Allocation] = (),
                 pools: Iterable[IpPool] = (POOL,)) -> Snapshot:
    policy = Policy("net", {"vmknic.vMotion.ip": ip, "vmknic.vMotion.services": ("vmotion",)}, dn="cn=net")
    host = HostRecord(U1, location="/", answers=dict(answers), allocations=allocations, dn="dn:host")
    return snapshot([container("/", "net")], [policy], [host], pools={p.name: p for p in pools})


ALLOC = Allocation("vmknic.vMotion", "vmotion", "10.0.20.11")
STATIC = {"vmknic.vMotion.address": "10.0.30.5", "vmknic.vMotion.netmask": "255.255.255.0"}

HOST_VALUES = [
    ("pool allocation", "pool:vmotion", {}, [ALLOC],
     {"vmknic.vMotion.address": ("10.0.20.11", "(ip pool vmotion)", "pool:vmotion"),
      "vmknic.vMotion.netmask": ("255.255.255.0", "(ip pool vmotion)", "pool:vmotion"),
      "vmknic.vMotion.gateway": ("10.0.20.1", "(ip pool vmotion)", "pool:vmotion")}, []),
    ("answer overrides pool gateway", "pool:vmotion", {"vmknic.vMotion.gateway": "10.0.20.254"}, [ALLOC],
     {"vmknic.vMotion.address": ("10.0.20.11", "(ip pool vmotion)", "pool:vmotion"),
      "vmknic.vMotion.netmask": ("255.255.255.0", "(ip pool vmotion)", "pool:vmotion"),
      "vmknic.vMotion.gateway": ("10.0.20.254", ANSWER, f"host:{U1}")}, []),
    ("allocation from another pool does not count", "pool:vmotion", {},
     [Allocation("vmknic.vMotion", "other", "10.0.20.11")], {}, ["statelessAllocation"]),
    ("missing allocation", "pool:vmotion", {}, [], {}, ["statelessAllocation"]),
    ("allocation outside the pool", "pool:vmotion", {},
     [Allocation("vmknic.vMotion", "vmotion", "10.0.20.99")], {}, ["statelessAllocation"]),
    ("missing pool", "pool:nosuch", {}, [Allocation("vmknic.vMotion", "nosuch", "10.0.20.11")], {},
     ["statelessSetting"]),
    ("static with answers", "static", STATIC, [],
     {"vmknic.vMotion.address": ("10.0.30.5", ANSWER, f"host:{U1}"),
      "vmknic.vMotion.netmask": ("255.255.255.0", ANSWER, f"host:{U1}")}, []),
    ("static without answers", "static", {}, [], {}, ["statelessAnswer"]),
    ("static without netmask", "static", {"vmknic.vMotion.address": "10.0.30.5"}, [],
     {"vmknic.vMotion.address": ("10.0.30.5", ANSWER, f"host:{U1}")}, ["statelessAnswer"]),
    ("dhcp needs nothing", "dhcp", {}, [], {}, []),
    ("host name answers", "dhcp", {"dns.hostname": "esx01", "dns.domain": "example.com"}, [],
     {"dns.hostname": ("esx01", ANSWER, f"host:{U1}"), "dns.domain": ("example.com", ANSWER, f"host:{U1}")},
     []),
    ("non host-specific answer is refused", "dhcp", {"ntp.policy": "on"}, [], {}, ["statelessAnswer"]),
]


@pytest.mark.parametrize(("ip", "answers", "allocations", "expected", "errors"),
                         [c[1:] for c in HOST_VALUES], ids=[c[0] for c in HOST_VALUES])
def test_answers_and_pools(ip: str, answers: dict[str, object], allocations: list[Allocation],
                           expected: dict[str, tuple[str, str, str]], errors: list[str]) -> None:
    config = resolve(vmk_snapshot(ip, answers, allocations), U1)
    got = {k: (s.value, s.policy, s.linked_at) for k, s in config.settings.items()
           if k not in ("vmknic.vMotion.ip", "vmknic.vMotion.services")}
    assert got == expected
    assert [e.attribute for e in config.errors] == errors


def test_static_error_says_how_to_fix() -> None:
    (error,) = resolve(vmk_snapshot("static"), U1).errors
    assert error.dn == "dn:host"
    assert "vmknic.vMotion.address" in error.reason and "vmknic.vMotion.netmask" in error.reason
    assert f"stateless host set {U1} --answer vmknic.vMotion.address=VALUE" in error.reason


def test_pool_without_gateway_emits_no_gateway() -> None:
    pool = IpPool("vmotion", "10.0.20.10", "10.0.20.50", "255.255.255.0")
    config = resolve(vmk_snapshot("pool:vmotion", {}, [ALLOC], [pool]), U1)
    assert "vmknic.vMotion.gateway" not in config.settings
    assert config.settings["vmknic.vMotion.address"].value == "10.0.20.11"


def test_removed_vmknic_needs_no_pool() -> None:
    snap = vmk_snapshot("pool:vmotion")
    host = attrs.evolve(snap.hosts[U1], links=[Link("strip")])
    strip = Policy("strip", {}, removals={"vmknic.vMotion"})
    snap = attrs.evolve(snap, hosts={U1: host}, policies={**snap.policies, "strip": strip})
    config = resolve(snap, U1)
    assert config.errors == () and config.settings == {}


# --- location ---------------------------------------------------------------------------------------

def test_no_location_applies_root_and_host_links_only() -> None:
    host = HostRecord(U1, links=[Link("h")], dn="dn:host")
    snap = snapshot([container("/", "a"), container("/DC", "b")], [ntp("a"), ntp("b"), ntp("h")], [host])
    config = resolve(snap, U1)
    assert config.location is None
    assert order_of(config) == ["h", "a"]
    assert [(e.dn, e.attribute) for e in config.errors] == [("dn:host", "statelessLocation")]
    assert "no location" in config.errors[0].reason


def test_location_from_rules() -> None:
    rule = Rule("place", match={"serial": "ABC*"}, location="/DC")
    host = HostRecord(U1, identity=HostIdentity(U1, serial="abc123"))
    snap = snapshot([container("/", "a"), container("/DC", "b")], [ntp("a"), ntp("b")], [host],
                    rules=[rule])
    config = resolve(snap, U1)
    assert config.location == "/DC" and config.errors == ()
    assert order_of(config) == ["b", "a"]


def test_host_location_beats_rules() -> None:
    rule = Rule("place", location="/Other")
    host = HostRecord(U1, location="/DC", identity=HostIdentity(U1))
    snap = snapshot([container("/"), container("/DC", "b")], [ntp("b")], [host], rules=[rule])
    assert resolve(snap, U1).location == "/DC"


def test_location_not_in_inventory() -> None:
    snap = snapshot([container("/", "a")], [ntp("a")], [HostRecord(U1, location="/Gone/C", dn="dn:host")])
    config = resolve(snap, U1)
    assert config.location == "/Gone/C"
    assert order_of(config) == ["a"]
    assert [(e.dn, e.attribute, e.value) for e in config.errors] == [("dn:host", "statelessLocation",
                                                                       "/Gone/C")]


def test_bad_rule_is_an_error_not_a_crash() -> None:
    rule = Rule("broken", match={"ipv4": "10.0.0.0/33"}, location="/DC", dn="cn=broken")
    host = HostRecord(U1, location="/DC", identity=HostIdentity(U1, ipv4="10.0.0.1"))
    snap = snapshot([container("/"), container("/DC")], [], [host], rules=[rule])
    errors = resolve(snap, U1).errors
    assert [(e.dn, e.attribute, e.value) for e in errors] == [("cn=broken", "statelessMatch",
                                                               "ipv4=10.0.0.0/33")]


def test_unknown_host() -> None:
    with pytest.raises(NotFoundError, match="not in ou=hosts"):
        resolve(snapshot([container("/")]), U2)


def test_malformed_uuid_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="not a UUID"):
        Resolver(snapshot([container("/")])).resolve("esx01")


def test_uuid_in_any_case() -> None:
    snap = snapshot([container("/", "a")], [ntp("a")], [HostRecord(U1, location="/")])
    assert resolve(snap, "{" + U1.upper() + "}").host == U1


def test_json_document() -> None:
    doc = resolve(chain_snapshot({"/": ("a",), "/DC": ("b!",)}), U1).to_json()
    assert doc["settings"]["ntp.servers"] == {
        "value": ["b.example.com"], "policy": "b", "linked_at": "/DC", "enforced": True,
        "overridden": [{"policy": "a", "linked_at": "/", "value": ["a.example.com"]}]}


# --- Resolver: caching and updates -----------------------------------------------------------------

def hosts_at(path: str, count: int, start: int) -> list[HostRecord]:
    return [HostRecord(f"00000000-0000-0000-0000-{start + i:012d}", location=path) for i in range(count)]


def inventory() -> Snapshot:
    """Two clusters in one folder, one in another, a host with its own link, a rule-placed host."""
    containers = [container("/", "root"), container("/DC", "dc!"), container("/DC/F", "f"),
                  container("/DC/F/C1", "c1"), container("/DC/F/C2", "c2"), container("/DC/G", "g"),
                  container("/DC/G/C3", "c3")]
    policies = [ntp(n) for n in ("root", "dc", "f", "c1", "c2", "g", "c3", "h", "r", "unused")]
    hosts = hosts_at("/DC/F/C1", 3, 100) + hosts_at("/DC/F/C2", 3, 200) + hosts_at("/DC/G/C3", 3, 300)
    hosts.append(HostRecord(U1, location="/DC/F/C1", links=[Link("h")]))
    hosts.append(HostRecord(U2, identity=HostIdentity(U2, vendor="HPE")))
    rules = [Rule("hpe", match={"vendor": "HPE"}, location="/DC/G/C3", policies=("r",))]
    return snapshot(containers, policies, hosts, rules=rules)


def uuids(snap: Snapshot, *paths: str) -> set[str]:
    return {u for u, h in snap.hosts.items() if h.location in paths}


def edit_policy(snap: Snapshot, name: str, **settings: object) -> Snapshot:
    policy = attrs.evolve(snap.policies[name], settings={"ntp.policy": "off", **settings})
    return attrs.evolve(snap, policies={**snap.policies, name: policy})


def edit_container(snap: Snapshot, path: str, **changes: object) -> Snapshot:
    return attrs.evolve(snap, containers={**snap.containers,
                                          path: attrs.evolve(snap.containers[path], **changes)})


def edit_host(snap: Snapshot, uuid: str, **changes: object) -> Snapshot:
    return attrs.evolve(snap, hosts={**snap.hosts, uuid: attrs.evolve(snap.hosts[uuid], **changes)})


BASE = inventory()
C1 = uuids(BASE, "/DC/F/C1")
C2 = uuids(BASE, "/DC/F/C2")
C3 = uuids(BASE, "/DC/G/C3") | {U2}
ALL = set(BASE.hosts)

UPDATES = [
    ("policy at one cluster", edit_policy(BASE, "c1"), C1),
    ("policy at a folder", edit_policy(BASE, "f"), C1 | C2),
    ("enforced policy at the DC", edit_policy(BASE, "dc"), ALL),
    ("policy at the root", edit_policy(BASE, "root"), ALL),
    ("policy linked at one host", edit_policy(BASE, "h"), {U1}),
    ("policy linked by a rule", edit_policy(BASE, "r"), {U2}),
    ("policy linked nowhere", edit_policy(BASE, "unused"), set()),
    ("new policy nobody links", attrs.evolve(BASE, policies={**BASE.policies, "new": ntp("new")}), set()),
    ("deleted policy", attrs.evolve(BASE, policies={k: v for k, v in BASE.policies.items() if k != "c2"}),
     C2),
    ("block flag on a cluster", edit_container(BASE, "/DC/F/C2", block=True), C2),
    ("block flag on a folder", edit_container(BASE, "/DC/G", block=True), C3),
    ("link added at a folder", edit_container(BASE, "/DC/F", links=(Link("f"), Link("g", order=2))),
     C1 | C2),
    ("host record change", edit_host(BASE, U1, answers={"dns.hostname": "esx1"}), {U1}),
    ("host moves", edit_host(BASE, U1, location="/DC/F/C2"), {U1}),
    ("host state and digest written", edit_host(BASE, U1, state=HostState.APPLYING, applied_digest="ab12"),
     set()),
    ("identity change the rules do not see", edit_host(BASE, U2, identity=HostIdentity(U2, vendor="HPE",
                                                                                      serial="X1")), set()),
    ("identity change that moves a host", edit_host(BASE, U2, identity=HostIdentity(U2, vendor="Dell")),
     {U2}),
    ("host deleted", attrs.evolve(BASE, hosts={k: v for k, v in BASE.hosts.items() if k != U1}), set()),
    ("rule edit that changes nothing for hosts",
     attrs.evolve(BASE, rules=[Rule("hpe", match={"vendor": "HPE*"}, location="/DC/G/C3", policies=("r",))]),
     set()),
    ("rule edit moving a host", attrs.evolve(BASE, rules=[Rule("hpe", location="/DC/F/C2", policies=("r",))]),
     {U2}),
    ("nothing changed", attrs.evolve(BASE), set()),
]


@pytest.mark.parametrize(("new", "expected"), [c[1:] for c in UPDATES], ids=[c[0] for c in UPDATES])
def test_update_returns_exactly_the_affected_hosts(new: Snapshot, expected: set[str]) -> None:
    resolver = Resolver(BASE)
    before = {u: resolver.resolve(u).to_json() for u in BASE.hosts}
    affected = resolver.update(new)
    assert affected == expected
    after = {u: resolver.resolve(u).to_json() for u in new.hosts}
    assert after == {u: resolve(new, u).to_json() for u in new.hosts}  # caches dropped correctly
    assert {u for u in after if after[u] != before.get(u)} <= affected


@pytest.mark.parametrize("slices", [0, 1, 2, 100])
@pytest.mark.parametrize(("new", "expected"), [c[1:] for c in UPDATES], ids=[c[0] for c in UPDATES])
def test_a_first_view_then_indexes_in_slices_give_the_same_affected_hosts(
        new: Snapshot, expected: set[str], slices: int) -> None:
    """The daemon's resolver starts empty, takes the whole directory at once (every host
    new, nothing indexed), indexes a few hosts at a time, and a change before it is done
    finishes the indexes first: the hosts a change affects are the same."""
    resolver = Resolver(Snapshot())
    assert resolver.update(BASE) == set(BASE.hosts)
    for _ in range(slices):
        resolver.index_some(1)
    before = {u: resolver.resolve(u).to_json() for u in BASE.hosts}
    assert resolver.update(new) == expected
    after = {u: resolver.resolve(u).to_json() for u in new.hosts}
    assert after == {u: resolve(new, u).to_json() for u in new.hosts}
    assert {u for u in after if after[u] != before.get(u)} <= expected


def test_a_change_no_resolution_reads_needs_no_indexes() -> None:
    """A server entry written (the daemon's own, at start) swaps the snapshot, nothing more."""
    resolver = Resolver(Snapshot())
    resolver.update(BASE)
    servers = attrs.evolve(BASE, servers={"s1": Server("s1", "default", "http://s1/")})
    assert resolver.update(servers) == set() and resolver.snapshot is servers
    assert resolver.index_some(1)  # still to do: no change needed them yet
    while resolver.index_some(1):
        pass
    assert not resolver.index_some(1)


def test_update_without_prior_resolution() -> None:
    resolver = Resolver(BASE)
    assert resolver.update(edit_policy(BASE, "c3")) == C3
    assert resolver.resolve(U2).settings["ntp.policy"].value == "off"


def test_chained_updates_stay_consistent() -> None:
    resolver = Resolver(BASE)
    snap = BASE
    steps = [lambda s: edit_policy(s, "f", **{"lockdown.mode": "strict"}),
             lambda s: edit_container(s, "/DC/F", block=True),
             lambda s: edit_host(s, U1, location="/DC/G/C3"),
             lambda s: edit_container(s, "/DC", links=(Link("dc"),)),
             lambda s: edit_policy(s, "root", **{"ntp.servers": ("x.example.com",)}),
             lambda s: attrs.evolve(s, rules=[]),
             lambda s: edit_container(s, "/DC/F", block=False)]
    for step in steps:
        for u in snap.hosts:
            resolver.resolve(u)
        snap = step(snap)
        resolver.update(snap)
        assert {u: resolver.resolve(u) for u in snap.hosts} == {u: resolve(snap, u) for u in snap.hosts}


def test_pool_change_affects_its_hosts() -> None:
    snap = vmk_snapshot("pool:vmotion", {}, [ALLOC])
    snap = attrs.evolve(snap, hosts={**snap.hosts, U2: HostRecord(U2, location="/DC")},
                        containers={**snap.containers, "/DC": container("/DC", block=True)})
    resolver = Resolver(snap)
    new = attrs.evolve(snap, pools={"vmotion": attrs.evolve(POOL, gateway="10.0.20.2")})
    assert resolver.update(new) == {U1}
    assert resolver.resolve(U1).settings["vmknic.vMotion.gateway"].value == "10.0.20.2"


def test_cached_results_are_shared() -> None:
    resolver = Resolver(BASE)
    assert resolver.resolve(U1) is resolver.resolve(U1)


# --- against a plain reference implementation ---------------------------------------------------

KEYS = ["ntp.policy", "lockdown.mode", f"{PG}.vlan", f"{PG}.vswitch", "portgroup.B.vlan",
        "advanced.Net.Heap"]
VALUES = {"ntp.policy": ["on", "off"], "lockdown.mode": ["normal", "strict"], f"{PG}.vlan": [1, 2],
          f"{PG}.vswitch": ["vSwitch0", "vSwitch1"], "portgroup.B.vlan": [3, 4], "advanced.Net.Heap": [5, 6]}
TARGETS = [PG, "portgroup.B.vlan", "ntp.policy", "portgroup.B"]
PATHS = ["/", "/D1", "/D1/F1", "/D1/F1/C1", "/D1/F1/C2", "/D1/F2", "/D1/F2/C3", "/D2", "/D2/C4"]


def random_estate(rng: random.Random) -> Snapshot:
    names = [f"p{i}" for i in range(7)]

    def links() -> list[Link]:
        return [Link(rng.choice(names), order=rng.randint(1, 3), enforced=rng.random() < 0.3,
                     disabled=rng.random() < 0.1) for _ in range(rng.randint(0, 2))]

    policies = [Policy(n, {k: rng.choice(VALUES[k]) for k in rng.sample(KEYS, rng.randint(1, 4))},
                       removals=set(rng.sample(TARGETS, 1)) if rng.random() < 0.3 else set())
                for n in names[:-1]]  # the last name is linked but missing
    containers = [Container(p, KINDS.get(p.count("/") if p != "/" else 0, "folder"), links=links(),
                            block=rng.random() < 0.2) for p in PATHS]
    hosts = [HostRecord(f"00000000-0000-0000-0000-{i:012d}", location=rng.choice(PATHS), links=links(),
                        identity=HostIdentity(f"00000000-0000-0000-0000-{i:012d}",
                                              vendor=rng.choice(["Dell", "HPE"])))
             for i in range(12)]
    rules = [Rule("dell", match={"vendor": "Dell"}, policies=tuple(rng.sample(names, 2)))]
    return snapshot(containers, policies, hosts, rules=rules)


def reference(snap: Snapshot, uuid: str) -> dict[str, tuple[object, str, str, list[str]]]:
    """The precedence list written out literally, then merged key by key."""
    host = snap.hosts[uuid]
    chain = [snap.containers[p] for p in path_chain(host.location or "/") if p in snap.containers]
    ordered = lambda ls: sorted((lk for lk in ls if not lk.disabled), key=lambda lk: (lk.order, lk.policy))  # noqa: E731
    here = f"host:{uuid}"
    order = [(lk.policy, c.path) for c in chain for lk in ordered(c.links) if lk.enforced]
    order += [(lk.policy, here) for lk in ordered(host.links) if lk.enforced]
    order += [(lk.policy, here) for lk in ordered(host.links) if not lk.enforced]
    assert host.identity is not None
    rules = evaluate(snap.rules, host.identity)
    order += [(name, f"rule:{rules.matched['policies']}") for name in rules.policies]
    for c in reversed(chain):
        order += [(lk.policy, c.path) for lk in ordered(c.links) if not lk.enforced]
        if c.block:
            break
    removed: set[str] = set()
    out: dict[str, tuple[object, str, str, list[str]]] = {}
    for name, at in order:
        policy = snap.policies.get(name)
        if policy is None:
            continue
        for key, value in policy.settings.items():
            if key in removed or item_of(key) in removed:
                continue
            if key in out:
                out[key][3].append(name)
            else:
                out[key] = (value, name, at, [])
        removed |= policy.removals
    return out


def view(config: EffectiveConfig) -> dict[str, tuple[object, str, str, list[str]]]:
    return {k: (s.value, s.policy, s.linked_at, [o.policy for o in s.overridden])
            for k, s in config.settings.items()}


@pytest.mark.parametrize("seed", range(60))
def test_matches_reference_through_random_edits(seed: int) -> None:
    rng = random.Random(seed)
    snap = random_estate(rng)
    resolver = Resolver(snap)
    for step in range(4):
        for uuid in snap.hosts:
            assert view(resolver.resolve(uuid)) == reference(snap, uuid), (step, uuid)
            assert resolve(snap, uuid) == resolver.resolve(uuid)  # single pass == cached chains
        before = {u: resolver.resolve(u) for u in snap.hosts}
        other = random_estate(rng)
        kind = rng.choice(["policies", "containers", "hosts"])
        name = rng.choice(sorted(getattr(other, kind)))
        snap = attrs.evolve(snap, **{kind: {**getattr(snap, kind), name: getattr(other, kind)[name]}})
        affected = resolver.update(snap)
        assert {u for u in snap.hosts if resolve(snap, u) != before[u]} <= affected

"""The pure step from effective configuration to what vCenter is asked for."""

from __future__ import annotations

import attrs
import pytest

from stateless.errors import ValidationError
from stateless.model import Allocation, Container, HostIdentity, HostRecord, Link, Policy, Snapshot
from stateless.model.inventory import HostState, IpPool, Server, VCenter
from stateless.policy import Resolver, resolve
from stateless.prepare import (
    desired_config,
    digest,
    effective_digest,
    inputs_digest,
    missing_allocations,
    prepare,
    serving_vcenter,
    vcenter_name,
    with_allocations,
)

U = "4c4c4544-0000-4000-8000-000000000001"
POOLED = {"ntp.servers": ("10.0.0.1",), "vswitch.vSwitch0.uplinks": ("vmnic0",),
          "portgroup.vMotion.vswitch": "vSwitch0",
          "vmknic.vMotion.ip": "pool:vmo"}


def snapshot(settings: dict[str, object], host: HostRecord, **kw: object) -> Snapshot:
    return Snapshot(containers={"/": Container("/", "root"), "/DC": Container("/DC", "datacenter"),
                                "/DC/C": Container("/DC/C", "cluster", links=[Link("base")]),
                                "/DC/F": Container("/DC/F", "folder", links=[Link("base")])},
                    policies={"base": Policy("base", settings, dn="cn=base")},
                    pools={"vmo": IpPool("vmo", "10.0.20.10", "10.0.20.20", "255.255.255.0")},
                    hosts={host.uuid: host}, **kw)  # type: ignore[arg-type]


def host(**kw: object) -> HostRecord:
    return HostRecord(U, **{"location": "/DC/C", **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(("identity", "name"), [
    (None, U),
    (HostIdentity(U, hostname="esx1", domain="example.com", ipv4="10.0.0.5"), "esx1.example.com"),
    (HostIdentity(U, hostname="esx1", ipv4="10.0.0.5"), "10.0.0.5"),
    (HostIdentity(U, hostname="esx1"), "esx1"),
    (HostIdentity(U), U),
])
def test_vcenter_name(identity: HostIdentity | None, name: str) -> None:
    assert vcenter_name(host(identity=identity)) == name


@pytest.mark.parametrize(("identity", "answers", "name"), [
    (None, {"dns.hostname": "esx-b01", "dns.domain": "example.com"}, "esx-b01.example.com"),
    (HostIdentity(U, hostname="esx1", ipv4="10.0.0.5"), {"dns.domain": "example.com"},
     "esx1.example.com"),  # born without a domain: the configured one
    (HostIdentity(U, hostname="esx1", domain="a.test"), {"dns.hostname": "esx9"}, "esx9.a.test"),
    (HostIdentity(U, ipv4="10.0.0.5"), {"dns.hostname": "esx9"}, "10.0.0.5"),
])
def test_vcenter_name_prefers_the_configured_name(identity: HostIdentity | None,
                                                  answers: dict[str, str], name: str) -> None:
    record = host(identity=identity, answers=answers)
    effective = resolve(snapshot({}, record), U)
    assert vcenter_name(record, effective) == name


def test_digest_is_stable_and_tuples_are_lists() -> None:
    assert digest({"b": 1, "a": ("x",)}) == digest({"a": ["x"], "b": 1})
    assert digest({"a": 1}) != digest({"a": 2})
    assert len(digest({})) == 32


def test_a_valid_host_is_prepared() -> None:
    snap = snapshot({"ntp.servers": ("10.0.0.1",)}, host())
    effective = resolve(snap, U)
    target = prepare(snap, snap.hosts[U], effective)
    assert (target.location, target.leaf, target.name) == ("/DC/C", "cluster", U)
    assert target.digest == digest(effective.values()) == effective_digest(effective)
    assert target.desired.ntp.servers == ("10.0.0.1",)
    folder = snapshot({}, host(location="/DC/F"))
    assert prepare(folder, folder.hosts[U], resolve(folder, U)).leaf == "folder"


def test_pool_addresses_are_allocated_then_prepared() -> None:
    snap = snapshot(POOLED, host())
    effective = resolve(snap, U)
    assert effective.errors  # no address yet: invalid, so it would never reach the host
    assert effective_digest(effective).startswith("invalid:")
    assert missing_allocations(effective, snap.hosts[U]) == [("vmknic.vMotion", "vmo")]
    with pytest.raises(ValidationError, match="error"):
        prepare(snap, snap.hosts[U], effective)
    made = [Allocation("vmknic.vMotion", "vmo", "10.0.20.11")]
    after, record = with_allocations(snap, snap.hosts[U], made)
    assert after.hosts[U] is record and record.allocations == tuple(made)
    assert with_allocations(after, record, made)[1].allocations == tuple(made)  # no duplicate
    target = prepare(after, record, resolve(after, U))
    assert missing_allocations(target.effective, record) == []
    assert [n.address for n in target.desired.vmknics.values()] == ["10.0.20.11"]


def test_a_pool_that_does_not_exist_is_left_to_resolution() -> None:
    snap = snapshot({**POOLED, "vmknic.vMotion.ip": "pool:nope"}, host())
    effective = resolve(snap, U)
    assert missing_allocations(effective, snap.hosts[U]) == [("vmknic.vMotion", "nope")]
    assert missing_allocations(effective, snap.hosts[U], snap.pools) == []
    with pytest.raises(ValidationError, match="IP pool nope does not exist"):
        prepare(snap, snap.hosts[U], effective)


def test_no_location() -> None:
    snap = snapshot({}, host(location=None))
    with pytest.raises(ValidationError, match="no location"):
        prepare(snap, snap.hosts[U], resolve(snap, U))


def test_inputs_digest_follows_pools_and_vcenter() -> None:
    snap = snapshot(POOLED, host())
    effective = resolve(snap, U)
    before = inputs_digest(effective, snap.pools, "vc1")
    assert inputs_digest(effective, snap.pools, "vc2") != before
    wider = {"vmo": attrs.evolve(snap.pools["vmo"], end="10.0.20.30")}
    assert inputs_digest(effective, wider, "vc1") != before
    unrelated = {**snap.pools, "other": IpPool("other", "10.9.0.1", "10.9.0.2", "255.255.255.0")}
    assert inputs_digest(effective, unrelated, "vc1") == before


def test_serving_vcenter() -> None:
    vcs = {n: VCenter(n, f"http://{n}/sdk", "u") for n in ("vc1", "vc2")}
    one = Snapshot(vcenters={"vc1": vcs["vc1"]})
    assert serving_vcenter(one, "sd1") == "vc1"
    named = Snapshot(vcenters=vcs, servers={"sd1": Server("sd1", "s", "http://x", ("vc2",))})
    assert serving_vcenter(named, "sd1") == "vc2"
    with pytest.raises(ValidationError, match="serves no registered vCenter"):
        serving_vcenter(Snapshot(vcenters=vcs), "sd1")
    with pytest.raises(ValidationError, match="no vCenter is registered"):
        serving_vcenter(Snapshot(), "sd1")


def test_a_born_host_without_a_domain_gets_the_servers_host_domain() -> None:
    born = host(identity=HostIdentity(U, hostname="esx07", ipv4="10.0.0.7"))
    assert vcenter_name(born, None, "example.com") == "esx07.example.com"
    assert vcenter_name(born) == "10.0.0.7"  # no domain anywhere: its address
    snap = snapshot({"ntp.servers": ("10.0.0.1",)}, born)
    assert prepare(snap, born, resolve(snap, U), "example.com").name == "esx07.example.com"


def test_two_hosts_never_get_one_name() -> None:
    u2 = "4c4c4544-0000-4000-8000-000000000002"
    first = host(answers={"dns.hostname": "esx01", "dns.domain": "example.com"})
    second = HostRecord(u2, location="/DC/C",
                        identity=HostIdentity(u2, hostname="ESX01", domain="example.com"))
    snap = attrs.evolve(snapshot({"ntp.servers": ("10.0.0.1",)}, first),
                        hosts={U: first, u2: second})
    with pytest.raises(ValidationError, match=f"hosts {U} and {u2} would both be named "
                                              "esx01.example.com in vCenter"):
        prepare(snap, first, resolve(snap, U))
    with pytest.raises(ValidationError, match=f"hosts {u2} and {U} would both be named"):
        prepare(snap, second, resolve(snap, u2))


@pytest.mark.parametrize("address", ["10.0.20.11", "10.0.20.12"])
def test_a_record_with_new_allocations_resolves_as_a_fresh_view_would(address: str) -> None:
    """The daemon resolves a host it just allocated for against its standing view (no new
    index of every host); 10.0.20.12 is another host's: a duplicate, as a fresh view says."""
    other = HostRecord("4c4c4544-0000-4000-8000-000000000002", location="/DC/C",
                       allocations=[Allocation("vmknic.vMotion", "vmo", "10.0.20.12")])
    snap = attrs.evolve(snapshot(POOLED, host()), hosts={U: host(), other.uuid: other})
    resolver = Resolver(snap)
    resolver.resolve(U)  # the standing view has its caches and address index
    after, record = with_allocations(snap, snap.hosts[U],
                                     [Allocation("vmknic.vMotion", "vmo", address)])
    assert resolver.resolve_record(record) == resolve(after, U)
    assert bool(resolve(after, U).errors) == (address == "10.0.20.12")
    assert resolver.resolve(U) == resolve(snap, U)  # nothing of the record was cached


def test_a_resolution_is_worked_out_once_however_often_it_is_prepared() -> None:
    """The desired configuration and digest of one resolution are kept with it; a new
    resolution (another value) works them out afresh and differs."""
    settings = {"ntp.servers": ("10.0.0.1",), "dns.servers": ("10.0.0.53",)}
    snap = snapshot(settings, host())
    effective = Resolver(snap).resolve(U)
    first = prepare(snap, snap.hosts[U], effective)
    again = prepare(snap, snap.hosts[U], effective)
    assert again.desired is first.desired and again.digest == first.digest
    assert first.digest == digest(effective.values()) == effective_digest(effective)
    other = Resolver(snapshot({**settings, "ntp.servers": ("10.0.0.2",)}, host())).resolve(U)
    changed = prepare(snap, snap.hosts[U], other)
    assert changed.desired != first.desired and changed.digest != first.digest
    assert Resolver(snap).resolve(U) == effective  # what was worked out is not compared


def test_resolutions_with_the_same_values_share_their_desired_configuration() -> None:
    """A host resolved again after a write to its entry (same values) is not parsed again."""
    settings = {"ntp.servers": ("10.0.0.3",), "dns.servers": ("10.0.0.54",)}
    snap = snapshot(settings, host())
    first = Resolver(snap).resolve(U)
    again = Resolver(snapshot(settings, host(state=HostState.COMPLIANT))).resolve(U)
    assert again is not first
    assert desired_config(again) is desired_config(first)

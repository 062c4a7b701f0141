"""The ldap3 adapter against the real slapd: DIT, mapping, edits, schema enforcement, pools."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import attrs
import ldap3
import pytest

from stateless.directory.client import Directory
from stateless.directory.embedded import EmbeddedDirectory
from stateless.errors import ConflictError, DirectoryError, NotFoundError, SettingError, ValidationError
from stateless.model.identity import HostIdentity
from stateless.model.inventory import HostState, IpPool, Policy, Rule, Site, SiteLink
from tests.integration.fixtures_slapd import Slapd
from tests.ports import free_port

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"


def ldapmodify(slapd: Slapd, ldif: str) -> subprocess.CompletedProcess[str]:
    """The plain OpenLDAP client, as an administrator would run it."""
    return subprocess.run(["ldapmodify", "-x", "-H", slapd.url, "-D", slapd.bind_dn, "-y",
                           str(slapd.password_file)], input=ldif, capture_output=True, text=True,
                          check=False, timeout=30)


def inventory(d: Directory) -> None:
    d.add_container("/DC1", "datacenter")
    d.add_container("/DC1/Prod", "folder")
    d.add_container("/DC1/Prod/ClusterA", "cluster")


def test_init_is_idempotent(directory: Directory) -> None:
    assert directory.init() == []
    snap = directory.snapshot()
    assert set(snap.containers) == {"/"}
    assert snap.problems == ()


def test_containers_links_and_block(directory: Directory) -> None:
    inventory(directory)
    directory.add_container("/DC1/Prod/VM Network, odd+name", "folder")
    directory.create_policy(Policy("Base", {"ntp.servers": "10.0.0.1"}))
    directory.link("Base", "/", order=2)
    directory.link("Base", "/DC1/Prod/VM Network, odd+name", enforced=True, disabled=True)
    directory.set_block("/DC1/Prod", True)
    snap = directory.snapshot()
    assert snap.containers["/"].links[0].order == 2
    odd = snap.containers["/DC1/Prod/VM Network, odd+name"]
    assert odd.links[0].enforced and odd.links[0].disabled
    assert snap.containers["/DC1/Prod"].block
    directory.set_block("/DC1/Prod", False)
    assert not directory.snapshot().containers["/DC1/Prod"].block
    directory.unlink("Base", "/")
    assert directory.snapshot().containers["/"].links == ()


@pytest.mark.parametrize(("call", "error", "text"), [
    (lambda d: d.add_container("/Nope/X", "folder"), NotFoundError, "parent /Nope does not exist"),
    (lambda d: d.add_container("/DC1", "datacenter"), ConflictError, "already exists"),
    (lambda d: d.add_container("/Y", "galaxy"), ValidationError, "datacenter, folder or cluster"),
    (lambda d: d.link("Missing", "/"), NotFoundError, "policy Missing: not found"),
    (lambda d: d.link("Base", "/DC9"), NotFoundError, "/DC9 does not exist"),
    (lambda d: d.link("Base", "/DC1"), ConflictError, "already linked"),
    (lambda d: d.link("Base", "/", order=0), ValidationError, "link order"),
    (lambda d: d.unlink("Base", "/"), NotFoundError, "not linked there"),
    (lambda d: d.create_policy(Policy("Base")), ConflictError, "already exists"),
    (lambda d: d.policy_set("Base", {"portgroup.vMotion.vlan": 5000}), SettingError, "4095"),
    (lambda d: d.policy_unset("Base", ["dns.servers"]), NotFoundError, "does not set dns.servers"),
    (lambda d: d.add_host(UUID, "/Nowhere"), NotFoundError, "/Nowhere does not exist"),
    (lambda d: d.add_host("not-a-uuid", "/DC1"), ValidationError, "not a UUID"),
    (lambda d: d.add_site_link(SiteLink("A", "Z", 5)), NotFoundError, "site A does not exist"),
    (lambda d: d.delete_rule("nope"), NotFoundError, "no such entry"),
])
def test_errors_say_what_and_where(directory: Directory, call, error, text) -> None:  # type: ignore[no-untyped-def]
    directory.add_container("/DC1", "datacenter")
    directory.create_policy(Policy("Base", {"ntp.servers": "10.0.0.1"}))
    directory.link("Base", "/DC1")
    with pytest.raises(error, match=text):
        call(directory)


def test_policy_edits_touch_one_item(directory: Directory, slapd: Slapd) -> None:
    directory.create_policy(Policy("Net", {
        "portgroup.vMotion.vlan": 20, "portgroup.vMotion.vswitch": "vSwitch1",
        "portgroup.VM Network.vlan": 0, "advanced.Net.TcpipHeapSize": 32, "ntp.servers": "a.example"},
        description="network"))
    directory.policy_set("Net", {"portgroup.vMotion.vlan": "30", "ntp.policy": "on",
                                 "advanced.Net.TcpipHeapSize": 64})
    directory.policy_unset("Net", ["portgroup.VM Network", "ntp.servers"])
    directory.policy_remove("Net", ["service.TSM-SSH"])
    raw = directory.read(directory.policy_dn("Net"))
    assert raw is not None
    assert raw["statelessPortGroup"] == ["vMotion; vlan=30; vswitch=vSwitch1"]
    assert raw["statelessAdvanced"] == ["Net.TcpipHeapSize=64"]
    assert raw["statelessNtp"] == ["policy=on"]
    policy = directory.snapshot().policies["Net"]
    assert policy.settings == {"portgroup.vMotion.vlan": 30, "portgroup.vMotion.vswitch": "vSwitch1",
                               "advanced.Net.TcpipHeapSize": 64, "ntp.policy": "on"}
    assert policy.removals == {"service.TSM-SSH"} and policy.description == "network"


def test_delete_policy_refuses_while_linked(directory: Directory) -> None:
    inventory(directory)
    directory.create_policy(Policy("Base", {"ntp.servers": "10.0.0.1"}))
    directory.link("Base", "/DC1/Prod")
    directory.add_rule(Rule("r", 10, {"vendor": ("Dell*",)}, policies=("Base",)))
    with pytest.raises(ConflictError, match=r"still linked at /DC1/Prod; rule r"):
        directory.delete_policy("Base")
    directory.delete_policy("Base", force=True)
    snap = directory.snapshot()
    assert "Base" not in snap.policies and snap.containers["/DC1/Prod"].links == ()
    assert snap.rules[0].policies == ()


def test_schema_rejects_garbage(directory: Directory, slapd: Slapd) -> None:
    """slapd itself refuses values of the wrong syntax, whoever writes them."""
    directory.add_container("/DC1", "datacenter")
    directory.create_policy(Policy("Base", {"ntp.servers": "10.0.0.1"}))
    link = directory.link_dn("Base", directory.container_dn("/DC1"))
    directory.link("Base", "/DC1")
    for attr, value in (("statelessOrder", "first"), ("statelessEnforced", "yes"),
                        ("statelessDisabled", "1")):
        result = ldapmodify(slapd, f"dn: {link}\nchangetype: modify\nreplace: {attr}\n{attr}: {value}\n")
        assert result.returncode == 21, result.stderr  # invalidAttributeSyntax
        assert "invalid" in result.stderr.lower()
    result = ldapmodify(slapd, f"dn: {link}\nchangetype: modify\nadd: statelessOrder\nstatelessOrder: 3\n")
    assert result.returncode != 0  # SINGLE-VALUE
    with pytest.raises(ValidationError, match="rejected"):
        directory.modify(directory.container_dn("/DC1"),
                         {"statelessBlockInheritance": [(ldap3.MODIFY_REPLACE, ["maybe"])]})
    with pytest.raises(ValidationError, match="rejected"):
        directory.modify(directory.named_dn("policies", "Base"),
                         {"statelessLastBirth": [(ldap3.MODIFY_REPLACE, ["yesterday"])]})
    assert directory.snapshot().containers["/DC1"].links[0].order == 1


def test_bad_values_written_by_hand_become_problems(directory: Directory, slapd: Slapd) -> None:
    inventory(directory)
    directory.create_policy(Policy("Net", {"portgroup.vMotion.vlan": 20}))
    directory.add_host(UUID, "/DC1/Prod/ClusterA", {"dns.hostname": "esx01"})
    policy_dn = directory.policy_dn("Net")
    result = ldapmodify(slapd, f"dn: {policy_dn}\nchangetype: modify\nadd: statelessPortGroup\n"
                               "statelessPortGroup: Storage; vlan=5000\n-\nadd: statelessNtp\n"
                               "statelessNtp: servers=not a host name\n\n"
                               f"dn: {directory.host_dn(UUID)}\nchangetype: modify\n"
                               "add: statelessAnswer\nstatelessAnswer: dns.hostname=bad_label!\n")
    assert result.returncode == 0, result.stderr
    snap = directory.snapshot()
    problems = {(p.attribute, p.value) for p in snap.policies["Net"].problems}
    assert problems == {("statelessPortGroup", "Storage; vlan=5000"),
                        ("statelessNtp", "servers=not a host name")}
    assert all(p.dn == policy_dn for p in snap.policies["Net"].problems)
    assert [p.value for p in snap.hosts[UUID].problems] == ["dns.hostname=bad_label!"]


def test_hosts_state_identity_and_digest(directory: Directory) -> None:
    inventory(directory)
    directory.add_host(UUID.upper(), "/DC1/Prod/ClusterA", {"vmknic.Storage.address": "10.1.30.11"})
    identity = HostIdentity(UUID, serial="ABC123", vendor="Dell Inc.", model="PowerEdge R650",
                            macs=("00:50:56:AA:BB:CC",), boot_mac="00:50:56:aa:bb:cc",
                            ipv4="10.1.0.21", hostname="esx01", domain="example.com",
                            oem_strings=("Dell System", "5[0000]"))
    directory.record_identity(identity, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    directory.set_host_state(UUID, HostState.FAILED, "AddHost: timeout", applied_digest="sha256:abc")
    directory.set_answers(UUID, {"dns.hostname": "esx01"})
    host = directory.snapshot().hosts[UUID]
    assert host.identity == identity
    assert host.state == HostState.FAILED and host.reason == "AddHost: timeout"
    assert host.applied_digest == "sha256:abc"
    assert host.answers == {"vmknic.Storage.address": "10.1.30.11", "dns.hostname": "esx01"}
    directory.set_host_state(UUID, "compliant")
    host = directory.snapshot().hosts[UUID]
    assert host.state == HostState.COMPLIANT and host.reason == ""
    assert host.applied_digest == "sha256:abc"  # untouched unless given
    directory.set_host_state(UUID, HostState.APPLYING, "again", applied_digest="")
    host = directory.snapshot().hosts[UUID]
    assert host.state == HostState.APPLYING and host.applied_digest == ""
    directory.create_policy(Policy("Pin", {"ntp.servers": "10.0.0.1"}))
    directory.link("Pin", f"host:{UUID}", order=3)
    assert directory.snapshot().hosts[UUID].links[0].order == 3
    directory.delete_host(UUID)  # with its link entries
    assert UUID not in directory.snapshot().hosts


def test_record_birth_whatever_the_guess(directory: Directory) -> None:
    """One write when the caller guesses right; the same entry when it guesses wrong."""
    inventory(directory)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for n, known in enumerate((False, False, True)):  # new; known after all; known
        identity = HostIdentity(UUID, serial=f"SN{n}", ipv4=f"10.1.0.{n + 1}")
        directory.record_birth(identity, when, "srv1", known=known)
        host = directory.snapshot().hosts[UUID]
        assert host.identity == identity and host.owner == "srv1"
        assert host.state == HostState.PENDING and host.reason == "birth accepted"
    other = "4c4c4544-0042-3510-8052-000000000001"
    directory.record_birth(HostIdentity(other, serial="X"), when, "srv2", known=True)  # wrong
    assert directory.snapshot().hosts[other].owner == "srv2"
    # The thumbprint vCenter needs to add the host is kept, and replaced by each birth.
    sha256 = ":".join(["AB"] * 32)
    directory.record_birth(HostIdentity(other, serial="X"), when, "srv2", thumbprint=sha256)
    assert directory.snapshot().hosts[other].thumbprint == sha256
    directory.record_birth(HostIdentity(other, serial="X"), when, "srv2")
    assert directory.snapshot().hosts[other].thumbprint is None
    third = "4c4c4544-0042-3510-8052-000000000002"
    directory.record_birth(HostIdentity(third), when, "srv2", known=False, thumbprint=sha256)
    assert directory.snapshot().hosts[third].thumbprint == sha256


def test_a_new_hosts_first_birth_and_its_pin_are_one_add(directory: Directory) -> None:
    """The pin of a first approval rides in the add of a new host; a host that exists is
    pinned by the add-only modify, which refuses a second pin."""
    from stateless.model.security import PinnedIdentity

    inventory(directory)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    sha256 = ":".join(["AB"] * 32)
    pin = PinnedIdentity(when, sha256, "SN1", ("00:50:56:aa:bb:01",), "esx1.example.com")
    assert directory.record_birth(HostIdentity(UUID, serial="SN1"), when, "srv1", known=False,
                                  thumbprint=sha256, pin=pin)
    host = directory.snapshot().hosts[UUID]
    assert host.pinned == pin and host.state == HostState.PENDING
    assert not directory.pin_identity(UUID, attrs.evolve(pin, serial="SN2"))  # pinned already
    # Known (or added meanwhile): the birth is a modify, and the caller pins separately.
    other = "4c4c4544-0042-3510-8052-000000000001"
    directory.add_host(other, "/DC1/Prod/ClusterA")
    assert not directory.record_birth(HostIdentity(other, serial="SN3"), when, "srv1",
                                      known=False, pin=attrs.evolve(pin, serial="SN3"))
    assert directory.snapshot().hosts[other].pinned is None
    assert directory.pin_identity(other, attrs.evolve(pin, serial="SN3"))
    assert directory.snapshot().hosts[other].pinned == attrs.evolve(pin, serial="SN3")


def test_pool_allocation_is_atomic_across_writers(directory: Directory, slapd: Slapd, base: str) -> None:
    inventory(directory)
    directory.add_pool(IpPool("vmo", "10.0.20.10", "10.0.20.29", "255.255.255.0", "10.0.20.1"))
    uuids = [f"4c4c4544-0042-3510-8052-{i:012x}" for i in range(12)]
    for uuid in uuids:
        directory.add_host(uuid, "/DC1/Prod/ClusterA")
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def worker(chunk: list[str]) -> None:
        d = Directory([slapd.url], slapd.bind_dn, slapd.password, base=base)
        try:
            for uuid in chunk:
                got[uuid] = d.allocate(uuid, "vmknic.vMotion", "vmo").address
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            d.close()

    threads = [threading.Thread(target=worker, args=(uuids[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(set(got.values())) == len(uuids)  # no address handed out twice
    assert directory.allocate(uuids[0], "vmknic.vMotion", "vmo").address == got[uuids[0]]  # idempotent
    _, used = directory.pool_used("vmo")
    assert used == set(got.values())
    snap = directory.snapshot()
    assert {snap.hosts[u].allocations[0].address for u in uuids} == set(got.values())


def test_pool_exhaustion_is_a_clear_error(directory: Directory) -> None:
    inventory(directory)
    directory.add_pool(IpPool("tiny", "10.0.9.10", "10.0.9.11", "255.255.255.0"))
    for i in range(3):
        directory.add_host(f"4c4c4544-0042-3510-8052-{i:012x}", "/DC1")
    directory.allocate("4c4c4544-0042-3510-8052-000000000000", "vmknic.vMotion", "tiny")
    directory.allocate("4c4c4544-0042-3510-8052-000000000001", "vmknic.vMotion", "tiny")
    with pytest.raises(ConflictError, match="tiny"):
        directory.allocate("4c4c4544-0042-3510-8052-000000000002", "vmknic.vMotion", "tiny")


def test_allocate_all_shared_client_many_threads(directory: Directory, slapd: Slapd,
                                                  base: str) -> None:
    """One client, as the daemon has: every address distinct, one host write per host."""
    inventory(directory)
    pools = {p.name: p for p in (IpPool("vmo", "10.0.20.10", "10.0.20.59", "255.255.255.0"),
                                 IpPool("sto", "10.0.30.10", "10.0.30.59", "255.255.255.0"))}
    for pool in pools.values():
        directory.add_pool(pool)
    uuids = [f"4c4c4544-0042-3510-8052-{i:012x}" for i in range(24)]
    for uuid in uuids:
        directory.add_host(uuid, "/DC1/Prod/ClusterA")
    shared = Directory([slapd.url], slapd.bind_dn, slapd.password, base=base)
    wanted = [("vmknic.vMotion", "vmo"), ("vmknic.Storage", "sto")]
    got: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def worker(chunk: list[str]) -> None:
        try:
            for uuid in chunk:
                got[uuid] = [a.address for a in shared.allocate_all(uuid, wanted, pools)]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(uuids[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    shared.close()
    assert not errors
    vmo = {v[0] for v in got.values()}
    sto = {v[1] for v in got.values()}
    assert len(vmo) == len(sto) == len(uuids)
    assert directory.pool_used("vmo")[1] == vmo and directory.pool_used("sto")[1] == sto
    snap = directory.snapshot()
    for uuid in uuids:
        assert sorted(a.address for a in snap.hosts[uuid].allocations) == sorted(got[uuid])
    again = directory.allocate_all(uuids[0], list(reversed(wanted)))  # idempotent, in order
    assert [a.address for a in again] == list(reversed(got[uuids[0]]))


def test_allocation_follows_a_redefined_pool(directory: Directory) -> None:
    inventory(directory)
    before = IpPool("vmo", "10.0.20.10", "10.0.20.29", "255.255.255.0")
    directory.add_pool(before)
    uuids = [f"4c4c4544-0042-3510-8052-{i:012x}" for i in range(2)]
    for uuid in uuids:
        directory.add_host(uuid, "/DC1")
    wanted = [("vmknic.vMotion", "vmo")]
    assert directory.allocate_all(uuids[0], wanted, {"vmo": before})[0].address == "10.0.20.10"
    directory.modify(directory.named_dn("pools", "vmo"),
                     {"statelessRangeStart": [(ldap3.MODIFY_REPLACE, ["10.0.20.20"])]})
    after = attrs.evolve(before, start="10.0.20.20")  # as the next snapshot shows it
    assert directory.allocate_all(uuids[1], wanted, {"vmo": after})[0].address == "10.0.20.20"


def test_allocation_finds_an_address_released_by_another_client(directory: Directory,
                                                                 slapd: Slapd, base: str) -> None:
    inventory(directory)
    directory.add_pool(IpPool("tiny", "10.0.9.10", "10.0.9.11", "255.255.255.0"))
    uuids = [f"4c4c4544-0042-3510-8052-{i:012x}" for i in range(3)]
    for uuid in uuids:
        directory.add_host(uuid, "/DC1")
    first = directory.allocate(uuids[0], "vmknic.vMotion", "tiny")
    directory.allocate(uuids[1], "vmknic.vMotion", "tiny")
    other = Directory([slapd.url], slapd.bind_dn, slapd.password, base=base)
    other.release(uuids[0], first)  # this client still remembers the address as taken
    other.close()
    assert directory.allocate(uuids[2], "vmknic.vMotion", "tiny").address == first.address
    with pytest.raises(ValidationError, match="vmknic"):
        directory.allocate_all(uuids[2], [("ntp.servers", "tiny")])


def test_sites_rules_images(directory: Directory) -> None:
    directory.add_site(Site("siteA", ("10.1.0.0/16",), "primary"))
    directory.add_site(Site("siteB", ("10.2.0.0/16", "10.3.0.0/16")))
    directory.add_site_link(SiteLink("siteB", "siteA", 10))
    directory.add_rule(Rule("prod", 10, {"vendor": ("Dell*", "HPE*"), "ipv4": ("10.1.0.0/16",)},
                            "/DC1/Prod", "esxi8", ("Base", "Net")))
    snap = directory.snapshot()
    assert snap.sites["siteB"].subnets == ("10.2.0.0/16", "10.3.0.0/16")
    assert (snap.site_links[0].a, snap.site_links[0].b, snap.site_links[0].cost) == ("siteA", "siteB", 10)
    rule = snap.rules[0]
    assert rule.match == {"vendor": ("Dell*", "HPE*"), "ipv4": ("10.1.0.0/16",)}
    assert (rule.location, rule.image, rule.policies) == ("/DC1/Prod", "esxi8", ("Base", "Net"))


def test_failover_to_the_next_url(slapd: Slapd, base: str) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    d = Directory([dead, slapd.url], slapd.bind_dn, slapd.password, base=base, connect_timeout=1)
    try:
        assert d.init()
        assert "/" in d.snapshot().containers
    finally:
        d.close()


def test_unreachable_and_bad_credentials(slapd: Slapd, base: str) -> None:
    with pytest.raises(DirectoryError, match="cannot talk to the directory"):
        Directory([f"ldap://127.0.0.1:{free_port()}"], slapd.bind_dn, "x", base=base,
                  connect_timeout=1).snapshot()
    with pytest.raises(DirectoryError, match="invalid credentials"):
        Directory([slapd.url], slapd.bind_dn, "wrong", base=base).snapshot()


def test_snapshot_of_a_few_hundred_entries(directory: Directory) -> None:
    """One paged search maps every entry (its speed: tests/bench/mirror.py)."""
    inventory(directory)
    for i in range(60):
        directory.create_policy(Policy(f"P{i}", {"portgroup.vMotion.vlan": i, "ntp.servers": "10.0.0.1"}))
        directory.link(f"P{i}", "/DC1/Prod/ClusterA", order=i + 1)
    for i in range(150):
        directory.add_host(f"4c4c4544-0042-3510-8052-{i:012x}", "/DC1/Prod/ClusterA",
                           {"dns.hostname": f"esx{i}"})
    snap = directory.snapshot()
    assert len(snap.hosts) == 150 and len(snap.containers["/DC1/Prod/ClusterA"].links) == 60
    assert [lk.order for lk in snap.containers["/DC1/Prod/ClusterA"].links] == list(range(1, 61))


def test_embedded_restart_keeps_data(tmp_path: Path) -> None:
    instance = EmbeddedDirectory(tmp_path / "ldap")
    try:
        assert instance.start().startswith("created")
        assert (instance.password_file.stat().st_mode & 0o777) == 0o600
        assert "{SSHA}" in (tmp_path / "ldap" / "config.ldif").read_text()
        assert instance.start().startswith("already running")
        d = Directory([instance.url], instance.bind_dn, instance.password_file.read_text().strip())
        d.create_policy(Policy("Kept", {"ntp.servers": "10.0.0.1"}))
        d.close()
        assert instance.stop()
        assert not instance.running()
        assert instance.start().startswith("restarted")
        d = Directory([instance.url], instance.bind_dn, instance.password_file.read_text().strip())
        assert "Kept" in d.snapshot().policies
        d.close()
    finally:
        instance.stop()
    assert not instance.stop()

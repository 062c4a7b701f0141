"""Boot choices: rule and container -> image tables, rollback, sites and servers, renderers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest

from stateless.boot.bootcfg import parse_bootcfg
from stateless.boot.render import (
    BootSettings,
    bootstrap_ipxe,
    host_bootcfg,
    host_ipxe,
    host_pxelinux,
    no_image_ipxe,
    pxelinux_names,
)
from stateless.boot.select import BootPlanner, assigned, rolled_back
from stateless.boot.tree import tftp_files
from stateless.errors import ValidationError
from stateless.model import HostIdentity, Rule
from stateless.model.inventory import (
    Container,
    ContainerKind,
    HostRecord,
    Image,
    Problem,
    Scope,
    Server,
    Site,
    SiteLink,
    Snapshot,
)

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
U1 = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
U2 = "4c4c4544-0042-3510-8052-b4c04f4b4e32"
DELL = HostIdentity(U1, vendor="Dell Inc.", macs=("00:50:56:aa:bb:01",), ipv4="10.1.0.7")
HPE = HostIdentity(U2, vendor="HPE", macs=("00:50:56:aa:bb:02",), ipv4="10.2.0.7")
IMAGES = {n: Image(n, f"8.0.{i}-0.0.1", "b.b00", ("/k.b00", "/s.v00"), "runweasel",
                   f"http://img/{n}", dn=f"cn={n}") for i, n in enumerate(("esx7", "esx8", "esx8u1"))}
CONTAINERS = {p: Container(p, k) for p, k in (("/", ContainerKind.ROOT),
                                              ("/DC1", ContainerKind.DATACENTER),
                                              ("/DC1/A", ContainerKind.CLUSTER),
                                              ("/DC1/B", ContainerKind.CLUSTER))}


def world(rules: tuple[Rule, ...] = (), assign: dict[str, str] | None = None,
          hosts: tuple[HostRecord, ...] = (), **extra: object) -> Snapshot:
    containers = {p: attrs.evolve(c, image=(assign or {}).get(p)) for p, c in CONTAINERS.items()}
    base: dict[str, object] = dict(
        containers=containers, images=IMAGES, rules=rules, hosts={h.uuid: h for h in hosts},
        sites={"paris": Site("paris", ("10.1.0.0/16",)), "lyon": Site("lyon", ("10.2.0.0/16",))},
        site_links=(SiteLink("paris", "lyon", 10),),
        servers={"p1": Server("p1", "paris", "http://p1:8480", lease_expiry=NOW + timedelta(60)),
                 "p2": Server("p2", "paris", "http://p2:8480", priority=1,
                              lease_expiry=NOW + timedelta(60)),
                 "l1": Server("l1", "lyon", "http://l1:8480", lease_expiry=NOW - timedelta(1))})
    base.update(extra)
    return Snapshot(**base)  # type: ignore[arg-type]


DELL_RULE = Rule("dell", 10, {"vendor": "Dell*"}, location="/DC1/A", image="esx8")
DEFAULT = Rule("default", 100, {}, location="/DC1/B", image="esx7")

TABLE = [
    # rules, container assignments, host -> (image, from, location)
    ((DELL_RULE, DEFAULT), {}, DELL, ("esx8", "rule dell", "/DC1/A")),
    ((DELL_RULE, DEFAULT), {}, HPE, ("esx7", "rule default", "/DC1/B")),
    ((DELL_RULE, DEFAULT), {"/DC1/A": "esx8u1"}, DELL, ("esx8u1", "container /DC1/A", "/DC1/A")),
    ((DELL_RULE, DEFAULT), {"/DC1/A": "esx8u1"}, HPE, ("esx7", "rule default", "/DC1/B")),
    ((DELL_RULE, DEFAULT), {"/DC1": "esx8u1"}, HPE, ("esx8u1", "container /DC1", "/DC1/B")),
    ((DELL_RULE, DEFAULT), {"/": "esx8u1", "/DC1/B": "esx8"}, HPE,
     ("esx8", "container /DC1/B", "/DC1/B")),
    ((Rule("loc", 1, {}, location="/DC1/A"), Rule("img", 2, {"vendor": "HPE"}, image="esx8")), {},
     HPE, ("esx8", "rule img", "/DC1/A")),
    ((DELL_RULE,), {}, HPE, (None, "", None)),
    ((Rule("ghost", 1, {}, image="nope"),), {}, HPE, (None, "rule ghost", None)),
]


@pytest.mark.parametrize("rules,assign,identity,expected", TABLE)
def test_rule_and_container_to_image(rules: tuple[Rule, ...], assign: dict[str, str],
                                     identity: HostIdentity,
                                     expected: tuple[str | None, str, str | None]) -> None:
    choice = BootPlanner(world(rules, assign), NOW, "paris").choose(identity)
    assert (choice.image.name if choice.image else None, choice.image_from, choice.location) == expected
    assert bool(choice.reason) == (choice.image is None)


def test_a_known_hosts_entry_location_and_identity_win() -> None:
    record = HostRecord(U2, location="/DC1/A", identity=HPE)
    snap = world((DELL_RULE, DEFAULT), {"/DC1/A": "esx8u1"}, (record,))
    choice = BootPlanner(snap, NOW, "paris").choose(HostIdentity(U2))  # firmware sent only a UUID
    assert choice.known and choice.location == "/DC1/A" and choice.image == IMAGES["esx8u1"]
    assert choice.site == "lyon"  # from the address it gave at birth


def test_unreadable_rules_fail_closed() -> None:
    problem = Problem("cn=x,ou=rules", "statelessMatch", "?", "bad")
    snap = world((DEFAULT,), blocking={(Scope.RULES, ""): (problem,)})
    choice = BootPlanner(snap, NOW, "paris").choose(HPE)
    assert choice.image is None and "deploy rules cannot be read" in choice.reason


def test_servers_of_the_site_then_of_the_covering_one() -> None:
    planner = BootPlanner(world(), NOW, "paris")
    assert planner.servers_for("paris") == ("http://p1:8480", "http://p2:8480")
    # lyon's only server's lease ran out: paris covers it
    assert planner.servers_for("lyon") == ("http://p1:8480", "http://p2:8480")
    assert planner.site_for(HostIdentity(U1), "192.0.2.1") == "paris"  # no site: this server's
    me = Server("p0", "paris", "http://p0:8480")  # just started: its entry not read back yet
    assert BootPlanner(world(), NOW, "paris", me).servers_for("paris")[0] == "http://p0:8480"


def test_assign_keeps_the_previous_and_rollback_swaps() -> None:
    c = Container("/DC1/A", ContainerKind.CLUSTER, image="esx7")
    image, previous = assigned(c, "esx8")
    assert (image, previous) == ("esx8", "esx7")
    c = attrs.evolve(c, image=image, previous_image=previous)
    assert assigned(c, "esx8") == ("esx8", "esx7")  # the same again loses nothing
    assert rolled_back(c) == ("esx7", "esx8")
    c = attrs.evolve(c, image="esx7", previous_image="esx8")
    assert rolled_back(c) == ("esx8", "esx7")  # a second rollback undoes the first
    with pytest.raises(ValidationError, match="no previous image"):
        rolled_back(Container("/DC1/B", ContainerKind.CLUSTER, image="esx7"))


SETTINGS = BootSettings(domain="example.com", enroll_key="stateless.enroll-key=k1:c2VjcmV0",
                        ca_fingerprint="ab" * 32)


def test_host_bootcfg_carries_the_agent_module_and_boot_line() -> None:
    choice = BootPlanner(world((DELL_RULE,)), NOW, "paris").choose(DELL)
    cfg = parse_bootcfg(host_bootcfg(choice, SETTINGS))
    assert cfg.prefix == "http://img/esx8/"
    assert cfg.kernel == "b.b00"
    assert cfg.modules == ("k.b00", "s.v00", "stateless.tgz")
    assert cfg.kernelopt.split() == [
        "runweasel", "stateless.site=paris", "stateless.image=esx8", "stateless.server=http://p1:8480,http://p2:8480",
        "stateless.domain=example.com", "stateless.enroll-key=k1:c2VjcmV0", "stateless.ca=" + "ab" * 32]
    assert cfg.build == "8.0.1-0.0.1"


def test_ipxe_scripts() -> None:
    planner = BootPlanner(world((DELL_RULE,)), NOW, "paris")
    boot = bootstrap_ipxe("http://10.0.2.2:8480")
    assert boot.startswith("#!ipxe\nchain http://10.0.2.2:8480/boot/ipxe?uuid=${uuid}&mac=${net0/mac}")
    script = host_ipxe(planner.choose(DELL), "http://s:1")
    assert "image esx8 8.0.1-0.0.1 from rule dell" in script
    assert "servers http://p1:8480,http://p2:8480" in script
    assert f"kernel http://img/esx8/mboot.c32 -c http://s:1/boot/{U1}/boot.cfg" in script
    nothing = no_image_ipxe(planner.choose(HPE), BootSettings())
    assert "no image for this host" in nothing
    assert nothing.rstrip().endswith("sleep 300\nreboot")


def test_pxelinux_files_per_uuid_and_mac() -> None:
    assert pxelinux_names(U1, ("00:50:56:AA:BB:01",)) == [U1, "01-00-50-56-aa-bb-01"]
    choice = BootPlanner(world((DELL_RULE,)), NOW, "paris").choose(DELL)
    text = host_pxelinux(choice, f"stateless/{U1}/boot.cfg")
    assert f"APPEND -c stateless/{U1}/boot.cfg" in text and "KERNEL http://img/esx8/mboot.c32" in text


def test_tftp_tree_skips_a_mac_two_hosts_claim() -> None:
    twin = HostIdentity(U2, macs=("00:50:56:aa:bb:01",))
    snap = world((DELL_RULE, DEFAULT), hosts=(HostRecord(U1, identity=DELL),
                                             HostRecord(U2, identity=twin)))
    files = tftp_files(BootPlanner(snap, NOW, "paris"), lambda site: SETTINGS)
    assert f"pxelinux.cfg/{U1}" in files and f"pxelinux.cfg/{U2}" in files
    assert "pxelinux.cfg/01-00-50-56-aa-bb-01" not in files
    assert f"stateless/{U1}/boot.cfg" in files
    assert "image esx7" in files["pxelinux.cfg/default"]  # the default rule's, for unknown hosts
    files = tftp_files(BootPlanner(world((DELL_RULE,)), NOW, "paris"), lambda site: SETTINGS)
    assert "no image for this host" in files["pxelinux.cfg/default"]
    assert "stateless/default/boot.cfg" not in files


def test_a_site_key_that_does_not_open_boots_no_host_of_it() -> None:
    def settings_for(site: str) -> BootSettings:
        raise ValidationError(f"site {site}: no enrollment key can be opened")

    snap = world((DELL_RULE,), hosts=(HostRecord(U1, identity=DELL),))
    files = tftp_files(BootPlanner(snap, NOW, "paris"), settings_for)
    assert "no enrollment key can be opened" in files[f"pxelinux.cfg/{U1}"]
    assert f"stateless/{U1}/boot.cfg" not in files

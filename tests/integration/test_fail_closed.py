"""Fail closed against the real slapd: broken entries block hosts, addresses belong to one host."""

from __future__ import annotations

import json

import pytest

from stateless.directory.client import Directory
from tests.integration.fixtures_slapd import Slapd
from tests.integration.test_cli import H1, H2, Run, build, cli, rsop  # noqa: F401  (cli: a fixture)
from tests.integration.test_directory import ldapmodify

H3 = "4c4c4544-0042-3510-8052-b4c04f4b4e33"


@pytest.fixture
def run(cli: Run) -> Run:  # noqa: F811  (the CLI fixture, under the name used here)
    return cli


def test_an_enforced_link_with_order_0_blocks_the_hosts_below_and_names_the_entry(
        run: Run, slapd: Slapd, directory: Directory) -> None:
    build(run)
    run("policy", "create", "Hardening", "--set", "service.TSM-SSH.policy=off")
    run("policy", "link", "Hardening", "/DC1", "--enforced")
    run("container", "add", "/DC2", "--kind", "datacenter")
    run("host", "add", H2, "--path", "/DC2")
    assert rsop(run)["errors"] == [] and rsop(run, H2)["errors"] == []
    link = directory.link_dn("Hardening", directory.container_dn("/DC1"))
    result = ldapmodify(slapd, f"dn: {link}\nchangetype: modify\nreplace: statelessOrder\n"
                               "statelessOrder: 0\n")
    assert result.returncode == 0, result.stderr  # a valid INTEGER: only the model refuses it
    errors = rsop(run)["errors"]
    assert [(e["dn"], e["attribute"], e["value"]) for e in errors] == [(link, "statelessOrder", "0")]
    assert ">= 1" in errors[0]["reason"]
    assert rsop(run, H2)["errors"] == []  # not below /DC1: not affected


def test_an_address_held_by_another_host_is_refused_and_named(run: Run) -> None:
    build(run)  # H1 holds 10.0.20.10 from pool vmo
    status, _, err = run("host", "add", H2, "--path", "/DC1/Prod/ClusterA",
                         "--answer", "vmknic.Storage.address=10.0.20.10", ok=False)
    assert status == 1 and H1 in err and "10.0.20.10" in err and "vmo" in err
    run("host", "add", H2, "--path", "/DC1/Prod/ClusterA", "--answer", "vmknic.Storage.address=10.9.0.2")
    status, _, err = run("host", "add", H3, "--path", "/DC1", "--answer", "vmknic.Storage.address=10.9.0.2",
                         ok=False)
    assert status == 1 and H2 in err and "answer vmknic.Storage.address" in err


def test_an_answer_inside_a_pool_is_never_handed_out(run: Run, directory: Directory) -> None:
    build(run)
    run("host", "add", H2, "--path", "/DC1/Prod/ClusterA", "--answer", "vmknic.vMotion.address=10.0.20.11",
        "--answer", "vmknic.vMotion.netmask=255.255.255.0")
    run("host", "add", H3, "--path", "/DC1/Prod/ClusterA")
    run("host", "allocate", H3)
    doc = rsop(run, H3)
    assert doc["errors"] == [] and doc["settings"]["vmknic.vMotion.address"]["value"] == "10.0.20.12"
    assert rsop(run, H2)["settings"]["vmknic.vMotion.address"]["value"] == "10.0.20.11"
    assert not any(a.item == "vmknic.vMotion" for a in directory.snapshot().hosts[H2].allocations)


def test_an_answer_given_before_its_pool_exists_is_reserved_by_pool_add(run: Run) -> None:
    build(run)
    run("host", "add", H2, "--path", "/DC1", "--answer", "vmknic.Storage.address=10.0.30.10")
    run("pool", "add", "sto", "--range", "10.0.30.10-10.0.30.20", "--netmask", "255.255.255.0")
    run("policy", "set", "Network", "vmknic.Storage.ip=pool:sto", "portgroup.Storage.vswitch=vSwitch1")
    run("host", "allocate", H1)
    assert rsop(run)["settings"]["vmknic.Storage.address"]["value"] == "10.0.30.11"


def test_overlapping_pools_are_refused(run: Run) -> None:
    build(run)  # vmo is 10.0.20.10-10.0.20.50
    status, _, err = run("pool", "add", "other", "--range", "10.0.20.50-10.0.20.60", "--netmask",
                         "255.255.255.0", ok=False)
    assert status == 1 and "overlaps pool vmo" in err
    run("pool", "add", "other", "--range", "10.0.20.51-10.0.20.60", "--netmask", "255.255.255.0")


def test_a_duplicate_written_with_ldapmodify_blocks_both_hosts(run: Run, slapd: Slapd,
                                                              directory: Directory) -> None:
    build(run)
    run("host", "add", H2, "--path", "/DC1/Prod/ClusterA")
    result = ldapmodify(slapd, f"dn: {directory.host_dn(H2)}\nchangetype: modify\nadd: statelessAnswer\n"
                               "statelessAnswer: vmknic.vMotion.address=10.0.20.10\n")
    assert result.returncode == 0, result.stderr
    for uuid, other in ((H1, H2), (H2, H1)):
        errors = rsop(run, uuid)["errors"]
        assert [e["value"] for e in errors] == ["10.0.20.10"] and other in errors[0]["reason"]


def test_host_set_refuses_an_address_another_host_holds(run: Run) -> None:
    build(run)  # H1 holds 10.0.20.10 from pool vmo
    run("host", "add", H2, "--path", "/DC1/Prod/ClusterA", "--answer", "vmknic.Storage.address=10.9.0.2")
    status, _, err = run("host", "set", H2, "--answer", "vmknic.Storage.address=10.0.20.10", ok=False)
    assert status == 1 and H1 in err and "10.0.20.10" in err
    run("host", "set", H2, "--answer", "vmknic.Storage.address=10.0.20.12", "--path", "/DC1/Prod")
    run("host", "add", H3, "--path", "/DC1/Prod/ClusterA")  # H2 has 11 from vmo, 12 as its answer
    assert rsop(run, H3)["settings"]["vmknic.vMotion.address"]["value"] == "10.0.20.13"
    run("host", "set", H2, "--answer", "vmknic.Storage.address=10.9.0.3")  # 12 goes back to vmo
    run("host", "set", H3, "--answer", "vmknic.Storage.address=10.0.20.12")
    status, _, err = run("host", "set", H2, "--path", "/Nowhere", ok=False)
    assert status == 1 and "does not exist" in err


def test_problems_lists_every_problem_of_the_directory(run: Run, slapd: Slapd, directory: Directory) -> None:
    build(run)
    status, out, _ = run("problems")
    assert (status, out) == (0, "no problems\n")
    link = directory.link_dn("Security", directory.container_dn("/"))
    assert ldapmodify(slapd, f"dn: {link}\nchangetype: modify\nreplace: statelessOrder\n"
                             "statelessOrder: 0\n").returncode == 0
    status, out, _ = run("problems", "--json", ok=False)
    doc = json.loads(out)
    assert status == 3 and [(p["dn"], p["attribute"], p["value"]) for p in doc["problems"]] == [
        (link, "statelessOrder", "0")]
    status, out, _ = run("problems", ok=False)
    assert status == 3 and link in out and "statelessOrder" in out

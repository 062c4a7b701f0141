"""statelessd fails closed: real slapd, the simulator, the daemon; vCenter read with pyvmomi."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.fixtures_daemon import Daemon, Estate, wait_for
from tests.integration.fixtures_vcsim import Vcsim
from tests.integration.test_daemon import (
    births,
    hosts_by_name,
    identity,
    one_host,
    states,
    wait_states,
)

PRESTAGED_A = "4c4c4544-0042-3510-8052-b4c04f4b4e31"  # the estate's host with a Storage answer


def service_policy(host: Any, key: str) -> str:
    return next(str(s.policy) for s in host.config.service.service if s.key == key)


def vmk_addresses(si: Any) -> list[str]:
    """Addresses of the VMkernel NICs the policy manages (not the simulator's own vmk0)."""
    return [v.spec.ip.ipAddress for hosts in hosts_by_name(si).values() for h in hosts
            for v in h.config.network.vnic if v.portgroup in ("vMotion", "Storage")]


def test_the_example_estate_gives_every_vmkernel_nic_its_own_address(
        estate: Estate, sim: Vcsim,
        tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1", site="siteA")
    prestaged = {"uuid": PRESTAGED_A, "vendor": "Dell Inc.", "model": "PowerEdge R650",
                 "ipv4": "10.1.0.9", "hostname": "esx-a01", "domain": "example.com"}
    idents = [prestaged, *(identity(n, "siteA") for n in range(1, 6))]
    assert births(d, idents) == [202] * len(idents)
    wait_states(d, [i["uuid"] for i in idents])
    addresses = vmk_addresses(sim.connect())
    assert "10.1.30.11" in addresses  # the answer, on the pre-staged host
    assert len(addresses) == len(set(addresses)) == 2 * len(idents), sorted(addresses)


def test_an_unreadable_enforced_link_blocks_the_hosts_below_it(
        estate: Estate, sim: Vcsim,
        tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1", site="siteA")
    lab = [identity(n, "siteB") for n in range(11, 13)]  # no site B server: applied here
    assert births(d, lab) == [202] * len(lab)
    wait_states(d, [i["uuid"] for i in lab])
    si = sim.connect()
    assert all(service_policy(one_host(si, i), "TSM-SSH") == "off" for i in lab)  # Security wins

    link = f"statelessLinkPolicy=Security,cn=DC1,ou=inventory,{estate.base}"
    estate.ldapmodify(f"dn: {link}\nchangetype: modify\nreplace: statelessOrder\nstatelessOrder: 0\n")
    failed = wait_states(d, [i["uuid"] for i in lab], state="failed")
    for i in lab:
        assert link in failed[i["uuid"]]["reason"] and "statelessOrder" in failed[i["uuid"]]["reason"]
        errors = d.get(f"/v1/hosts/{i['uuid']}/effective")["errors"]
        assert [(e["dn"], e["attribute"], e["value"]) for e in errors] == [(link, "statelessOrder", "0")]
    # Lab-Debug (TSM-SSH on) must not have reached the hosts while Security could not be read.
    assert all(service_policy(one_host(si, i), "TSM-SSH") == "off" for i in lab)

    estate.ldapmodify(f"dn: {link}\nchangetype: modify\nreplace: statelessOrder\nstatelessOrder: 1\n")
    wait_for(lambda: all(states(d)[i["uuid"]]["state"] == "compliant" for i in lab),
             what="the hosts compliant again once the link is readable")
    assert all(states(d)[i["uuid"]]["reason"] == "" for i in lab)
    assert all(service_policy(one_host(si, i), "TSM-SSH") == "off" for i in lab)

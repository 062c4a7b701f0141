"""One owner, also for the CLI: `stateless apply` goes through the owning server; `--direct`
records what a server would, so the server takes the host and later edits reach it.

Real slapd, the simulator and `statelessd`; vCenter is read and changed with pyvmomi.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stateless.cli import main
from tests.integration.fixtures_daemon import Daemon, Estate, wait_for
from tests.integration.fixtures_vcsim import Vcsim
from tests.integration.test_daemon import (
    births,
    hosts_by_name,
    identity,
    one_host,
    states,
    vlan,
    wait_states,
)

PRESTAGED_B = "4c4c4544-0042-3510-8052-b4c04f4b4e32"  # the estate's ClusterB host, never born


def stateless(where: Estate, *argv: str) -> tuple[int, str, str]:
    """The CLI in-process, against the estate's directory, with its vCenter key file."""
    out, err = io.StringIO(), io.StringIO()
    status = main([*argv, "--secret-key-file", str(where.key_file)], out=out, err=err,
                  environ=where.env)
    return status, out.getvalue(), err.getvalue()


def set_vlan(host: Any, portgroup: str, vlan_id: int) -> None:
    """A change made in vCenter behind the server's back."""
    spec = next(pg.spec for pg in host.config.network.portgroup if pg.spec.name == portgroup)
    spec.vlanId = vlan_id
    host.configManager.networkSystem.UpdatePortGroup(portgroup, spec)


def test_apply_of_an_owned_host_asks_its_server(
        estate: Estate, sim: Vcsim,
        tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1", site="siteA")
    ident = identity(1, "siteA")
    assert births(d, [ident]) == [202]
    wait_states(d, [ident["uuid"]])
    host = one_host(sim.connect(), ident)
    set_vlan(host, "vMotion", 99)
    token = ("--admin-token-file", str(d.state_dir / "admin.token"))
    status, out, err = stateless(estate, "apply", ident["uuid"], *token)
    assert status == 0, err
    assert "asked server sd1" in out and "compliant" in out
    assert vlan(one_host(sim.connect(), ident), "vMotion") == 20  # put back by the server
    status, out, _ = stateless(estate, "apply", ident["uuid"], "--json", "--wait", "60", *token)
    assert status == 0 and json.loads(out)["state"] == "compliant"


def test_a_direct_apply_is_taken_over_and_later_edits_reach_it(
        estate: Estate, sim: Vcsim,
        tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1", site="siteA")
    status, out, err = stateless(estate, "apply", PRESTAGED_B, "--direct")
    assert status == 0, err
    assert "verified; state compliant" in out
    wait_for(lambda: estate.directory.snapshot().hosts[PRESTAGED_B].owner == "sd1",
             what="the server to take the host applied directly")
    name = "esx-b01.example.com"
    assert vlan(hosts_by_name(sim.connect())[name][0], "vMotion") == 21
    estate.ldapmodify(f"dn: cn=ClusterB-Net,ou=policies,{estate.base}\nchangetype: modify\n"
                      "replace: statelessPortGroup\nstatelessPortGroup: vMotion; vlan=23\n")
    wait_for(lambda: vlan(hosts_by_name(sim.connect())[name][0], "vMotion") == 23,
             what="the policy edit to reach the host applied directly")
    wait_for(lambda: states(d).get(PRESTAGED_B, {}).get("state") == "compliant",
             what="the host compliant again")


def test_decommission_of_an_owned_host_goes_through_its_server(
        estate: Estate, sim: Vcsim,
        tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    from tests.integration.test_cli_fleet import in_vcenter

    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1", site="siteA")
    ident = identity(2, "siteA")
    uuid = ident["uuid"]
    assert births(d, [ident]) == [202]
    wait_states(d, [uuid])
    held = {a.address for a in estate.directory.snapshot().hosts[uuid].allocations}
    assert held
    # Without the server's admin credentials it refuses; with them it acts.
    status, out, err = stateless(estate, "host", "decommission", uuid)
    assert status == 1 and "401" in err and uuid in estate.directory.snapshot().hosts
    status, out, err = stateless(estate, "host", "decommission", uuid,
                                 "--admin-token-file", str(d.state_dir / "admin.token"))
    assert status == 0, err
    assert f"removed {ident['hostname']}.example.com from vCenter" in out and "(by server sd1)" in out
    assert all(f"freed {a}" in out for a in held)
    assert not in_vcenter(sim.connect(), f"{ident['hostname']}.example.com")
    assert uuid not in estate.directory.snapshot().hosts
    _, used = estate.directory.pool_used("vmotion-a")
    assert not held & used
    wait_for(lambda: uuid not in states(d), what="the server to stop tracking the host")
    status, out, err = stateless(estate, "host", "decommission", uuid)
    assert status == 1 and f"host {uuid}: not in the directory" in err

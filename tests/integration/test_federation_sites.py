"""Site coverage end to end: a site whose daemons are all gone is covered by the nearest site.

Real slapd, real BIND named (RFC 2136 registration), one simulator per site, the real agent.
Every vCenter check reads the simulators directly with pyvmomi.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stateless.directory.secrets import encrypt_password
from stateless.model.inventory import VCenter
from tests.integration.fixtures_daemon import (
    Daemon,
    Estate,
    cluster_of,
    hosts_by_name,
    identity,
    load_estate,
    wait_for,
    wait_states,
)
from tests.integration.fixtures_dns import Named
from tests.integration.fixtures_slapd import Slapd
from tests.integration.fixtures_vcsim import Vcsim
from tests.integration.test_daemon import DOMAIN, run_agent, srv_targets


@pytest.fixture
def sims(vcsim_factory: Callable[..., Vcsim]) -> tuple[Vcsim, Vcsim]:
    """Site A's vCenter and site B's, empty (the daemons create the datacenter)."""
    return vcsim_factory("-dc", "0"), vcsim_factory("-dc", "0")


@pytest.fixture
def two_vcenters(slapd: Slapd, base: str, sims: tuple[Vcsim, Vcsim], key_file: Path) -> Estate:
    """The example estate; /DC1 is managed by vc1 (site A's), /DC1/Lab by vcB (site B's)."""
    estate = load_estate(slapd, base, sims[0], key_file)
    sim_b = sims[1]
    estate.directory.add_vcenter(VCenter("vcB", sim_b.url, sim_b.user,
                                         encrypt_password(sim_b.password, key_file)))
    estate.ldapmodify(f"dn: cn=DC1,ou=inventory,{base}\nchangetype: modify\n"
                      "add: statelessVCenterName\nstatelessVCenterName: vc1\n\n"
                      f"dn: cn=Lab,cn=DC1,ou=inventory,{base}\nchangetype: modify\n"
                      "add: statelessVCenterName\nstatelessVCenterName: vcB\n")
    return estate


def test_a_site_without_live_servers_is_covered_by_the_nearest_site(
        two_vcenters: Estate, sims: tuple[Vcsim, Vcsim], named: Named,
        daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    estate = two_vcenters
    dns_args = ("--dns", "update", "--dns-server", f"{named.host}:{named.port}",
                "--tsig-key-file", str(named.keyfile), "--domain", DOMAIN)
    a = daemons(tmp_path / "a", estate.slapd, estate.base, estate.key_file, name="covA",
                site="siteA", extra=dns_args)
    b = daemons(tmp_path / "b", estate.slapd, estate.base, estate.key_file, name="covB",
                site="siteB", extra=dns_args)
    target_a = (int(a.url.rsplit(":", 1)[1]), f"cova.{DOMAIN}.")
    target_b = (int(b.url.rsplit(":", 1)[1]), f"covb.{DOMAIN}.")
    site_b = f"_stateless._tcp.siteB._sites.{DOMAIN}"
    # Site A covered site B until B's daemon started; the cover is withdrawn on A's next look.
    wait_for(lambda: (target_b in (found := srv_targets(named, site_b))
                      and target_a not in found), what="site B served by its own daemon only")

    # While site B has a live server, its hosts are referred there and answered as closest.
    status, doc = a.birth(identity(90, "siteB"))
    assert status == 200 and doc["referral"]["site"] == "siteB"
    assert [s["url"] for s in doc["referral"]["servers"]] == [b.url]
    assert doc["referral"]["sites"] == ["siteB", "siteA"]
    status, doc = b.birth(identity(90, "siteB"))
    assert status == 202 and (doc["site"], doc["closest"], doc["sites"]) == (
        "siteB", True, ["siteB", "siteA"])

    # Site B's only daemon stops and its lease runs out: site A covers site B.
    assert b.stop() == 0
    estate.directory.renew_lease("covB", datetime.now(UTC) - timedelta(seconds=1))
    wait_for(lambda: target_a in srv_targets(named, site_b), what="site A's server under site B")
    assert target_b not in srv_targets(named, site_b)

    status, doc = a.birth(identity(91, "siteB"))
    assert status == 202 and (doc["site"], doc["closest"]) == ("siteB", False)
    status, doc = a.birth(identity(92, "siteA"))
    assert status == 202 and (doc["site"], doc["closest"]) == ("siteA", True)

    # Site B's hosts boot: DNS of their own site leads them to site A's server.
    hosts = [identity(n, "siteB") for n in range(93, 97)]
    agents = [run_agent(ident, tmp_path, "--domain", DOMAIN, "--site", "siteB",
                        "--nameserver", f"{named.host}:{named.port}") for ident in hosts]
    for proc in agents:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()
        assert "outside site siteB" in out.decode()
    uuids = [i["uuid"] for i in [identity(n, "siteB") for n in (90, 91)] + hosts]
    wait_states(a, [*uuids[1:], identity(92, "siteA")["uuid"]])
    owners = {h.uuid: h.owner for h in estate.directory.snapshot().hosts.values()}
    assert all(owners[u] == "covA" for u in uuids[1:])

    # Applied through site B's own vCenter, in its cluster; nothing of site B in site A's.
    in_a, in_b = hosts_by_name(sims[0].connect()), hosts_by_name(sims[1].connect())
    for n in [91, *range(93, 97)]:
        name = f"{identity(n, 'siteB')['hostname']}.example.com"
        assert name not in in_a and len(in_b[name]) == 1 and cluster_of(in_b[name][0]) == "ClusterB"
    assert f"{identity(92, 'siteA')['hostname']}.example.com" in in_a

    # Site B's server is live again: site A stops publishing under site B's name.
    estate.directory.renew_lease("covB", datetime.now(UTC) + timedelta(hours=1))
    wait_for(lambda: target_a not in srv_targets(named, site_b), what="site A's record removed")
    status, doc = a.birth(identity(97, "siteB"))
    assert status == 200 and doc["referral"]["site"] == "siteB"
    assert a.stop() == 0

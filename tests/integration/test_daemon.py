"""statelessd end to end: real slapd, real BIND named, the govmomi simulator, the real agent.

Every check of a host's configuration reads the simulator directly with pyvmomi, never the
daemon's own view.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest
from pyVmomi import vim

from tests.integration.fixtures_daemon import ROOT, Daemon, Estate, load_estate
from tests.integration.fixtures_dns import Named
from tests.integration.fixtures_slapd import Slapd
from tests.integration.fixtures_vcsim import Vcsim

DOMAIN = "example.test"
NTP = ["10.1.0.123", "10.2.0.123"]
VMOTION_VLAN = {"ClusterA": 20, "ClusterB": 21}


def uuid_of(n: int) -> str:
    return f"4c4c4544-0000-4000-8000-{n:012x}"


def identity(n: int, site: str) -> dict[str, Any]:
    """A host that the estate's deploy rules place: site A -> ClusterA, site B -> ClusterB."""
    octet = 10 + n % 200
    third = n // 200
    doc: dict[str, Any] = {"uuid": uuid_of(n), "serial": f"SN{n:06d}",
                           "macs": [f"00:50:56:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"],
                           "hostname": f"esx{n:04d}", "domain": "example.com"}
    if site == "siteA":
        doc.update(vendor="Dell Inc.", model="PowerEdge R650", ipv4=f"10.1.{third}.{octet}")
    else:
        doc.update(vendor="HPE", model="ProLiant DL380", ipv4=f"10.2.{third}.{octet}")
    return doc


def srv_targets(named: Named, name: str) -> set[tuple[int, str]]:
    """(port, target) of the SRV records at `name`, asked of named directly."""
    query = dns.message.make_query(name, dns.rdatatype.SRV)
    response = dns.query.udp(query, named.host, port=named.port, timeout=2)
    return {(r.port, r.target.to_text().lower()) for rrset in response.answer for r in rrset}


def a_records(named: Named, name: str) -> set[str]:
    query = dns.message.make_query(name, dns.rdatatype.A)
    response = dns.query.udp(query, named.host, port=named.port, timeout=2)
    return {r.address for rrset in response.answer for r in rrset}


# --- reading the simulator directly -------------------------------------------------------------

def hosts_by_name(si: Any) -> dict[str, list[Any]]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        out: dict[str, list[Any]] = {}
        for host in view.view:
            out.setdefault(host.name, []).append(host)
        return out
    finally:
        view.Destroy()


def cluster_of(host: Any) -> str:
    return str(host.parent.name)


def vlan(host: Any, portgroup: str) -> int | None:
    for pg in host.config.network.portgroup:
        if pg.spec.name == portgroup:
            return int(pg.spec.vlanId)
    return None


def ntp_servers(host: Any) -> list[str]:
    return list(host.config.dateTimeInfo.ntpConfig.server)


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "secret.key"


@pytest.fixture
def sim(vcsim_factory: Callable[..., Vcsim]) -> Vcsim:
    """An empty simulator per test (the estate's datacenter is created by the daemon)."""
    return vcsim_factory("-dc", "0")


@pytest.fixture
def estate(slapd: Slapd, base: str, sim: Vcsim, key_file: Path) -> Estate:
    return load_estate(slapd, base, sim, key_file)


def run_agent(ident: dict[str, Any], tmp: Path, *args: str) -> subprocess.Popen[bytes]:
    path = tmp / f"{ident['uuid']}.json"
    path.write_text(json.dumps(ident))
    return subprocess.Popen([sys.executable, "-m", "stateless.agent", "--identity", str(path),
                             "--state", str(tmp / f"{ident['uuid']}.state"), "--wait-compliant",
                             "--poll-interval", "0.2", "--timeout", "90", "--backoff", "0.2",
                             *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


# --- 1. two sites, DNS discovery, referrals, compliance --------------------------------------------

def test_two_sites_register_refer_and_apply(estate: Estate, named: Named, sim: Vcsim,
                                            daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    dns_args = ("--dns", "update", "--dns-server", f"{named.host}:{named.port}",
                "--tsig-key-file", str(named.keyfile), "--domain", DOMAIN)
    a = daemons(tmp_path / "a", estate.slapd, estate.base, estate.key_file, name="sdA",
                site="siteA", extra=dns_args)
    b = daemons(tmp_path / "b", estate.slapd, estate.base, estate.key_file, name="sdB",
                site="siteB", extra=dns_args)
    port_a, port_b = (int(d.url.rsplit(":", 1)[1]) for d in (a, b))
    everyone = srv_targets(named, f"_stateless._tcp.{DOMAIN}")
    assert {(port_a, f"sda.{DOMAIN}."), (port_b, f"sdb.{DOMAIN}.")} <= everyone
    assert srv_targets(named, f"_stateless._tcp.siteA._sites.{DOMAIN}") == {(port_a, f"sda.{DOMAIN}.")}
    assert srv_targets(named, f"_stateless._tcp.siteB._sites.{DOMAIN}") == {(port_b, f"sdb.{DOMAIN}.")}
    assert a_records(named, f"sda.{DOMAIN}") == {"127.0.0.1"}  # agents connect to the target

    # Site A hosts find their server through DNS (site first); site B hosts are pointed at
    # site A's server (as PXE would) or ask DNS without a site, and must end up at site B.
    ns = f"{named.host}:{named.port}"
    agents = []
    site_a = [identity(n, "siteA") for n in range(1, 4)]
    site_b = [identity(n, "siteB") for n in range(11, 15)]
    for ident in site_a:
        agents.append(run_agent(ident, tmp_path, "--domain", DOMAIN, "--site", "siteA",
                                "--nameserver", ns))
    for ident in site_b[:2]:
        agents.append(run_agent(ident, tmp_path, "--server", a.url))
    for ident in site_b[2:]:
        agents.append(run_agent(ident, tmp_path, "--server", a.url, "--domain", "nowhere.invalid"))
    for proc in agents:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()

    referred = a.metrics().get('stateless_births_total{outcome="referral"}', 0)
    assert referred >= len(site_b)  # every site B host first reached site A
    assert b.metrics()['stateless_births_total{outcome="accepted"}'] == len(site_b)
    assert a.metrics()['stateless_births_total{outcome="accepted"}'] == len(site_a)
    owners = {h.uuid: h.owner for h in estate.directory.snapshot().hosts.values()}
    assert all(owners[i["uuid"]] == "sdA" for i in site_a)
    assert all(owners[i["uuid"]] == "sdB" for i in site_b)

    si = sim.connect()
    found = hosts_by_name(si)
    for ident, cluster in [(i, "ClusterA") for i in site_a] + [(i, "ClusterB") for i in site_b]:
        hosts = found[f"{ident['hostname']}.example.com"]
        assert len(hosts) == 1
        host = hosts[0]
        assert cluster_of(host) == cluster
        assert vlan(host, "vMotion") == VMOTION_VLAN[cluster]
        assert vlan(host, "Management") == 10
        assert vlan(host, "Storage") == 30
        assert ntp_servers(host) == NTP

    assert a.stop() == 0 and b.stop() == 0
    assert srv_targets(named, f"_stateless._tcp.{DOMAIN}") & {
        (port_a, f"sda.{DOMAIN}."), (port_b, f"sdb.{DOMAIN}.")} == set()
    assert srv_targets(named, f"_stateless._tcp.siteA._sites.{DOMAIN}") == set()
    assert srv_targets(named, f"_stateless._tcp.siteB._sites.{DOMAIN}") == set()
    assert a_records(named, f"sda.{DOMAIN}") == set()

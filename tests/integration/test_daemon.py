"""statelessd end to end: real slapd, real BIND named, the govmomi simulator, the real agent.

Every check of a host's configuration reads the simulator directly with pyvmomi, never the
daemon's own view.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyVmomi import vim

from stateless.directory.secrets import encrypt_password
from stateless.model.birth import MAX_BODY
from stateless.model.inventory import VCenter
from tests.integration.fixtures_daemon import (
    ROOT,
    Daemon,
    Estate,
    applies,
    births,
    cluster_of,
    hosts_by_name,
    identity,
    ntp_servers,
    one_host,
    states,
    uuid_of,
    vlan,
    wait_for,
    wait_states,
)
from tests.integration.fixtures_dns import Named
from tests.integration.fixtures_slapd import Slapd
from tests.integration.fixtures_vcsim import Vcsim

DOMAIN = "example.test"
NTP = ["10.1.0.123", "10.2.0.123"]
VMOTION_VLAN = {"ClusterA": 20, "ClusterB": 21}


def srv_targets(named: Named, name: str) -> set[tuple[int, str]]:
    """(port, target) of the SRV records at `name`, asked of named directly."""
    query = dns.message.make_query(name, dns.rdatatype.SRV)
    response = dns.query.udp(query, named.host, port=named.port, timeout=2)
    return {(r.port, r.target.to_text().lower()) for rrset in response.answer for r in rrset}


def a_records(named: Named, name: str) -> set[str]:
    query = dns.message.make_query(name, dns.rdatatype.A)
    response = dns.query.udp(query, named.host, port=named.port, timeout=2)
    return {r.address for rrset in response.answer for r in rrset}


# --- helpers -------------------------------------------------------------------------------------

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


CLUSTER_B_VLAN_22 = """dn: cn=ClusterB-Net,ou=policies,{base}
changetype: modify
replace: statelessPortGroup
statelessPortGroup: vMotion; vlan=22
"""


# --- 2. a policy edit with ldapmodify re-applies exactly the affected hosts ----------------------

def test_ldapmodify_reapplies_affected_hosts_only(estate: Estate, sim: Vcsim, tmp_path: Path,
                                                  daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA")
    in_a = [identity(n, "siteA") for n in range(1, 4)]
    in_b = [identity(n, "siteB") for n in range(11, 14)]  # no site B server: served here
    assert births(d, in_a + in_b) == [202] * 6
    before = wait_states(d, [i["uuid"] for i in in_a + in_b])
    applied = applies(d)
    si = sim.connect()
    assert all(vlan(one_host(si, i), "vMotion") == 21 for i in in_b)

    # How fast is measured by tests/bench/propagation.py; here only that it happens.
    estate.ldapmodify(CLUSTER_B_VLAN_22.format(base=estate.base))
    wait_for(lambda: all(vlan(one_host(si, i), "vMotion") == 22 for i in in_b), timeout=30,
             interval=0.02, what="ClusterB hosts re-applied with VLAN 22")

    after = wait_states(d, [i["uuid"] for i in in_a + in_b])
    assert applies(d) == applied + len(in_b)
    for i in in_a:  # untouched: same state, same since, still VLAN 20
        assert after[i["uuid"]]["since"] == before[i["uuid"]]["since"]
        assert vlan(one_host(si, i), "vMotion") == 20
    for i in in_b:
        assert after[i["uuid"]]["since"] != before[i["uuid"]]["since"]
        assert ntp_servers(one_host(si, i)) == NTP


# --- 3. SIGKILL in the middle of a storm of births ------------------------------------------------

def test_sigkill_during_births_loses_nothing(estate: Estate, tmp_path: Path,
                                             vcsim_factory: Callable[..., Vcsim],
                                             slapd: Slapd, base: str, key_file: Path,
                                             daemons: Callable[..., Daemon]) -> None:
    slow = vcsim_factory("-dc", "0", "-delay", "10ms")
    load_vc = estate.directory  # swap the estate's vCenter for the slow simulator
    load_vc.delete_entry(load_vc.named_dn("vcenters", "vc1"))
    load_vc.add_vcenter(VCenter("vc1", slow.url, slow.user,
                                encrypt_password(slow.password, key_file)))
    state = tmp_path / "d"
    d = daemons(state, slapd, base, key_file, name="sd1", site="siteA")
    idents = [identity(n, "siteA") for n in range(1, 101)]
    accepted: set[str] = set()
    lock = threading.Lock()

    def send(ident: dict[str, Any]) -> None:
        try:
            status, _ = d.birth(ident)
        except OSError:
            return  # the daemon died under this request: the agent would retry
        if status == 202:
            with lock:
                accepted.add(ident["uuid"])

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(send, i) for i in idents]
        wait_for(lambda: len(accepted) >= 40, timeout=30, interval=0.005, what="40 births")
        d.process.send_signal(signal.SIGKILL)  # however far the storm got by then
        for f in futures:
            f.result()
    d.process.wait(timeout=10)

    again = daemons(state, slapd, base, key_file, name="sd1", site="siteA")
    # Hosts whose birth got no answer boot the agent again (none, if all were answered in
    # time); the others just wait for the restarted daemon to take them back.
    retry = [i for i in idents if i["uuid"] not in accepted]
    assert births(again, retry) == [202] * len(retry)
    wait_states(again, [i["uuid"] for i in idents], timeout=120)

    # The API says compliant as soon as the apply ends; the directory once the write lands.
    wait_for(lambda: all(h.state == "compliant" for h in (
        estate.directory.snapshot().hosts[i["uuid"]] for i in idents)),
        what="the directory to record every host compliant")
    si = slow.connect()
    found = hosts_by_name(si)
    names = [f"{i['hostname']}.example.com" for i in idents]
    assert {n: len(found.get(n, [])) for n in names} == dict.fromkeys(names, 1)
    assert all(vlan(found[n][0], "vMotion") == 20 for n in names)


# --- 4. hostile birth requests -------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=20)
GOOD = identity(999, "siteA")


def _hostile() -> st.SearchStrategy[bytes]:
    not_text = (st.booleans() | st.integers() | st.floats(allow_nan=False)
                | st.dictionaries(st.text(max_size=5), JSON, max_size=3))
    wrong_types = (st.builds(lambda k, v: {**GOOD, k: v},
                             st.sampled_from(sorted(set(GOOD) - {"macs"})),
                             not_text | st.lists(JSON, min_size=1, max_size=3))
                   | st.builds(lambda v: {**GOOD, "macs": v}, not_text | st.text(max_size=20)))
    missing = st.builds(lambda keys: {k: v for k, v in GOOD.items() if k not in keys},
                        st.sets(st.sampled_from(sorted(GOOD)), min_size=1)).filter(
        lambda doc: "uuid" not in doc)
    unknown = st.builds(lambda k, v: {**GOOD, "x-" + k: v}, st.text(max_size=20), JSON)
    docs = (wrong_types | missing | unknown | JSON).map(lambda doc: json.dumps(doc).encode())
    invalid_utf8 = st.builds(lambda a, b: a + b"\xff\xfe\xc3" + b, st.binary(max_size=50),
                             st.binary(max_size=50))
    deep = st.builds(lambda n, open_, close: open_ * n + close * n, st.integers(500, 5000),
                     st.sampled_from([b"[", b'{"a":']), st.sampled_from([b"]", b"}"]))
    huge = st.builds(lambda n: json.dumps({**GOOD, "serial": "x" * n}).encode(),
                     st.integers(129, 20000))
    garbage = st.binary(max_size=300)
    return docs | invalid_utf8 | deep | huge | garbage


def test_hostile_births_get_4xx_and_the_daemon_keeps_serving(
        estate: Estate, tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--max-pending", "5"))
    seen: list[int] = []

    @settings(max_examples=1000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(_hostile())
    def check(body: bytes) -> None:
        status, _, reply = d.request("POST", "/v1/birth", body,
                                     {"content-type": "application/json"})
        seen.append(status)
        assert 400 <= status < 500, (status, body[:200], reply[:300])
        assert "error" in json.loads(reply)

    check()
    assert len(seen) >= 1000
    assert d.alive()
    assert d.birth(GOOD)[0] == 202
    assert d.get(f"/v1/hosts/{GOOD['uuid']}?wait=60")["state"] == "compliant"

    # A body over the limit: 413 whether or not the length is announced.
    big = json.dumps({**GOOD, "serial": "x" * 20000}).encode()
    assert d.request("POST", "/v1/birth", big)[0] == 413
    assert d.request("POST", "/v1/birth", b"[" + b" " * MAX_BODY + b"]")[0] == 413
    assert d.alive()
    # The storm past --max-pending: test_daemon_healing.py, with applies that cannot finish.


# --- 5. report mode, and drift found in vCenter by the periodic scan -------------------------------

def test_report_mode_marks_drift_instead_of_applying(estate: Estate, sim: Vcsim, tmp_path: Path,
                                                     daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--mode", "report", "--scan-interval", "0.3"))
    in_a, in_b = identity(1, "siteA"), identity(11, "siteB")
    assert births(d, [in_a, in_b]) == [202, 202]
    wait_states(d, [in_a["uuid"], in_b["uuid"]])
    applied = applies(d)

    estate.ldapmodify(CLUSTER_B_VLAN_22.format(base=estate.base))
    drifted = wait_states(d, [in_b["uuid"]], "drifted", timeout=10)
    assert "directory" in drifted[in_b["uuid"]]["reason"]
    si = sim.connect()
    assert vlan(one_host(si, in_b), "vMotion") == 21  # reported, not applied

    # A change made behind the daemon's back in vCenter: the scan reports it.
    host = one_host(si, in_a)
    host.configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"])))
    drifted = wait_states(d, [in_a["uuid"]], "drifted", timeout=10)
    assert "ntp" in drifted[in_a["uuid"]]["reason"]
    # Two more scans, each of which would have applied in enforce mode: nothing was reverted.
    scans = d.metrics()["stateless_scans_total"]
    wait_for(lambda: d.metrics()["stateless_scans_total"] >= scans + 2, timeout=30,
             what="two more compliance scans")
    assert ntp_servers(one_host(si, in_a)) == ["192.0.2.1"]
    assert applies(d) == applied


def test_enforce_mode_scan_reverts_changes_made_in_vcenter(estate: Estate, sim: Vcsim,
                                                           tmp_path: Path,
                                                           daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--scan-interval", "0.3"))
    in_a, other = identity(1, "siteA"), identity(2, "siteA")
    assert births(d, [in_a, other]) == [202, 202]
    before = wait_states(d, [in_a["uuid"], other["uuid"]])
    applied = applies(d)

    si = sim.connect()
    host = one_host(si, in_a)
    host.configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"])))
    host.configManager.networkSystem.UpdatePortGroup("vMotion", vim.host.PortGroup.Specification(
        name="vMotion", vlanId=99, vswitchName="vSwitch1", policy=vim.host.NetworkPolicy()))
    wait_for(lambda: ntp_servers(one_host(si, in_a)) == NTP
             and vlan(one_host(si, in_a), "vMotion") == 20, timeout=10, interval=0.05,
             what="the scan to revert the change")
    wait_states(d, [in_a["uuid"]])
    assert applies(d) == applied + 1
    assert d.metrics()['stateless_drift_total{source="vcenter"}'] >= 1
    assert states(d)[other["uuid"]]["since"] == before[other["uuid"]]["since"]


# --- 6. waiting for a host: one held request instead of polling ---------------------------------

def test_status_long_poll_answers_when_the_host_settles(estate: Estate, sim: Vcsim, tmp_path: Path,
                                                        daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA")
    host = identity(3, "siteA")
    assert d.birth(host)[0] == 202
    # Held until the apply is done (the client's own timeout, 90 s, is the only limit).
    status, _, body = d.request("GET", f"/v1/hosts/{host['uuid']}?wait=300", timeout=90)
    assert status == 200 and json.loads(body)["state"] == "compliant"
    assert ntp_servers(one_host(sim.connect(), host)) == NTP
    # A settled host is answered at once; had it been held, this would time out.
    status, _, body = d.request("GET", f"/v1/hosts/{host['uuid']}?wait=300", timeout=5)
    assert status == 200 and json.loads(body)["state"] == "compliant"
    for bad in ("abc", "-1", "301", "nan"):
        status, _, body = d.request("GET", f"/v1/hosts/{host['uuid']}?wait={bad}")
        assert status == 400 and "wait" in json.loads(body)["error"]
    assert d.request("GET", f"/v1/hosts/{uuid_of(4242)}?wait=10")[0] == 404
    assert d.alive()

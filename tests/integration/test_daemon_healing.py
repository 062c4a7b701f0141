"""statelessd heals by itself: vCenter faults, a directory outage, exact admission, re-apply.

Real slapd (a private one where the test stops it), the govmomi simulator with injected
faults, `statelessd` as a process.  Every host's configuration is checked by reading the
simulator with pyvmomi, and its state by reading the directory with ldap3, never only
through the daemon.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ldap3
import pytest

from stateless.directory.client import Directory
from stateless.errors import NotFoundError
from tests.integration.fixtures_daemon import (
    Daemon,
    Estate,
    PrivateSlapd,
    applies,
    births,
    cluster_of,
    hosts_by_name,
    identity,
    load_estate,
    ntp_servers,
    one_host,
    states,
    vlan,
    wait_for,
    wait_states,
)
from tests.integration.fixtures_slapd import Slapd
from tests.integration.fixtures_vcsim import Vcsim

NTP = ["10.1.0.123", "10.2.0.123"]
# The SOAP methods that change something: placement, then what an apply writes.
WRITES = ("CreateDatacenter", "CreateFolder", "CreateClusterEx", "AddHost_Task",
          "EnterMaintenanceMode_Task", "ExitMaintenanceMode_Task", "UpdateNetworkConfig",
          "SelectVnicForNicType", "UpdateOptions", "UpdateDateTimeConfig", "UpdateServicePolicy",
          "StartService", "StopService", "UpdateLockdownExceptions", "ChangeLockdownMode")


def directory_states(slapd: Slapd, base: str) -> dict[str, tuple[str, str]]:
    """uuid -> (state, owner) of every host entry, read with ldap3 (not the project's client)."""
    conn = ldap3.Connection(ldap3.Server(slapd.url, get_info=ldap3.NONE), slapd.bind_dn,
                            slapd.password, auto_bind=True)
    try:
        conn.search(f"ou=hosts,{base}", "(objectClass=statelessHost)", ldap3.LEVEL,
                    attributes=["statelessUuid", "statelessState", "statelessOwner"])
        return {str(e["attributes"]["statelessUuid"][0]):
                (str((e["attributes"].get("statelessState") or [""])[0]),
                 str((e["attributes"].get("statelessOwner") or [""])[0]))
                for e in conn.response if e.get("type") == "searchResEntry"}
    finally:
        conn.unbind()


def configured(si: Any, idents: list[dict[str, Any]], cluster: str = "ClusterA") -> None:
    """Every host once in vCenter, in its cluster, with the estate's VLANs and NTP servers."""
    found = hosts_by_name(si)
    names = [f"{i['hostname']}.example.com" for i in idents]
    assert {n: len(found.get(n, [])) for n in names} == dict.fromkeys(names, 1)
    for name in names:
        host = found[name][0]
        assert cluster_of(host) == cluster, name
        assert (vlan(host, "Management"), vlan(host, "vMotion"), vlan(host, "Storage")) == \
            (10, 20, 30), name
        assert ntp_servers(host) == NTP, name


# --- 1. vCenter write faults heal without anyone ---------------------------------------------------

@pytest.mark.parametrize("fraction", [0.2, 0.3])
def test_write_faults_heal(fraction: float, slapd: Slapd, base: str, key_file: Path,
                           vcsim_factory: Callable[..., Vcsim], tmp_path: Path,
                           daemons: Callable[..., Daemon]) -> None:
    faults = [arg for method in WRITES for arg in ("-fault", f"{method}:{fraction}:fail")]
    faulty = vcsim_factory("-dc", "0", *faults)
    load_estate(slapd, base, faulty, key_file)
    d = daemons(tmp_path / "d", slapd, base, key_file, name="sd1", site="siteA",
                extra=("--retry-cap", "1"))
    idents = [identity(n, "siteA") for n in range(1, 51)]
    assert births(d, idents) == [202] * 50
    uuids = [i["uuid"] for i in idents]
    done = wait_states(d, uuids, timeout=240)
    assert all(done[u]["attempts"] == 0 and done[u]["next_try"] is None for u in uuids)
    assert d.metrics()["stateless_apply_retries_total"] > 0  # faults were met, and healed
    configured(faulty.connect(), idents)
    wait_for(lambda: all(directory_states(slapd, base).get(u) == ("compliant", "sd1")
                         for u in uuids), timeout=30, what="the directory to say compliant")


# --- 2. the directory goes away in the middle of a storm -------------------------------------------

def test_slapd_outage_mid_storm(private_slapd: PrivateSlapd, sim: Vcsim, key_file: Path,
                                tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    slapd, base = private_slapd.slapd, "ou=outage,dc=example,dc=com"
    load_estate(slapd, base, sim, key_file)
    d = daemons(tmp_path / "d", slapd, base, key_file, name="sd1", site="siteA",
                extra=("--retry-cap", "2"))
    idents = [identity(n, "siteA") for n in range(1, 51)]
    answers: dict[str, int] = {}
    lock = threading.Lock()

    def send(ident: dict[str, Any]) -> None:
        status, _ = d.birth(ident)
        with lock:
            answers[ident["uuid"]] = status

    health: list[tuple[int, dict[str, Any]]] = []
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, i) for i in idents[:40]]
        wait_for(lambda: len(answers) >= 10, timeout=60, interval=0.005, what="10 births")
        private_slapd.stop()
        wait_for(lambda: d.request("GET", "/healthz")[0] == 503, timeout=30,
                 what="/healthz to notice the outage")
        for f in futures:
            f.result()
        # Births while the directory is down are refused with 503, never 500.
        during = births(d, idents[40:45], threads=5)
        outage_end = time.monotonic() + 10
        while time.monotonic() < outage_end:  # down for 10 s; /healthz says so all along
            status, _, body = d.request("GET", "/healthz")
            health.append((status, json.loads(body)))
            time.sleep(0.2)
    assert set(during) == {503}
    assert {status for status, _ in health} == {503}
    assert all(doc["ok"] is False and doc["directory"] == "unreachable" and doc["reason"]
               for _, doc in health)
    assert d.metrics()["stateless_directory_up"] == 0

    private_slapd.start()
    wait_for(lambda: d.request("GET", "/healthz")[0] == 200, timeout=30,
             what="/healthz to say the directory is back")
    assert d.get("/healthz")["directory"] == "synchronized"
    # The agents whose birth was refused (or never sent) try again.
    retry = [i for i in idents if answers.get(i["uuid"]) != 202]
    assert births(d, retry) == [202] * len(retry)

    uuids = [i["uuid"] for i in idents]
    api = wait_states(d, uuids, timeout=180)
    wait_for(lambda: all(directory_states(slapd, base).get(u) == ("compliant", "sd1")
                         for u in uuids), timeout=60, what="the directory to say compliant")
    assert {u: api[u]["state"] for u in uuids} == {
        u: directory_states(slapd, base)[u][0] for u in uuids}
    configured(sim.connect(), idents)


# --- 3. --max-pending is exact -----------------------------------------------------------------------

def test_max_pending_admits_exactly_n(slapd: Slapd, base: str, key_file: Path,
                                      vcsim_factory: Callable[..., Vcsim], tmp_path: Path,
                                      daemons: Callable[..., Daemon]) -> None:
    # Placement hangs: no accepted birth can finish (and free its slot) during the storm.
    stalled = vcsim_factory("-dc", "0", "-fault", "AddHost_Task:1:delay=600s")
    load_estate(slapd, base, stalled, key_file)
    d = daemons(tmp_path / "d", slapd, base, key_file, name="sd1", site="siteA",
                extra=("--max-pending", "5"))
    storm = [identity(n, "siteA") for n in range(1000, 1040)]
    with ThreadPoolExecutor(40) as pool:
        replies = list(pool.map(lambda i: d.request("POST", "/v1/birth", json.dumps(i).encode()),
                                storm))
    codes = [status for status, _, _ in replies]
    assert (codes.count(202), codes.count(429)) == (5, 35)
    for status, headers, body in replies:
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
            assert json.loads(body)["retry_after"] >= 1
    assert d.alive()


# --- 4. an admin asks for a re-apply -------------------------------------------------------------------

# The server entry first: the change feed delivers in order, so a view that shows the new
# owner shows its entry (and URL) too.
OWNED_BY_SD9 = """dn: cn=sd9,ou=servers,{base}
changetype: add
objectClass: top
objectClass: statelessServer
cn: sd9
statelessSite: siteA
statelessUrl: http://127.0.0.9:8480

dn: statelessUuid=4c4c4544-0042-3510-8052-b4c04f4b4e32,ou=hosts,{base}
changetype: modify
replace: statelessOwner
statelessOwner: sd9
"""
UNOWNED = "4c4c4544-0042-3510-8052-b4c04f4b4e31"  # in the estate, never born, no owner
OTHERS = "4c4c4544-0042-3510-8052-b4c04f4b4e32"


def test_apply_endpoint(estate: Estate, sim: Vcsim, tmp_path: Path,
                        daemons: Callable[..., Daemon]) -> None:
    from pyVmomi import vim

    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA")
    host = identity(1, "siteA")
    assert d.birth(host)[0] == 202
    before = d.get(f"/v1/hosts/{host['uuid']}?wait=60")
    assert before["state"] == "compliant"
    applied = applies(d)

    # Changed behind the daemon's back, no scan soon: the re-apply reads, plans and reverts.
    one_host(sim.connect(), host).configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"])))
    status, _, body = d.request("POST", f"/v1/hosts/{host['uuid']}/apply")
    assert status == 202
    assert json.loads(body) == {"host": host["uuid"], "status_url": f"/v1/hosts/{host['uuid']}"}
    after = d.get(f"/v1/hosts/{host['uuid']}?wait=60")
    assert after["state"] == "compliant" and after["since"] != before["since"]
    assert after["plan_changes"] >= 1
    assert applies(d) == applied + 1
    assert ntp_servers(one_host(sim.connect(), host)) == NTP

    # A host nobody owns: this server takes it (in the directory first), then applies it.
    status, _, _ = d.request("POST", f"/v1/hosts/{UNOWNED}/apply")
    assert status == 202
    assert d.get(f"/v1/hosts/{UNOWNED}?wait=60")["state"] == "compliant"
    wait_for(lambda: directory_states(estate.slapd, estate.base)[UNOWNED] == ("compliant", "sd1"),
             timeout=30, what="the directory to record owner and state")
    # Added under the name it is configured with (its dns.hostname and dns.domain answers).
    assert len(hosts_by_name(sim.connect()).get("esx-a01.example.com", [])) == 1

    # Owned by another server: 409, and where to ask instead.
    estate.ldapmodify(OWNED_BY_SD9.format(base=estate.base))
    # Both halves of the change: the host's new owner and sd9's server entry (the change feed
    # may deliver the entry added second in a later batch).
    wait_for(lambda: states(d)[OTHERS]["owner"] == "sd9" and "sd9" in {
        s["name"] for s in d.get("/v1/locate?ip=10.1.0.5")["servers"]}, timeout=30,
        what="the owner change and the owner's server entry")
    status, _, body = d.request("POST", f"/v1/hosts/{OTHERS}/apply")
    assert status == 409
    doc = json.loads(body)
    assert (doc["owner"], doc["owner_url"]) == ("sd9", "http://127.0.0.9:8480") and doc["error"]

    status, _, body = d.request("POST", "/v1/hosts/4c4c4544-0000-4000-8000-00000000beef/apply")
    assert status == 404 and "error" in json.loads(body)
    assert d.request("POST", f"/v1/hosts/{host['uuid']}/other")[0] == 404


def test_claim_owner_takes_a_host_once(directory: Directory) -> None:
    """The re-apply of an unowned host claims it with one add of a single-valued attribute:
    slapd refuses a second owner, so two servers never both take the host."""
    directory.add_host(UNOWNED)
    assert directory.claim_owner(UNOWNED, "sd1") == "sd1"
    assert directory.claim_owner(UNOWNED, "sd2") == "sd1"
    assert directory.claim_owner(UNOWNED, "sd1") == "sd1"
    assert directory.snapshot().hosts[UNOWNED].owner == "sd1"
    with pytest.raises(NotFoundError):
        directory.claim_owner(OTHERS, "sd1")

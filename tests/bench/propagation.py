"""How fast changes travel: the change feed, a policy edit to vCenter, a directory outage.

    .venv/bin/python tests/bench/propagation.py [--rounds 5] [--outage 10]

One private slapd, one simulator, one daemon, the example estate with three hosts born in
ClusterB.  Printed, each against a baseline measured in the same run:

1. change feed: a modify until the consumer's callback, vs the same modify followed by a
   read on the writer's own connection (the directory's round trip);
2. policy edit: `ldapmodify` of ClusterB's vMotion VLAN until every ClusterB host shows it in
   vCenter, vs setting that VLAN on the same hosts directly with pyvmomi (UpdatePortGroup,
   one thread per host, until all show it);
3. directory outage: slapd stopped for --outage seconds under a serving daemon, then
   started; the time until /healthz answers 200 and until a birth is accepted, vs the time
   until slapd itself accepts a bind (target: within 1 s of it);
4. federated edit: a three-provider mesh, the daemon attached to provider 3, the VLAN edit made
   on provider 1; printed: the raw replication delay of that edit (until provider 3 has it),
   the time until every host shows it in vCenter, and the same edit made on provider 3 itself
   (target: the federated edit within 1.5 times the local one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import ldap3  # noqa: E402
from pyVmomi import vim  # noqa: E402

from stateless.directory.embedded import DEFAULT_BASE, ROOT_DN, EmbeddedDirectory  # noqa: E402
from stateless.directory.syncrepl import SyncConsumer  # noqa: E402
from tests.integration.fixtures_daemon import (  # noqa: E402
    Daemon,
    hosts_by_name,
    identity,
    load_estate,
    start_daemon,
    vlan,
)
from tests.integration.fixtures_slapd import Slapd  # noqa: E402
from tests.integration.fixtures_vcsim import start_vcsim  # noqa: E402
from tests.ports import free_port  # noqa: E402

BASE = "ou=bench,dc=example,dc=com"


def until(predicate: Callable[[], bool], timeout: float = 120.0, interval: float = 0.005) -> float:
    """Seconds until `predicate` holds (polled every `interval`)."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)
    return time.perf_counter() - start


def connection(slapd: Slapd) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(slapd.url, get_info=ldap3.NONE), ROOT_DN, slapd.password,
                            auto_bind=True, raise_exceptions=True)


def feed(slapd: Slapd, rounds: int) -> tuple[float, float]:
    """(feed latency, modify + read round trip), medians in seconds."""
    seen = threading.Event()
    consumer = SyncConsumer([slapd.url], f"ou=policies,{BASE}",
                            lambda kind, *_: seen.set() if kind == "modify" else None,
                            bind_dn=ROOT_DN, password=slapd.password)
    consumer.start()
    try:
        consumer.wait_refreshed(30)
        conn = connection(slapd)
        dn = f"cn=Baseline,ou=policies,{BASE}"
        latency, round_trip = [], []
        for n in range(rounds):
            seen.clear()
            start = time.perf_counter()
            conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [f"feed {n}"])]})
            seen.wait(30)
            latency.append(time.perf_counter() - start)
            start = time.perf_counter()
            conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [f"read {n}"])]})
            conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["description"])
            round_trip.append(time.perf_counter() - start)
        conn.unbind()
        return statistics.median(latency), statistics.median(round_trip)
    finally:
        consumer.stop()


def policy_edit(slapd: Slapd, si: Any, names: list[str], rounds: int) -> tuple[float, float]:
    """(ldapmodify until vCenter shows it, direct pyvmomi), medians in seconds."""
    conn = connection(slapd)
    dn = f"cn=ClusterB-Net,ou=policies,{BASE}"
    daemon_s, direct_s = [], []
    for n in range(rounds):
        want = 100 + n
        start = time.perf_counter()
        conn.modify(dn, {"statelessPortGroup": [(ldap3.MODIFY_REPLACE, [f"vMotion; vlan={want}"])]})
        until(lambda w=want: all(vlan(h[0], "vMotion") == w  # type: ignore[misc]
                                 for h in (hosts_by_name(si)[name] for name in names)), interval=0.01)
        daemon_s.append(time.perf_counter() - start)
    found = hosts_by_name(si)
    for n in range(rounds):
        want = 200 + n

        def direct(name: str, vlan_id: int = want) -> None:
            host = found[name][0]
            host.configManager.networkSystem.UpdatePortGroup("vMotion", vim.host.PortGroup.Specification(
                name="vMotion", vlanId=vlan_id, vswitchName="vSwitch1", policy=vim.host.NetworkPolicy()))

        start = time.perf_counter()
        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(direct, names))
        until(lambda w=want: all(vlan(found[name][0], "vMotion") == w  # type: ignore[misc]
                                 for name in names), interval=0.01)
        direct_s.append(time.perf_counter() - start)
    conn.unbind()
    return statistics.median(daemon_s), statistics.median(direct_s)


def outage(ldap: EmbeddedDirectory, slapd: Slapd, daemon: Daemon,
           seconds: float) -> tuple[float, float, float]:
    """(healthz back, birth accepted, slapd bind), seconds after slapd was started again."""
    ldap.stop()
    until(lambda: daemon.request("GET", "/healthz")[0] == 503, timeout=30)
    time.sleep(seconds)
    ldap.start()
    started = time.perf_counter()

    def binds() -> bool:
        try:
            connection(slapd).unbind()
            return True
        except ldap3.core.exceptions.LDAPException:
            return False

    bind_s = until(binds)
    health_s = until(lambda: daemon.request("GET", "/healthz")[0] == 200) + bind_s
    body = json.dumps(identity(77, "siteB")).encode()
    birth_s = time.perf_counter() - started
    birth_s += until(lambda: daemon.request("POST", "/v1/birth", body)[0] == 202)
    return health_s, birth_s, bind_s


def mesh(tmp: Path) -> list[EmbeddedDirectory]:
    """Three providers replicating N-way, started; provider 1 holds the admin password."""
    ports = [free_port() for _ in range(3)]
    urls = [f"ldap://127.0.0.1:{port}" for port in ports]
    first = tmp / "p1" / "admin.password"
    nodes = [EmbeddedDirectory(tmp / f"p{i}", port=ports[i - 1], server_id=i,
                               peers=tuple(u for j, u in enumerate(urls, 1) if j != i),
                               admin_password_file=None if i == 1 else first) for i in (1, 2, 3)]
    for node in nodes:
        node.start()
    return nodes


def federated(tmp: Path, rounds: int) -> tuple[float, float, float]:
    """(replication p1 -> p3, edit on p1 until vCenter, edit on p3 until vCenter): medians."""
    nodes = mesh(tmp / "mesh")
    p1, _, p3 = (Slapd(n.url, n.bind_dn, nodes[0].password_file, DEFAULT_BASE, n.data_dir)
                 for n in nodes)
    sim = start_vcsim("-dc", "0")
    daemon = None
    try:
        load_estate(p1, BASE, sim, tmp / "fed.key")
        daemon = start_daemon(tmp / "fd", p3, BASE, tmp / "fed.key", name="sd3", site="siteA")
        idents = [identity(n, "siteB") for n in (31, 32, 33)]
        for ident in idents:
            assert daemon.birth(ident)[0] == 202
        for ident in idents:
            assert daemon.get(f"/v1/hosts/{ident['uuid']}?wait=120")["state"] == "compliant"
        names = [f"{i['hostname']}.example.com" for i in idents]
        si = sim.connect()
        dn = f"cn=ClusterB-Net,ou=policies,{BASE}"
        writer, local, reader = connection(p1), connection(p3), connection(p3)
        repl_s: list[float] = []
        remote_s: list[float] = []
        local_s: list[float] = []

        def has(value: str) -> bool:
            reader.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["statelessPortGroup"])
            return value in str(reader.entries[0].entry_attributes_as_dict)

        def applied(want: int) -> bool:
            return all(vlan(hosts_by_name(si)[name][0], "vMotion") == want for name in names)

        for n in range(rounds):
            for conn, times in ((writer, remote_s), (local, local_s)):
                want = 300 + 2 * n + (conn is local)
                value = f"vMotion; vlan={want}"
                start = time.perf_counter()
                conn.modify(dn, {"statelessPortGroup": [(ldap3.MODIFY_REPLACE, [value])]})
                if conn is writer:
                    repl_s.append(until(lambda v=value: has(v), interval=0.0005))  # type: ignore[misc]
                until(lambda w=want: applied(w), interval=0.01)  # type: ignore[misc]
                times.append(time.perf_counter() - start)
        for conn in (writer, local, reader):
            conn.unbind()
        return statistics.median(repl_s), statistics.median(remote_s), statistics.median(local_s)
    finally:
        if daemon is not None:
            daemon.stop()
        sim.stop()
        for node in nodes:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--outage", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ldap = EmbeddedDirectory(tmp / "slapd", port=free_port())
        ldap.start()
        slapd = Slapd(ldap.url, ldap.bind_dn, ldap.password_file, DEFAULT_BASE, tmp / "slapd")
        sim = start_vcsim("-dc", "0")
        daemon = None
        try:
            load_estate(slapd, BASE, sim, tmp / "secret.key")
            daemon = start_daemon(tmp / "d", slapd, BASE, tmp / "secret.key", name="sd1",
                                  site="siteA")
            idents = [identity(n, "siteB") for n in (11, 12, 13)]
            for ident in idents:
                assert daemon.birth(ident)[0] == 202
            for ident in idents:
                assert daemon.get(f"/v1/hosts/{ident['uuid']}?wait=120")["state"] == "compliant"
            names = [f"{i['hostname']}.example.com" for i in idents]
            feed_s, trip_s = feed(slapd, args.rounds)
            edit_s, direct_s = policy_edit(slapd, sim.connect(), names, args.rounds)
            health_s, birth_s, bind_s = outage(ldap, slapd, daemon, args.outage)
        finally:
            if daemon is not None:
                daemon.stop()
            sim.stop()
            ldap.stop()
        repl_s, remote_s, local_s = federated(tmp, args.rounds)
    print(f"change feed: modify -> callback     {feed_s * 1e3:8.1f} ms   (modify + read "
          f"{trip_s * 1e3:.1f} ms; ratio {feed_s / trip_s:.1f})")
    print(f"policy edit -> {len(names)} hosts in vCenter  {edit_s * 1e3:8.1f} ms   (direct pyvmomi "
          f"{direct_s * 1e3:.1f} ms; ratio {edit_s / direct_s:.1f})")
    print(f"after a {args.outage:.0f} s outage, from slapd's start: bind {bind_s * 1e3:.0f} ms, "
          f"/healthz 200 {health_s * 1e3:.0f} ms, birth accepted {birth_s * 1e3:.0f} ms "
          f"(target: /healthz within 1 s of the bind; {health_s - bind_s:.2f} s)")
    print(f"edit on provider 1 -> applied by the daemon on provider 3 {remote_s * 1e3:8.1f} ms   "
          f"(replication to provider 3 {repl_s * 1e3:.1f} ms; the edit made on provider 3 "
          f"{local_s * 1e3:.1f} ms; ratio {remote_s / local_s:.2f}, target <= 1.5)")


if __name__ == "__main__":
    main()

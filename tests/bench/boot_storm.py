"""Boot storm: N hosts boot at once against one statelessd; compare with a plain pyvmomi floor.

    .venv/bin/python tests/bench/boot_storm.py [N] [--threads 8] [--delay 10ms]

One private slapd, one simulator (`-delay` on every SOAP call, a stand-in for a real vCenter's
latency), one daemon with `--vcenter-concurrency THREADS`.  The directory holds one cluster,
one policy with the same standard configuration that tests/bench/apply.py's minimal script
writes, and a default deploy rule, so every born host lands in that cluster.

N agents run at once in threads through the agent's own code path (`stateless.agent.birth.run`,
birth then --wait-compliant).  Printed: time until the directory shows all N compliant, SOAP
calls per host (the daemon's stateless_vcenter_calls_total / N, placement included), its CPU
time and peak RSS (VmHWM), lost hosts (not compliant, or not exactly one HostSystem in
vCenter), and the ratio of
the daemon's time to the floor: the minimal script of tests/bench/apply.py preceded by the
AddHost it needs, for N hosts at the same concurrency, in the same run and simulator, once
the daemon has stopped.
Also printed: the daemon's CPU per host next to the floor script's own (the script only
writes: no read before planning, no verification, no directory, no watch).
Targets: ratio <= 1.0, 0 lost, RSS <= 250 MB, daemon CPU <= 12 ms per host.  CPU per host
depends on the machine (the floor script's own varies 6-22 ms between machines), so the ratio
of the daemon's CPU to the script's, both measured in the run, is printed too.

`--daemon-arg=--vcenter-watch=off` measures the storm without the push-drift watch.  With it,
the simulator pushes each host's own apply as changes when the host joins the watch soon after
(it evaluates a backlog of changes against the filter as it is when it gets to them, where
vCenter sends what changed after a host entered): "changes pushed" counts those, and the daemon
decodes them and compares the host once more.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import ldap3  # noqa: E402
from pyVim.connect import Disconnect, SmartConnect  # noqa: E402
from pyVim.task import WaitForTask  # noqa: E402
from pyVmomi import vim  # noqa: E402

from stateless.agent.birth import Settings  # noqa: E402
from stateless.agent.birth import run as agent_run  # noqa: E402
from stateless.agent.signing import EnrollmentKey  # noqa: E402
from stateless.directory import enrollkeys  # noqa: E402
from stateless.directory.client import Directory  # noqa: E402
from stateless.directory.embedded import EmbeddedDirectory  # noqa: E402
from stateless.directory.secrets import encrypt_password  # noqa: E402
from stateless.model.inventory import ContainerKind, IpPool, Policy, Rule, Site, VCenter  # noqa: E402
from stateless.security.seal import load_keyring  # noqa: E402
from tests.bench.apply import Calls, minimal  # noqa: E402
from tests.integration.fixtures_daemon import Daemon, start_daemon  # noqa: E402
from tests.integration.fixtures_slapd import Slapd  # noqa: E402
from tests.integration.fixtures_vcsim import start_vcsim  # noqa: E402
from tests.integration.test_vcenter import STANDARD  # noqa: E402
from tests.ports import free_port  # noqa: E402

BASE = "ou=stateless,dc=example,dc=com"
CLUSTER = "/DC1/Storm"
# What minimal() writes, with each host's two VMkernel addresses allocated from pools (a
# policy cannot carry host-specific addresses); the script writes fixed ones.
SETTINGS = {**{k: v for k, v in STANDARD.items() if not k.endswith((".address", ".netmask"))},
            "vmknic.vMotion.ip": "pool:vmotion", "vmknic.Storage.ip": "pool:storage"}


def identity(n: int) -> dict[str, Any]:
    return {"uuid": f"4c4c4544-0000-4000-8000-{n:012x}", "serial": f"SN{n:06d}",
            "vendor": "Dell Inc.", "model": "PowerEdge R650",
            "macs": [f"00:50:56:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"],
            "ipv4": f"10.9.{n // 250}.{n % 250 + 1}", "hostname": f"storm{n:05d}",
            "domain": "example.com"}


def prepare(directory: Directory, vc_url: str, key: Path, signed: bool = False) -> EnrollmentKey | None:
    """The estate; the site admits every host (its one deploy rule is a catch-all) and, when
    `signed`, has an enrollment key its births must be signed with (returned)."""
    directory.init()
    directory.add_site(Site("default", ("10.9.0.0/16",)))
    directory.modify(directory.named_dn("sites", "default"),
                     {"statelessAdmission": [(ldap3.MODIFY_REPLACE, ["open"])]}, "open admission")
    directory.add_container("/DC1", ContainerKind.DATACENTER)
    directory.add_container(CLUSTER, ContainerKind.CLUSTER)
    directory.add_pool(IpPool("vmotion", "10.0.16.1", "10.0.19.250", "255.255.252.0"))
    directory.add_pool(IpPool("storage", "10.0.32.1", "10.0.35.250", "255.255.252.0"))
    directory.create_policy(Policy("Standard", settings=SETTINGS))
    directory.link("Standard", CLUSTER, order=1)
    directory.add_rule(Rule("everything", order=10, location=CLUSTER))
    directory.add_vcenter(VCenter("vc1", vc_url, "user",
                                  encrypt_password("pass", key, create=True)))
    if not signed:
        return None
    fresh = enrollkeys.rotate(directory, "default", load_keyring(key), datetime.now(UTC))
    return EnrollmentKey(fresh.new.key.key_id, fresh.new.secret)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def storm(daemon: Daemon, n: int, directory: Directory,
          enroll_key: EnrollmentKey | None = None) -> tuple[float, float, list[int]]:
    """Start N agents at once; (seconds to all compliant per the directory, agents' seconds, codes)."""
    idents = [identity(i) for i in range(1, n + 1)]
    settings = Settings(servers=(daemon.url,), max_attempts=20, backoff_base=0.5,
                        backoff_cap=5.0, request_timeout=120.0, timeout=900.0,
                        poll_interval=1.0, state_file=None,
                        site="default" if enroll_key else None, enroll_key=enroll_key)
    codes: list[int] = [0] * n
    start = threading.Event()

    def agent(k: int) -> None:
        start.wait()
        codes[k] = agent_run(idents[k], settings, wait_compliant=True, log=lambda _t: None)

    threads = [threading.Thread(target=agent, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    start.set()
    compliant_at = float("nan")
    while True:
        # The gauge, not /v1/hosts: listing N hosts every 0.1 s would load the daemon itself.
        if metric(daemon, 'stateless_hosts{state="compliant"}') >= n:
            compliant_at = time.perf_counter() - t0
            break
        if not any(t.is_alive() for t in threads):
            break
        time.sleep(0.1)
    for t in threads:
        t.join()
    agents_done = time.perf_counter() - t0
    return compliant_at, agents_done, codes


def floor(url: str, n: int, threads: int, calls: Calls) -> tuple[float, float, float]:
    """AddHost then the minimal script, per host, at the same concurrency: (seconds, calls/host,
    the script's CPU seconds; nothing else runs in this process meanwhile)."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    si = SmartConnect(host=host, port=int(port), user="user", pwd="pass", protocol="http")
    si._stub.poolSize = threads
    content = si.RetrieveContent()
    dc = content.rootFolder.CreateDatacenter("Floor")
    cluster = dc.hostFolder.CreateClusterEx("FloorCluster", vim.cluster.ConfigSpecEx())

    # A property collector per thread: WaitForTask's filters on the shared default collector,
    # created and destroyed by eight threads at once, crash the simulator's WaitForUpdates
    # (and would steal each other's updates on a real vCenter).
    local = threading.local()

    def one(k: int) -> None:
        spec = vim.host.ConnectSpec(hostName=f"floor{k:05d}.example.com", userName="root",
                                    password="", force=True)
        if not hasattr(local, "pc"):
            local.pc = content.propertyCollector.CreatePropertyCollector()
        task = cluster.AddHost_Task(spec, True)
        WaitForTask(task, si=si, pc=local.pc)
        minimal(si, task.info.result._moId)

    before = calls.total
    t0, cpu0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    per_host = (calls.total - before) / n
    Disconnect(si)
    return elapsed, per_host, cpu


def count_hosts(url: str, prefix: str) -> dict[str, int]:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    si = SmartConnect(host=host, port=int(port), user="user", pwd="pass", protocol="http")
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    out: dict[str, int] = {}
    for h in view.view:
        if h.name.startswith(prefix):
            out[h.name] = out.get(h.name, 0) + 1
    Disconnect(si)
    return out


def metric(daemon: Daemon, name: str) -> float:
    with urllib.request.urlopen(daemon.url + "/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8, help="vCenter concurrency (both sides)")
    parser.add_argument("--delay", default="10ms")
    parser.add_argument("--signed", action="store_true",
                        help="the site has an enrollment key: every birth is signed and its nonce "
                             "recorded in the directory")
    parser.add_argument("--profile", metavar="FILE",
                        help="record the daemon with py-spy during the storm (collapsed stacks of the "
                             "threads holding the GIL: its CPU, which bounds the storm)")
    parser.add_argument("--daemon-arg", action="append", default=[], metavar="ARG",
                        help="one more statelessd argument (repeatable), e.g. "
                             "--daemon-arg=--vcenter-watch=off to see what the watch costs")
    args = parser.parse_args()
    if not 1 <= args.n <= 1000:
        parser.error("N: 1..1000")
    calls = Calls()
    with tempfile.TemporaryDirectory(prefix="boot-storm-") as tmp_text:
        tmp = Path(tmp_text)
        ldap = EmbeddedDirectory(tmp / "slapd", port=free_port())
        ldap.start()
        sim = start_vcsim("-dc", "0", "-delay", args.delay)
        daemon: Daemon | None = None
        try:
            slapd = Slapd(ldap.url, ldap.bind_dn, ldap.password_file, BASE, tmp / "slapd")
            directory = Directory([ldap.url], ldap.bind_dn, slapd.password, base=BASE)
            key = tmp / "secret.key"
            enroll_key = prepare(directory, sim.url, key, args.signed)
            daemon = start_daemon(tmp / "state", slapd, BASE, key, name="storm", site="default",
                                  extra=("--vcenter-concurrency", str(args.threads),
                                         "--max-pending", str(2 * args.n), *args.daemon_arg))
            spy = None
            if args.profile:
                spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                                        "--format", "raw", "--gil", "-r", "200", "-o", args.profile,
                                        "--pid", str(daemon.pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cpu_before = cpu_seconds(daemon.pid)
            sim_before = cpu_seconds(sim.process.pid)
            compliant, agents_done, codes = storm(daemon, args.n, directory, enroll_key)
            cpu = cpu_seconds(daemon.pid) - cpu_before
            sim_cpu = cpu_seconds(sim.process.pid) - sim_before
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            soap = metric(daemon, "stateless_vcenter_calls_total")
            watch = daemon.get("/v1/summary")["vcenters"].get("vc1", {})
            rss = peak_rss_mb(daemon.pid)
            hosts = directory.snapshot().hosts
            uuids = [identity(i)["uuid"] for i in range(1, args.n + 1)]
            in_vc = count_hosts(sim.url, "storm")
            lost = sum(1 for i, u in enumerate(uuids, 1)
                       if u not in hosts or hosts[u].state != "compliant"
                       or in_vc.get(f"storm{i:05d}.example.com", 0) != 1)
            # The floor runs alone: a daemon still watching its 1,000 hosts would make the
            # simulator match every write of the floor against its filter.
            daemon.stop()
            sim_before = cpu_seconds(sim.process.pid)
            floor_s, floor_calls, floor_cpu = floor(sim.url, args.n, args.threads, calls)
            floor_sim_cpu = cpu_seconds(sim.process.pid) - sim_before
        finally:
            if daemon is not None:
                daemon.stop()
            sim.stop()
            ldap.stop()
    failed_agents = sum(1 for c in codes if c != 0)
    print(f"hosts={args.n} vcenter-concurrency={args.threads} delay={args.delay} per SOAP call")
    print(f"  all compliant (directory)  {compliant:8.2f} s   (agents all returned {agents_done:.2f} s)")
    print(f"  SOAP calls per host        {soap / args.n:8.1f}     (floor {floor_calls:.1f})")
    print(f"  daemon peak RSS (VmHWM)    {rss:8.1f} MB")
    print(f"  daemon CPU during storm    {cpu:8.2f} s   (simulator {sim_cpu:.2f} s)")
    print(f"  daemon CPU per host        {cpu / args.n * 1000:8.1f} ms  (floor script "
          f"{floor_cpu / args.n * 1000:.1f} ms; target <= 12)")
    print(f"  ratio CPU daemon / script  {cpu / floor_cpu:8.2f}     (the same machine's speed "
          "on both sides)")
    print(f"  lost hosts                 {lost:8d}     (agents with a non-zero exit: {failed_agents})")
    print(f"  drift watch                {watch.get('changes', 0):8d}     changes pushed by vCenter "
          f"({watch.get('hosts', 0)} hosts watched)")
    print(f"  floor: AddHost + minimal   {floor_s:8.2f} s   (simulator CPU {floor_sim_cpu:.2f} s)")
    print(f"  ratio daemon / floor       {compliant / floor_s:8.2f}     (target <= 1.0)")


if __name__ == "__main__":
    main()

"""Scale: one statelessd over a directory of N hosts, for each N given.

    .venv/bin/python tests/bench/scale.py [N ...] [--storm 200] [--edits 200]
    SCALE_PROFILE=start.prof .venv/bin/python tests/bench/scale.py 50000 --storm 0

Per N: a private slapd gets the base entries of tests/bench/boot_storm.py (a cluster, a
standard policy linked to it, two pools, a default rule, the simulator as vCenter) and N host
entries in that cluster bulk-loaded with `slapadd` (slapd stopped meanwhile, as an
administrator loads a large directory). The hosts are owned by another server, so the daemon
mirrors and resolves them without applying. Then a real statelessd starts; printed:

- start -> serving: from the process start until `/healthz` answers 200, and the daemon's
  CPU time until then (on a shared machine the wall time includes waiting for a core);
- RSS when serving, and after `--edits` host writes and policy edits (VmRSS; VmHWM, the peak);
- policy edit visible: an NTP server changed in the linked policy with ldapmodify-equivalent
  writes, until `/v1/hosts/{uuid}/effective` of a host shows it (median of 5);
- host write visible: a host entry's applied digest written, until `/v1/hosts/{uuid}` shows
  it (median and max of 20 of the writes);
- bytes per host: (RSS when serving at N - RSS at the smallest N) / (N - smallest N), the
  memory one more host costs, from two daemons measured in the same run;
- a storm (`--storm K`, default 200, 0: none): K hosts born at once on top of the N (agents
  through the agent's code path, simulator with 10 ms per SOAP call): p50/p99
  birth-to-compliant latency, SOAP calls and daemon CPU per born host, next to the same storm
  on an empty directory (no host entries) measured first in the same run, and their ratio.

The hosts' owner is another server whose lease runs for a day, so the daemon never takes them
over. With SCALE_PROFILE=FILE the daemon runs under tests/bench/profiled.py and FILE gets a
cProfile of all its threads from the process start to serving (`python -m pstats FILE`).

Each figure is printed next to the issue's target (at 50,000 hosts: start <= 5 s, RSS <= 250
MB after edits, policy edit <= 1 s, host write <= 0.3 s; at 10,000 a quarter of those times).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stateless.agent.birth import Settings  # noqa: E402
from stateless.agent.birth import run as agent_run  # noqa: E402
from stateless.directory.client import Directory  # noqa: E402
from stateless.directory.embedded import EmbeddedDirectory  # noqa: E402
from stateless.model.inventory import Server  # noqa: E402
from tests.bench.boot_storm import cpu_seconds, identity, metric, prepare  # noqa: E402
from tests.integration.fixtures_daemon import Daemon, admin_token  # noqa: E402
from tests.integration.fixtures_slapd import Slapd  # noqa: E402
from tests.integration.fixtures_vcsim import start_vcsim  # noqa: E402
from tests.ports import free_port  # noqa: E402

BASE = "ou=stateless,dc=example,dc=com"
SUFFIX = "dc=example,dc=com"
CLUSTER = "/DC1/Storm"
OWNER = "elsewhere"  # the server that owns the N hosts
TARGETS = {50_000: (5.0, 250.0, 1.0, 0.3), 10_000: (1.25, 250.0, 0.25, 0.075)}


def host_uuid(n: int) -> str:
    return f"5c4c4544-0000-4000-8000-{n:012x}"


def host_ldif(n: int) -> str:
    """One existing host as the directory holds it after its birth (owned by another server)."""
    uuid = host_uuid(n)
    return (f"dn: statelessUuid={uuid},ou=hosts,{BASE}\n"
            "objectClass: top\nobjectClass: statelessHost\n"
            f"statelessUuid: {uuid}\nstatelessLocation: {CLUSTER}\n"
            f"statelessSerial: SN{n:08d}\nstatelessVendor: Dell Inc.\n"
            "statelessModel: PowerEdge R650\n"
            f"statelessMac: 00:51:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:"
            f"{n & 255:02x}\n"
            f"statelessIpv4: 10.{64 + (n >> 16 & 63)}.{n >> 8 & 255}.{n & 255}\n"
            f"statelessHostname: esx{n:06d}\nstatelessDomain: example.com\n"
            f"statelessAnswer: dns.hostname=esx{n:06d}\n"
            f"statelessState: compliant\nstatelessOwner: {OWNER}\n"
            f"statelessAppliedDigest: {n:064x}\n\n")


def estate(directory: Directory, vc_url: str, key: Path) -> None:
    """boot_storm.py's base entries, and the live server that owns the N hosts: with its lease
    running for a day, the daemon measured never takes them over (it would apply them all)."""
    prepare(directory, vc_url, key)
    directory.put_server(Server(OWNER, "default", "http://127.0.0.1:9/"))
    directory.renew_lease(OWNER, datetime.now(UTC) + timedelta(days=1))


def bulk_load(ldap: EmbeddedDirectory, tmp: Path, n: int) -> float:
    """Stop slapd, slapadd N hosts into its database, start it again; seconds taken."""
    t0 = time.perf_counter()
    ldif = tmp / "hosts.ldif"
    with ldif.open("w") as f:
        for i in range(1, n + 1):
            f.write(host_ldif(i))
    ldap.stop()
    result = subprocess.run(["/usr/sbin/slapadd", "-q", "-F", str(ldap.data_dir / "config"),
                             "-b", SUFFIX, "-l", str(ldif)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"slapadd failed: {result.stderr[-2000:]}")
    ldap.start()
    return time.perf_counter() - t0


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def get(daemon: Daemon, path: str) -> tuple[int, bytes]:
    """An admin GET with the daemon's token (the admin API is closed without one)."""
    status, _, body = daemon.request("GET", path, timeout=30)
    return status, body


def until(check: object, timeout: float = 60.0) -> float:
    """Seconds until `check()` is true (polled every millisecond or so)."""
    assert callable(check)
    t0 = time.perf_counter()
    while not check():
        if time.perf_counter() - t0 > timeout:
            return float("inf")
        time.sleep(0.001)
    return time.perf_counter() - t0


def serving(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start statelessd with `args`; (process, seconds until /healthz answered 200)."""
    ready = re.compile(r"serving (http://\S+)")
    t0 = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    url = None
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"statelessd exited:\n{log.read_text()[-3000:]}")
        if url is None:
            found = ready.search(log.read_text(errors="replace"))
            url = found.group(1) if found else None
        if url is not None:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
                    if resp.status == 200:
                        return proc, time.perf_counter() - t0
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.005)


def policy_edits(directory: Directory, daemon: Daemon, rounds: int) -> list[float]:
    """Seconds from each NTP server change of the linked policy to a host's effective config."""
    seen: list[float] = []
    probe = host_uuid(1)
    for k in range(rounds):
        server = f"10.77.{k}.{k + 1}"
        directory.modify(f"cn=Standard,ou=policies,{BASE}",
                         {"statelessNtp": [("MODIFY_REPLACE", [f"servers={server}"])]})
        seen.append(until(lambda s=server: s.encode() in get(daemon, f"/v1/hosts/{probe}/effective")[1]))
    return seen


def host_writes(directory: Directory, daemon: Daemon, n: int, writes: int) -> list[float]:
    """Seconds from a host entry's applied digest written to /v1/hosts/{uuid} showing it;
    every tenth write is timed, the others follow each other at once."""
    seen: list[float] = []
    for k in range(writes):
        uuid = host_uuid(1 + (k * 7919) % n)
        digest = f"{k:08x}" + "f" * 56
        directory.modify(f"statelessUuid={uuid},ou=hosts,{BASE}",
                         {"statelessAppliedDigest": [("MODIFY_REPLACE", [digest])]})
        if k % 10 == 0:
            seen.append(until(lambda u=uuid, d=digest: d.encode() in get(daemon, f"/v1/hosts/{u}")[1]))
    return seen


def storm(daemon: Daemon, k: int) -> list[float]:
    """K hosts born at once; each agent's seconds from birth to compliant (inf: failed)."""
    settings = Settings(servers=(daemon.url,), max_attempts=20, backoff_base=0.5, backoff_cap=5.0,
                        request_timeout=120.0, timeout=900.0, poll_interval=0.2, state_file=None)
    times = [float("inf")] * k
    start = threading.Event()

    def agent(i: int) -> None:
        start.wait()
        t0 = time.perf_counter()
        if agent_run(identity(i + 1), settings, wait_compliant=True, log=lambda _t: None) == 0:
            times[i] = time.perf_counter() - t0

    threads = [threading.Thread(target=agent, args=(i,), daemon=True) for i in range(k)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join()
    return times


def start(ldap: EmbeddedDirectory, key: Path, state: Path, storm_size: int) -> tuple[Daemon, float, float]:
    """A real statelessd over `ldap`: (daemon, seconds until /healthz answered 200, its CPU
    seconds by then). With SCALE_PROFILE=FILE it runs under tests/bench/profiled.py, which
    writes a cProfile of every thread, up to serving, to FILE (the figures are then the
    profiler's, not the daemon's)."""
    token_file, token = admin_token(state)
    options = ["--state-dir", str(state), "--name", "scale", "--site", "default",
               "--listen", "127.0.0.1:0", "--ldap", ldap.url, "--bind-dn", ldap.bind_dn,
               "--password-file", str(ldap.password_file), "--base", BASE,
               "--secret-key-file", str(key), "--max-pending", str(2 * max(storm_size, 1)),
               "--admin-token-file", str(token_file)]
    profile = os.environ.get("SCALE_PROFILE")
    cmd = ([sys.executable, str(ROOT / "tests/bench/profiled.py"), profile] if profile
           else [str(ROOT / ".venv/bin/statelessd")]) + options
    log = state / "scale.log"
    proc, start_s = serving(cmd, log)
    start_cpu = cpu_seconds(proc.pid)
    url = next(line.split("serving ", 1)[1].strip() for line in log.read_text().splitlines()
               if "serving http" in line)
    return Daemon("scale", "default", url, state, log, cmd, proc, token), start_s, start_cpu


def storm_figures(daemon: Daemon, k: int) -> dict[str, float]:
    """K births at once: p50/p99 birth -> compliant, lost agents, SOAP calls and daemon CPU
    per born host."""
    pid = daemon.process.pid
    calls0, cpu0 = metric(daemon, "stateless_vcenter_calls_total"), cpu_seconds(pid)
    times = sorted(storm(daemon, k))
    return {"storm_p50": times[len(times) // 2],
            "storm_p99": times[min(len(times) - 1, int(len(times) * 0.99))],
            "storm_lost": sum(1 for t in times if t == float("inf")),
            "storm_calls": (metric(daemon, "stateless_vcenter_calls_total") - calls0) / k,
            "storm_cpu_ms": 1000 * (cpu_seconds(pid) - cpu0) / k}


def measure(n: int, args: argparse.Namespace) -> dict[str, float]:
    """The figures at N hosts; N = 0 is the empty directory the storm is compared with
    (only its start and storm are measured)."""
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp_text:
        tmp = Path(tmp_text)
        ldap = EmbeddedDirectory(tmp / "slapd", port=free_port())
        ldap.start()
        sim = start_vcsim("-dc", "0", "-delay", "10ms") if args.storm else None
        daemon = None
        try:
            slapd = Slapd(ldap.url, ldap.bind_dn, ldap.password_file, BASE, tmp / "slapd")
            directory = Directory([ldap.url], ldap.bind_dn, slapd.password, base=BASE)
            key = tmp / "secret.key"
            estate(directory, sim.url if sim else "https://vc.invalid/sdk", key)
            directory.close()
            load_s = bulk_load(ldap, tmp, n) if n else 0.0
            (tmp / "state").mkdir()
            daemon, start_s, start_cpu = start(ldap, key, tmp / "state", args.storm)
            pid = daemon.process.pid
            out: dict[str, float] = {"n": n, "load": load_s, "start": start_s, "start_cpu": start_cpu}
            directory = Directory([ldap.url], ldap.bind_dn, slapd.password, base=BASE)
            time.sleep(1.0)  # let the first background work settle before reading RSS
            out["rss_ready"] = rss_mb(pid)
            if n:
                policy = policy_edits(directory, daemon, 5)
                hosts = host_writes(directory, daemon, n, args.edits)
                out.update(rss_after=rss_mb(pid), policy=statistics.median(policy),
                           policy_max=max(policy), host=statistics.median(hosts),
                           host_max=max(hosts))
            if args.storm:
                out.update(storm_figures(daemon, args.storm))
            out["rss_peak"] = rss_mb(pid, "VmHWM")
            directory.close()
            return out
        finally:
            if daemon is not None:
                daemon.process.terminate()
                daemon.process.wait(timeout=60)
            if sim is not None:
                sim.stop()
            ldap.stop()


def report(results: list[dict[str, float]], empty: dict[str, float] | None, k: int) -> None:
    sized = [r for r in results if r["n"]]
    smallest = sized[0] if sized else None
    for r in sized:
        n = int(r["n"])
        start_t, rss_t, policy_t, host_t = TARGETS.get(n, (None, None, None, None))

        def target(value: float | None, unit: str) -> str:
            return f"(target <= {value:g} {unit})" if value is not None else ""

        print(f"hosts={n:,}  (slapadd and restart {r['load']:.1f} s)")
        print(f"  start -> serving (/healthz 200)  {r['start']:7.2f} s    {target(start_t, 's')}  "
              f"daemon CPU {r['start_cpu']:.2f} s")
        print(f"  RSS serving / after edits        {r['rss_ready']:7.1f} / {r['rss_after']:.1f} MB"
              f"  (peak {r['rss_peak']:.1f})  {target(rss_t, 'MB after edits')}")
        print(f"  policy edit visible (median/max) {r['policy']:7.3f} / {r['policy_max']:.3f} s "
              f"{target(policy_t, 's')}")
        print(f"  host write visible (median/max)  {r['host']:7.3f} / {r['host_max']:.3f} s "
              f"{target(host_t, 's')}")
        if smallest is not None and r["n"] > smallest["n"]:
            per_host = (r["rss_ready"] - smallest["rss_ready"]) * 2**20 / (r["n"] - smallest["n"])
            print(f"  bytes per host (vs {int(smallest['n']):,} in this run) {per_host:7.0f} B")
        if "storm_p50" in r:
            storm_line(r, empty, k)
    if empty is not None:
        print(f"empty directory: start -> serving {empty['start']:.2f} s (daemon CPU "
              f"{empty['start_cpu']:.2f} s), RSS {empty['rss_ready']:.1f} MB")
        storm_line(empty, None, k)


def storm_line(r: dict[str, float], empty: dict[str, float] | None, k: int) -> None:
    """The storm's figures, and their ratio to the same storm on the empty directory."""
    ratio = ""
    if empty is not None:
        ratio = (f"  (empty directory {empty['storm_p50']:.2f} / {empty['storm_p99']:.2f} s: "
                 f"ratio {r['storm_p50'] / empty['storm_p50']:.2f} / "
                 f"{r['storm_p99'] / empty['storm_p99']:.2f})")
    print(f"  storm of {k} p50 / p99 birth->compliant {r['storm_p50']:7.2f} / "
          f"{r['storm_p99']:.2f} s{ratio}")
    print(f"    lost {int(r['storm_lost'])}, {r['storm_calls']:.1f} SOAP calls and "
          f"{r['storm_cpu_ms']:.1f} ms daemon CPU per born host")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="*", type=int, default=[1000, 10_000, 50_000])
    parser.add_argument("--edits", type=int, default=200, help="host writes after start")
    parser.add_argument("--storm", type=int, default=200,
                        help="hosts born at once on top of N and on an empty directory (0: none)")
    args = parser.parse_args()
    if any(n < 1 for n in args.n) or not 0 <= args.storm <= 1000:
        parser.error("N >= 1; --storm 0..1000")
    empty = measure(0, args) if args.storm else None
    results = [measure(n, args) for n in sorted(args.n)]
    report(results, empty, args.storm)


if __name__ == "__main__":
    main()

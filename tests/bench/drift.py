"""Drift at N hosts: how fast a change made in vCenter is reverted, and what an idle fleet costs.

    .venv/bin/python tests/bench/drift.py [N] [--changes 30] [--scan-interval 20] [--delay 10ms]

One private slapd, one simulator (`-delay` on every SOAP call), N hosts born through the boot
storm of tests/bench/boot_storm.py, all in one cluster with one standard policy.  The daemon
talks to the simulator through a counting TCP proxy, so every SOAP call it makes (one HTTP
POST each) is counted, whichever part of the daemon makes it.

Push: the daemon with its vCenter watch on and the scan at an hour.  Idle SOAP calls are
counted over --idle seconds, then --changes changes (NTP server, port group VLAN, advanced
option in turn, on hosts spread over the fleet) are made one at a time with pyvmomi, each
timed from the change until the simulator shows the policy's value again.

Scan: the same fleet and daemon name, restarted with --vcenter-watch off and the scan every
--scan-interval seconds; idle calls are counted over two scans and scaled to an hour (and to
the 600-s default interval), and --scan-changes changes are timed the same way.

Printed: change -> reverted p50/p99 and SOAP calls per idle hour, for both paths, and their
ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pyVim.connect import Disconnect, SmartConnect  # noqa: E402
from pyVmomi import VmomiSupport, vim  # noqa: E402

from stateless.directory.client import Directory  # noqa: E402
from stateless.directory.embedded import EmbeddedDirectory  # noqa: E402
from tests.bench.boot_storm import metric, prepare, storm  # noqa: E402
from tests.integration.fixtures_daemon import Daemon, start_daemon  # noqa: E402
from tests.integration.fixtures_slapd import Slapd  # noqa: E402
from tests.integration.fixtures_vcsim import start_vcsim  # noqa: E402
from tests.ports import free_port  # noqa: E402

BASE = "ou=stateless,dc=example,dc=com"
LONG = VmomiSupport.GetVmodlType("long")


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts HTTP requests (SOAP calls) going upstream."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.requests = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        tail = b""
        try:
            while data := src.recv(65536):
                if count:
                    seen = (tail + data).count(b"POST /")
                    with self._lock:
                        self.requests += seen - tail.count(b"POST /")
                    tail = data[-8:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def count(self) -> int:
        with self._lock:
            return self.requests

    def close(self) -> None:
        self._closed = True
        self._server.close()


def connect(url: str) -> Any:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return SmartConnect(host=host, port=int(port), user="user", pwd="pass", protocol="http")


def fleet(si: Any, n: int) -> list[Any]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    names = {f"storm{i:05d}.example.com" for i in range(1, n + 1)}
    return sorted((h for h in view.view if h.name in names), key=lambda h: h.name)


def value_of(host: Any, kind: str) -> Any:
    """The value a change of `kind` touches, read from the simulator in one call."""
    if kind == "ntp":
        return list(host.config.dateTimeInfo.ntpConfig.server)
    if kind == "vlan":
        return next(int(p.spec.vlanId) for p in host.config.network.portgroup
                    if p.spec.name == "vMotion")
    return next(o.value for o in host.config.option if o.key == "Net.TcpipHeapSize")


def change(host: Any, kind: str) -> None:
    managers = host.configManager
    if kind == "ntp":
        managers.dateTimeSystem.UpdateDateTimeConfig(
            vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.99"])))
    elif kind == "vlan":
        current = next(p for p in host.config.network.portgroup if p.spec.name == "vMotion")
        spec = current.spec
        spec.vlanId = 999
        managers.networkSystem.UpdatePortGroup("vMotion", spec)
    else:
        managers.advancedOption.UpdateOptions(
            changedValue=[vim.option.OptionValue(key="Net.TcpipHeapSize", value=LONG(7))])


def time_changes(si: Any, hosts: list[Any], count: int, timeout: float) -> list[float]:
    """Change, then poll the simulator until the value is back: seconds per change."""
    kinds = ("ntp", "vlan", "option")
    spent = []
    for k in range(count):
        host, kind = hosts[(k * 37) % len(hosts)], kinds[k % 3]
        want = value_of(host, kind)
        t0 = time.perf_counter()
        change(host, kind)
        while value_of(host, kind) != want:
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"{kind} on {host.name}: not reverted after {timeout:.0f} s")
            time.sleep(0.02)
        spent.append(time.perf_counter() - t0)
    return spent


def quiet(daemon: Daemon, settle: float = 2.0) -> None:
    """Wait until the daemon's queue is empty and stays so for `settle` seconds."""
    calm_since = time.monotonic()
    while time.monotonic() - calm_since < settle:
        if metric(daemon, "stateless_queue") > 0:
            calm_since = time.monotonic()
        time.sleep(0.2)


def watched(daemon: Daemon) -> int:
    with urllib.request.urlopen(daemon.url + "/v1/summary", timeout=30) as resp:
        doc = json.loads(resp.read())
    vc = doc["vcenters"].get("vc1", {})
    return int(vc.get("hosts", 0)) if vc.get("state") == "watching" else 0


def idle_calls(proxy: CountingProxy, seconds: float) -> int:
    before = proxy.count()
    time.sleep(seconds)
    return proxy.count() - before


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=200)
    parser.add_argument("--changes", type=int, default=30, help="timed changes, push path")
    parser.add_argument("--scan-changes", type=int, default=6, help="timed changes, scan path")
    parser.add_argument("--scan-interval", type=float, default=20.0)
    parser.add_argument("--idle", type=float, default=95.0, help="seconds of idle counting (push)")
    parser.add_argument("--delay", default="10ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp_text:
        tmp = Path(tmp_text)
        ldap = EmbeddedDirectory(tmp / "slapd", port=free_port())
        ldap.start()
        sim = start_vcsim("-dc", "0", "-delay", args.delay)
        proxy = CountingProxy((sim.host, sim.port))
        daemon: Daemon | None = None
        si = None
        try:
            slapd = Slapd(ldap.url, ldap.bind_dn, ldap.password_file, BASE, tmp / "slapd")
            directory = Directory([ldap.url], ldap.bind_dn, slapd.password, base=BASE)
            key = tmp / "secret.key"
            prepare(directory, f"http://127.0.0.1:{proxy.port}/sdk", key)
            common = ("--vcenter-concurrency", "8", "--max-pending", str(2 * args.n))
            daemon = start_daemon(tmp / "state", slapd, BASE, key, name="drift", site="default",
                                  extra=(*common, "--scan-interval", "3600"))
            compliant, _, codes = storm(daemon, args.n, directory)
            if any(codes):
                raise SystemExit(f"{sum(1 for c in codes if c)} agents failed")
            deadline = time.monotonic() + 120
            while watched(daemon) < args.n:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the watch covers {watched(daemon)} of {args.n} hosts")
                time.sleep(0.5)
            quiet(daemon)
            push_idle = idle_calls(proxy, args.idle)
            si = connect(sim.url)
            hosts = fleet(si, args.n)
            push = time_changes(si, hosts, args.changes, timeout=60)
            quiet(daemon)
            daemon.stop()

            daemon = start_daemon(tmp / "state", slapd, BASE, key, name="drift", site="default",
                                  extra=(*common, "--vcenter-watch", "off",
                                         "--scan-interval", str(args.scan_interval)))
            quiet(daemon)
            scans = metric(daemon, "stateless_scans_total")
            while metric(daemon, "stateless_scans_total") < scans + 1:  # start at a scan's end
                time.sleep(0.1)
            t0, before = time.monotonic(), proxy.count()
            while metric(daemon, "stateless_scans_total") < scans + 3:
                time.sleep(0.1)
            scan_window, scan_calls = time.monotonic() - t0, proxy.count() - before
            scan = time_changes(si, hosts, args.scan_changes, timeout=3 * args.scan_interval + 60)
        finally:
            if si is not None:
                Disconnect(si)
            if daemon is not None:
                daemon.stop()
            proxy.close()
            sim.stop()
            ldap.stop()
    push_hour = push_idle * 3600 / args.idle
    per_scan = scan_calls / 2
    scan_hour = scan_calls * 3600 / scan_window
    scan_hour_default = per_scan * 3600 / 600
    print(f"hosts={args.n} delay={args.delay} per SOAP call; fleet compliant in {compliant:.1f} s")
    print(f"  push (vcenter-watch on, scan 3600 s): {len(push)} changes")
    print(f"    change -> reverted p50 {pct(push, 50):7.3f} s   p99 {pct(push, 99):7.3f} s"
          f"   max {max(push):.3f} s")
    print(f"    idle SOAP calls     {push_idle} in {args.idle:.0f} s = {push_hour:8.0f} per hour")
    print(f"  scan (vcenter-watch off, scan {args.scan_interval:.0f} s): {len(scan)} changes")
    print(f"    change -> reverted p50 {pct(scan, 50):7.3f} s   p99 {pct(scan, 99):7.3f} s"
          f"   max {max(scan):.3f} s")
    print(f"    idle SOAP calls     {per_scan:.0f} per scan = {scan_hour:8.0f} per hour at "
          f"{args.scan_interval:.0f} s, {scan_hour_default:.0f} per hour at the 600-s default")
    print(f"  ratios scan / push: p50 {pct(scan, 50) / pct(push, 50):.0f}x, idle calls per hour "
          f"{scan_hour_default / max(push_hour, 1):.0f}x at 600 s")
    print(f"  (statistics: push mean {statistics.mean(push):.3f} s, scan mean "
          f"{statistics.mean(scan):.3f} s)")


if __name__ == "__main__":
    main()

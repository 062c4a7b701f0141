"""`make run`: two real sites on one machine, on loopback only.

Two slapd providers replicating both ways (site A's and site B's replica), two vCenter
simulators (one per site), one statelessd per site reading its own replica first and serving
the SRV zone, the example estate (site A's containers managed by vcA, the lab by vcB), and
simulated hosts of both sites booting with the real agent, some of them referred to their own
site. It prints how to break it and what to watch, then serves until Ctrl-C or SIGTERM; a
process that exits meanwhile is named, the rest keeps running. It lives beside the package,
not in it: it runs the simulator built in contrib/vcsim/ and loads contrib/examples/, so it
needs the source tree; `make run` starts it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

import ldap3

from stateless.directory import DEFAULT_BASE, Directory
from stateless.directory.connection import read_secret
from stateless.directory.embedded import ROOT_DN, EmbeddedDirectory
from stateless.directory.secrets import encrypt_password
from stateless.errors import StatelessError
from stateless.model.inventory import VCenter

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "stateless.test"
BASE = DEFAULT_BASE
SITES = ("siteA", "siteB")
# Which vCenter manages which container: the lab cluster's folder is site B's.
MANAGED = {"/DC1": "vcA", "/DC1/Lab": "vcB"}


class Stopping(BaseException):
    """SIGTERM or SIGINT: stop everything and exit 0."""


class _Deferred:
    """A stop signal that arrived while a child was being started and not yet recorded."""

    starting = False
    pending: str | None = None


def _stop(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _Deferred.starting:  # raised now, the child would run on, known to nobody
        _Deferred.pending = name
        return
    raise Stopping(name)


@contextmanager
def recording() -> Iterator[None]:
    """Start a child and record it before a stop signal is acted on."""
    _Deferred.starting = True
    try:
        yield
    finally:
        _Deferred.starting = False
        pending, _Deferred.pending = _Deferred.pending, None
        if pending is not None:
            raise Stopping(pending)


class Stack:
    """Everything started, in start order; `exited()` names what died since the last look."""

    def __init__(self, data: Path, out: IO[str]) -> None:
        self.data = data
        self.out = out
        self.procs: list[tuple[str, subprocess.Popen[str]]] = []
        self.agents: list[subprocess.Popen[bytes]] = []
        self.directories: list[tuple[str, EmbeddedDirectory]] = []
        self._gone: set[str] = set()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def spawn(self, name: str, argv: list[str], ready: str, timeout: float = 60.0) -> re.Match[str]:
        """Start a process and wait for the log line that says it is ready."""
        log = self.data / f"{name}.log"
        with log.open("w") as handle, recording():
            proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            self.procs.append((name, proc))
        pattern = re.compile(ready)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = pattern.search(log.read_text())
            if match:
                return match
            if proc.poll() is not None:
                raise StatelessError(f"{name} exited with {proc.returncode}; see {log}")
            time.sleep(0.1)
        raise StatelessError(f"{name} not ready after {timeout:.0f} s; see {log}")

    def directory(self, name: str, node: EmbeddedDirectory) -> None:
        self.directories.append((name, node))
        node.start()

    def exited(self) -> list[str]:
        """What stopped since the last call, e.g. 'statelessd-siteB-1 (exit code -15)'."""
        found = []
        for name, proc in self.procs:
            if name not in self._gone and proc.poll() is not None:
                self._gone.add(name)
                found.append(f"{name} (exit code {proc.returncode}; log {self.data / name}.log)")
        for name, node in self.directories:
            if name not in self._gone and not node.running():
                self._gone.add(name)
                found.append(f"{name} (slapd; log {node.data_dir / 'slapd.log'})")
        for name, node in self.directories:  # restarted by hand: watched again
            if name in self._gone and node.running():
                self._gone.discard(name)
        return found

    def stop(self) -> None:
        for agent in self.agents:
            if agent.poll() is None:
                agent.terminate()
        for agent in self.agents:
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        # Every daemon and simulator at once (each stops on its own), then 20 s for them all.
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop in 20 s; killing it")
                proc.kill()
                proc.wait()
        for _, node in reversed(self.directories):
            node.stop()
        self.procs.clear()
        self.agents.clear()
        self.directories.clear()


@contextmanager
def running(data: Path, out: IO[str]) -> Iterator[Stack]:
    stack = Stack(data, out)
    try:
        yield stack
    finally:
        # A second signal must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def identities(count: int) -> list[dict[str, Any]]:
    """Half the hosts in site A (Dell, rule prod-dell), half in site B (rule lab-any)."""
    hosts = []
    for i in range(count):
        site_b = i % 2 == 1
        n = i // 2 + 21
        hosts.append({
            "uuid": f"4c4c4544-0000-4000-8000-{i + 1:012x}",
            "serial": f"SN{i + 1:06d}",
            "vendor": "Dell Inc." if not site_b else "Supermicro",
            "model": "PowerEdge R650" if not site_b else "SYS-1029P",
            "macs": [f"00:50:56:00:{i // 256:02x}:{i % 256:02x}"],
            "ipv4": f"10.{2 if site_b else 1}.0.{n}",
            "hostname": f"esx-{'b' if site_b else 'a'}{n:02d}",
        })
    return hosts


TOKEN: dict[str, str] = {}  # the admin API's bearer token, once the stack made it


def get_json(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN['token']}"}
                                     if TOKEN else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stateless-demo", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("run"), help="working directory")
    parser.add_argument("--hosts", type=int, default=20, help="simulated hosts to boot")
    parser.add_argument("--once", action="store_true",
                        help="stop once every host is compliant (for tests)")
    args = parser.parse_args(argv)
    # Ctrl-C works even when started with SIGINT ignored (`setsid make run &`); SIGTERM (a
    # service manager, `timeout`) stops the stack as cleanly.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        return run(args.data.resolve(), args.hosts, args.once, sys.stdout)
    except StatelessError as exc:
        print(f"stateless-demo: error: {exc}", file=sys.stderr)
        return 1
    except Stopping:
        return 0


def directories(stack: Stack, data: Path) -> tuple[str, str, Path]:
    """Site A's and site B's providers, replicating both ways: (url A, url B, password file)."""
    ports = (free_port(), free_port())
    urls = tuple(f"ldap://127.0.0.1:{p}" for p in ports)
    password = data / "ldap-siteA" / "admin.password"
    stack.say("starting two directory providers (site A's, site B's), replicating both ways ...")
    for i, site in enumerate(SITES):
        stack.directory(f"ldap-{site}", EmbeddedDirectory(
            data / f"ldap-{site}", port=ports[i], server_id=i + 1, peers=(urls[1 - i],),
            admin_password_file=password if i else None))
    deadline = time.monotonic() + 30
    while not _has_base(urls[1], password):
        if time.monotonic() > deadline:
            raise StatelessError(f"the base entries did not reach {urls[1]} in 30 s; see "
                                 f"{data / 'ldap-siteB' / 'slapd.log'}")
        time.sleep(0.1)
    return urls[0], urls[1], password


def _has_base(url: str, password: Path) -> bool:
    try:
        conn = ldap3.Connection(ldap3.Server(url, get_info=ldap3.NONE), ROOT_DN,
                                read_secret(password, "password file"), auto_bind=True)
    except ldap3.core.exceptions.LDAPException:
        return False
    try:
        return bool(conn.search(BASE, "(objectClass=*)", ldap3.BASE))
    finally:
        conn.unbind()


def estate(stack: Stack, env: dict[str, str], sims: dict[str, str], key: Path) -> None:
    """The example estate, both vCenters, and which containers each one manages."""
    stack.say("loading the example estate (contrib/examples/estate.stateless) ...")
    bindir = Path(sys.executable).parent
    subprocess.run([str(bindir / "stateless"), "load", str(ROOT / "contrib/examples/estate.stateless")],
                   env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    encrypted = encrypt_password("pass", key, create=True)
    with Directory(env["STATELESS_LDAP"], env["STATELESS_BIND_DN"],
                   read_secret(Path(env["STATELESS_PASSWORD_FILE"]), "password file"), BASE) as d:
        for name, url in sims.items():
            d.add_vcenter(VCenter(name, url, "user", encrypted))
        for path, vcenter in MANAGED.items():
            d.modify(d.container_dn(path), {"statelessVCenterName": [(ldap3.MODIFY_REPLACE, [vcenter])]},
                     f"name the vCenter of {path}")


def boot(stack: Stack, data: Path, hosts: list[dict[str, Any]], nameservers: list[str]) -> None:
    """One agent per host; every fourth host (a site B one) is told it is in site A, as a
    stale PXE setting would, and is referred to site B."""
    (data / "hosts").mkdir()
    for i, host in enumerate(hosts):
        path = data / "hosts" / f"{host['hostname']}.json"
        path.write_text(json.dumps(host))
        site = ["--site", "siteA"] if i % 4 == 1 else []
        with (data / "hosts" / f"{host['hostname']}.log").open("w") as log, recording():
            stack.agents.append(subprocess.Popen(
                [sys.executable, "-m", "stateless.agent", "--identity", str(path), "--domain", DOMAIN,
                 *[a for ns in nameservers for a in ("--nameserver", ns)], *site,
                 "--state", str(data / "hosts" / f"{host['hostname']}.state"), "--timeout", "300"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    for agent in stack.agents:
        agent.wait(300)


def run(data: Path, count: int, once: bool, out: IO[str]) -> int:
    if data.exists():
        subprocess.run(["rm", "-rf", str(data)], check=True)
    data.mkdir(parents=True)
    bindir = Path(sys.executable).parent
    key = data / "secret.key"
    with running(data, out) as stack:
        try:
            return _run(stack, data, bindir, key, count, once)
        except Stopping:
            stack.say("stopping ...")
            return 0


def _run(stack: Stack, data: Path, bindir: Path, key: Path, count: int, once: bool) -> int:
    ldap_a, ldap_b, password = directories(stack, data)
    stack.say("starting two vCenter simulators (vcA for site A, vcB for site B) ...")
    sims = {name: stack.spawn(name, [str(ROOT / "contrib/vcsim/vcsim"), "-listen", "127.0.0.1:0",
                                     "-dc", "0"], r"VCSIM_URL=(\S+)").group(1)
            for name in ("vcA", "vcB")}
    token = data / "admin.token"  # the daemons' admin API token (also the CLI's, see exports)
    token.write_text(secrets.token_hex(24) + "\n")
    token.chmod(0o600)
    TOKEN["token"] = token.read_text().strip()
    env = {"STATELESS_LDAP": ldap_a, "STATELESS_BIND_DN": ROOT_DN,
           "STATELESS_PASSWORD_FILE": str(password), "STATELESS_BASE": BASE,
           "STATELESS_DOMAIN": DOMAIN, "STATELESS_SECRET_KEY_FILE": str(key),
           "STATELESS_ADMIN_TOKEN_FILE": str(token)}
    estate(stack, env, sims, key)

    apis: dict[str, str] = {}
    dns: dict[str, str] = {}
    for site, own, other in (("siteA", ldap_a, ldap_b), ("siteB", ldap_b, ldap_a)):
        name = f"{site}-1"
        stack.say(f"starting statelessd {name} (its site's replica first, SRV zone) ...")
        ready = stack.spawn(f"statelessd-{name}", [
            str(bindir / "statelessd"), "--state-dir", str(data / name), "--name", name,
            "--site", site, "--ldap", f"{own},{other}", "--bind-dn", ROOT_DN,
            "--password-file", str(password), "--base", BASE, "--domain", DOMAIN,
            "--secret-key-file", str(key), "--listen", "127.0.0.1:0", "--scan-interval", "60",
            "--replica-check", "60", "--dns", "serve", "--dns-listen", "127.0.0.1:0",
            "--admin-token-file", str(token)],
            r"serving \S+ SRV records on (127\.0\.0\.1:\d+)[\s\S]*serving (http://\S+)")
        dns[site], apis[site] = ready.group(1), ready.group(2)

    hosts = identities(count)
    stack.say(f"booting {count} simulated hosts with the agent (SRV lookup, birth, referral) ...")
    boot(stack, data, hosts, list(dns.values()))
    ok = watch(stack, list(apis.values()), {h["uuid"]: h["hostname"] for h in hosts})
    stack.say(summary(data, apis, dns, sims, ldap_a, ldap_b, env, hosts[0]["uuid"],
                      {name: proc.pid for name, proc in stack.procs}))
    if once:
        return 0 if ok else 1
    stack.say("Serving until Ctrl-C.")
    while True:
        for what in stack.exited():
            stack.say(f"{what} exited; the rest keeps running (Ctrl-C stops everything)")
        time.sleep(1)


def summary(data: Path, apis: dict[str, str], dns: dict[str, str], sims: dict[str, str],
            ldap_a: str, ldap_b: str, env: dict[str, str], uuid: str,
            pids: dict[str, int]) -> str:
    bindir = Path(sys.executable).parent
    a_dns = dns["siteA"].replace(":", " -p ")
    exports = " \\\n         ".join(f"{k}={v}" for k, v in env.items())
    return f"""
The stack is up (all on 127.0.0.1):
  site A: statelessd siteA-1 {apis['siteA']}  directory {ldap_a}  vCenter vcA {sims['vcA']}
  site B: statelessd siteB-1 {apis['siteB']}  directory {ldap_b}  vCenter vcB {sims['vcB']}
  SRV zones {DOMAIN} (one per daemon): dig @{a_dns} _stateless._tcp.siteB._sites.{DOMAIN} SRV
  vCenter user / pass; /DC1 is managed by vcA, /DC1/Lab (ClusterB) by vcB
Use the CLI against it:
  export {exports}
  {bindir}/stateless rsop {uuid}
  {bindir}/stateless policy set Baseline ntp.servers=10.1.0.124   # re-applied within a second
  {bindir}/stateless --ldap {ldap_a},{ldap_b} directory check
Break it, and watch:
  stop site A's provider:  {bindir}/stateless directory stop --data {data / 'ldap-siteA'}
      siteA-1 moves to site B's replica: curl -s {apis['siteA']}/healthz (directory_url),
      event=directory_failover in {data / 'statelessd-siteA-1.log'}; births still work
  start it again:          {bindir}/stateless directory start --data {data / 'ldap-siteA'}
      it catches up, and siteA-1 returns to it within a few seconds
  stop a daemon:           kill {pids['statelessd-siteB-1']}   (statelessd siteB-1)
      this script names what exited; once the lease on siteB-1's server entry has run out
      (an entry without a lease counts as live), siteA-1 covers site B: the dig above lists
      siteA-1, site B's hosts are born through it (answer "closest": false) and are still
      applied through vcB
  watch divergence:        curl -s {apis['siteB']}/metrics | grep stateless_directory_diverged
Logs are in {data}."""


def watch(stack: Stack, apis: list[str], names: dict[str, str], timeout: float = 300.0) -> bool:
    """Show progress until every host is compliant; true when they all are."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        states: dict[str, str] = {}
        for api in apis:
            for doc in get_json(f"{api}/v1/hosts")["hosts"]:
                if doc["host"] in names and doc.get("state"):
                    states[doc["host"]] = doc["state"]
        counts: dict[str, int] = {}
        for uuid in names:
            state = states.get(uuid, "not born")
            counts[state] = counts.get(state, 0) + 1
        line = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        if line != last:
            stack.say(f"  hosts: {line}")
            last = line
        if counts.get("compliant") == len(names):
            return True
        if time.monotonic() > deadline:
            failed = [f"{names[u]}: {s}" for u, s in states.items() if s != "compliant"]
            stack.say("not all hosts became compliant: " + "; ".join(failed[:5]))
            return False
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())

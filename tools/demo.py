"""`make run`: the whole system on one machine, on loopback only.

A private slapd (inside the first daemon's state directory), the vCenter simulator, two
statelessd daemons in two sites, the first serving the SRV zone, the example estate, and
simulated hosts booting with the real agent.  Every process it starts is stopped on Ctrl-C.
It lives beside the package, not in it: it runs the simulator built in contrib/vcsim/ and
loads contrib/examples/, so it needs the source tree; `make run` starts it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from stateless.directory import DEFAULT_BASE, Directory
from stateless.directory.connection import read_secret
from stateless.directory.secrets import encrypt_password
from stateless.errors import StatelessError
from stateless.model.inventory import VCenter

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "stateless.test"
BASE = DEFAULT_BASE


class Stack:
    def __init__(self, data: Path, out: IO[str]) -> None:
        self.data = data
        self.out = out
        self.procs: list[tuple[str, subprocess.Popen[str]]] = []

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def spawn(self, name: str, argv: list[str], ready: str, timeout: float = 60.0,
              env: dict[str, str] | None = None) -> re.Match[str]:
        """Start a process and wait for the log line that says it is ready."""
        log = self.data / f"{name}.log"
        handle = log.open("w")
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, **(env or {})}, start_new_session=True)
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

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.say(f"{name} did not stop in 20 s; killing it")
                    proc.kill()
                    proc.wait()
        self.procs.clear()


@contextmanager
def running(data: Path, out: IO[str]) -> Iterator[Stack]:
    stack = Stack(data, out)
    try:
        yield stack
    finally:
        stack.stop()


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
    # SIGTERM (a service manager, `timeout`) stops the stack as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args.data.resolve(), args.hosts, args.once, sys.stdout)
    except StatelessError as exc:
        print(f"stateless-demo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def run(data: Path, count: int, once: bool, out: IO[str]) -> int:
    if data.exists():
        subprocess.run(["rm", "-rf", str(data)], check=True)
    data.mkdir(parents=True)
    python = sys.executable
    bindir = Path(python).parent
    key = data / "secret.key"
    encrypted = encrypt_password("pass", key, create=True)
    token = data / "admin.token"
    token.write_text(secrets.token_hex(24) + "\n")
    token.chmod(0o600)
    TOKEN["token"] = token.read_text().strip()
    with running(data, out) as stack:
        stack.say("starting the vCenter simulator ...")
        vcsim = stack.spawn("vcsim", [str(ROOT / "contrib/vcsim/vcsim"), "-listen", "127.0.0.1:0",
                                      "-dc", "0"], r"VCSIM_URL=(\S+)")
        vcsim_url = vcsim.group(1)

        stack.say("starting statelessd siteA-1 (embedded directory, SRV zone) ...")
        common = ["--domain", DOMAIN, "--secret-key-file", str(key), "--listen", "127.0.0.1:0",
                  "--scan-interval", "60", "--admin-token-file", str(token)]
        first = stack.spawn("statelessd-siteA-1", [
            str(bindir / "statelessd"), "--state-dir", str(data / "siteA-1"), "--name", "siteA-1",
            "--site", "siteA", "--dns", "serve", "--dns-listen", "127.0.0.1:0", *common],
            r"serving \S+ SRV records on 127\.0\.0\.1:(\d+)[\s\S]*serving (http://\S+)")
        dns_port, api_a = first.group(1), first.group(2)
        ldap_url = (data / "siteA-1/directory/url").read_text().strip()
        password_file = data / "siteA-1/directory/admin.password"
        env = {"STATELESS_LDAP": ldap_url, "STATELESS_BIND_DN": "cn=admin,dc=example,dc=com",
               "STATELESS_PASSWORD_FILE": str(password_file), "STATELESS_BASE": BASE}

        stack.say("loading the example estate (contrib/examples/estate.stateless) ...")
        subprocess.run([str(bindir / "stateless"), "load",
                        str(ROOT / "contrib/examples/estate.stateless")],
                       env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
        with Directory(ldap_url, env["STATELESS_BIND_DN"],
                       read_secret(password_file, "directory password file"), BASE) as d:
            d.add_vcenter(VCenter("vc1", vcsim_url, "user", encrypted))

        stack.say("starting statelessd siteB-1 (same directory) ...")
        second = stack.spawn("statelessd-siteB-1", [
            str(bindir / "statelessd"), "--state-dir", str(data / "siteB-1"), "--name", "siteB-1",
            "--site", "siteB", "--ldap", ldap_url, "--bind-dn", env["STATELESS_BIND_DN"],
            "--password-file", str(password_file), "--base", BASE, *common],
            r"serving (http://\S+)")
        api_b = second.group(1)

        hosts = identities(count)
        stack.say(f"booting {count} simulated hosts with the agent (SRV lookup, birth, "
                  "referral) ...")
        (data / "hosts").mkdir()
        agents = []
        for host in hosts:
            path = data / "hosts" / f"{host['hostname']}.json"
            path.write_text(json.dumps(host))
            log = (data / "hosts" / f"{host['hostname']}.log").open("w")
            agents.append(subprocess.Popen(
                [python, "-m", "stateless.agent", "--identity", str(path), "--domain", DOMAIN,
                 "--nameserver", f"127.0.0.1:{dns_port}", "--state",
                 str(data / "hosts" / f"{host['hostname']}.state"), "--timeout", "300"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        for agent in agents:
            agent.wait(300)

        ok = watch(stack, [api_a, api_b], {h["uuid"]: h["hostname"] for h in hosts})
        stack.say(f"""
The stack is up (all on 127.0.0.1):
  statelessd siteA-1  {api_a}   (GET /v1/hosts, /v1/hosts/UUID/effective with
                      "Authorization: Bearer $(cat {token})"; /metrics)
  statelessd siteB-1  {api_b}
  SRV zone {DOMAIN}   dig -p {dns_port} @127.0.0.1 _stateless._tcp.{DOMAIN} SRV
  directory           {ldap_url}
  vCenter simulator   {vcsim_url} (user / pass)
Use the CLI against it:
  export STATELESS_LDAP={ldap_url} STATELESS_BIND_DN={env['STATELESS_BIND_DN']} \\
         STATELESS_PASSWORD_FILE={password_file} STATELESS_BASE={BASE} \\
         STATELESS_SECRET_KEY_FILE={key} STATELESS_ADMIN_TOKEN_FILE={token}
  {bindir}/stateless rsop {hosts[0]['uuid']}
  {bindir}/stateless policy set Baseline ntp.servers=10.1.0.124   # re-applied within a second
Logs are in {data}.""")
        if once:
            return 0 if ok else 1
        stack.say("Serving until Ctrl-C.")
        with suppress(KeyboardInterrupt):
            while all(proc.poll() is None for _, proc in stack.procs):
                time.sleep(1)
        stack.say("stopping ...")
    return 0


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

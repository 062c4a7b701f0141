"""statelessd as a real process against the shared slapd, a simulator and (optionally) named.

`estate` loads contrib/examples/estate.stateless into the test's fresh base and registers a
simulator as the estate's vCenter (password stored encrypted, as the CLI does); `daemons`
starts `statelessd` subprocesses on free ports and kills whatever is left at the end;
`private_slapd` is a slapd of the test's own, for tests that stop and start the directory.
The functions at the end build birth messages and read the simulator directly with pyvmomi.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest
from pyVmomi import vim, vmodl

from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE, EmbeddedDirectory
from stateless.directory.secrets import encrypt_password
from stateless.model.inventory import VCenter
from tests.integration.fixtures_slapd import Slapd
from tests.integration.fixtures_vcsim import Vcsim
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
STATELESSD = ROOT / ".venv" / "bin" / "statelessd"
ESTATE = ROOT / "contrib" / "examples" / "estate.stateless"
READY = re.compile(r"statelessd (\S+) \(site (\S+)\) serving (https?://\S+)")
START_TIMEOUT = 60.0


@attrs.define
class Daemon:
    """One running statelessd: its URL, process, state directory and log."""

    name: str
    site: str
    url: str
    state_dir: Path
    log: Path
    args: list[str]
    process: subprocess.Popen[bytes] = attrs.field(repr=False)
    token: str = attrs.field(default="", repr=False)  # the admin token, sent unless told not to
    context: ssl.SSLContext | None = attrs.field(default=None, repr=False)  # for https URLs

    @property
    def pid(self) -> int:
        return self.process.pid

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 10.0,
                admin: bool = True) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange; any status comes back (no exception for 4xx/5xx). With `admin`
        the admin token goes along (unless `headers` name an Authorization of their own, or
        it is a birth, whose Authorization is its signature)."""
        headers = dict(headers or {})
        if (admin and self.token and not path.startswith("/v1/birth")
                and not any(k.lower() == "authorization" for k in headers)):
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.context) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def birth(self, doc: Any) -> tuple[int, Any]:
        status, _, body = self.request("POST", "/v1/birth", json.dumps(doc).encode(),
                                       {"content-type": "application/json"})
        return status, json.loads(body)

    def metrics(self) -> dict[str, float]:
        """The Prometheus text exposition as {sample with labels: value}."""
        status, _, body = self.request("GET", "/metrics")
        assert status == 200
        out: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def host(self, uuid: str) -> Any:
        return self.get(f"/v1/hosts/{uuid}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and wait for the exit; the exit status comes back."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGABRT)  # its threads' stacks go to the log
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
                raise AssertionError(f"statelessd {self.name} ignored signal {sig}:\n"
                                     f"{self.tail(300)}") from None
        return self.process.returncode

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def ready_url(log_text: str) -> str | None:
    """The URL of the "serving" line, in a text log or a `--log-format json` one."""
    found = READY.search(log_text)
    if found:
        return found.group(3)
    for line in log_text.split("\n"):  # not splitlines(): it splits at the \x1e before each
        if line.startswith("\x1e{") and "serving {url}" in line:
            with contextlib.suppress(ValueError):
                return str(json.loads(line[1:])["url"])
    return None


def admin_token(state_dir: Path) -> tuple[Path, str]:
    """The admin token file of a test daemon (made once per state directory)."""
    path = state_dir / "admin.token"
    if not path.exists():
        path.write_text(secrets.token_hex(24) + "\n")
        path.chmod(0o600)
    return path, path.read_text().strip()


def start_daemon(state_dir: Path, slapd: Slapd, base: str, key_file: Path, *, name: str = "sd1",
                 site: str = "siteA", extra: tuple[str, ...] = (), log: Path | None = None,
                 context: ssl.SSLContext | None = None) -> Daemon:
    """Start statelessd and wait for its "serving URL" line on stderr.

    The daemon takes an admin token (`Daemon.request` sends it) unless `extra` names
    `--admin-token-file` itself; births are unsigned unless the site has an enrollment key.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    log = log or state_dir / f"{name}.log"
    token = ""
    if "--admin-token-file" not in extra:
        token_file, token = admin_token(state_dir)
        extra = (*extra, "--admin-token-file", str(token_file))
    args = [str(STATELESSD), "--state-dir", str(state_dir), "--name", name, "--site", site,
            "--listen", "127.0.0.1:0", "--ldap", slapd.url, "--bind-dn", slapd.bind_dn,
            "--password-file", str(slapd.password_file), "--base", base,
            "--secret-key-file", str(key_file), *extra]
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                env={k: v for k, v in os.environ.items()
                                     if not k.startswith("STATELESS_")})
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        url = ready_url(text)
        if url:
            return Daemon(name, site, url, state_dir, log, args, proc, token, context)
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
            raise RuntimeError(f"statelessd {name} did not start (exit {proc.returncode}):\n{text[-3000:]}")
        time.sleep(0.05)


@attrs.frozen
class Estate:
    """The example estate in one test's base, with a simulator registered as vCenter vc1."""

    slapd: Slapd
    base: str
    key_file: Path
    vcsim: Vcsim
    directory: Directory

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "STATELESS_LDAP": self.slapd.url,
                "STATELESS_BIND_DN": self.slapd.bind_dn,
                "STATELESS_PASSWORD_FILE": str(self.slapd.password_file),
                "STATELESS_BASE": self.base}

    def ldapmodify(self, ldif: str) -> None:
        """Edit the directory with the real ldap-utils binary, as an administrator would."""
        proc = subprocess.run(["ldapmodify", "-x", "-H", self.slapd.url, "-D", self.slapd.bind_dn,
                               "-y", str(self.slapd.password_file)], input=ldif.encode(),
                              capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr.decode()


def load_estate(slapd: Slapd, base: str, vcsim: Vcsim, key_file: Path) -> Estate:
    directory = Directory([slapd.url], slapd.bind_dn, slapd.password, base=base)
    directory.init()
    env = {"STATELESS_LDAP": slapd.url, "STATELESS_BIND_DN": slapd.bind_dn,
           "STATELESS_PASSWORD_FILE": str(slapd.password_file), "STATELESS_BASE": base}
    proc = subprocess.run([sys.executable, "-m", "stateless.cli", "load", str(ESTATE)],
                          env={**os.environ, **env}, capture_output=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    directory.add_vcenter(VCenter("vc1", vcsim.url, vcsim.user,
                                  encrypt_password(vcsim.password, key_file, create=True)))
    return Estate(slapd, base, key_file, vcsim, directory)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """Where the estate's secret key is made (by `load_estate`)."""
    return tmp_path / "secret.key"


@pytest.fixture
def sim(vcsim_factory: Callable[..., Vcsim]) -> Vcsim:
    """An empty simulator per test (the estate's datacenter is created by the daemon); test
    modules that need hosts in it define their own."""
    return vcsim_factory("-dc", "0")


@pytest.fixture
def estate(slapd: Slapd, base: str, sim: Vcsim, key_file: Path) -> Estate:
    """The example estate in a private slapd, managed by `sim` as vc1."""
    return load_estate(slapd, base, sim, key_file)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """start(state_dir, slapd, base, key_file, name=..., site=..., extra=...) -> Daemon."""
    started: list[Daemon] = []

    def start(*args: Any, **kw: Any) -> Daemon:
        daemon = start_daemon(*args, **kw)
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            if daemon.alive():
                with contextlib.suppress(AssertionError):
                    daemon.stop(signal.SIGKILL, timeout=10)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll until predicate returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@attrs.frozen
class PrivateSlapd:
    """A slapd only this test uses: it may be stopped and started again on the same port."""

    instance: EmbeddedDirectory
    slapd: Slapd

    def stop(self) -> None:
        self.instance.stop()

    def start(self) -> None:
        self.instance.start()


@pytest.fixture
def private_slapd(tmp_path: Path) -> Iterator[PrivateSlapd]:
    instance = EmbeddedDirectory(tmp_path / "slapd", port=free_port())
    instance.start()
    try:
        yield PrivateSlapd(instance, Slapd(instance.url, instance.bind_dn, instance.password_file,
                                           DEFAULT_BASE, tmp_path / "slapd"))
    finally:
        instance.stop()


# --- birth messages, and the daemon's answers -----------------------------------------------------

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


def births(daemon: Daemon, idents: list[dict[str, Any]], threads: int = 16) -> list[int]:
    with ThreadPoolExecutor(threads) as pool:
        return [status for status, _ in pool.map(daemon.birth, idents)]


def states(daemon: Daemon) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in daemon.get("/v1/hosts")["hosts"]}


def wait_states(daemon: Daemon, uuids: list[str], state: str = "compliant",
                timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """Wait until every host is in `state`; a host that failed for good fails the wait at once
    (a failed host with a `next_try` is still being retried)."""
    def done() -> dict[str, dict[str, Any]] | None:
        now = states(daemon)
        bad = [now.get(u, {}) for u in uuids if now.get(u, {}).get("state") != state]
        final = [h for h in bad if h.get("state") == "quarantined"
                 or (h.get("state") == "failed" and h.get("next_try") is None)]
        if final and state != "failed":
            raise AssertionError(final)
        return None if bad else now

    return wait_for(done, timeout, what=f"{len(uuids)} hosts {state}")


def applies(daemon: Daemon) -> float:
    return daemon.metrics().get('stateless_applies_total{result="compliant"}', 0.0)


# --- reading the simulator directly -------------------------------------------------------------

def hosts_by_name(si: Any) -> dict[str, list[Any]]:
    """The simulator's hosts by name (a removed host may linger in its views for a moment:
    it is left out)."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        out: dict[str, list[Any]] = {}
        for host in view.view:
            with contextlib.suppress(vmodl.fault.ManagedObjectNotFound):
                out.setdefault(host.name, []).append(host)
        return out
    finally:
        view.Destroy()


def placed_hosts(si: Any, name: str) -> list[tuple[Any, str]]:
    """The hosts named `name`, each with its parent's name, both read at once: the daemon may
    remove a host between two reads, and a removed one lingering in the simulator's views for
    a moment is left out."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    found = []
    try:
        for host in view.view:
            with contextlib.suppress(vmodl.fault.ManagedObjectNotFound):
                if host.name == name:
                    found.append((host, str(host.parent.name)))
        return found
    finally:
        view.Destroy()


def one_host(si: Any, ident: dict[str, Any]) -> Any:
    found = hosts_by_name(si).get(f"{ident['hostname']}.example.com", [])
    assert len(found) == 1, found
    return found[0]


def cluster_of(host: Any) -> str:
    return str(host.parent.name)


def vlan(host: Any, portgroup: str) -> int | None:
    for pg in host.config.network.portgroup:
        if pg.spec.name == portgroup:
            return int(pg.spec.vlanId)
    return None


def ntp_servers(host: Any) -> list[str]:
    return list(host.config.dateTimeInfo.ntpConfig.server)

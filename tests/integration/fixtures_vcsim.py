"""Fixtures for the real govmomi vCenter simulator (contrib/vcsim), one process per instance.

The launcher picks its own free port and announces it on its first stdout line
(`VCSIM_URL=...`), so there is no race between choosing a port and binding it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
from pyVim.connect import Disconnect, SmartConnect

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "contrib" / "vcsim" / "vcsim"
USER = "user"
PASSWORD = "pass"
START_TIMEOUT = 60.0


@attrs.frozen
class Vcsim:
    """One running simulator: where it listens, how to log in, and its process."""

    url: str
    host: str
    port: int
    user: str
    password: str
    first_line: str
    process: subprocess.Popen[str] = attrs.field(repr=False)
    _connections: list[Any] = attrs.field(factory=list, repr=False)

    def connect(self) -> Any:
        """A pyvmomi ServiceInstance over plain http; disconnected when the instance stops."""
        si = SmartConnect(
            host=self.host,
            port=self.port,
            user=self.user,
            pwd=self.password,
            protocol="http",
            disableSslCertValidation=True,
        )
        self._connections.append(si)
        return si

    def stop(self) -> None:
        for si in self._connections:
            with contextlib.suppress(Exception):  # the server may already be gone
                Disconnect(si)
        self._connections.clear()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def ensure_binary() -> Path:
    """Build the launcher when it is missing or older than its sources."""
    sources = list(BINARY.parent.glob("*.go"))
    if not BINARY.exists() or any(s.stat().st_mtime > BINARY.stat().st_mtime for s in sources):
        subprocess.run(["make", "-s", "vcsim"], cwd=ROOT, check=True, timeout=600)
    if not BINARY.exists():
        raise RuntimeError(f"{BINARY} is missing after `make vcsim`; check golang-go and govmomi")
    return BINARY


def start_vcsim(*flags: str) -> Vcsim:
    """Start one simulator with the given launcher flags and wait for its URL line."""
    binary = ensure_binary()
    args = [str(binary), "-listen", "127.0.0.1:0", *flags]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GOMAXPROCS": os.environ.get("GOMAXPROCS", "2")},
    )
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None
    lines: list[str] = []

    def read_first() -> None:
        lines.append(stdout.readline())

    reader = threading.Thread(target=read_first, daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    first = lines[0].strip() if lines else ""
    if not first.startswith("VCSIM_URL="):
        proc.kill()
        err = stderr.read()
        raise RuntimeError(f"vcsim {' '.join(flags)} did not start: stdout={first!r} stderr={err[-2000:]!r}")
    # Keep the pipes drained so a chatty simulator never blocks on a full pipe.
    for stream in (stdout, stderr):
        threading.Thread(target=stream.read, daemon=True).start()
    url = first.split("=", 1)[1]
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return Vcsim(
        url=url,
        host=parts.hostname,
        port=parts.port,
        user=USER,
        password=PASSWORD,
        first_line=first,
        process=proc,
    )


@pytest.fixture(scope="session")
def vcsim() -> Iterator[Vcsim]:
    """The default inventory: 1 datacenter, 1 cluster of 3 hosts, 1 standalone host."""
    sim = start_vcsim()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def vcsim_factory() -> Iterator[Callable[..., Vcsim]]:
    """Start extra simulators with their own flags; all are stopped at session end."""
    started: list[Vcsim] = []

    def factory(*flags: str) -> Vcsim:
        sim = start_vcsim(*flags)
        started.append(sim)
        return sim

    try:
        yield factory
    finally:
        for sim in started:
            sim.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll until predicate holds (tasks in the simulator finish asynchronously)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def has_password(host: Any, user: str, password: str) -> bool:
    """Whether the host's local `user` has `password`: ChangePassword to the same password
    succeeds only with the current one. The method is newer than the API version the
    simulator announces, so pyVmomi is told to send it anyway."""
    from pyVmomi import vim

    manager = host.configManager.accountManager
    stub = copy.copy(manager._stub)
    stub.version = "vim.version.version14"
    try:
        vim.host.LocalAccountManager(manager._moId, stub).ChangePassword(user, password, password)
    except vim.fault.InvalidLogin:
        return False
    return True

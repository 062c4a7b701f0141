"""`make run`'s stack: two sites (two replicating providers, two simulators, two daemons),
started for real; what it prints, where hosts end up, and how it stops."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pyVim.connect import Disconnect, SmartConnect

from tests.integration.fixtures_daemon import hosts_by_name
from tests.integration.fixtures_vcsim import ensure_binary

DEMO = Path(__file__).resolve().parents[2] / "tools" / "demo.py"
SITES = ("siteA", "siteB")


def directory_ports(data: Path) -> list[int]:
    return [int((data / f"ldap-{site}" / "url").read_text().strip().rstrip("/").rsplit(":", 1)[1])
            for site in SITES]


def assert_all_stopped(data: Path) -> None:
    """Both directories no longer answer; every daemon ended its main loop."""
    for port in directory_ports(data):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def read_until(proc: subprocess.Popen[str], marker: str) -> str:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} (exit {proc.wait()}):\n{''.join(seen)}")


def test_demo_boots_hosts_of_two_sites_to_compliance(tmp_path: Path) -> None:
    ensure_binary()
    data = tmp_path / "run"
    done = subprocess.run([sys.executable, str(DEMO), "--data", str(data),
                           "--hosts", "4", "--once"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hosts: 4 compliant" in done.stdout
    assert "STATELESS_DOMAIN=stateless.test" in done.stdout
    assert "directory stop --data" in done.stdout and "kill " in done.stdout
    # Each host ends with the server of its own site, directly or through a referral.
    for site, pattern in (("siteA-1", "esx-a*.log"), ("siteB-1", "esx-b*.log")):
        url = (data / f"statelessd-{site}.log").read_text().split("serving http")[-1].split()[0]
        port = url.rsplit(":", 1)[1]
        for log in sorted((data / "hosts").glob(pattern)):
            accepted = [line for line in log.read_text().splitlines() if " accepted host " in line]
            assert len(accepted) == 1 and f":{port} accepted" in accepted[0], log.read_text()
    assert "refers to site siteB" in (data / "hosts" / "esx-b21.log").read_text()
    assert_all_stopped(data)


def test_names_what_exits_and_stops_on_sigint_even_when_started_ignoring_it(tmp_path: Path) -> None:
    """As `setsid make run &` starts it: SIGINT ignored. Hosts are in their site's vCenter; a
    daemon killed is named and the rest keeps running; SIGINT then stops everything."""
    ensure_binary()
    data = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(DEMO), "--data", str(data), "--hosts", "4"],
                            stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        text = read_until(proc, "Serving until Ctrl-C")
        for site in SITES:  # each daemon reads its own site's replica
            found = re.search(rf"statelessd {site}-1 (http://\S+)  directory (ldap://\S+)", text)
            assert found, text
            with urllib.request.urlopen(found.group(1) + "/healthz", timeout=5) as answer:
                assert json.load(answer)["directory_url"] == found.group(2)
        # Hosts are added under their address (the demo's identities carry no domain).
        for vcenter, subnet in (("vcA", "10.1.0"), ("vcB", "10.2.0")):
            found = re.search(rf"vCenter {vcenter} (http://\S+)", text)
            assert found, text
            where = urlsplit(found.group(1))
            si = SmartConnect(host=where.hostname, port=where.port, user="user", pwd="pass",
                              protocol="http", disableSslCertValidation=True)
            try:
                names = sorted(hosts_by_name(si))
            finally:
                Disconnect(si)
            assert names == [f"{subnet}.{n}" for n in (21, 22)], (vcenter, names)
        pid = re.search(r"kill (\d+)\s+\(statelessd siteB-1\)", text)
        assert pid, text
        os.kill(int(pid.group(1)), signal.SIGKILL)
        line = read_until(proc, "exited; the rest keeps running")
        assert "statelessd-siteB-1 (exit code -9" in line, line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert proc.stdout is not None
        assert "stopping ..." in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_all_stopped(data)
    assert "Main loop terminated" in (data / "statelessd-siteA-1.log").read_text()


def test_sigterm_stops_everything_and_exits_0(tmp_path: Path) -> None:
    ensure_binary()
    data = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(DEMO), "--data", str(data),
                             "--hosts", "2"], stdout=subprocess.PIPE, text=True)
    try:
        read_until(proc, "Serving until Ctrl-C")
        proc.terminate()
        assert proc.wait(60) == 0
        assert proc.stdout is not None
        assert "stopping ..." in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_all_stopped(data)
    logs = {log.name: log.read_text() for log in data.glob("statelessd-*.log")}
    assert all("Main loop terminated" in text for text in logs.values()), logs


def test_ctrl_c_while_hosts_boot_stops_their_agents(tmp_path: Path) -> None:
    """SIGINT as soon as the agents start: none of them is left running."""
    ensure_binary()
    data = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(DEMO), "--data", str(data), "--hosts", "6"],
                            stdout=subprocess.PIPE, text=True)
    try:
        read_until(proc, "booting 6 simulated hosts")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    marker = str(data / "hosts").encode()
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline and b"stateless.agent" in cmdline:
                left.append(entry.name)
    assert left == []
    assert_all_stopped(data)

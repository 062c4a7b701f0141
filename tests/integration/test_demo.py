"""`make run`'s stack, started for real and stopped once its hosts are compliant."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.fixtures_vcsim import ensure_binary

DEMO = Path(__file__).resolve().parents[2] / "tools" / "demo.py"


def test_demo_boots_hosts_of_two_sites_to_compliance(tmp_path: Path) -> None:
    ensure_binary()
    data = tmp_path / "run"
    done = subprocess.run([sys.executable, str(DEMO), "--data", str(data),
                           "--hosts", "4", "--once"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hosts: 4 compliant" in done.stdout
    # Each host ends with the server of its own site, directly or through a referral.
    for site, pattern in (("siteA-1", "esx-a*.log"), ("siteB-1", "esx-b*.log")):
        url = (data / f"statelessd-{site}.log").read_text().split("serving http")[-1].split()[0]
        port = url.rsplit(":", 1)[1]
        for log in sorted((data / "hosts").glob(pattern)):
            accepted = [line for line in log.read_text().splitlines() if " accepted host " in line]
            assert len(accepted) == 1 and f":{port} accepted" in accepted[0], log.read_text()
    # Everything it started is stopped: the directory no longer answers.
    port = int((data / "siteA-1" / "directory" / "url").read_text().strip().rstrip("/")
               .rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_sigterm_stops_everything_the_stack_started(tmp_path: Path) -> None:
    ensure_binary()
    data = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(DEMO), "--data", str(data),
                             "--hosts", "2"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Serving until Ctrl-C" in line:
            break
    else:
        raise AssertionError(f"the stack did not come up (exit {proc.wait()})")
    proc.terminate()
    assert proc.wait(60) == 143
    port = int((data / "siteA-1" / "directory" / "url").read_text().strip().rstrip("/")
               .rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    logs = {log.name: log.read_text() for log in data.glob("statelessd-*.log")}
    assert all("Main loop terminated" in text for text in logs.values()), logs

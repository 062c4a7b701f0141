"""statelessd's audit log and host event history: a real daemon, slapd and the simulator.

The daemon writes JSON lines (`--log-format json`), listens on an endpoint string, and answers
`GET /v1/hosts/{uuid}/events`; `stateless host events` asks the owning server for them.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyVmomi import vim

from stateless.security import pki
from tests.integration.fixtures_daemon import ROOT, STATELESSD, Daemon, Estate, wait_for
from tests.integration.fixtures_slapd import Slapd
from tests.integration.fixtures_vcsim import Vcsim
from tests.integration.test_daemon import (
    births,
    identity,
    one_host,
    wait_states,
)
from tests.ports import free_port


def json_events(log: Path) -> list[dict[str, Any]]:
    """Every event of a `--log-format json` log: one JSON text per line (RFC 7464 framing)."""
    return [json.loads(line.lstrip("\x1e")) for line in log.read_text().split("\n")
            if line.strip("\x1e ")]


def audit(log: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in json_events(log) if e.get("event") == name]


def cli(where: Estate, *args: str, token: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI against the estate, with the admin token of a test daemon when given."""
    env = {**where.env, **({"STATELESS_ADMIN_TOKEN_FILE": str(token)} if token else {})}
    return subprocess.run([sys.executable, "-m", "stateless.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_births_applies_drift_and_problems_are_audited_and_kept_per_host(
        estate: Estate, sim: Vcsim,
        tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--listen", "tcp:0:interface=127.0.0.1",
                                     "--scan-interval", "0.3", "--log-format", "json",
                                     "--log-level", "debug"))
    host = identity(1, "siteA")
    uuid = host["uuid"]
    assert births(d, [host]) == [202]
    wait_states(d, [uuid])

    # Drift made in vCenter: the scan finds it and reverts it.
    one_host(sim.connect(), host).configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"])))
    wait_for(lambda: any(e["event"] == "drift_reverted" for e in d.get(f"/v1/hosts/{uuid}/events")
                         ["events"]), what="the drift reverted and recorded")

    doc = d.get(f"/v1/hosts/{uuid}/events")
    assert doc["host"] == uuid
    names = [e["event"] for e in doc["events"] if e["event"] != "state"]
    assert names[:3] == ["birth", "rule", "apply"], names
    assert names[-3:] == ["drift", "apply", "drift_reverted"], names
    birth = doc["events"][0]
    assert birth["site"] == "siteA" and birth["server"] == "sd1" and host["serial"] in birth["identity"]
    assert birth["time"].endswith("Z") and uuid in birth["message"]
    drift = next(e for e in doc["events"] if e["event"] == "drift")
    assert drift["source"] == "vcenter" and any(k.startswith("ntp") for k in drift["keys"]), drift
    rule = next(e for e in doc["events"] if e["event"] == "rule")
    assert rule["location"] == "/DC1/Prod/ClusterA" and rule["placed_by"] == "deploy rules"
    assert rule["matched"]["location"] == "prod-dell" and "rule prod-dell" in rule["message"]
    first_apply = next(e for e in doc["events"] if e["event"] == "apply")
    assert first_apply["keys"] and first_apply["calls"] > 0 and first_apply["vcenter"] == "vc1"
    states = [(e["previous"], e["state"]) for e in doc["events"] if e["event"] == "state"]
    assert (None, "pending") in states and ("applying", "compliant") in states
    times = [e["time"] for e in doc["events"]]
    assert times == sorted(times)  # oldest first

    # The same events, one JSON line each, in the audit log (state changes at debug level),
    # and the change feed's stdlib logging in the same log.
    assert [e["host"] for e in audit(d.log, "birth")] == [uuid]
    assert [e["state"] for e in audit(d.log, "state") if e["host"] == uuid][:2] == ["pending",
                                                                                   "applying"]
    assert any(e.get("log_namespace") == "stateless.directory.syncrepl"
               and e["text"].startswith("following ") for e in json_events(d.log))
    assert audit(d.log, "apply")[0]["keys"] == first_apply["keys"]
    assert "drift reverted" in audit(d.log, "drift_reverted")[0]["text"]

    # A directory problem: one line when it appears, one when it is gone; the gauge follows.
    link = f"statelessLinkPolicy=Security,cn=DC1,ou=inventory,{estate.base}"
    estate.ldapmodify(f"dn: {link}\nchangetype: modify\nreplace: statelessOrder\nstatelessOrder: 0\n")
    problem = wait_for(lambda: [e for e in audit(d.log, "directory_problem") if e["dn"] == link],
                       what="the directory problem logged")
    assert (problem[0]["attribute"], problem[0]["value"]) == ("statelessOrder", "0")
    assert d.metrics()["stateless_directory_problems"] >= 1
    estate.ldapmodify(f"dn: {link}\nchangetype: modify\nreplace: statelessOrder\nstatelessOrder: 1\n")
    wait_for(lambda: [e for e in audit(d.log, "directory_problem_resolved") if e["dn"] == link],
             what="the problem's resolution logged")
    assert len([e for e in audit(d.log, "directory_problem") if e["dn"] == link]) == 1

    # Unknown and malformed hosts.
    status, _, body = d.request("GET", "/v1/hosts/00000000-0000-0000-0000-0000000000ff/events")
    assert status == 404 and "unknown" in json.loads(body)["error"]
    status, _, body = d.request("GET", "/v1/hosts/not-a-uuid/events")
    assert status == 400

    # The CLI finds the owner through the directory, or asks the server it is given.
    token = d.state_dir / "admin.token"
    shown = cli(estate, "host", "events", uuid, "--json", token=token)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["events"][0]["event"] == "birth"
    text = cli(estate, "host", "events", uuid, "--server", d.url, token=token)
    assert text.returncode == 0, text.stderr
    assert " birth " in text.stdout and "drift_reverted" in text.stdout
    unknown = cli(estate, "host", "events", "00000000-0000-0000-0000-0000000000ff", token=token)
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr


def test_a_failed_start_exits_non_zero_with_one_line(tmp_path: Path, slapd: Slapd) -> None:
    log = tmp_path / "sd.log"
    with log.open("wb") as out:
        proc = subprocess.run([str(STATELESSD), "--state-dir", str(tmp_path / "state"),
                               "--ldap", slapd.url, "--bind-dn", slapd.bind_dn,
                               "--password-file", str(tmp_path / "missing"),
                               "--listen", "127.0.0.1:0"], stdout=out, stderr=subprocess.STDOUT,
                              timeout=60, env={k: v for k, v in os.environ.items()
                                               if not k.startswith("STATELESS_")})
    text = log.read_text()
    assert proc.returncode == 1, text
    lines = [line for line in text.splitlines() if "cannot start" in line]
    assert len(lines) == 1 and f"{tmp_path / 'missing'}" in lines[0], text
    assert "Traceback" not in text


def test_the_log_level_filters_the_audit_events(
        estate: Estate, tmp_path: Path) -> None:
    """At warn, the info lines (the ready line too) stay out of the log; the history has all."""
    url = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "sd1.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(STATELESSD), "--state-dir", str(tmp_path / "d"), "--name", "sd1", "--site", "siteA",
             "--listen", url.removeprefix("http://"), "--ldap", estate.slapd.url,
             "--bind-dn", estate.slapd.bind_dn, "--password-file", str(estate.slapd.password_file),
             "--base", estate.base, "--secret-key-file", str(estate.key_file),
             "--log-level", "warn", "--public-read"], stdout=out, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("STATELESS_")})
    try:
        d = Daemon("sd1", "siteA", url, tmp_path / "d", log, [], proc)
        wait_for(lambda: healthy(d), timeout=60, what="statelessd healthy")
        host = identity(1, "siteA")
        assert births(d, [host]) == [202]
        wait_states(d, [host["uuid"]])
        events = d.get(f"/v1/hosts/{host['uuid']}/events")["events"]
        assert [e["event"] for e in events if e["event"] in ("birth", "apply")] == [
            "birth", "apply"], "\n".join(str(e.get("message")) for e in events)
    finally:
        assert Daemon("sd1", "siteA", url, tmp_path / "d", log, [], proc).stop() == 0
    text = log.read_text()
    assert "serving" not in text and "born" not in text and "applied through" not in text


def healthy(d: Daemon) -> bool:
    try:
        return d.request("GET", "/healthz", timeout=2)[0] == 200
    except OSError:
        return False


def test_sigterm_while_waiting_for_the_directory_stops_cleanly(tmp_path: Path) -> None:
    """No directory answers: the start waits for it; SIGTERM ends the wait and the process."""
    (tmp_path / "pw").write_text("secret\n")
    log = tmp_path / "sd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(STATELESSD), "--state-dir", str(tmp_path / "state"),
                                 "--ldap", f"ldap://127.0.0.1:{free_port()}", "--bind-dn", "cn=x",
                                 "--password-file", str(tmp_path / "pw"),
                                 "--listen", "127.0.0.1:0"], stdout=out, stderr=subprocess.STDOUT,
                                env={k: v for k, v in os.environ.items()
                                     if not k.startswith("STATELESS_")})
    try:
        wait_for(lambda: "change feed" in log.read_text(), what="the feed trying the directory")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "cannot start" not in log.read_text()


def test_a_bad_option_is_one_line_and_status_2(tmp_path: Path) -> None:
    proc = subprocess.run([str(STATELESSD), "--state-dir", str(tmp_path), "--log-format", "xml"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "statelessd: error: --log-format 'xml': expected text or json"


# --- the API on other endpoints -----------------------------------------------------------------

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def test_the_api_listens_on_tls_and_advertises_https(
        estate: Estate, tmp_path: Path,
        daemons: Callable[..., Daemon]) -> None:
    pki.init_ca(tmp_path / "pki")
    issued = pki.issue(tmp_path / "pki", "sd1", ips=["127.0.0.1"])
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--listen", f"ssl:0:interface=127.0.0.1:privateKey="
                                     f"{issued.key}:certKey={issued.cert}"))
    assert d.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.crt"))
    with urllib.request.urlopen(f"{d.url}/healthz", context=context, timeout=10) as answer:
        assert answer.status == 200 and json.loads(answer.read())["ok"] is True
    assert estate.directory.snapshot().servers["sd1"].url == d.url  # advertised as bound


def test_the_api_listens_on_a_unix_socket_and_advertises_the_public_url(
        estate: Estate, tmp_path: Path,
        daemons: Callable[..., Daemon]) -> None:
    sock = tmp_path / "api.sock"
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--listen", f"unix:{sock}",
                                     "--public-url", "https://sd1.example.net:8443"))
    assert d.url == "https://sd1.example.net:8443"
    conn = UnixConnection(sock)
    conn.request("GET", "/healthz")
    answer = conn.getresponse()
    assert answer.status == 200 and json.loads(answer.read())["name"] == "sd1"
    conn.close()
    assert estate.directory.snapshot().servers["sd1"].url == d.url
    assert d.stop() == 0 and not sock.exists()  # the tree closed the port on SIGTERM

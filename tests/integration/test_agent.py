"""The boot agent against real SRV records in named and a birth endpoint played by http.server."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stateless.agent.bundle import build_zipapp
from stateless.agent.cli import main
from stateless.dns.register import Registrar
from stateless.model.birth import BirthError, parse_birth
from stateless.model.inventory import Server
from tests.integration.fixtures_dns import Named
from tests.ports import free_port

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
IDENTITY = {"uuid": UUID, "serial": "CZ1234", "vendor": "Dell Inc.", "model": "PowerEdge R640",
            "asset": "A-17", "oem_strings": ["rack=r12"], "macs": ["00:50:56:aa:bb:cc"],
            "boot_mac": "00:50:56:aa:bb:cc", "ipv4": "127.0.0.1", "hostname": "esx01",
            "thumbprint": ":".join(["AB"] * 20), "image": "esxi-8.0u2"}
Reply = tuple[int, dict[str, str], Any]
_counter = itertools.count()


class BirthEndpoint:
    """One fake statelessd: scripted replies to POST /v1/birth, a status document on GET."""

    def __init__(self, replies: list[Reply] | None = None, states: list[str] | None = None) -> None:
        self.replies = list(replies or [])
        self.states = list(states or ["compliant"])
        self.births: list[dict[str, Any]] = []
        self.hosts: list[str] = []
        self.gets: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, headers: dict[str, str], doc: Any) -> None:
                body = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                endpoint.hosts.append(self.headers.get("Host", ""))
                if self.path != "/v1/birth":
                    return self._send(404, {}, {"error": f"no {self.path}"})
                try:
                    parse_birth(raw)  # the server's own strict parser
                except BirthError as exc:
                    return self._send(400, {}, {"error": str(exc)})
                endpoint.births.append(json.loads(raw))
                if endpoint.replies:
                    return self._send(*endpoint.replies.pop(0))
                return self._send(202, {}, {"host": UUID, "status_url": f"/v1/hosts/{UUID}"})

            def do_GET(self) -> None:
                endpoint.gets.append(self.path)
                state = endpoint.states.pop(0) if len(endpoint.states) > 1 else endpoint.states[0]
                self._send(200, {}, {"state": state, "reason": "apply failed" if state == "failed" else ""})

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def referral(self, site: str, *servers: BirthEndpoint, status: int = 307) -> Reply:
        return (status, {}, {"referral": {"site": site, "servers": [
            {"url": s.url, "priority": 0, "weight": 100} for s in servers]}})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoints() -> Iterator[list[BirthEndpoint]]:
    made: list[BirthEndpoint] = []
    yield made
    for endpoint in made:
        endpoint.close()


class FakeTime:
    """A clock that moves only when the agent sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class World:
    """A fresh subdomain in named, endpoints registered in it, and the agent's command line."""

    def __init__(self, named: Named, endpoints: list[BirthEndpoint], tmp_path: Path) -> None:
        self.named = named
        self.endpoints = endpoints
        self.domain = f"a{next(_counter)}.{named.zone}"
        self.tmp = tmp_path
        self.identity = tmp_path / "identity.json"
        self.identity.write_text(json.dumps(IDENTITY))
        self.state = tmp_path / "state.json"
        self.time = FakeTime()
        self.logs: list[str] = []

    def endpoint(self, replies: list[Reply] | None = None, **kwargs: Any) -> BirthEndpoint:
        endpoint = BirthEndpoint(replies, **kwargs)
        self.endpoints.append(endpoint)
        return endpoint

    def register(self, name: str, site: str, port: int, priority: int = 0, weight: int = 100) -> None:
        server = Server(name, site, f"http://127.0.0.1:{port}/", priority=priority, weight=weight)
        Registrar(server, self.domain, nameserver=self.named.host, port=self.named.port,
                  key=self.named.key, zone=self.named.zone, a_records=True).register()

    def argv(self, *extra: str) -> list[str]:
        return ["--identity", str(self.identity), "--domain", self.domain,
                "--nameserver", f"{self.named.host}:{self.named.port}", "--state", str(self.state),
                "--request-timeout", "3", *extra]

    def run(self, *extra: str, seed: int = 7) -> int:
        return main(self.argv(*extra), rng=random.Random(seed), sleep=self.time.sleep,
                    clock=self.time.clock, log=self.logs.append)


@pytest.fixture
def world(named: Named, endpoints: list[BirthEndpoint], tmp_path: Path) -> World:
    return World(named, endpoints, tmp_path)


def test_site_records_come_first_and_the_birth_is_accepted(world: World) -> None:
    paris, lyon = world.endpoint(), world.endpoint()
    world.register("p1", "paris", paris.port)
    world.register("l1", "lyon", lyon.port, priority=10)
    assert world.run("--site", "lyon") == 0
    assert paris.births == [] and len(lyon.births) == 1
    assert lyon.births[0]["uuid"] == UUID and lyon.births[0]["thumbprint"] == IDENTITY["thumbprint"]
    assert lyon.hosts == [f"l1.{world.domain}:{lyon.port}"]  # name kept, address from DNS
    assert json.loads(world.state.read_text()) == {
        "site": "lyon", "server": f"http://l1.{world.domain}:{lyon.port}"}


def test_without_a_site_the_domain_records_are_used_in_priority_order(world: World) -> None:
    first, second = world.endpoint(), world.endpoint()
    world.register("s1", "paris", first.port, priority=0)
    world.register("s2", "lyon", second.port, priority=5)
    assert world.run() == 0
    assert len(first.births) == 1 and second.births == []


def test_remembered_site_from_the_state_file_is_tried_first(world: World) -> None:
    paris, lyon = world.endpoint(), world.endpoint()
    world.register("p1", "paris", paris.port, priority=0)
    world.register("l1", "lyon", lyon.port, priority=10)
    world.state.write_text(json.dumps({"site": "lyon"}))
    assert world.run() == 0
    assert paris.births == [] and len(lyon.births) == 1


@pytest.mark.parametrize("status", [307, 200])
def test_a_referral_is_followed_and_its_site_remembered(world: World, status: int) -> None:
    lyon = world.endpoint()
    paris = world.endpoint()
    paris.replies.append(paris.referral("lyon", lyon, status=status))
    world.register("p1", "paris", paris.port)
    assert world.run() == 0
    assert len(paris.births) == 1 and len(lyon.births) == 1
    assert json.loads(world.state.read_text())["site"] == "lyon"
    assert world.time.sleeps == []


def test_a_second_referral_is_not_followed(world: World) -> None:
    third = world.endpoint()
    second = world.endpoint()
    first = world.endpoint()
    second.replies.append(second.referral("nice", third))
    first.replies.extend([first.referral("lyon", second), first.referral("lyon", second)])
    world.register("p1", "paris", first.port)
    assert world.run("--attempts", "2") == 1
    assert third.births == []
    assert len(second.births) == 1 and len(first.births) == 2
    assert any("followed only once" in line for line in world.logs)
    assert json.loads(world.state.read_text())["site"] == "lyon"


def test_next_target_when_one_is_down_or_failing(world: World) -> None:
    failing = world.endpoint([(503, {}, {"error": "starting"})])
    good = world.endpoint()
    world.register("down", "paris", free_port(), priority=0)  # nothing listens there
    world.register("failing", "paris", failing.port, priority=1)
    world.register("good", "paris", good.port, priority=2)
    assert world.run() == 0
    assert len(failing.births) == 1 and len(good.births) == 1
    assert world.time.sleeps == []
    assert any("cannot reach" in line and "down." in line for line in world.logs)


def test_fallback_to_the_server_given_on_the_command_line(world: World) -> None:
    pxe = world.endpoint()
    world.register("down", "paris", free_port())
    assert world.run("--server", pxe.url) == 0
    assert len(pxe.births) == 1
    # no SRV records at all: the --server alone still works
    other = World(world.named, world.endpoints, world.tmp)
    assert other.run("--server", pxe.url) == 0
    assert len(pxe.births) == 2


def test_429_retry_after_is_honoured(world: World) -> None:
    busy = world.endpoint([(429, {"Retry-After": "7"}, {"error": "busy"})])
    world.register("s1", "paris", busy.port)
    assert world.run() == 0
    assert world.time.sleeps == [7.0]
    assert len(busy.births) == 2


def test_400_is_fatal_and_shows_the_servers_error(world: World) -> None:
    bad = world.endpoint([(400, {}, {"error": "macs: at most 64 entries"})])
    spare = world.endpoint()
    world.register("bad", "paris", bad.port, priority=0)
    world.register("spare", "paris", spare.port, priority=1)
    assert world.run() == 2
    assert spare.births == [] and world.time.sleeps == []
    assert any("400" in line and "macs: at most 64 entries" in line for line in world.logs)


def test_backoff_has_full_jitter_within_the_doubling_cap(world: World) -> None:
    world.register("down", "paris", free_port())
    assert world.run("--attempts", "6", "--backoff", "1", "--backoff-cap", "5", seed=11) == 1
    ceilings = [min(5.0, 2.0 ** i) for i in range(5)]
    replay = random.Random(11)
    assert world.time.sleeps == [replay.uniform(0, c) for c in ceilings]
    assert all(0 <= s <= c for s, c in zip(world.time.sleeps, ceilings, strict=True))
    assert len(set(world.time.sleeps)) == 5


def test_overall_timeout_stops_the_retries(world: World) -> None:
    world.register("down", "paris", free_port())
    assert world.run("--attempts", "50", "--backoff", "4", "--backoff-cap", "4", "--timeout", "10") == 1
    assert sum(world.time.sleeps) <= 10
    assert any("time limit" in line for line in world.logs)


@pytest.mark.parametrize(("states", "code"), [(["pending", "applying", "compliant"], 0),
                                              (["applying", "failed"], 3)])
def test_wait_compliant_polls_the_status(world: World, states: list[str], code: int) -> None:
    server = world.endpoint(states=states)
    world.register("s1", "paris", server.port)
    assert world.run("--wait-compliant", "--poll-interval", "2") == code
    # Request timeout 3 s: the server is asked to hold each request up to 1 s.
    assert server.gets == [f"/v1/hosts/{UUID}?wait=1"] * len(states)
    assert world.time.sleeps == [2.0] * (len(states) - 1)


def test_zipapp_runs_on_a_bare_interpreter(world: World, tmp_path: Path) -> None:
    accepting = world.endpoint()
    busy = world.endpoint([(503, {}, {"error": "busy"})])
    world.register("busy", "paris", busy.port, priority=0)
    world.register("ok", "lyon", accepting.port, priority=1)
    pyz = tmp_path / "agent.pyz"
    build_zipapp(pyz)
    # -S: no site-packages, so only the standard library and what the archive carries
    proc = subprocess.run([sys.executable, "-S", str(pyz), *world.argv("--attempts", "1")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(busy.births) == 1 and len(accepting.births) == 1
    assert "accepted host" in proc.stderr
    bare = subprocess.run([sys.executable, "-S", "-c", "import dns"], capture_output=True)
    assert bare.returncode != 0  # the archive's own dnspython was used

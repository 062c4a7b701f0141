"""The boot agent against real SRV records in named and the daemon's real HTTP API.

Each server the agent talks to is `build_site()` from stateless/daemon/api.py on a loopback
port with a stub controller whose outcomes a test scripts (accepted, referral, busy, birth not
recorded), so the agent is held to the answers the daemon really gives.  The fallback tests
use name servers that refuse or never answer (tests/integration/fixtures_fakedns.py).
"""

from __future__ import annotations

import collections
import itertools
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import dns.resolver
import pytest

from stateless.agent.bundle import build_zipapp
from stateless.agent.cli import main
from stateless.agent.locate import make_resolver
from stateless.daemon.outcomes import Busy
from stateless.dns.register import Registrar
from stateless.errors import StatelessError
from stateless.model.inventory import Server
from tests.integration.fixtures_api import ApiServer, Outcome, StubController, api_servers, referral
from tests.integration.fixtures_dns import Named
from tests.integration.fixtures_fakedns import FakeNameServer, closed_udp_port, fake_name_servers
from tests.ports import free_port

__all__ = ["api_servers", "fake_name_servers"]  # fixtures, for pytest

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
IDENTITY = {"uuid": UUID, "serial": "CZ1234", "vendor": "Dell Inc.", "model": "PowerEdge R640",
            "asset": "A-17", "oem_strings": ["rack=r12"], "macs": ["00:50:56:aa:bb:cc"],
            "boot_mac": "00:50:56:aa:bb:cc", "ipv4": "127.0.0.1", "hostname": "esx01",
            "thumbprint": ":".join(["AB"] * 20), "image": "esxi-8.0u2"}
_counter = itertools.count()


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
    """A fresh subdomain in named, API servers registered in it, and the agent's command line."""

    def __init__(self, named: Named, servers: list[ApiServer], tmp_path: Path) -> None:
        self.named = named
        self.servers = servers
        self.domain = f"a{next(_counter)}.{named.zone}"
        self.tmp = tmp_path
        self.identity = tmp_path / "identity.json"
        self.identity.write_text(json.dumps(IDENTITY))
        self.state = tmp_path / "state.json"
        self.time = FakeTime()
        self.logs: list[str] = []

    def api(self, outcomes: list[Outcome] | None = None, **kwargs: Any) -> ApiServer:
        server = ApiServer(StubController(outcomes, **kwargs))
        self.servers.append(server)
        return server

    def register(self, name: str, site: str, port: int, priority: int = 0, weight: int = 100) -> None:
        server = Server(name, site, f"http://127.0.0.1:{port}/", priority=priority, weight=weight)
        Registrar(server, self.domain, nameserver=self.named.host, port=self.named.port,
                  key=self.named.key, zone=self.named.zone, a_records=True).register()

    def argv(self, *extra: str, nameserver: bool = True) -> list[str]:
        ns = ["--nameserver", f"{self.named.host}:{self.named.port}"] if nameserver else []
        return ["--identity", str(self.identity), "--domain", self.domain, *ns,
                "--state", str(self.state), "--request-timeout", "3", *extra]

    def run(self, *extra: str, seed: int = 7, nameserver: bool = True) -> int:
        return main(self.argv(*extra, nameserver=nameserver), rng=random.Random(seed),
                    sleep=self.time.sleep, clock=self.time.clock, log=self.logs.append)


@pytest.fixture
def world(named: Named, api_servers: list[ApiServer], tmp_path: Path) -> World:
    return World(named, api_servers, tmp_path)


def posted(server: ApiServer) -> list[str]:
    """Host header of each birth the server received."""
    return [host for method, uri, host in server.requests if (method, uri) == ("POST", "/v1/birth")]


def test_site_records_come_first_and_the_birth_is_accepted(world: World) -> None:
    paris, lyon = world.api(), world.api()
    world.register("p1", "paris", paris.port)
    world.register("l1", "lyon", lyon.port, priority=10)
    assert world.run("--site", "lyon") == 0
    assert paris.births == [] and len(lyon.births) == 1
    birth = lyon.births[0]
    assert birth.identity.uuid == UUID and birth.thumbprint == IDENTITY["thumbprint"]
    assert posted(lyon) == [f"l1.{world.domain}:{lyon.port}"]  # name kept, address from DNS
    assert json.loads(world.state.read_text()) == {
        "site": "lyon", "server": f"http://l1.{world.domain}:{lyon.port}"}


def test_without_a_site_the_domain_records_are_used_in_priority_order(world: World) -> None:
    first, second = world.api(), world.api()
    world.register("s1", "paris", first.port, priority=0)
    world.register("s2", "lyon", second.port, priority=5)
    assert world.run() == 0
    assert len(first.births) == 1 and second.births == []


def test_remembered_site_from_the_state_file_is_tried_first(world: World) -> None:
    paris, lyon = world.api(), world.api()
    world.register("p1", "paris", paris.port, priority=0)
    world.register("l1", "lyon", lyon.port, priority=10)
    world.state.write_text(json.dumps({"site": "lyon"}))
    assert world.run() == 0
    assert paris.births == [] and len(lyon.births) == 1


def test_a_referral_is_followed_and_its_site_remembered(world: World) -> None:
    lyon = world.api()
    paris = world.api([referral("lyon", lyon.url)])
    world.register("p1", "paris", paris.port)
    assert world.run() == 0
    assert len(paris.births) == 1 and len(lyon.births) == 1
    assert json.loads(world.state.read_text())["site"] == "lyon"
    assert world.time.sleeps == []


def test_a_second_referral_is_not_followed(world: World) -> None:
    third = world.api()
    second = world.api([referral("nice", third.url)])
    first = world.api([referral("lyon", second.url), referral("lyon", second.url)])
    world.register("p1", "paris", first.port)
    assert world.run("--attempts", "2") == 1
    assert third.births == []
    assert len(second.births) == 1 and len(first.births) == 2
    assert any("followed only once" in line for line in world.logs)
    assert json.loads(world.state.read_text())["site"] == "lyon"


def test_next_target_when_one_is_down_or_failing(world: World) -> None:
    failing = world.api([StatelessError("directory ldap://127.0.0.1:1: unreachable")])
    good = world.api()
    world.register("down", "paris", free_port(), priority=0)  # nothing listens there
    world.register("failing", "paris", failing.port, priority=1)
    world.register("good", "paris", good.port, priority=2)
    assert world.run() == 0
    assert len(failing.births) == 1 and len(good.births) == 1
    assert world.time.sleeps == []
    assert any("cannot reach" in line and "down." in line for line in world.logs)
    assert any("503" in line and "birth not recorded" in line for line in world.logs)


def test_fallback_to_the_server_given_on_the_command_line(world: World) -> None:
    pxe = world.api()
    world.register("down", "paris", free_port())
    assert world.run("--server", pxe.url) == 0
    assert len(pxe.births) == 1
    # no SRV records at all: the --server alone still works
    other = World(world.named, world.servers, world.tmp)
    assert other.run("--server", pxe.url) == 0
    assert len(pxe.births) == 2


def test_429_retry_after_is_honoured(world: World) -> None:
    busy = world.api([Busy(7)])
    world.register("s1", "paris", busy.port)
    assert world.run() == 0
    assert world.time.sleeps == [7.0]
    assert len(busy.births) == 2


def test_400_is_fatal_and_shows_the_servers_error(world: World) -> None:
    bad, spare = world.api(), world.api()
    world.register("bad", "paris", bad.port, priority=0)
    world.register("spare", "paris", spare.port, priority=1)
    world.identity.write_text(json.dumps({**IDENTITY, "macs": ["00:50:56:aa:bb:cc", "not-a-mac"]}))
    assert world.run() == 2
    assert spare.requests == [] and world.time.sleeps == []
    assert [method for method, _, _ in bad.requests] == ["POST"]  # the API's own 400
    assert any("400" in line and "invalid birth message" in line and "macs: " in line
               for line in world.logs)


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
                                              (["applying", "failed"], 3),
                                              (["failed+retry", "failed+retry", "compliant"], 0)])
def test_wait_compliant_polls_the_status(world: World, states: list[str], code: int) -> None:
    server = world.api(states=states)
    world.register("s1", "paris", server.port)
    assert world.run("--wait-compliant", "--poll-interval", "2") == code
    # Request timeout 3 s: the server is asked to hold each request up to 1 s.
    assert server.controller.settled_calls == [(UUID, 1.0)] * len(states)
    assert [uri for method, uri, _ in server.requests if method == "GET"] == [
        f"/v1/hosts/{UUID}?wait=1"] * len(states)
    assert world.time.sleeps == [2.0] * (len(states) - 1)
    if code == 3:
        assert any("failed: apply failed" in line for line in world.logs)
    if "failed+retry" in states:  # said once, then waited on
        assert sum("the server retries at" in line for line in world.logs) == 1


def test_zipapp_runs_on_a_bare_interpreter(world: World, tmp_path: Path) -> None:
    accepting = world.api()
    failing = world.api([StatelessError("directory down")])
    world.register("busy", "paris", failing.port, priority=0)
    world.register("ok", "lyon", accepting.port, priority=1)
    pyz = tmp_path / "agent.pyz"
    build_zipapp(pyz)
    # -S: no site-packages, so only the standard library and what the archive carries
    proc = subprocess.run([sys.executable, "-S", str(pyz), *world.argv("--attempts", "1")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(failing.births) == 1 and len(accepting.births) == 1
    assert "accepted host" in proc.stderr
    bare = subprocess.run([sys.executable, "-S", "-c", "import dns"], capture_output=True)
    assert bare.returncode != 0  # the archive's own dnspython was used


# -- falling back when the name servers are down ----------------------------------------------

def site_name(world: World, site: str = "paris") -> str:
    return f"_stateless._tcp.{site}._sites.{world.domain}."


def test_a_refused_name_server_fails_the_lookup_at_once() -> None:
    """The resolver's connected socket sees ICMP port unreachable instead of a timeout."""
    resolver = make_resolver([f"127.0.0.1:{closed_udp_port()}"], timeout=30)
    with pytest.raises(dns.resolver.NoNameservers) as caught:
        resolver.resolve("_stateless._tcp.example.test.", "SRV")
    errors = caught.value.kwargs["errors"]
    assert [type(error[3]) for error in errors] == [ConnectionRefusedError]


def test_refused_name_server_goes_straight_to_the_server(world: World) -> None:
    pxe = world.api()
    closed = closed_udp_port()
    assert world.run("--site", "paris", "--server", pxe.url, "--nameserver", f"127.0.0.1:{closed}",
                     nameserver=False) == 0
    assert len(pxe.births) == 1 and world.time.sleeps == []  # the first round reached it
    failed = [i for i, line in enumerate(world.logs) if "no name server answered" in line]
    accepted = [i for i, line in enumerate(world.logs) if "accepted host" in line]
    assert len(failed) == 1 and site_name(world) in world.logs[failed[0]]
    assert failed[0] < accepted[0]
    assert not any(f"_stateless._tcp.{world.domain}." in line for line in world.logs)


def test_silent_name_server_takes_one_lookup_per_round(world: World,
                                                       fake_name_servers: list[FakeNameServer]) -> None:
    """Default --dns-timeout: one query, and the domain-wide name is not asked once the site
    lookup found DNS down."""
    silent = FakeNameServer(silent=True)
    fake_name_servers.append(silent)
    pxe = world.api()
    assert world.run("--site", "paris", "--server", pxe.url, "--nameserver", silent.address,
                     nameserver=False) == 0
    assert len(pxe.births) == 1 and world.time.sleeps == []
    assert silent.asked() == [(site_name(world), "SRV")]


def test_refused_and_silent_name_servers_each_round(world: World,
                                                    fake_name_servers: list[FakeNameServer]) -> None:
    """The refused server drops out at once; the silent one gets the rest of the lifetime (a
    retry may resend the query), then the round goes on to --server without the other name."""
    pxe = world.api([StatelessError("directory down")])  # round 1 fails, round 2 accepts
    silent = FakeNameServer(silent=True, mark=lambda: len(pxe.births))
    fake_name_servers.append(silent)
    assert world.run("--site", "paris", "--server", pxe.url, "--attempts", "3",
                     "--dns-timeout", "0.5", "--nameserver", f"127.0.0.1:{closed_udp_port()}",
                     "--nameserver", silent.address, nameserver=False) == 0
    assert len(pxe.births) == 2 and len(world.time.sleeps) == 1
    asked = {(name, rdtype, round_) for name, rdtype, round_ in silent.queries}
    assert asked == {(site_name(world), "SRV", 0), (site_name(world), "SRV", 1)}


def test_each_name_is_asked_once_per_round(world: World,
                                           fake_name_servers: list[FakeNameServer]) -> None:
    """Site and domain SRV names, target and --server addresses: once each per round."""
    first, pxe = world.api([StatelessError("directory down")]), world.api([StatelessError("no")])
    d = world.domain
    dns_server = FakeNameServer(mark=lambda: len(first.births), records={
        site_name(world): [("SRV", f"0 100 {first.port} s1.{d}.")],
        f"_stateless._tcp.{d}.": [("SRV", f"0 100 {first.port} s1.{d}."),
                                  ("SRV", f"5 100 {free_port()} s2.{d}.")],
        f"s1.{d}.": [("A", "127.0.0.1")],
        f"s2.{d}.": [("A", "127.0.0.1")],
        f"pxe.{d}.": [("A", "127.0.0.1")],
    })
    fake_name_servers.append(dns_server)
    # one name server with the whole lifetime: at most one datagram per lookup
    assert world.run("--site", "paris", "--server", f"http://pxe.{d}:{pxe.port}", "--dns-timeout",
                     "30", "--nameserver", dns_server.address, nameserver=False) == 0
    assert len(first.births) == 2 and len(pxe.births) == 1 and len(world.time.sleeps) == 1
    assert posted(first) == [f"s1.{d}:{first.port}"] * 2
    assert posted(pxe) == [f"pxe.{d}:{pxe.port}"]
    counts = collections.Counter(dns_server.asked())
    assert counts == {(site_name(world), "SRV"): 2, (f"_stateless._tcp.{d}.", "SRV"): 2,
                      (f"s1.{d}.", "A"): 2, (f"s2.{d}.", "A"): 2, (f"pxe.{d}.", "A"): 2}
    rounds = [round_ for _, _, round_ in dns_server.queries]
    assert rounds == [0] * 5 + [1] * 5  # first births counted by `first`: one per round

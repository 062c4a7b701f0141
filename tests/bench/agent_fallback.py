"""How long the agent takes to reach a server when the name server is down, refused or silent.

    .venv/bin/python tests/bench/agent_fallback.py [--runs 3] [--dns-timeout 2]

The agent (`stateless.agent.birth.Agent`, as `python -m stateless.agent` runs it) looks up
the site and domain SRV names and then falls back to `--server`, the daemon's real API
(`build_site()` with a stub controller) on a loopback port.  Printed per case: the median time
from the agent's start until its first birth request reaches a server, and the ratio to the
working-DNS case measured in the same run.  Cases: a working name server (answers the SRV
names, the target is the same API); a closed UDP port (ICMP port unreachable); a socket that
reads and drops every query; both of the last two.  Target: <= 3 s for every case with the
default --dns-timeout of 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from twisted.internet import defer  # noqa: E402

from stateless.agent.birth import Agent, Settings  # noqa: E402
from stateless.daemon.outcomes import BirthOutcome  # noqa: E402
from stateless.model.birth import BirthMessage  # noqa: E402
from tests.integration.fixtures_api import ApiServer, StubController  # noqa: E402
from tests.integration.fixtures_fakedns import FakeNameServer, closed_udp_port  # noqa: E402

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
DOMAIN = "bench.test"


class Timed(StubController):
    """Notes when the first birth arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.first: float | None = None

    def birth(self, message: BirthMessage, peer: str) -> defer.Deferred[BirthOutcome]:
        if self.first is None:
            self.first = time.monotonic()
        return super().birth(message, peer)


def first_request(nameservers: list[str], servers: list[str], api: ApiServer,
                  dns_timeout: float) -> float:
    """Seconds from the agent's start until its first birth request reaches `api`."""
    controller = api.controller
    assert isinstance(controller, Timed)
    settings = Settings(domain=DOMAIN, site="paris", servers=tuple(servers),
                        nameservers=tuple(nameservers), dns_timeout=dns_timeout, max_attempts=1,
                        request_timeout=10)
    started = time.monotonic()
    Agent({"uuid": UUID}, settings, log=lambda _: None).birth()
    assert controller.first is not None
    return controller.first - started


def srv_records(port: int) -> dict[str, list[tuple[str, str]]]:
    target = f"s1.{DOMAIN}."
    return {f"_stateless._tcp.paris._sites.{DOMAIN}.": [("SRV", f"0 100 {port} {target}")],
            f"_stateless._tcp.{DOMAIN}.": [("SRV", f"0 100 {port} {target}")],
            target: [("A", "127.0.0.1")]}


def measure(case: str, runs: int, dns_timeout: float) -> float:
    """Median over `runs`; each run has its own API and name servers."""
    times: list[float] = []
    for _ in range(runs):
        api = ApiServer(Timed())
        started: list[Any] = [api]
        try:
            names: list[str] = []
            if case == "working":  # the SRV target is the API; --server is never reached
                dns_server = FakeNameServer(srv_records(api.port))
                started.append(dns_server)
                names.append(dns_server.address)
            if case in ("refused", "refused+silent"):
                names.append(f"127.0.0.1:{closed_udp_port()}")
            if case in ("silent", "refused+silent"):
                silent = FakeNameServer(silent=True)
                started.append(silent)
                names.append(silent.address)
            server = "http://127.0.0.1:1" if case == "working" else api.url
            times.append(first_request(names, [server], api, dns_timeout))
        finally:
            for item in started:
                item.close()
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dns-timeout", type=float, default=2.0)
    args = parser.parse_args()
    baseline = measure("working", args.runs, args.dns_timeout)
    print(f"--dns-timeout {args.dns_timeout:g}, median of {args.runs} runs; "
          "time until the first birth request reaches a server")
    print(f"{'working DNS':>18}: {baseline:7.3f} s  (baseline)")
    worst = 0.0
    for case in ("refused", "silent", "refused+silent"):
        seconds = measure(case, args.runs, args.dns_timeout)
        worst = max(worst, seconds)
        print(f"{case + ' DNS':>18}: {seconds:7.3f} s  ratio {seconds / baseline:8.1f}")
    print(f"worst fallback {worst:.3f} s (target <= {args.dns_timeout + 1:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

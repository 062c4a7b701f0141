"""The daemon's real HTTP API (`build_site`) on a loopback port, with a scripted controller.

`StubController` implements the `Controller` protocol with outcomes a test lists in advance,
so the agent and HTTP tests exercise the API's own decoding, dispatch and error answers
without a directory or a vCenter behind it.  The site runs on a private reactor in a thread;
the global reactor stays untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from twisted.internet import defer
from twisted.internet.selectreactor import SelectReactor

from stateless.daemon.api import Request, build_site
from stateless.daemon.outcomes import Accepted, BirthOutcome, Referral
from stateless.errors import NotFoundError
from stateless.model.birth import BirthMessage

Outcome = BirthOutcome | Exception


class StubController:
    """Scripted answers to births and status requests; records what it was asked.

    Births take `outcomes` in order (an exception fails the birth: a `StatelessError` is the
    API's 503, anything else its 500), then accept.  Status documents take `states` in order
    and repeat the last one.
    """

    def __init__(self, outcomes: list[Outcome] | None = None,
                 states: list[str] | None = None) -> None:
        self.outcomes = list(outcomes or [])
        self.states = list(states or ["compliant"])
        self.births: list[BirthMessage] = []
        self.peers: list[str] = []
        self.settled_calls: list[tuple[str, float]] = []
        self.known: set[str] = set()

    def birth(self, message: BirthMessage, peer: str,
              signed: Any = None) -> defer.Deferred[BirthOutcome]:
        self.births.append(message)
        self.peers.append(peer)
        outcome = self.outcomes.pop(0) if self.outcomes else Accepted(message.identity.uuid)
        if isinstance(outcome, Exception):
            return defer.fail(outcome)
        if isinstance(outcome, Accepted):
            self.known.add(message.identity.uuid)
        return defer.succeed(outcome)

    def _state(self, uuid: str) -> dict[str, Any]:
        if uuid not in self.known:
            raise NotFoundError(f"host {uuid}: unknown; it has not been born nor added")
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if state == "failed+retry":  # a transient failure the server retries by itself
            return {"host": uuid, "state": "failed", "reason": "vCenter busy",
                    "next_try": "2026-01-01T00:00:05+00:00", "attempts": 1}
        return {"host": uuid, "state": state, "reason": "apply failed" if state == "failed" else ""}

    def hosts(self) -> list[dict[str, Any]]:
        return [{"host": uuid} for uuid in sorted(self.known)]

    def host(self, uuid: str) -> dict[str, Any]:
        return self._state(uuid)

    def settled(self, uuid: str, timeout: float) -> defer.Deferred[dict[str, Any]]:
        self.settled_calls.append((uuid, timeout))
        return defer.succeed(self._state(uuid))

    def effective(self, uuid: str) -> dict[str, Any]:
        if uuid not in self.known:
            raise NotFoundError(f"host {uuid}: unknown")
        return {"host": uuid, "settings": {}}

    def locate(self, address: str) -> list[dict[str, Any]]:
        return [{"name": "s1", "site": "paris", "url": "http://127.0.0.1:1/", "priority": 0,
                 "weight": 100}]

    def health(self) -> dict[str, Any]:
        return {"ok": True, "name": "stub"}


def referral(site: str, *urls: str) -> Referral:
    """What the engine answers for a host of another site."""
    return Referral(site, tuple({"name": f"s{i}", "url": url, "priority": 0, "weight": 100}
                                for i, url in enumerate(urls)))


class ApiServer:
    """`build_site(controller)` listening on 127.0.0.1 (a port the kernel picks)."""

    def __init__(self, controller: StubController) -> None:
        self.controller = controller
        self.requests: list[tuple[str, str, str]] = []  # method, uri, Host header
        self.registry = CollectorRegistry()
        Counter("stub_requests", "a metric, so /metrics has something", registry=self.registry)
        self.reactor = SelectReactor()
        site = build_site(controller, self.registry, reactor=self.reactor)
        log = self.requests

        class Recording(Request):
            def process(self) -> None:
                host = self.getHeader(b"host") or b""
                log.append((self.method.decode(), self.uri.decode(), host.decode()))
                super().process()

        site.requestFactory = Recording
        ready = threading.Event()
        ports: list[Any] = []

        def start() -> None:
            try:
                ports.append(self.reactor.listenTCP(0, site, interface="127.0.0.1"))
            finally:
                ready.set()

        self.reactor.callWhenRunning(start)
        self.thread = threading.Thread(target=self.reactor.run,
                                       kwargs={"installSignalHandlers": False}, daemon=True)
        self.thread.start()
        assert ready.wait(10) and ports, "the API did not start listening"
        self.port = int(ports[0].getHost().port)
        self._listening = ports[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def births(self) -> list[BirthMessage]:
        return self.controller.births

    def close(self) -> None:
        def stop() -> None:
            d = defer.maybeDeferred(self._listening.stopListening)
            d.addBoth(lambda _: self.reactor.stop())

        self.reactor.callFromThread(stop)
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def api_servers() -> Iterator[list[ApiServer]]:
    """Servers a test starts with `api_servers.append(ApiServer(...))`; all closed afterwards."""
    made: list[ApiServer] = []
    yield made
    for api in made:
        api.close()


"""The drift watch's loop, with a fake vCenter watch and engine: it never dies, it backs off,
it compares what changed, and after a new subscription it compares every watched host."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.task import Clock

from stateless.daemon.config import DaemonConfig
from stateless.daemon.drift import RETRY, DriftWatch
from stateless.daemon.hoststate import HostStatus
from stateless.errors import TransientVCenterError
from stateless.model.identity import HostIdentity
from stateless.model.inventory import HostRecord, HostState, Snapshot
from stateless.model.names import HostNames
from stateless.plan import KeyDiff
from stateless.vcenter.watch import Change, Updates

A, B = "4c4c4544-0000-4000-8000-00000000000a", "4c4c4544-0000-4000-8000-00000000000b"


class FakeWatch:
    """Answers of `wait`, in order: an Updates, or an exception to raise."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.hosts: list[str] = []
        self.paths: tuple[str, ...] = ()
        self.closed = False

    def wait(self) -> Updates:
        answer = self.answers.pop(0) if self.answers else defer.Deferred()
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    def set_hosts(self, moids: list[str], paths: Any = None) -> None:
        self.hosts = list(moids)
        if paths is not None:
            self.paths = tuple(sorted(paths))

    def stale(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class FakeVCenters:
    def __init__(self, watch: FakeWatch) -> None:
        self._watch = watch

    def watch(self, name: str, max_wait: int) -> Any:
        return self._watch

    def find(self, vcenter: str, target: Any) -> str:
        return "host-" + target.host.uuid[-1]


class FakeResolver:
    def __init__(self) -> None:
        self.settings: dict[str, dict[str, Any]] = {}  # uuid -> effective values

    def resolve(self, uuid: str) -> Any:
        from stateless.model.effective import EffectiveConfig, EffectiveSetting

        values = self.settings.get(uuid, {})
        return EffectiveConfig(uuid, location="/DC1/C1", settings={
            k: EffectiveSetting(k, v, "P", "/DC1") for k, v in values.items()})


class FakeEngine:
    def __init__(self) -> None:
        hosts = {u: HostRecord(u, location="/DC1/C1", identity=HostIdentity(u)) for u in (A, B)}
        from stateless.model.inventory import Container, ContainerKind, VCenter

        self.snapshot = Snapshot(hosts=hosts, vcenters={"vc1": VCenter("vc1", "http://x/sdk",
                                                                       "u", "p")},
                                 containers={"/": Container("/", ContainerKind.ROOT),
                                             "/DC1": Container("/DC1", ContainerKind.DATACENTER),
                                             "/DC1/C1": Container("/DC1/C1", ContainerKind.CLUSTER)})
        self.resolver = FakeResolver()
        self.names = HostNames()
        self.names.update({}, hosts)
        self.config = DaemonConfig(Path("/nonexistent"))
        self.states = {A: HostStatus(HostState.COMPLIANT), B: HostStatus(HostState.COMPLIANT)}
        self.checked: list[str] = []
        self.drifted: list[tuple[str, str]] = []
        self.diffs: dict[str, list[KeyDiff]] = {}

    def scan_hosts(self) -> list[str]:
        return sorted(self.states)

    def scannable(self, uuid: str) -> bool:
        return uuid in self.states

    def status(self, uuid: str) -> HostStatus | None:
        return self.states.get(uuid)

    def check(self, uuid: str) -> defer.Deferred[list[KeyDiff] | None]:
        self.checked.append(uuid)
        return defer.succeed(self.diffs.get(uuid, []))

    def vcenter_drift(self, uuid: str, reason: str, keys: Sequence[str] = ()) -> None:
        self.drifted.append((uuid, reason))
        self.states[uuid] = HostStatus(HostState.DRIFTED, reason)

    def vcenter_matches(self, uuid: str) -> None:
        pass

    def settled(self, uuid: str, timeout: float) -> defer.Deferred[dict[str, Any]]:
        return defer.succeed({})


def drift(answers: list[Any], mode: str = "report") -> tuple[DriftWatch, FakeEngine, FakeWatch,
                                                              Clock]:
    clock, engine, watch = Clock(), FakeEngine(), FakeWatch(answers)
    d = DriftWatch(engine, FakeVCenters(watch), clock, defer.maybeDeferred,  # type: ignore[arg-type]
                   server="sd1", mode=mode, rng=random.Random(1))
    return d, engine, watch, clock


def test_the_loop_survives_failures_and_compares_what_changed() -> None:
    change = Updates((Change("host-a", ("config.dateTimeInfo",)),))
    d, engine, watch, clock = drift([Updates(resubscribed=True), RuntimeError("a bug"),
                                     TransientVCenterError("session lost"),
                                     Updates(resubscribed=True), change])
    engine.diffs[A] = [KeyDiff("ntp.servers", ("a",), ("b",))]
    d.start()
    assert sorted(watch.hosts) == ["host-a", "host-b"]
    assert d.state == "lost" and "a bug" in d.reason
    clock.advance(RETRY[1])  # the backoff, whatever the jitter drew
    clock.advance(RETRY[1])
    assert d.state == "watching"
    # subscribed again after a loss: every watched host compared; then the change of A
    assert engine.checked == [A, B, A]
    assert engine.drifted and engine.drifted[0] == (A, "differs in vCenter: ntp.servers")
    assert d.changes == 1
    assert d.health() == {"vc1": {"state": "watching", "reason": "", "hosts": 2, "changes": 1}}


def test_changes_of_hosts_being_applied_or_not_watched_are_left_alone() -> None:
    d, engine, watch, _clock = drift([Updates(resubscribed=True),
                                     Updates((Change("host-b", ("config.network",)),
                                              Change("host-z", ("config.network",))))])
    engine.states[B] = HostStatus(HostState.APPLYING)
    d.start()
    assert watch.hosts == ["host-a"] and engine.checked == [] and d.changes == 0


def test_stop_closes_the_watch() -> None:
    d, _engine, watch, _clock = drift([Updates(resubscribed=True)])
    d.start()
    d.stop()
    assert watch.closed


def test_the_watch_covers_the_paths_of_what_the_watched_hosts_name() -> None:
    d, engine, watch, clock = drift([Updates(resubscribed=True)])
    engine.resolver.settings = {A: {"ntp.servers": ("10.0.0.1",)},
                                B: {"advanced.Net.TcpipHeapSize": 32}}
    d.start()
    assert watch.paths == ("config.dateTimeInfo", "config.option", "parent")  # parent: moves
    # B applied again with another configuration: its kinds are worked out again.
    engine.resolver.settings[B] = {"dns.servers": ("10.0.0.53",)}
    hosts = engine.snapshot.hosts
    engine.snapshot = attrs.evolve(engine.snapshot, hosts={
        **hosts, B: attrs.evolve(hosts[B], applied_digest="d2")})
    clock.advance(1.0)
    assert watch.paths == ("config.dateTimeInfo", "config.network.dnsConfig", "parent")
    # A no longer watched (being applied): only what B names.
    engine.states[A] = HostStatus(HostState.APPLYING)
    clock.advance(1.0)
    assert watch.hosts == ["host-b"] and watch.paths == ("config.network.dnsConfig", "parent")


def _ntp(*servers: str) -> Any:
    from pyVmomi import vim

    return vim.host.DateTimeInfo(ntpConfig=vim.host.NtpConfig(server=list(servers)))


def test_pushed_values_that_match_answer_without_reading_the_host() -> None:
    from stateless.daemon.drift import pushed_compliant
    from stateless.model.config import HostConfig

    desired = HostConfig.from_settings({"ntp.servers": ("a", "b"), "dns.servers": ("10.0.0.53",)})
    assert pushed_compliant(desired, {"config.dateTimeInfo": _ntp("a", "b")})
    assert not pushed_compliant(desired, {"config.dateTimeInfo": _ntp("a")})
    # Nothing the desired configuration names was pushed, or a kind only partly: read.
    assert not pushed_compliant(desired, {"config.option": []})
    tagged = HostConfig.from_settings({"vswitch.vSwitch1.uplinks": ("vmnic1",),
                                       "portgroup.vMotion.vswitch": "vSwitch1",
                                       "vmknic.vMotion.ip": "dhcp",
                                       "vmknic.vMotion.services": ("vmotion",)})
    assert not pushed_compliant(tagged, {"config.virtualNicManagerInfo": None})


def test_a_change_whose_pushed_values_match_is_not_read_again() -> None:
    d, engine, _watch, _clock = drift([Updates(resubscribed=True)])
    engine.resolver.settings = {A: {"ntp.servers": ("10.0.0.1",)}}
    engine.diffs[A] = [KeyDiff("ntp.servers", ("10.0.0.1",), ("192.0.2.1",))]
    d.start()
    d.compare(A, ("config.dateTimeInfo",), {"config.dateTimeInfo": _ntp("10.0.0.1")})
    assert d.compared == 1 and engine.checked == [] and engine.drifted == []
    d.compare(A, ("config.dateTimeInfo",), {"config.dateTimeInfo": _ntp("192.0.2.1")})
    assert d.compared == 2 and engine.checked == [A]  # only the change that differs is read
    assert engine.drifted == [(A, "differs in vCenter: ntp.servers")]


def test_the_long_wait_runs_apart_from_the_calls_that_change_the_watch() -> None:
    """The wait holds its thread for up to max_wait seconds: it must not take a worker the
    applies share, nor wait behind them; setting hosts and closing must not wait behind it."""
    clock, engine, watch = Clock(), FakeEngine(), FakeWatch([Updates(resubscribed=True)])
    ran: list[tuple[str, str]] = []

    def runner(where: str) -> Any:
        def run(fn: Any, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
            ran.append((where, fn.__name__))
            return defer.maybeDeferred(fn, *args, **kwargs)
        return run

    d = DriftWatch(engine, FakeVCenters(watch), clock, runner("shared"),  # type: ignore[arg-type]
                   server="sd1", mode="report", rng=random.Random(1), waiting=runner("own"))
    d.start()
    d.stop()
    assert ("own", "wait") in ran and ("shared", "wait") not in ran
    assert ("shared", "set_hosts") in ran and ("shared", "close") in ran
    assert not any(where == "own" and name != "wait" for where, name in ran)

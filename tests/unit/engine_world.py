"""A small world for the engine's unit tests: a fake clock, directory, vCenter and thread pool.

The fakes implement the engine's Protocols (`stateless.daemon.ports`) and nothing more; the
directory view the engine resolves from is a real `Snapshot` that tests change with
`World.change`, as the change feed would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
from prometheus_client import CollectorRegistry
from twisted.internet import defer, task

from stateless.daemon.config import DaemonConfig
from stateless.daemon.engine import Engine
from stateless.errors import NotFoundError
from stateless.model import Container, HostIdentity, HostRecord, HostState, Link, Policy, Snapshot
from stateless.model.birth import BirthMessage
from stateless.model.inventory import Allocation, IpPool, Server, Site, VCenter
from stateless.model.security import AdmissionMode, PinnedIdentity
from stateless.plan import KeyDiff, Plan
from stateless.prepare import Target
from stateless.vcenter.apply import ApplyResult
from stateless.vcenter.converge import Converged

ME = "sd1"


def uuid_of(n: int) -> str:
    return f"4c4c4544-0000-4000-8000-{n:012x}"


def estate(hosts: Sequence[HostRecord] = (), *, ntp: str = "10.0.0.1", pool: bool = False,
           vcenters: Sequence[str] = ("vc1",),
           admission: AdmissionMode = AdmissionMode.OPEN) -> Snapshot:
    """/DC/C, a cluster that links one policy; the hosts given; one vCenter."""
    settings: dict[str, Any] = {"ntp.servers": (ntp,)}
    if pool:
        settings.update({"vswitch.vSwitch0.uplinks": ("vmnic0",), "portgroup.vMotion.vswitch": "vSwitch0",
                         "vmknic.vMotion.ip": "pool:vmo"})
    return Snapshot(
        containers={"/": Container("/", "root"), "/DC": Container("/DC", "datacenter"),
                    "/DC/C": Container("/DC/C", "cluster", links=[Link("base")])},
        policies={"base": Policy("base", settings, dn="cn=base")},
        pools={"vmo": IpPool("vmo", "10.0.20.10", "10.0.20.12", "255.255.255.0")} if pool else {},
        vcenters={n: VCenter(n, f"http://{n}/sdk", "u") for n in vcenters},
        servers={ME: Server(ME, "default", "http://127.0.0.1:1"),
                 "sd2": Server("sd2", "default", "http://127.0.0.2:8480")},
        hosts={h.uuid: h for h in hosts},
        sites={"default": Site("default", admission=admission)})


def record(n: int, *, owner: str = ME, state: HostState | None = HostState.PENDING,
           applied: str = "", **kw: Any) -> HostRecord:
    ident = HostIdentity(uuid_of(n), hostname=f"esx{n}", domain="example.com")
    kw.setdefault("location", "/DC/C")
    return HostRecord(uuid_of(n), identity=ident, owner=owner, state=state,
                      applied_digest=applied, **kw)


def message(n: int) -> BirthMessage:
    return BirthMessage(HostIdentity(uuid_of(n), hostname=f"esx{n}", domain="example.com"))


class Blocking:
    """The engine's thread pool: runs calls at once, or holds them until `release()`."""

    def __init__(self) -> None:
        self.hold = False
        self.held: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any],
                              defer.Deferred[Any]]] = []

    def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        if not self.hold:
            return defer.maybeDeferred(fn, *args, **kwargs)
        d: defer.Deferred[Any] = defer.Deferred()
        self.held.append((fn, args, kwargs, d))
        return d

    def release(self, count: int | None = None) -> None:
        """Run `count` held calls (all by default), oldest first."""
        todo, self.held = self.held[:count], self.held[len(self.held[:count]):]
        for fn, args, kwargs, d in todo:
            defer.maybeDeferred(fn, *args, **kwargs).chainDeferred(d)


class Directory:
    """Host-entry writes: recorded; `fail` raises an exception instead, while it is set."""

    def __init__(self) -> None:
        self.fail: BaseException | None = None
        self.births: list[str] = []
        self.states: dict[str, tuple[HostState, str, str | None]] = {}
        self.writes: list[tuple[str, HostState]] = []
        self.owners: dict[str, str] = {}
        self.allocated: list[tuple[str, str]] = []
        self.pins: dict[str, PinnedIdentity] = {}
        self.quarantined: dict[str, tuple[BirthMessage, str]] = {}

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def record_birth(self, identity: HostIdentity, when: datetime, owner: str, *,
                     known: bool = True, thumbprint: str | None = None,
                     image: str | None = None, pin: PinnedIdentity | None = None) -> bool:
        self._check()
        added = identity.uuid not in self.states and not known  # the real one: an add
        self.births.append(identity.uuid)
        self.owners[identity.uuid] = owner
        self.states[identity.uuid] = (HostState.PENDING, "birth accepted", None)
        if added and pin is not None:
            self.pins[identity.uuid] = pin
            return True
        return False

    def pin_identity(self, uuid: str, pinned: PinnedIdentity) -> bool:
        self._check()
        if uuid in self.pins:
            return False
        self.pins[uuid] = pinned
        return True

    def record_quarantine(self, message: BirthMessage, when: datetime, owner: str, reason: str,
                          *, known: bool) -> None:
        self._check()
        self.quarantined[message.identity.uuid] = (message, reason)
        self.states[message.identity.uuid] = (HostState.QUARANTINED, reason, None)

    def set_host_state(self, uuid: str, state: HostState | str, reason: str = "", *,
                       applied_digest: str | None = None) -> None:
        self._check()
        before = self.states.get(uuid, (HostState.PENDING, "", None))[2]
        self.states[uuid] = (HostState(state), reason,
                             applied_digest if applied_digest is not None else before)
        self.writes.append((uuid, HostState(state)))

    def allocate_all(self, uuid: str, wanted: Sequence[tuple[str, str]],
                     pools: Mapping[str, IpPool] | None = None) -> list[Allocation]:
        self._check()
        out = []
        for item, pool in wanted:
            self.allocated.append((uuid, pool))
            out.append(Allocation(item, pool, f"10.0.20.{9 + len(self.allocated)}"))
        return out

    def claim_owner(self, uuid: str, owner: str) -> str:
        self._check()
        return self.owners.setdefault(uuid, owner)


class VCenters:
    """converge/check: succeed, or raise what `faults` holds next (one per call)."""

    def __init__(self) -> None:
        self.faults: list[BaseException] = []
        self.applied: list[tuple[str, Target, bool]] = []
        self.drift: dict[str, list[KeyDiff] | None] = {}
        self.checked: list[str] = []

    def converge(self, vcenter: str, target: Target, *, place: bool,
                 thumbprint: str | None) -> Converged:
        if self.faults:
            raise self.faults.pop(0)
        self.applied.append((vcenter, target, place))
        return Converged(ApplyResult(target.name, Plan(), 3, True), 5, place)

    def check(self, vcenter: str, target: Target) -> list[KeyDiff] | None:
        self.checked.append(target.host.uuid)
        if self.faults:
            raise self.faults.pop(0)
        return self.drift.get(target.host.uuid, [])


@attrs.define
class World:
    engine: Engine
    clock: task.Clock
    blocking: Blocking
    directory: Directory
    vcenters: VCenters

    def change(self, snapshot: Snapshot) -> None:
        """A new directory view, as the change feed delivers it."""
        self.engine.set_snapshot(snapshot)

    def settle(self, seconds: float = 0.0) -> None:
        """Let the reactor turn (and `seconds` pass)."""
        self.clock.advance(0)
        if seconds:
            self.clock.advance(seconds)
        self.clock.advance(0)

    def doc(self, n: int) -> dict[str, Any]:
        return self.engine.host(uuid_of(n))

    def born(self, n: int, snapshot: Snapshot | None = None) -> Any:
        """A birth, answered and shown by the change feed; the outcome comes back."""
        got: list[Any] = []
        self.engine.birth(message(n), "127.0.0.1").addBoth(got.append)
        base = snapshot or self.engine.snapshot
        host = record(n)
        self.change(attrs.evolve(base, hosts={**base.hosts, host.uuid: host}))
        self.settle()
        return got[0] if got else None

    def apply_outcome_state(self, n: int) -> str:
        return str(self.doc(n)["state"])


def world(tmp_path: Path, snapshot: Snapshot | None = None, *, ready: bool = True,
          seed: int = 1, **config: Any) -> World:
    clock = task.Clock()
    blocking, directory, vcenters = Blocking(), Directory(), VCenters()
    engine = Engine(DaemonConfig(tmp_path, name=ME, **config), clock, blocking, directory,
                    vcenters, CollectorRegistry(), rng=random.Random(seed))
    engine.set_snapshot(snapshot or estate())
    engine.directory_back()
    if ready:
        engine.resume()
    return World(engine, clock, blocking, directory, vcenters)


def metric(w: World, name: str, **labels: str) -> float:
    """One sample of the engine's own registry (what /metrics would show)."""
    for family in w.engine.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


__all__ = ["ME", "NotFoundError", "World", "estate", "message", "metric", "record", "uuid_of",
           "world"]

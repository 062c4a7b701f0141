"""Leases, fencing, takeover and served vCenters in the engine, on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from twisted.internet import task
from twisted.logger import capturedLogs

from stateless.daemon.leases import Lease
from stateless.daemon.loops import Periodic
from stateless.daemon.served import served, vcenter_for
from stateless.daemon.takeover import Takeover, located, lost, start_ownership
from stateless.errors import DirectoryError, ValidationError
from stateless.model import Container, HostState
from stateless.model.inventory import Server
from tests.unit.engine_world import ME, Blocking, World, estate, record, uuid_of, world

T0 = 1_800_000_000.0


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Renewals:
    """`Directory.renew_lease`: records expiries; raises `fail` while it is set."""

    def __init__(self) -> None:
        self.fail: BaseException | None = None
        self.expiries: list[datetime] = []

    def __call__(self, server: str, expiry: datetime) -> None:
        if self.fail is not None:
            raise self.fail
        self.expiries.append(expiry)


def clock_at(t: float = T0) -> task.Clock:
    clock = task.Clock()
    clock.advance(t)
    return clock


def test_the_lease_is_renewed_every_third_and_fences_when_it_runs_out() -> None:
    clock, renew = clock_at(), Renewals()
    changes: list[bool] = []
    lease = Lease(clock, Blocking(), renew, ME, 30.0, on_change=changes.append)
    assert not lease.live
    lease.start()
    assert lease.live and renew.expiries == [at(T0 + 30)]
    clock.advance(10)
    assert renew.expiries[-1] == at(T0 + 40)
    renew.fail = DirectoryError("directory down")
    with capturedLogs() as events:
        clock.pump([10.0, 10.0, 9.9])  # renewals at +20, +30 fail; the lease runs to +40
        assert lease.live and not lease.fenced
        clock.advance(0.1)
    assert not lease.live and lease.fenced and changes == [True, False]
    assert [e for e in events if e.get("event") == "fenced"]
    assert "directory down" in lease.document()["reason"]
    renew.fail = None
    clock.advance(10)  # the next renewal succeeds
    assert lease.live and not lease.fenced and changes == [True, False, True]
    lease.stop()
    count = len(renew.expiries)
    clock.advance(100)
    assert len(renew.expiries) == count


def test_a_renewal_that_hangs_does_not_extend_the_lease() -> None:
    clock, renew, blocking = clock_at(), Renewals(), Blocking()
    lease = Lease(clock, blocking, renew, ME, 9.0)
    lease.start()
    blocking.hold = True
    clock.advance(3)  # a renewal, sent and not answered
    clock.advance(6)
    assert lease.fenced  # fenced at +9 though a renewal is in flight
    blocking.release()  # sent at +3: holds until +12
    assert lease.live and not lease.fenced


def test_a_fenced_engine_starts_no_apply_until_the_lease_is_back(tmp_path: Path) -> None:
    w = world(tmp_path, estate([record(1, state=HostState.PENDING)]), ready=False)
    renew = Renewals()
    lease = Lease(w.clock, w.blocking, renew, ME, 3.0, on_change=w.engine.lease_changed)
    w.engine.lease = lease
    w.engine.resume()
    w.settle()
    assert not w.vcenters.applied  # no lease yet
    lease.start()
    w.settle()
    assert len(w.vcenters.applied) == 1
    renew.fail = DirectoryError("down")
    w.settle(3.0)
    assert lease.fenced
    health = w.engine.health()
    assert not health["ok"] and health["reason"].startswith("fenced") and health["lease"]["fenced"]
    w.engine.reapply(uuid_of(1))
    w.settle(0.5)
    assert len(w.vcenters.applied) == 1
    renew.fail = None
    w.settle(1.0)
    assert len(w.vcenters.applied) == 2 and w.engine.health()["ok"]


def two_vcenters() -> tuple[dict[str, Container], list[Server]]:
    containers = {"/": Container("/", "root"), "/DC": Container("/DC", "datacenter", vcenter="vc1"),
                  "/DC/C": Container("/DC/C", "cluster"),
                  "/DC2": Container("/DC2", "datacenter", vcenter="vc2"),
                  "/DC2/C": Container("/DC2/C", "cluster")}
    return containers, [Server(ME, "default", "http://a", ("vc1",)),
                        Server("sd2", "default", "http://b", ("vc2",))]


def test_a_host_of_a_vcenter_the_server_does_not_serve_fails_with_who_serves_it(
        tmp_path: Path) -> None:
    containers, servers = two_vcenters()
    snap = estate([record(1), record(2, location="/DC2/C")], vcenters=("vc1", "vc2"))
    snap = attrs.evolve(snap, containers={**snap.containers, **containers},
                        servers={s.name: s for s in servers})
    w = world(tmp_path, snap)
    w.settle()
    assert [(vc, t.host.uuid) for vc, t, _ in w.vcenters.applied] == [("vc1", uuid_of(1))]
    assert w.doc(2)["state"] == "failed"
    assert "vCenter vc2, which server sd1 does not serve (served by sd2)" in w.doc(2)["reason"]
    lone = attrs.evolve(snap, servers={ME: servers[0]})
    with pytest.raises(ValidationError, match="no server serves it"):
        vcenter_for(lone, ME, "/DC2/C", at(0))
    assert served(lone, ME, at(0)) == {"vc1"}


def test_an_estate_naming_no_vcenter_applies_through_the_only_one(tmp_path: Path) -> None:
    snap = estate([record(1)])
    assert vcenter_for(snap, ME, "/DC/C", at(0)) == "vc1" and served(snap, ME, at(0)) == {"vc1"}


def takeover_world(tmp_path: Path, expiry: float
                   ) -> tuple[World, Takeover, list[tuple[str, str, str]], Lease]:
    containers, servers = two_vcenters()
    dead = Server("sd3", "default", "http://c", ("vc1",), lease_expiry=at(expiry))
    snap = estate([record(1, owner="sd3", state=HostState.COMPLIANT),
                   record(2, owner="sd3", state=HostState.APPLYING, location="/DC2/C")],
                  vcenters=("vc1", "vc2"))
    snap = attrs.evolve(snap, containers={**snap.containers, **containers},
                        servers={s.name: s for s in [*servers, dead]})
    w = world(tmp_path, snap, ready=False)
    w.clock.advance(T0)
    calls: list[tuple[str, str, str]] = []

    def take_over(uuid: str, old: str, new: str) -> str:
        calls.append((uuid, old, new))
        return new

    lease = Lease(w.clock, w.blocking, Renewals(), ME, 30.0)
    w.engine.lease = lease
    w.engine.resume()
    takeover = Takeover(w.clock, w.blocking, take_over, lease, lambda: w.engine.snapshot,
                        lambda s, now: located(s, w.engine.location, now), w.engine.taken)
    return w, takeover, calls, lease


def test_hosts_of_a_dead_server_of_the_same_vcenter_are_taken_over(tmp_path: Path) -> None:
    w, takeover, calls, lease = takeover_world(tmp_path, T0 + 5)
    takeover.run()
    assert calls == []  # no lease of its own: takes nothing
    lease.start()
    takeover.run()
    assert calls == []  # sd3's lease runs until +5
    w.clock.advance(6)
    with capturedLogs() as events:
        takeover.run()
    assert calls == [(uuid_of(1), "sd3", ME)]  # host 2 is of vc2, which sd1 does not serve
    assert [e["host"] for e in events if e.get("event") == "host_taken"] == [uuid_of(1)]
    assert uuid_of(1) in w.engine.owned


def test_a_host_taken_by_another_live_server_is_let_go(tmp_path: Path) -> None:
    w = world(tmp_path, estate([record(1, state=HostState.COMPLIANT)]))
    assert uuid_of(1) in w.engine.owned
    snap = w.engine.snapshot
    sd2 = Server("sd2", "default", "http://b", lease_expiry=at(T0 + 100))
    host = attrs.evolve(snap.hosts[uuid_of(1)], owner="sd2")
    with capturedLogs() as events:
        w.change(attrs.evolve(snap, hosts={host.uuid: host}, servers={**snap.servers, "sd2": sd2}))
    assert uuid_of(1) not in w.engine.owned
    assert [e for e in events if e.get("event") == "host_taken"]
    assert lost(snap, ME, {uuid_of(1)}, at(T0)) == {}


def test_the_takeover_loop_survives_failures_and_starts_with_the_lease(tmp_path: Path) -> None:
    w, _takeover, _calls, _lease = takeover_world(tmp_path, T0 + 5)
    attempts: list[str] = []

    class Dir:
        def renew_lease(self, server: str, expiry: datetime) -> None:
            pass

        def take_over(self, uuid: str, old: str, new: str) -> str:
            attempts.append(uuid)
            if len(attempts) == 1:
                raise DirectoryError("replica down")
            return new

    got: list[tuple[Lease, Periodic]] = []
    w.clock.advance(6)
    started = start_ownership(w.clock, w.blocking, Dir(), w.engine, ME, 30.0)
    started.addCallback(got.append)
    assert got and isinstance(got[0], tuple)
    w.clock.advance(10)
    assert attempts == [uuid_of(1), uuid_of(1)]  # failed at once, taken at the next pass
    assert uuid_of(1) in w.engine.owned
    lease, loop = got[0]
    loop.stop()
    lease.stop()

"""The engine against fakes of the directory, vCenter and thread pool, on a fake clock.

Births, retries of transient failures, host-specific failures that wait for a change, state
writes that land late, exact admission, directory health, drift and the admin's re-apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from twisted.logger import capturedLogs

from stateless.daemon.births import FEED_TIMEOUT
from stateless.daemon.outcomes import Accepted, Busy, OwnedElsewhere, Reapplying
from stateless.errors import DirectoryError, NotFoundError, TransientVCenterError
from stateless.model import Container, HostIdentity, Link
from stateless.model.inventory import HostState, IpPool
from stateless.plan import KeyDiff
from tests.unit.engine_world import ME, estate, message, metric, record, uuid_of, world


def outcome(d: Any) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


def test_a_birth_is_applied_once_the_feed_shows_it(tmp_path: Path) -> None:
    w = world(tmp_path)
    got = outcome(w.engine.birth(message(1), "127.0.0.1"))
    assert got == [Accepted(uuid_of(1))] and w.directory.births == [uuid_of(1)]
    w.settle(1.0)
    assert w.vcenters.applied == []  # the feed has not shown the entry yet
    assert w.doc(1)["state"] == "pending"
    w.change(estate([record(1)]))
    w.settle()
    doc = w.doc(1)
    assert (doc["state"], doc["attempts"], doc["next_try"]) == ("compliant", 0, None)
    assert w.vcenters.applied[0][2] is True  # a born host is placed without looking first
    assert w.directory.states[uuid_of(1)] == (HostState.COMPLIANT, "", doc["applied_digest"])


def test_a_birth_the_feed_does_not_show_is_applied_after_the_timeout(tmp_path: Path) -> None:
    stale = attrs.evolve(record(1), identity=HostIdentity(uuid_of(1), hostname="old"))
    w = world(tmp_path, estate([stale]))
    w.engine.birth(message(1), "")
    w.settle(FEED_TIMEOUT - 0.1)
    assert w.vcenters.applied == []
    with capturedLogs() as events:
        w.settle(0.2)
    assert any("not seen in the change feed" in e.get("log_format", "") for e in events)
    assert w.doc(1)["state"] == "compliant"  # with what the directory showed


def test_a_birth_missing_from_the_view_is_retried_not_forgotten(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.engine.birth(message(1), "")
    w.settle(FEED_TIMEOUT)
    doc = w.doc(1)
    assert doc["state"] == "failed" and doc["next_try"] is not None and doc["attempts"] == 1
    w.change(estate([record(1)]))  # the feed catches up
    w.settle(1.0)
    assert w.doc(1)["state"] == "compliant"


def test_transient_faults_are_retried_with_capped_backoff(tmp_path: Path) -> None:
    w = world(tmp_path, retry_cap=2.0)
    w.vcenters.faults = [TransientVCenterError(f"vCenter vc1: fault {n}") for n in range(8)]
    w.born(1)
    for attempt in range(1, 9):
        doc = w.doc(1)
        assert (doc["state"], doc["attempts"]) == ("failed", attempt)
        assert f"fault {attempt - 1}" in doc["reason"]
        wait = w.engine.states.get(uuid_of(1)).next_try - w.clock.seconds()  # type: ignore[operator,union-attr]
        assert 0 <= wait <= min(2.0, 0.5 * 2 ** (attempt - 1))
        assert w.directory.states[uuid_of(1)][0] == HostState.FAILED
        w.settle(wait)
    doc = w.doc(1)
    assert (doc["state"], doc["attempts"], doc["next_try"]) == ("compliant", 0, None)
    assert metric(w, "stateless_apply_retries_total") == 8
    with capturedLogs() as events:  # every failure, retry and apply is logged, with its fields
        w.vcenters.faults = [TransientVCenterError("vCenter vc1: busy")]
        w.engine.reapply(uuid_of(1))
        w.settle()
        w.settle(w.engine.states.get(uuid_of(1)).next_try - w.clock.seconds())  # type: ignore[operator,union-attr]
    audit = [e for e in events if e.get("host") == uuid_of(1)
             and e.get("event") in ("failure", "retry", "apply")]
    assert [e["event"] for e in audit] == ["failure", "retry", "apply"]
    failure, retry, apply = audit
    assert (failure["reason"], failure["cause"], failure["permanent"]) == \
        ("vCenter vc1: busy", "vcenter", False)
    assert retry["attempt"] == 2 and retry["next_try"].endswith("Z")
    assert apply["calls"] == 5 and apply["vcenter"] == "vc1"  # compliant, in 5 calls
    assert metric(w, "stateless_applies_total", result="failed") == 9


def test_a_bug_is_logged_with_its_traceback_and_retried(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.vcenters.faults = [KeyError("a bug")]
    with capturedLogs() as events:
        w.born(1)
    assert [e for e in events if e.get("log_failure") is not None]
    doc = w.doc(1)
    assert doc["state"] == "failed" and "internal error" in doc["reason"] and doc["next_try"]
    w.settle(0.5)
    assert w.doc(1)["state"] == "compliant"


def test_directory_errors_are_transient_and_retried_when_it_is_back(tmp_path: Path) -> None:
    w = world(tmp_path, estate(pool=True), retry_cap=300.0)
    w.born(1)  # allocation, then apply
    assert w.doc(1)["state"] == "compliant" and w.directory.allocated == [(uuid_of(1), "vmo")]
    w.engine.birth(message(2), "")
    w.directory.fail = DirectoryError("cannot talk to the directory")
    w.change(estate([record(1), record(2)], pool=True))
    w.settle()
    doc = w.doc(2)
    assert doc["state"] == "failed" and "cannot talk" in doc["reason"] and doc["next_try"]
    w.engine.directory_lost("ldap://127.0.0.1:1: connection closed")
    health = w.engine.health()
    assert (health["ok"], health["directory"]) == (False, "unreachable") and health["reason"]
    assert metric(w, "stateless_directory_up") == 0
    w.directory.fail = None
    w.engine.directory_back()  # no waiting for the backoff
    w.settle()
    assert w.doc(2)["state"] == "compliant" and w.engine.health()["ok"] is True
    assert w.directory.states[uuid_of(2)][0] == HostState.COMPLIANT


def test_a_host_specific_failure_waits_for_a_change(tmp_path: Path) -> None:
    lost = attrs.evolve(record(1), location="/DC/Nowhere")
    w = world(tmp_path, estate([lost]))
    w.engine.birth(message(1), "")
    w.settle()
    doc = w.doc(1)
    assert (doc["state"], doc["next_try"], doc["attempts"]) == ("failed", None, 1)
    assert "nothing applied" in doc["reason"] and "/DC/Nowhere" in doc["reason"]
    w.settle(3600.0)
    assert w.doc(1)["attempts"] == 1  # an hour later: not tried again
    w.change(estate([lost], ntp="10.9.9.9"))  # a policy linked where it is not
    w.settle(3600.0)
    assert w.doc(1)["attempts"] == 1
    w.change(estate([record(1)], ntp="10.9.9.9"))
    w.settle()
    assert w.doc(1)["state"] == "compliant"


def test_a_full_pool_is_tried_again_once_it_is_widened(tmp_path: Path) -> None:
    from stateless.policy.pools import PoolExhaustedError

    snap = estate([record(1)], pool=True)
    w = world(tmp_path, snap)  # the host was left pending: taken back at once
    w.directory.fail = PoolExhaustedError(snap.pools["vmo"], 3)  # what allocation raises
    w.settle(600.0)
    assert (w.doc(1)["state"], w.doc(1)["next_try"], w.doc(1)["attempts"]) == ("failed", None, 1)
    w.directory.fail = None
    wider = IpPool("vmo", "10.0.20.10", "10.0.20.99", "255.255.255.0")
    w.change(attrs.evolve(snap, pools={"vmo": wider}))
    w.settle()
    assert w.doc(1)["state"] == "compliant"


def test_a_deleted_host_is_no_longer_tracked(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.vcenters.faults = [TransientVCenterError("busy")]
    w.born(1)
    assert w.doc(1)["state"] == "failed"
    w.change(estate([]))
    with pytest.raises(NotFoundError):
        w.doc(1)
    w.settle(3600.0)
    assert w.vcenters.applied == [] and w.engine.queue.waiting == 0


def test_state_writes_land_after_the_directory_is_back(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.change(estate([record(1)]))
    w.engine.birth(message(1), "")
    w.directory.fail = DirectoryError("cannot talk to the directory")
    w.settle()
    assert w.doc(1)["state"] == "compliant"  # in vCenter it is
    assert w.directory.states[uuid_of(1)][0] == HostState.PENDING  # the directory lags...
    w.directory.fail = None
    w.engine.directory_lost("gone")
    w.engine.directory_back()
    assert w.directory.states[uuid_of(1)] == (HostState.COMPLIANT, "", w.doc(1)["applied_digest"])


def test_admission_counts_births_whose_write_is_in_flight(tmp_path: Path) -> None:
    w = world(tmp_path, max_pending=5)
    w.blocking.hold = True
    answers = [outcome(w.engine.birth(message(n), "")) for n in range(40)]
    busy = [a for a in answers if a and isinstance(a[0], Busy)]
    assert len(busy) == 35 and all(a[0].retry_after >= 1 for a in busy)
    w.blocking.release()
    assert sum(1 for a in answers if a and isinstance(a[0], Accepted)) == 5
    # A birth whose write fails gives its slot back (the API answers 503).
    w2 = world(tmp_path, max_pending=1)
    w2.directory.fail = DirectoryError("cannot talk to the directory")
    failed = outcome(w2.engine.birth(message(1), ""))
    assert failed[0].check(DirectoryError)
    w2.directory.fail = None
    assert outcome(w2.engine.birth(message(2), "")) == [Accepted(uuid_of(2))]


def test_health(tmp_path: Path) -> None:
    w = world(tmp_path, ready=False)
    assert (w.engine.health()["ok"], w.engine.health()["directory"]) == (False, "loading")
    w.engine.resume()
    health = w.engine.health()
    assert (health["ok"], health["directory"], health["reason"]) == (True, "synchronized", "")
    assert set(health) >= {"name", "site", "hosts", "queue", "vcenters"}


def test_directory_edits_reapply_in_enforce_mode(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.born(1)
    assert len(w.vcenters.applied) == 1
    w.change(estate([record(1)], ntp="10.0.0.2"))
    w.settle()
    assert len(w.vcenters.applied) == 2 and w.vcenters.applied[1][2] is False
    assert w.vcenters.applied[1][1].desired.ntp.servers == ("10.0.0.2",)
    assert metric(w, "stateless_drift_total", source="directory") == 1


def test_directory_edits_mark_drift_in_report_mode(tmp_path: Path) -> None:
    w = world(tmp_path, mode="report")
    w.born(1)
    w.change(estate([record(1)], ntp="10.0.0.2"))
    w.settle()
    assert len(w.vcenters.applied) == 1 and w.doc(1)["state"] == "drifted"
    w.vcenters.drift[uuid_of(1)] = [KeyDiff("ntp.servers", ("10.0.0.2",), ("10.0.0.1",))]
    w.engine.scan()  # vCenter differs from the new configuration, of course
    assert "directory" in w.doc(1)["reason"] and len(w.vcenters.applied) == 1
    w.vcenters.drift.clear()
    w.change(estate([record(1)], ntp="10.0.0.1"))  # reverted: the scan finds it compliant
    w.engine.scan()
    assert w.doc(1)["state"] == "compliant"


def test_a_change_during_an_apply_applies_once_more(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.change(estate([record(1)]))
    w.engine.birth(message(1), "")
    w.blocking.hold = True
    w.settle()  # the apply waits in vCenter
    w.change(estate([record(1)], ntp="10.0.0.2"))
    w.blocking.hold = False
    w.blocking.release()
    w.settle()
    assert [a[1].desired.ntp.servers for a in w.vcenters.applied] == [("10.0.0.1",), ("10.0.0.2",)]
    assert w.doc(1)["state"] == "compliant"


def test_reapply_of_an_owned_host(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.born(1)
    before = w.doc(1)["since"]
    w.clock.advance(5)
    got = outcome(w.engine.reapply(uuid_of(1)))
    assert got == [Reapplying(uuid_of(1))]
    assert w.doc(1)["state"] == "pending"  # from the 202 on, until the apply settles
    waited = outcome(w.engine.settled(uuid_of(1), 60))
    w.settle()
    assert [d["state"] for d in waited] == ["compliant"] and waited[0]["since"] != before
    assert len(w.vcenters.applied) == 2 and w.vcenters.applied[1][2] is False


def test_reapply_while_running_reports_the_later_outcome(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.change(estate([record(1)]))
    w.engine.birth(message(1), "")
    w.blocking.hold = True
    w.settle()
    w.engine.reapply(uuid_of(1))
    waited = outcome(w.engine.settled(uuid_of(1), 60))
    w.blocking.release()
    w.settle()
    assert waited == [] and w.doc(1)["state"] in ("pending", "applying")
    w.blocking.hold = False
    w.blocking.release()
    w.settle()
    assert [d["state"] for d in waited] == ["compliant"] and len(w.vcenters.applied) == 2


def test_reapply_takes_an_unowned_host_and_refers_to_another_owner(tmp_path: Path) -> None:
    w = world(tmp_path, estate([record(1, owner="", state=None), record(2, owner="sd2"),
                                record(3, owner="gone")]))
    assert outcome(w.engine.reapply(uuid_of(1))) == [Reapplying(uuid_of(1))]
    assert w.directory.owners[uuid_of(1)] == ME
    w.settle()
    assert w.doc(1)["state"] == "compliant"
    assert outcome(w.engine.reapply(uuid_of(2))) == [OwnedElsewhere("sd2", "http://127.0.0.2:8480")]
    assert outcome(w.engine.reapply(uuid_of(3))) == [OwnedElsewhere("gone", None)]
    w.directory.owners[uuid_of(4)] = "sd2"  # another server claimed it first
    w.change(estate([record(4, owner="", state=None)]))
    assert outcome(w.engine.reapply(uuid_of(4))) == [OwnedElsewhere("sd2", "http://127.0.0.2:8480")]
    with pytest.raises(NotFoundError):
        w.engine.reapply(uuid_of(99))


def test_resume_takes_back_unfinished_and_failed_hosts(tmp_path: Path) -> None:
    hosts = [record(1, state=HostState.APPLYING), record(2, state=HostState.FAILED),
             record(3, state=HostState.COMPLIANT), record(4, owner="sd2")]
    w = world(tmp_path, estate(hosts))
    w.settle()
    applied = {a[1].host.uuid: a[2] for a in w.vcenters.applied}
    # Left applying: placed again (placement finds what a killed apply left); failed: retried;
    # compliant with an applied digest that no longer matches: applied again; others' hosts: not.
    assert applied == {uuid_of(1): True, uuid_of(2): False, uuid_of(3): False}


def test_decommission_is_refused_for_other_owners_unknown_hosts_and_hosts_being_applied(
        tmp_path: Path) -> None:
    from stateless.errors import ConflictError

    w = world(tmp_path, estate([record(1), record(2, owner="sd2")]))
    assert outcome(w.engine.decommission(uuid_of(2), False)) == [
        OwnedElsewhere("sd2", "http://127.0.0.2:8480")]
    with pytest.raises(NotFoundError):
        w.engine.decommission(uuid_of(99), False)
    w.engine.reapply(uuid_of(1))  # pending from now until the apply settles
    with pytest.raises(ConflictError, match="being applied"):
        w.engine.decommission(uuid_of(1), False)


def test_a_host_being_decommissioned_is_not_taken_back_by_a_new_view(tmp_path: Path) -> None:
    w = world(tmp_path, estate([record(1, state=HostState.COMPLIANT)]))
    w.blocking.hold = True
    w.engine.decommission(uuid_of(1), False)
    assert uuid_of(1) not in w.engine.owned
    w.change(estate([record(1, state=HostState.COMPLIANT, allocations=())]))  # addresses freed
    w.settle()
    assert uuid_of(1) not in w.engine.owned and not w.vcenters.applied
    w.change(estate([]))  # the entry is gone: nothing is remembered of it
    assert not w.engine._leaving


def test_a_birth_the_feed_shows_before_its_write_returns_is_applied_once(tmp_path: Path) -> None:
    """The change feed may deliver the new entry (owner: this server) before the thread's
    answer to the write reaches the engine: that is this birth, not a host handed over."""
    w = world(tmp_path, estate())
    w.blocking.hold = True
    with capturedLogs() as events:
        outcome: list[Any] = []
        w.engine.birth(message(1), "127.0.0.1").addBoth(outcome.append)
        w.change(attrs.evolve(w.engine.snapshot, hosts={uuid_of(1): record(1)}))
        w.blocking.hold = False
        w.blocking.release()
        w.settle(1)
    assert outcome == [Accepted(uuid_of(1))]
    assert len(w.vcenters.applied) == 1 and w.doc(1)["state"] == "compliant"
    assert not [e for e in events if e.get("event") == "host_taken"]


def test_a_host_found_elsewhere_in_vcenter_is_applied_again(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.born(1)
    w.vcenters.drift[uuid_of(1)] = [KeyDiff("location", "/DC/C", "/DC/Elsewhere")]
    w.engine.scan()
    w.settle()
    # converge sees it elsewhere and places it again: the engine forces nothing.
    assert len(w.vcenters.applied) == 2 and w.vcenters.applied[1][2] is False
    assert w.doc(1)["state"] == "compliant"


def test_a_host_found_elsewhere_in_vcenter_is_drifted_in_report_mode(tmp_path: Path) -> None:
    w = world(tmp_path, mode="report")
    w.born(1)
    w.vcenters.drift[uuid_of(1)] = [KeyDiff("location", "/DC/C", "/DC/Elsewhere")]
    w.engine.scan()
    w.settle()
    assert len(w.vcenters.applied) == 1
    assert (w.doc(1)["state"], w.doc(1)["reason"]) == ("drifted", "differs in vCenter: location")


def test_a_location_changed_in_the_directory_is_applied_at_once(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.born(1)
    snap = estate([record(1, location="/DC/D")])
    snap = attrs.evolve(snap, containers={  # a sibling cluster: the same effective settings
        **snap.containers, "/DC/D": Container("/DC/D", "cluster", links=[Link("base")])})
    w.change(snap)
    w.settle()
    assert [a[1].location for a in w.vcenters.applied] == ["/DC/C", "/DC/D"]
    assert w.vcenters.applied[0][1].digest == w.vcenters.applied[1][1].digest

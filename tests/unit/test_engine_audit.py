"""The audit log and the host event history: what the engine tells about each host."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from twisted.internet import task
from twisted.logger import LogLevel, capturedLogs

from stateless.daemon.audit import Audit
from stateless.daemon.events import HostEvents
from stateless.daemon.logbridge import TwistedHandler, install, twisted_level
from stateless.errors import TransientVCenterError
from stateless.model.inventory import Problem
from stateless.plan import KeyDiff
from tests.unit.engine_world import estate, message, metric, record, uuid_of, world


def names(w: object, n: int) -> list[str]:
    doc = w.engine.events(uuid_of(n))  # type: ignore[attr-defined]
    return [e["event"] for e in doc["events"] if e["event"] != "state"]


def test_a_birth_its_apply_and_its_states_are_in_the_history_oldest_first(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.clock.advance(1_700_000_000)
    w.born(1)
    doc = w.engine.events(uuid_of(1))
    assert doc["host"] == uuid_of(1)
    assert names(w, 1) == ["birth", "rule", "apply"]
    birth, rule, apply = (e for e in doc["events"] if e["event"] != "state")
    assert birth["time"] == "2023-11-14T22:13:20Z" and birth["site"] == "default"
    assert "esx1.example.com" in birth["identity"] and birth["message"].startswith(f"host {uuid_of(1)}")
    assert rule["location"] == "/DC/C" and rule["placed_by"] == "its directory entry"
    assert rule["matched"] == {} and rule["message"].endswith("no deploy rule matched")
    assert apply["vcenter"] == "vc1" and apply["calls"] >= 0 and isinstance(apply["keys"], list)
    states = [(e["previous"], e["state"]) for e in doc["events"] if e["event"] == "state"]
    assert states[0] == (None, "pending") and states[-1] == ("applying", "compliant")


def test_the_history_keeps_the_last_n_events(tmp_path: Path) -> None:
    w = world(tmp_path, host_events=3)
    w.born(1)
    for _ in range(3):
        w.engine.reapply(uuid_of(1))
        w.settle()
    events = w.engine.events(uuid_of(1))["events"]
    assert len(events) == 3 and events[-1]["event"] == "state" and events[-1]["state"] == "compliant"


def test_unknown_hosts_have_no_history(tmp_path: Path) -> None:
    from stateless.errors import NotFoundError

    w = world(tmp_path)
    with pytest.raises(NotFoundError, match="unknown"):
        w.engine.events(uuid_of(9))
    w.change(estate([record(9, owner="", state=None)]))  # added, never applied
    assert w.engine.events(uuid_of(9)) == {"host": uuid_of(9), "events": []}  # known, quiet


def test_failures_retries_drift_and_reverts_are_audited(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.born(1)
    w.vcenters.drift[uuid_of(1)] = [KeyDiff("ntp.servers", ("10.0.0.1",), ("192.0.2.1",))]
    with capturedLogs() as events:
        w.engine.scan()  # finds the drift; the revert's first try fails
        w.vcenters.faults = [TransientVCenterError("vCenter vc1: busy")]
        w.settle()
        w.vcenters.drift.clear()
        w.settle(w.engine.states.get(uuid_of(1)).next_try - w.clock.seconds())  # type: ignore[operator,union-attr]
    logged = [e["event"] for e in events if e.get("log_namespace") == "stateless.audit"
              and e["event"] != "state"]
    assert logged == ["drift", "failure", "retry", "apply", "drift_reverted"]
    assert names(w, 1)[-5:] == logged
    drift = next(e for e in events if e.get("event") == "drift")
    assert (drift["keys"], drift["source"], drift["action"]) == (["ntp.servers"], "vcenter", "reverting")
    reverted = next(e for e in events if e.get("event") == "drift_reverted")
    assert reverted["keys"] == ["ntp.servers"] and reverted["log_level"] == LogLevel.info
    failure = next(e for e in events if e.get("event") == "failure")
    assert failure["log_level"] == LogLevel.warn and failure["text"].endswith("will be retried")


def test_admission_refusals_and_referrals_are_audited(tmp_path: Path) -> None:
    w = world(tmp_path, max_pending=1)
    w.blocking.hold = True
    with capturedLogs() as events:
        w.engine.birth(message(1), "127.0.0.1")
        w.engine.birth(message(2), "127.0.0.1")
    refused = [e for e in events if e.get("event") == "admission_refused"]
    assert [e["host"] for e in refused] == [uuid_of(2)] and refused[0]["limit"] == 1


def test_directory_problems_are_logged_once_when_new_and_once_when_gone(tmp_path: Path) -> None:
    w = world(tmp_path)
    one = Problem("cn=a,ou=x", "statelessOrder", "0", "must be at least 1")
    two = Problem("cn=b,ou=x", "statelessMatch", "x=", "empty pattern")
    with capturedLogs() as events:
        w.engine.set_problems([one, two])
        w.engine.set_problems([one, two])
        w.engine.set_problems([two])
    got = [(e["event"], e["dn"]) for e in events if e.get("log_namespace") == "stateless.audit"]
    assert got == [("directory_problem", "cn=a,ou=x"), ("directory_problem", "cn=b,ou=x"),
                   ("directory_problem_resolved", "cn=a,ou=x")]
    assert metric(w, "stateless_directory_problems") == 1


def test_directory_down_and_up_are_audited_once(tmp_path: Path) -> None:
    w = world(tmp_path)
    with capturedLogs() as events:
        w.engine.directory_lost("connection refused")
        w.engine.directory_lost("connection refused")
        w.engine.directory_back()
    assert [e["event"] for e in events if "event" in e] == ["directory_down", "directory_up"]


def test_host_events_is_bounded_and_copies() -> None:
    h = HostEvents(2)
    for n in range(3):
        h.add("u", {"n": n})
    got = h.of("u")
    got[0]["n"] = 99
    assert h.of("u") == [{"n": 1}, {"n": 2}] and h.of("other") == []
    with pytest.raises(ValueError):
        HostEvents(0)


def test_an_audit_event_without_a_host_stays_out_of_the_history() -> None:
    audit = Audit(task.Clock(), 5)
    audit.directory_down(reason="x")
    assert "x" not in audit.history


def test_stdlib_logging_arrives_in_twisted_logger_with_its_level() -> None:
    assert [twisted_level(n) for n in (5, 10, 20, 30, 40, 50)] == [
        LogLevel.debug, LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error,
        LogLevel.critical]
    handler = install()
    try:
        assert install() is handler  # once
        with capturedLogs() as events:
            logging.getLogger("stateless.directory.syncrepl").warning("feed %s lost", "ldap://x")
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logging.getLogger("lib").exception("failed")
        assert events[0]["log_namespace"] == "stateless.directory.syncrepl"
        assert events[0]["text"] == "feed ldap://x lost" and events[0]["log_level"] == LogLevel.warn
        assert "RuntimeError: boom" in events[1]["text"]
    finally:
        logging.getLogger().removeHandler(handler)
    assert not any(isinstance(h, TwistedHandler) for h in logging.getLogger().handlers)

"""Births against the site's keys, admission mode and pins, on the engine's fake world.

The signature checks themselves are `birthauth`'s (tested on their own); here: which births
need one, what a refusal leaves behind (nothing), quarantine, the pinned name and thumbprint
vCenter gets, and the refusal log's stable `event` field.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import attrs
from twisted.internet import defer
from twisted.logger import capturedLogs

from stateless.agent.signing import EnrollmentKey, sign
from stateless.daemon.outcomes import Accepted, Quarantined, Refused, Signed
from stateless.errors import ConflictError
from stateless.model import HostIdentity
from stateless.model.birth import BirthMessage
from stateless.model.inventory import HostState, Rule, Site
from stateless.model.security import AdmissionMode, PinnedIdentity
from stateless.security import enroll, seal
from tests.unit.engine_world import estate, metric, record, uuid_of, world

T1 = "AA:" * 19 + "01"
T2 = "BB:" * 19 + "02"


def got(d: defer.Deferred[object]) -> object:
    out: list[object] = []
    d.addBoth(out.append)
    return out[0] if out else None


def birth(n: int, thumbprint: str | None = T1, **ident: str) -> BirthMessage:
    fields = {"hostname": f"esx{n}", "domain": "example.com", "serial": f"SN{n}", **ident}
    return BirthMessage(HostIdentity(uuid_of(n), **fields), thumbprint=thumbprint)


def test_a_site_with_a_key_refuses_unsigned_births_and_records_nothing(tmp_path: Path) -> None:
    ring = seal.load_keyring(tmp_path / "k", create=True)
    key = enroll.new_key("default", ring, datetime(2026, 1, 1, tzinfo=UTC))
    snap = attrs.evolve(estate(), sites={"default": Site("default", enroll_keys=(key.key,),
                                                         admission=AdmissionMode.OPEN)})
    w = world(tmp_path, snap)
    w.engine.births._ring = ring
    with capturedLogs() as events:
        outcome = got(w.engine.birth(birth(1), "10.0.0.9", Signed(None, b"{}")))
    assert isinstance(outcome, Refused) and outcome.status == 401
    assert "no Authorization header" in outcome.reason
    assert [e["event"] for e in events if "event" in e] == ["admission_refused"]
    assert w.directory.births == [] and w.directory.pins == {}
    assert metric(w, "stateless_births_total", outcome="unauthenticated") == 1

    body = b'{"uuid": "x"}'
    header = sign(body, "default", EnrollmentKey(key.key.key_id, key.secret), int(time.time()))
    w.clock.advance(time.time())
    outcome = got(w.engine.birth(birth(1), "10.0.0.9", Signed(header, body)))
    assert outcome == Accepted(uuid_of(1)) and w.directory.births == [uuid_of(1)]


def test_optional_birth_auth_accepts_unsigned_births(tmp_path: Path) -> None:
    w = world(tmp_path)  # a site without keys: births are unsigned, admission still applies
    assert not w.engine.births.auth_required()
    w2 = world(tmp_path / "2", birth_auth="required")
    outcome = got(w2.engine.birth(birth(1), "", None))
    assert isinstance(outcome, Refused) and outcome.status == 401


def test_rules_mode_refuses_unknown_hosts_that_only_a_default_rule_matches(tmp_path: Path) -> None:
    rules = (Rule("catchall", 100, {}, "/DC/C"), Rule("dell", 10, {"serial": ("SN1",)}, "/DC/C"))
    w = world(tmp_path, attrs.evolve(estate(admission=AdmissionMode.RULES), rules=rules))
    outcome = got(w.engine.birth(birth(2), "", None))
    assert isinstance(outcome, Refused) and outcome.status == 403
    assert w.directory.births == [] and w.directory.quarantined == {}
    assert got(w.engine.birth(birth(1), "", None)) == Accepted(uuid_of(1))
    assert w.directory.pins[uuid_of(1)].name == "esx1.example.com"
    assert w.directory.pins[uuid_of(1)].thumbprint == T1


def test_a_birth_contradicting_the_pin_is_quarantined_and_never_applied(tmp_path: Path) -> None:
    pin = PinnedIdentity(datetime(2026, 1, 1, tzinfo=UTC), T1, "SN1", (), "esx1.example.com")
    host = record(1, state=HostState.COMPLIANT, pinned=pin)
    w = world(tmp_path, estate([host]))
    w.settle()
    w.vcenters.applied.clear()  # what the start applied
    outcome = got(w.engine.birth(birth(1, T2), "", None))
    assert isinstance(outcome, Quarantined) and "thumbprint" in outcome.reason
    assert w.directory.births == []  # the pinned record is not overwritten
    assert w.doc(1)["state"] == "quarantined"
    assert w.engine.scan_hosts() == []  # the scan leaves it alone too
    try:
        w.engine.reapply(uuid_of(1))
    except ConflictError as exc:
        assert "quarantined" in str(exc)
    else:
        raise AssertionError("a quarantined host was re-applied")
    w.settle(5)
    assert w.vcenters.applied == []


def test_vcenter_gets_the_pinned_name_and_thumbprint(tmp_path: Path) -> None:
    pin = PinnedIdentity(datetime(2026, 1, 1, tzinfo=UTC), T1, "SN1", (), "pinned.example.com")
    host = attrs.evolve(record(1, pinned=pin), thumbprint=T2)
    w = world(tmp_path, estate([host]))
    w.engine.reapply(uuid_of(1))
    w.settle()
    _, target, _ = w.vcenters.applied[0]
    assert target.name == "pinned.example.com" and target.host.thumbprint == T1


def test_a_new_uuid_under_a_known_name_is_quarantined(tmp_path: Path) -> None:
    w = world(tmp_path, estate([record(1)]))
    outcome = got(w.engine.birth(birth(2, hostname="esx1"), "", None))
    assert isinstance(outcome, Quarantined) and "already known by the name" in outcome.reason
    assert w.directory.births == []


def test_a_host_quarantined_elsewhere_stays_its_owners_and_is_not_scanned(tmp_path: Path) -> None:
    pin = PinnedIdentity(datetime(2026, 1, 1, tzinfo=UTC), T1, "SN1", (), "esx1.example.com")
    theirs = record(1, owner="sd2", state=HostState.COMPLIANT, pinned=pin)
    w = world(tmp_path, estate([theirs]))
    outcome = got(w.engine.birth(birth(1, T2), "", None))
    assert isinstance(outcome, Quarantined)
    assert uuid_of(1) not in w.engine.owned  # sd2 owns it and sees the state in the feed
    mine = record(2, state=HostState.QUARANTINED, reason="waiting for approval")
    w.change(attrs.evolve(w.engine.snapshot, hosts={**w.engine.snapshot.hosts, mine.uuid: mine}))
    w.settle()
    assert uuid_of(2) in w.engine.owned and w.engine.quarantined(uuid_of(2))
    assert w.engine.scan_hosts() == []


def test_the_quarantine_is_bounded_by_max_quarantined(tmp_path: Path) -> None:
    waiting = record(1, state=HostState.QUARANTINED, reason="waiting for approval")
    w = world(tmp_path, estate([waiting], admission=AdmissionMode.APPROVAL), max_quarantined=2)
    assert isinstance(got(w.engine.birth(birth(2), "", None)), Quarantined)
    outcome = got(w.engine.birth(birth(3), "10.0.0.9", None))
    assert isinstance(outcome, Refused) and outcome.status == 503
    assert "quarantine full: 2 hosts" in outcome.reason and "approve or deny" in outcome.reason
    assert uuid_of(3) not in w.directory.quarantined and w.directory.births == []
    assert metric(w, "stateless_births_total", outcome="quarantine_full") == 1
    # Hosts already waiting boot again: still 202, quarantined, no new place taken.
    assert isinstance(got(w.engine.birth(birth(1), "", None)), Quarantined)
    assert isinstance(got(w.engine.birth(birth(2), "", None)), Quarantined)
    # The directory shows both; then one is denied (its entry goes): a place is free again.
    seen = record(2, state=HostState.QUARANTINED, reason="waiting for approval")
    w.change(attrs.evolve(w.engine.snapshot, hosts={waiting.uuid: waiting, seen.uuid: seen}))
    w.settle()
    assert isinstance(got(w.engine.birth(birth(3), "", None)), Refused)
    w.change(attrs.evolve(w.engine.snapshot, hosts={seen.uuid: seen}))
    w.settle()
    assert isinstance(got(w.engine.birth(birth(3), "", None)), Quarantined)

"""What a failed apply means, by exception and by what the directory view can tell, and
when a host that failed for another host's sake is tried again."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from stateless.daemon.failures import GONE, PERMANENT, TRANSIENT, classify
from stateless.errors import (
    ConflictError,
    DirectoryError,
    HostEntryMissing,
    NotFoundError,
    TransientVCenterError,
    ValidationError,
    VCenterError,
)
from stateless.model.inventory import HostState, IpPool
from stateless.policy.pools import PoolExhaustedError
from tests.unit.engine_world import estate, record, uuid_of, world

FULL = PoolExhaustedError(IpPool("vmo", "10.0.0.10", "10.0.0.11", "255.255.255.0"), 2)


@pytest.mark.parametrize(("exc", "in_view", "may_lag", "kind", "cause"), [
    (TransientVCenterError("timeout"), True, False, TRANSIENT, "vcenter"),
    (VCenterError("refused"), True, False, TRANSIENT, "vcenter"),
    (DirectoryError("down"), True, False, TRANSIENT, "directory"),
    (DirectoryError("down"), True, True, TRANSIENT, "directory"),
    (ConflictError("the value changed meanwhile"), True, False, TRANSIENT, "directory"),
    (FULL, True, False, PERMANENT, ""),
    (ValidationError("invalid policy"), True, False, PERMANENT, ""),
    (NotFoundError("pool nope: not found"), True, False, PERMANENT, ""),
    (NotFoundError("no entry"), False, False, GONE, ""),
    (NotFoundError("no entry"), False, True, TRANSIENT, "directory"),
    (HostEntryMissing("h"), True, False, TRANSIENT, "directory"),
    (HostEntryMissing("h"), False, False, GONE, ""),
    (RuntimeError("a bug"), True, False, TRANSIENT, "internal"),
    (KeyError("x"), False, False, TRANSIENT, "internal"),
])
def test_classify(exc: Exception, in_view: bool, may_lag: bool, kind: str, cause: str) -> None:
    verdict = classify(exc, in_view=in_view, may_lag=may_lag)
    assert (verdict.kind, verdict.cause) == (kind, cause)
    assert verdict.reason
    assert verdict.bug == (cause == "internal")
    if verdict.bug:
        assert "internal error" in verdict.reason and "server log" in verdict.reason


def test_a_name_clash_is_tried_again_when_the_other_host_changes(tmp_path: Path) -> None:
    """A clash is not the failed host's own input: the other host's rename clears it."""
    first = record(1, state=HostState.COMPLIANT, answers={"dns.hostname": "esx2"})
    w = world(tmp_path, estate([first]))
    w.born(2)  # esx2.example.com, as host 1's answers name it
    doc = w.doc(2)
    assert (doc["state"], doc["next_try"], doc["attempts"]) == ("failed", None, 1)
    assert f"{uuid_of(1)} would both be named esx2.example.com" in doc["reason"]
    w.settle(3600.0)
    assert w.doc(2)["attempts"] == 1  # permanent: not tried again by itself
    renamed = attrs.evolve(first, answers={"dns.hostname": "esx9"})
    w.change(estate([renamed, record(2)]))
    w.settle()
    assert w.doc(2)["state"] == "compliant"
    assert [t.name for _, t, _ in w.vcenters.applied if t.host.uuid == uuid_of(2)] == \
        ["esx2.example.com"]

"""What a failed apply means, by exception and by what the directory view can tell."""

from __future__ import annotations

import pytest

from stateless.daemon.failures import GONE, PERMANENT, TRANSIENT, classify
from stateless.errors import (
    ConflictError,
    DirectoryError,
    NotFoundError,
    TransientVCenterError,
    ValidationError,
    VCenterError,
)
from stateless.model.inventory import IpPool
from stateless.policy.pools import PoolExhaustedError

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

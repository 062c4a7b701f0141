"""Bring one prepared host to its desired configuration, or compare it; blocking (pyvmomi).

What the daemon asks of a vCenter per host, in one call each so a thread pool can run it:
`converge` places the host when vCenter does not have it yet, then reads, plans, applies and
verifies; `check` compares without changing anything.
"""

from __future__ import annotations

import attrs

from stateless.plan import KeyDiff
from stateless.prepare import Target
from stateless.vcenter.apply import ApplyResult
from stateless.vcenter.client import VCenterClient


@attrs.frozen
class Converged:
    """What one converge did: the apply's result and every SOAP call, placement included."""

    result: ApplyResult
    calls: int
    placed: bool


def converge(client: VCenterClient, target: Target, *, place: bool = False,
             thumbprint: str | None = None, password: str = "") -> Converged:
    """Place (when `place`, or when vCenter lacks the host) and apply `target`.

    A host just born is placed without looking first: placement itself cleans residual
    objects of the same host and is idempotent, so a retry after a partial failure only
    finishes what is missing.
    """
    start = client.session.calls
    ref = None if place else client.find_host(target.name, target.location, target.leaf)
    placed = ref is None
    if ref is None:
        host = target.host
        ref = client.ensure_host(target.name, target.location, target.leaf, identity=host.identity,
                                 thumbprint=thumbprint or host.thumbprint, password=password)
    result = client.apply(ref, target.desired, fresh=placed)  # a host (re)added: set its password
    return Converged(result, client.session.calls - start, placed)


def check(client: VCenterClient, target: Target) -> list[KeyDiff] | None:
    """Desired vs actual per key (empty when compliant); None when vCenter lacks the host."""
    ref = client.find_host(target.name, target.location, target.leaf)
    if ref is None:
        return None
    return client.compliance(ref, target.desired)


__all__ = ["Converged", "check", "converge"]

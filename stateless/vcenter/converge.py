"""Bring one prepared host to its desired configuration, or compare it; blocking (pyvmomi).

What the daemon asks of a vCenter per host, in one call each so a thread pool can run it:
`converge` places the host when vCenter does not have it yet, or has it somewhere else than
its location (moved by hand, or its location changed), then reads, plans, applies and
verifies; `check` compares without changing anything, where the host sits included.
"""

from __future__ import annotations

import attrs

from stateless.errors import NotFoundError, VCenterError
from stateless.plan import KeyDiff
from stateless.prepare import Target
from stateless.vcenter.apply import ApplyResult
from stateless.vcenter.client import VCenterClient
from stateless.vcenter.read import HostRef


@attrs.frozen
class Converged:
    """What one converge did: the apply's result and every SOAP call, placement included."""

    result: ApplyResult
    calls: int
    placed: bool


def converge(client: VCenterClient, target: Target, *, place: bool = False,
             thumbprint: str | None = None, password: str = "") -> Converged:
    """Place (when `place`, when vCenter lacks the host or has it elsewhere) and apply `target`.

    A host just born is placed without looking first: placement itself cleans residual
    objects of the same host and is idempotent, so a retry after a partial failure only
    finishes what is missing.  A host found is read once; that read also says where it sits
    (its parent's path is usually known: no call), and a host found elsewhere is placed again,
    as is one removed from vCenter since the client last looked it up.
    """
    start = client.session.calls
    ref = None if place else find(client, target)
    first = None
    if ref is not None:
        try:
            first = client.view(ref, target.desired)
        except VCenterError as exc:
            if not client.forget_if_gone(ref, exc):
                raise
            ref = None  # removed from vCenter since it was looked up: placed again below
        else:
            if client.location(first, target.location) not in (None, target.location):
                ref = first = None  # elsewhere: placing it again moves it
    placed = ref is None
    if ref is None:
        host = target.host
        ref = client.ensure_host(target.name, target.location, target.leaf, identity=host.identity,
                                 thumbprint=thumbprint or host.thumbprint, password=password)
    try:
        if placed:
            first = client.view(ref, target.desired, fresh=True)  # (re)added: set its password
            client.placed(first, target.location)
        result = client.apply(ref, target.desired, fresh=placed, first=first)
    except VCenterError as exc:
        if client.forget_if_gone(ref, exc):  # removed meanwhile: the next try places it again
            raise NotFoundError(f"vCenter {client.name}: host {target.name} was removed from "
                                "vCenter while it was being applied") from exc
        raise
    return Converged(result, client.session.calls - start, placed)


def check(client: VCenterClient, target: Target) -> list[KeyDiff] | None:
    """Desired vs actual per key (empty when compliant), `location` included when the host
    sits elsewhere; None when vCenter lacks the host."""
    ref = find(client, target)
    if ref is None:
        return None
    try:
        return client.compliance(ref, target.desired, target.location)
    except VCenterError as exc:
        if client.forget_if_gone(ref, exc):
            return None  # removed since it was looked up (the kept reference is dropped)
        raise


def find(client: VCenterClient, target: Target) -> HostRef | None:
    """The target's host in vCenter: by name, in its location, else by hardware UUID."""
    identity = target.host.identity
    return client.find_host(target.name, target.location, target.leaf,
                            uuid=identity.uuid if identity is not None else None)


__all__ = ["Converged", "check", "converge", "find"]

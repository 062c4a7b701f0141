"""A host removed from vCenter behind a client's back: what the client keeps of it is dropped
(`VCenterClient.forget_if_gone`), and a converge that meets the removal mid-apply says the host
is not found (the daemon retries; the next try places it again)."""

from __future__ import annotations

from typing import Any

import pytest
from pyVmomi import vim, vmodl

from stateless.errors import NotFoundError, VCenterError
from stateless.model import Container, HostIdentity, HostRecord, Snapshot
from stateless.policy import resolve
from stateless.prepare import Target, prepare
from stateless.vcenter import VCenterClient
from stateless.vcenter.converge import converge
from stateless.vcenter.read import HostRef

REF = HostRef("host-9", "esx9.example.com")


def gone(moid: str) -> VCenterError:
    """A read's failure on object `moid`, as the session wraps it."""
    error = VCenterError(f"vCenter vc1: read configuration: ManagedObjectNotFound {moid}")
    error.__cause__ = vmodl.fault.ManagedObjectNotFound(obj=vim.HostSystem(moid))
    return error


def client() -> VCenterClient:
    c = VCenterClient("https://vc.invalid/sdk", "user", "pass", name="vc1")  # never connects
    c._refs[REF.name] = REF
    c._managers[REF.moid] = {"snmpSystem": vim.host.SnmpSystem("snmp-9")}
    return c


@pytest.mark.parametrize("moid", ["host-9", "snmp-9"])
def test_the_host_or_one_of_its_managers_gone_drops_what_is_kept(moid: str) -> None:
    c = client()
    assert c.forget_if_gone(REF, gone(moid))
    assert REF.name not in c._refs and REF.moid not in c._managers


@pytest.mark.parametrize("error", [gone("host-10"), VCenterError("vCenter vc1: busy")])
def test_another_objects_removal_or_another_failure_keeps_it(error: VCenterError) -> None:
    c = client()
    assert not c.forget_if_gone(REF, error)
    assert c._refs[REF.name] == REF and REF.moid in c._managers


class Removed:
    """A client whose host is found and read, then removed before the apply's calls."""

    name = "vc1"

    def __init__(self) -> None:
        self.session = type("S", (), {"calls": 0})()
        self.forgotten: list[HostRef] = []

    def find_host(self, *args: Any, **kwargs: Any) -> HostRef:
        return REF

    def view(self, ref: HostRef, desired: Any, **kwargs: Any) -> Any:
        return object()

    def location(self, view: Any, expected: str | None = None) -> str | None:
        return expected

    def apply(self, ref: HostRef, desired: Any, **kwargs: Any) -> Any:
        raise gone(ref.moid)

    def forget_if_gone(self, ref: HostRef, exc: BaseException) -> bool:
        self.forgotten.append(ref)
        return True


def target() -> Target:
    uuid = "4c4c4544-0000-4000-8000-000000000009"
    snap = Snapshot(
        containers={"/": Container("/", "root"), "/DC": Container("/DC", "datacenter"),
                    "/DC/C": Container("/DC/C", "cluster")},
        hosts={uuid: HostRecord(uuid, location="/DC/C", identity=HostIdentity(
            uuid, hostname="esx9", domain="example.com"))})
    return prepare(snap, snap.hosts[uuid], resolve(snap, uuid))


def test_a_host_removed_while_it_is_applied_is_not_found() -> None:
    removed = Removed()
    with pytest.raises(NotFoundError, match="removed from vCenter while it was being applied"):
        converge(removed, target())  # type: ignore[arg-type]
    assert removed.forgotten == [REF]

"""Narrowed reads on the real simulator: what a policy names is read and its drift found, kind
by kind; what it does not name is neither read nor compared."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVmomi import VmomiSupport, vim

from stateless.daemon.drift import pushed_compliant
from stateless.model.config import HostConfig
from stateless.vcenter import HostRef, VCenterClient
from stateless.vcenter.paths import paths_for
from stateless.vcenter.read import BASE_PATHS
from stateless.vcenter.session import Session
from stateless.vcenter.watch import Change, HostWatch

LONG = VmomiSupport.GetVmodlType("long")
NAMED = {
    "vswitch.vSwitch1.uplinks": ("vmnic1",),
    "vswitch.vSwitch1.mtu": 9000,
    "portgroup.vMotion.vswitch": "vSwitch1",
    "portgroup.vMotion.vlan": 20,
    "vmknic.vMotion.ip": "static",
    "vmknic.vMotion.address": "10.0.20.11",
    "vmknic.vMotion.netmask": "255.255.255.0",
    "vmknic.vMotion.mtu": 9000,
    "vmknic.vMotion.services": ("vmotion",),
    "dns.servers": ("10.0.0.53",),
    "service.TSM-SSH.policy": "off",
    "advanced.Net.TcpipHeapSize": 32,
}
# Kinds it does not name: NTP, syslog, lockdown, NFS, iSCSI, SNMP.
UNNAMED = {"config.dateTimeInfo", "config.lockdownMode", "config.fileSystemVolume",
           "config.storageDevice"}


@pytest.fixture(scope="module")
def sim(vcsim_factory: Callable[..., Any]) -> Any:
    return vcsim_factory("-cluster", "1", "-host", "3", "-standalone", "0")


@pytest.fixture(scope="module")
def client(sim: Any) -> Iterator[VCenterClient]:
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as c:
        yield c


@pytest.fixture(scope="module")
def hosts(client: VCenterClient) -> list[Any]:
    content = client.session.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    return sorted(view.view, key=lambda h: h._moId)


@contextlib.contextmanager
def reads(client: VCenterClient) -> Iterator[list[set[str]]]:
    """The HostSystem property paths of every RetrievePropertiesEx inside the block."""
    found: list[set[str]] = []
    stub = client.session.si._stub
    inner = stub.InvokeMethod

    def recorded(mo: Any, info: Any, args: Any, *rest: Any) -> Any:
        if info.wsdlName == "RetrievePropertiesEx":
            found.append({p for spec in args[0] for prop in spec.propSet
                          if prop.type is vim.HostSystem for p in prop.pathSet})
        return inner(mo, info, args, *rest)

    stub.InvokeMethod = recorded
    try:
        yield found
    finally:
        stub.InvokeMethod = inner


def drift_every_named_kind(host: Any) -> None:
    cm = host.configManager
    net = cm.networkSystem
    vswitch = next(v for v in host.config.network.vswitch if v.name == "vSwitch1")
    vswitch.spec.mtu = 1500
    net.UpdateVirtualSwitch("vSwitch1", vswitch.spec)
    net.UpdatePortGroup("vMotion", vim.host.PortGroup.Specification(
        name="vMotion", vlanId=99, vswitchName="vSwitch1", policy=vim.host.NetworkPolicy()))
    vnic = next(v for v in host.config.network.vnic if v.portgroup == "vMotion")
    net.UpdateVirtualNic(vnic.device, vim.host.VirtualNic.Specification(
        ip=vim.host.IpConfig(dhcp=False, ipAddress="10.0.20.99", subnetMask="255.255.255.0"),
        mtu=9000))
    cm.virtualNicManager.DeselectVnicForNicType("vmotion", vnic.device)
    net.UpdateDnsConfig(vim.host.DnsConfig(dhcp=False, address=["10.9.9.9"], hostName="esx",
                                           domainName="example.com"))
    cm.serviceSystem.UpdateServicePolicy(id="TSM-SSH", policy="on")
    cm.advancedOption.UpdateOptions(
        changedValue=[vim.option.OptionValue(key="Net.TcpipHeapSize", value=LONG(8))])


def test_a_narrowed_read_finds_drift_in_every_kind_named_and_reads_nothing_else(
        client: VCenterClient, hosts: list[Any]) -> None:
    host = hosts[0]
    ref = HostRef(host._moId)
    desired = HostConfig.from_settings(NAMED)
    with reads(client) as applied:
        result = client.apply(ref, desired)
    assert result.verified and result.plan
    assert all(not paths & UNNAMED for paths in applied)
    verify = applied[-1]
    assert "config.virtualNicManagerInfo" not in verify  # tagging: the answers say it
    assert {"config.network.vswitch", "config.network.vnic", "config.option"} <= verify

    drift_every_named_kind(host)
    host.configManager.dateTimeSystem.UpdateDateTimeConfig(  # a kind the policy does not name
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"])))
    with reads(client) as checked:
        diffs = client.compliance(ref, desired)
    assert checked == [{*BASE_PATHS, "config.network.vswitch", "config.network.portgroup",
                        "config.network.vnic", "config.network.dnsConfig",
                        "config.virtualNicManagerInfo", "config.service", "config.option"}]
    assert {d.key for d in diffs} == {
        "vswitch.vSwitch1.mtu", "portgroup.vMotion.vlan", "vmknic.vMotion.address",
        "vmknic.vMotion.services", "dns.servers", "service.TSM-SSH.policy",
        "advanced.Net.TcpipHeapSize"}

    again = client.apply(ref, desired)
    assert again.verified and client.compliance(ref, desired) == []
    assert [str(n) for n in host.config.dateTimeInfo.ntpConfig.server] == ["192.0.2.1"]


def test_a_plan_of_one_kind_reads_back_that_kind_only(client: VCenterClient,
                                                      hosts: list[Any]) -> None:
    host = hosts[1]
    ref = HostRef(host._moId)
    desired = HostConfig.from_settings(NAMED)
    client.apply(ref, desired)
    host.configManager.serviceSystem.UpdateServicePolicy(id="TSM-SSH", policy="on")
    with reads(client) as calls:
        result = client.apply(ref, desired)
    assert [str(c) for c in result.plan] == ["set service TSM-SSH"]
    assert calls[-1] == {*BASE_PATHS, "config.service"}


def pushed(watch: HostWatch, moid: str, path: str) -> Change:
    for _ in range(10):  # each wait is bounded by max_wait
        for change in watch.wait().changes:
            if change.moid == moid and path in change.paths:
                return change
    raise AssertionError(f"no change of {path} on {moid} pushed")


def test_the_values_vcenter_pushes_tell_a_change_that_keeps_compliance_from_drift(
        sim: Any, client: VCenterClient, hosts: list[Any]) -> None:
    host = hosts[2]
    desired = HostConfig.from_settings(NAMED)
    client.apply(HostRef(host._moId), desired)
    watch = HostWatch(lambda: Session(sim.url, sim.user, sim.password, name="vc1", timeout=10),
                      name="vc1", max_wait=2, paths=paths_for(desired))
    try:
        watch.set_hosts([host._moId])
        assert watch.wait().resubscribed
        net = host.configManager.networkSystem

        def vlan(n: int) -> None:
            net.UpdatePortGroup("vMotion", vim.host.PortGroup.Specification(
                name="vMotion", vlanId=n, vswitchName="vSwitch1", policy=vim.host.NetworkPolicy()))

        vlan(20)  # what the policy says already
        assert pushed_compliant(desired, pushed(watch, host._moId, "config.network.portgroup").values)
        vlan(99)
        assert not pushed_compliant(desired, pushed(watch, host._moId, "config.network.portgroup").values)
    finally:
        watch.close()

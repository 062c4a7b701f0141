"""Stock-client fidelity: a client that is not ours sees no change on a re-run.

`StockClient` does what common third-party pyVmomi tooling does to manage port groups and
advanced options idempotently (the decision logic of Ansible's vmware_portgroup and
vmware_host_config_manager modules): it reads `config.network.portgroup[].spec.policy`,
treats a missing policy group as a change to make, reads `supportedOption` and refuses keys
outside it as "Unsupported option", converts values to the declared option type, and counts
what differs.  On ESXi such a re-run of an unchanged configuration changes nothing; the
simulator must behave the same, or a compliance check passes or fails for the wrong reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVmomi import VmomiSupport, vim

from stateless.model.config import HostConfig
from stateless.vcenter import HostRef, VCenterClient

LONG = VmomiSupport.GetVmodlType("long")
INT = VmomiSupport.GetVmodlType("int")


class UnsupportedOption(Exception):
    pass


class StockClient:
    """Idempotent port-group and advanced-option management the way stock tooling does it."""

    def __init__(self, host: Any) -> None:
        self.host = host

    def portgroup(self, name: str, vswitch: str, vlan: int, *, active: list[str] | None = None,
                  standby: list[str] | None = None) -> list[str]:
        """Ensure the port group (no override but the failover order given); the changes made."""
        network = self.host.configManager.networkSystem
        found = next((p for p in self.host.config.network.portgroup if p.spec.name == name), None)
        teaming = None
        if active is not None or standby is not None:
            teaming = vim.host.NetworkPolicy.NicTeamingPolicy(
                reversePolicy=True,
                nicOrder=vim.host.NetworkPolicy.NicOrderPolicy(activeNic=active or [],
                                                               standbyNic=standby or []))
        if found is None:
            network.AddPortGroup(vim.host.PortGroup.Specification(
                name=name, vswitchName=vswitch, vlanId=vlan,
                policy=vim.host.NetworkPolicy(security=None, nicTeaming=teaming,
                                              shapingPolicy=None)))
            return ["added"]
        spec, changes = found.spec, []
        if spec.vlanId != vlan:
            changes.append("vlan")
            spec.vlanId = vlan
        security = spec.policy.security
        if not security:  # no security group at all: the tool writes one
            changes.append("security")
            spec.policy.security = vim.host.NetworkPolicy.SecurityPolicy()
        elif any(getattr(security, f) is not None
                 for f in ("allowPromiscuous", "macChanges", "forgedTransmits")):
            changes.append("security override")
            spec.policy.security = vim.host.NetworkPolicy.SecurityPolicy()
        shaping = spec.policy.shapingPolicy
        if shaping and shaping.enabled is not None:
            changes.append("traffic shaping")
            spec.policy.shapingPolicy = None
        changes += self._teaming(spec, teaming)
        if changes:
            network.UpdatePortGroup(name, spec)
        return changes

    @staticmethod
    def _teaming(spec: Any, wanted: Any) -> list[str]:
        have = spec.policy.nicTeaming
        if not have:
            if wanted is not None:
                spec.policy.nicTeaming = wanted
                return ["teaming"]
            return []
        changes = []
        if have.policy:
            changes.append("load balancing")
        if have.notifySwitches is not None:
            changes.append("notify switches")
        if have.rollingOrder is not None:
            changes.append("failback")
        if have.failureCriteria and have.failureCriteria.checkBeacon is not None:
            changes.append("failure detection")
        order = have.nicOrder
        if wanted is None:
            if order:
                changes.append("failover order")
        elif not order or (list(order.activeNic), list(order.standbyNic)) != (
                list(wanted.nicOrder.activeNic), list(wanted.nicOrder.standbyNic)):
            changes.append("failover order")
        if changes:
            spec.policy.nicTeaming = wanted
        return changes

    def options(self, wanted: dict[str, Any]) -> list[str]:
        """Ensure advanced options; the keys changed.  Unknown keys are refused."""
        manager = self.host.configManager.advancedOption
        declared = {d.key: d.optionType for d in manager.supportedOption}
        current = {o.key: o.value for o in manager.QueryOptions()}
        changes = []
        for key, value in wanted.items():
            if key not in declared:
                raise UnsupportedOption(f"Unsupported option {key}")
            kind = declared[key]
            if isinstance(kind, vim.option.LongOption):
                value = LONG(value)
            elif isinstance(kind, vim.option.IntOption):
                value = INT(value)
            if value != current.get(key):
                changes.append(vim.option.OptionValue(key=key, value=value))
        if changes:
            manager.UpdateOptions(changedValue=changes)
        return [c.key for c in changes]


@pytest.fixture(scope="module")
def client(vcsim_factory: Callable[..., Any]) -> Iterator[VCenterClient]:
    sim = vcsim_factory("-cluster", "1", "-host", "3", "-standalone", "0")
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as c:
        yield c


@pytest.fixture(scope="module")
def hosts(client: VCenterClient) -> list[Any]:
    content = client.session.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    return list(view.view)


OPTIONS = {"Net.TcpipHeapSize": 32, "UserVars.SuppressShellWarning": 1,
           "Security.AccountLockFailures": 3, "Syslog.global.logHost": "udp://10.0.0.5:514"}


def _vswitch(host: Any) -> None:
    host.configManager.networkSystem.AddVirtualSwitch("vSwitch1", vim.host.VirtualSwitch.Specification(
        numPorts=128, bridge=vim.host.VirtualSwitch.BondBridge(nicDevice=["vmnic1", "vmnic2"])))


def test_a_stock_client_rerun_changes_nothing(hosts: list[Any]) -> None:
    host = hosts[0]
    _vswitch(host)
    stock = StockClient(host)
    assert stock.portgroup("VM Prod", "vSwitch1", 10) == ["added"]
    assert stock.portgroup("vMotion", "vSwitch1", 20, active=["vmnic2"], standby=["vmnic1"]) == ["added"]
    assert sorted(stock.options(OPTIONS)) == sorted(OPTIONS)

    assert stock.portgroup("VM Prod", "vSwitch1", 10) == []
    assert stock.portgroup("vMotion", "vSwitch1", 20, active=["vmnic2"], standby=["vmnic1"]) == []
    assert stock.options(OPTIONS) == []
    # The stock port groups of a fresh host are "no override" too.
    assert stock.portgroup("VM Network", "vSwitch0", 0) == []


def test_a_stock_client_sees_no_change_after_our_apply(client: VCenterClient,
                                                       hosts: list[Any]) -> None:
    host = hosts[1]
    desired = HostConfig.from_settings({
        "vswitch.vSwitch1.uplinks": ("vmnic1", "vmnic2"),
        "portgroup.VM Prod.vswitch": "vSwitch1", "portgroup.VM Prod.vlan": 10,
        "portgroup.vMotion.vswitch": "vSwitch1", "portgroup.vMotion.vlan": 20,
        "portgroup.vMotion.teaming.active": ("vmnic2",),
        "portgroup.vMotion.teaming.standby": ("vmnic1",),
        "syslog.targets": ("udp://10.0.0.5:514",),
        **{f"advanced.{k}": v for k, v in OPTIONS.items() if not k.startswith("Syslog.")},
    })
    assert client.apply(HostRef(host._moId), desired).verified
    stock = StockClient(host)
    assert stock.portgroup("VM Prod", "vSwitch1", 10) == []
    assert stock.portgroup("vMotion", "vSwitch1", 20, active=["vmnic2"], standby=["vmnic1"]) == []
    assert stock.options(OPTIONS) == []


def test_a_stock_client_is_refused_unknown_options(hosts: list[Any]) -> None:
    stock = StockClient(hosts[2])
    with pytest.raises(UnsupportedOption, match=r"Unsupported option Net\.TcpipHeapSise"):
        stock.options({"Net.TcpipHeapSise": 32})
    # Bypassing the catalogue check does not help: the host refuses the key itself.
    with pytest.raises(vim.fault.InvalidName):
        hosts[2].configManager.advancedOption.UpdateOptions(
            [vim.option.OptionValue(key="Net.TcpipHeapSise", value=LONG(32))])

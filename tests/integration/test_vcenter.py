"""The vCenter adapter against the real govmomi simulator: apply, read back, drift, budget."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVmomi import SoapAdapter, vim

from stateless.model.config import HostConfig
from stateless.vcenter import HostRef, VCenterClient
from stateless.vcenter.secretrefs import StaticSecrets
from tests.integration.fixtures_vcsim import has_password

# The standard configuration of the call budget: 1 vSwitch, 3 port groups, 2 VMkernel NICs,
# NTP, DNS, syslog and 3 advanced options.
STANDARD: dict[str, object] = {
    "vswitch.vSwitch1.uplinks": ("vmnic1", "vmnic2"),
    "vswitch.vSwitch1.mtu": 9000,
    "vswitch.vSwitch1.teaming.active": ("vmnic1",),
    "vswitch.vSwitch1.teaming.standby": ("vmnic2",),
    "vswitch.vSwitch1.teaming.policy": "failover_explicit",
    "portgroup.VM Prod.vswitch": "vSwitch1",
    "portgroup.VM Prod.vlan": 10,
    "portgroup.vMotion.vswitch": "vSwitch1",
    "portgroup.vMotion.vlan": 20,
    "portgroup.Storage.vswitch": "vSwitch1",
    "portgroup.Storage.vlan": 30,
    "vmknic.vMotion.services": ("vmotion",),
    "vmknic.vMotion.ip": "pool:vmotion",
    "vmknic.vMotion.address": "10.0.20.11",
    "vmknic.vMotion.netmask": "255.255.255.0",
    "vmknic.vMotion.mtu": 9000,
    "vmknic.Storage.services": ("provisioning",),
    "vmknic.Storage.ip": "static",
    "vmknic.Storage.address": "10.0.30.11",
    "vmknic.Storage.netmask": "255.255.255.0",
    "ntp.servers": ("0.pool.ntp.org", "10.0.0.1"),
    "dns.servers": ("10.0.0.53", "10.0.1.53"),
    "dns.search": ("example.com",),
    "syslog.targets": ("udp://10.0.0.5:514",),
    "advanced.Net.TcpipHeapSize": 32,
    "advanced.Mem.ShareForceSalting": 0,
    "advanced.UserVars.SuppressShellWarning": 1,
}
READS = {"RetrievePropertiesEx", "ContinueRetrievePropertiesEx", "QueryLockdownExceptions"}
SECRETS: dict[str, str] = {"iscsi-chap": "chap-secret-123456", "snmp-ro": "ro-c0mm-5e1f",
                           "snmp-trap": "trap-c0mm-77a2", "esx-root": "R00t-first-3f1c"}


class CallLog:
    """Every SOAP method invoked, per thread, counted at the pyvmomi stub adapter."""

    def __init__(self) -> None:
        self.local = threading.local()

    @property
    def calls(self) -> list[str]:
        if not hasattr(self.local, "calls"):
            self.local.calls = []
        return list(self.local.calls)

    def record(self, name: str) -> None:
        if not hasattr(self.local, "calls"):
            self.local.calls = []
        self.local.calls.append(name)

    def since(self, mark: int) -> list[str]:
        return self.calls[mark:]


@pytest.fixture(scope="module")
def call_log() -> Iterator[CallLog]:
    log = CallLog()
    original = SoapAdapter.SoapStubAdapter.InvokeMethod

    def counted(self: Any, mo: Any, info: Any, args: Any, *rest: Any) -> Any:
        log.record(info.wsdlName)
        return original(self, mo, info, args, *rest)

    SoapAdapter.SoapStubAdapter.InvokeMethod = counted  # type: ignore[method-assign]
    try:
        yield log
    finally:
        SoapAdapter.SoapStubAdapter.InvokeMethod = original  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def sim(vcsim_factory: Callable[..., Any]) -> Any:
    return vcsim_factory("-cluster", "1", "-host", "24", "-standalone", "1")


@pytest.fixture(scope="module")
def client(sim: Any, call_log: CallLog) -> Iterator[VCenterClient]:
    # A short timeout: a simulator call that hangs fails the test in seconds, not minutes.
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8,
                       secrets=StaticSecrets(SECRETS)) as c:
        yield c


@pytest.fixture(scope="module")
def host_pool(client: VCenterClient) -> list[HostRef]:
    content = client.session.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    return [HostRef(h._moId) for h in view.view if "_C0_" in h.name]


@pytest.fixture
def host(host_pool: list[HostRef]) -> HostRef:
    """A host no other test touched."""
    return host_pool.pop()


def host_mo(client: VCenterClient, ref: HostRef) -> Any:
    return vim.HostSystem(ref.moid, client.session.si._stub)


def managers(client: VCenterClient, ref: HostRef) -> Any:
    return client.view(ref).managers


def test_standard_config_within_budget_and_compliant_host_costs_one_call(
        client: VCenterClient, host: HostRef, call_log: CallLog) -> None:
    desired = HostConfig.from_settings(STANDARD)
    mark = len(call_log.calls)
    result = client.apply(host, desired)
    first = call_log.since(mark)
    assert result.verified and len(result.plan) > 0
    assert len(first) == result.calls
    assert len(first) <= 12, first
    assert first.count("UpdateNetworkConfig") == 1 and first.count("UpdateOptions") == 1
    assert client.compliance(host, desired) == []

    mark = len(call_log.calls)
    again = client.apply(host, desired)
    second = call_log.since(mark)
    assert not again.plan
    assert second == ["RetrievePropertiesEx"]
    assert again.calls == 1


def _network(client: VCenterClient, ref: HostRef) -> Any:
    return client.view(ref).network


def _update_vswitch_mtu(client: VCenterClient, ref: HostRef) -> None:
    vs = next(v for v in _network(client, ref).vswitch if v.name == "vSwitch1")
    spec = vs.spec
    spec.mtu = 1500
    managers(client, ref)["networkSystem"].UpdateVirtualSwitch("vSwitch1", spec)


def _update_portgroup(field: str, value: Any) -> Callable[[VCenterClient, HostRef], None]:
    def change(client: VCenterClient, ref: HostRef) -> None:
        pg = next(p for p in _network(client, ref).portgroup if p.spec.name == "vMotion")
        spec = pg.spec
        if field == "vlan":
            spec.vlanId = value
        else:
            spec.policy.nicTeaming.nicOrder.activeNic = value
        managers(client, ref)["networkSystem"].UpdatePortGroup("vMotion", spec)
    return change


def _vnic(client: VCenterClient, ref: HostRef, portgroup: str) -> Any:
    return next(n for n in _network(client, ref).vnic if n.portgroup == portgroup)


def _vnic_address(client: VCenterClient, ref: HostRef) -> None:
    nic = _vnic(client, ref, "vMotion")
    spec = vim.host.VirtualNic.Specification(ip=vim.host.IpConfig(
        dhcp=False, ipAddress="10.0.20.99", subnetMask="255.255.255.0"))
    managers(client, ref)["networkSystem"].UpdateVirtualNic(nic.device, spec)


def _vnic_static(client: VCenterClient, ref: HostRef) -> None:
    nic = _vnic(client, ref, "vMotion")
    spec = vim.host.VirtualNic.Specification(ip=vim.host.IpConfig(
        dhcp=False, ipAddress="10.0.20.98", subnetMask="255.255.255.0"))
    managers(client, ref)["networkSystem"].UpdateVirtualNic(nic.device, spec)


def _deselect_vmotion(client: VCenterClient, ref: HostRef) -> None:
    nic = _vnic(client, ref, "vMotion")
    managers(client, ref)["virtualNicManager"].DeselectVnicForNicType("vmotion", nic.device)


def _ntp(client: VCenterClient, ref: HostRef) -> None:
    config = vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"]))
    managers(client, ref)["dateTimeSystem"].UpdateDateTimeConfig(config)


def _service_policy(key: str, policy: str) -> Callable[[VCenterClient, HostRef], None]:
    def change(client: VCenterClient, ref: HostRef) -> None:
        managers(client, ref)["serviceSystem"].UpdateServicePolicy(key, policy)
    return change


def _dns(client: VCenterClient, ref: HostRef) -> None:
    dns = _network(client, ref).dnsConfig
    dns.searchDomain = ["other.example"]
    managers(client, ref)["networkSystem"].UpdateDnsConfig(dns)


def _option(key: str, value: Any) -> Callable[[VCenterClient, HostRef], None]:
    def change(client: VCenterClient, ref: HostRef) -> None:
        managers(client, ref)["advancedOption"].UpdateOptions(
            [vim.option.OptionValue(key=key, value=value)])
    return change


def _remove_nfs(client: VCenterClient, ref: HostRef) -> None:
    view = client.view(ref)
    view.managers["datastoreSystem"].RemoveDatastore(view.datastores["iso"])


def _iscsi_targets(client: VCenterClient, ref: HostRef) -> None:
    view = client.view(ref)
    target = vim.host.InternetScsiHba.SendTarget(address="10.0.5.10", port=3260)
    view.managers["storageSystem"].RemoveInternetScsiSendTargets(view.iscsi_hba, [target])


def _chap_name(client: VCenterClient, ref: HostRef) -> None:
    view = client.view(ref)
    auth = vim.host.InternetScsiHba.AuthenticationProperties(
        chapAuthEnabled=True, chapName="someone-else", chapSecret="x" * 12,
        chapAuthenticationType="chapRequired")
    view.managers["storageSystem"].UpdateInternetScsiAuthenticationProperties(view.iscsi_hba, auth)


def _lockdown_mode(client: VCenterClient, ref: HostRef) -> None:
    managers(client, ref)["hostAccessManager"].ChangeLockdownMode("lockdownDisabled")


def _lockdown_exceptions(client: VCenterClient, ref: HostRef) -> None:
    managers(client, ref)["hostAccessManager"].UpdateLockdownExceptions(["someone"])


def _snmp(client: VCenterClient, ref: HostRef) -> None:
    target = vim.host.SnmpSystem.SnmpConfigSpec.Destination(hostName="10.0.0.7", port=162,
                                                            community=SECRETS["snmp-trap"])
    spec = vim.host.SnmpSystem.SnmpConfigSpec(enabled=True, readOnlyCommunities=["private"],
                                              trapTargets=[target])
    managers(client, ref)["snmpSystem"].ReconfigureSnmpAgent(spec)


NET = {"vswitch.vSwitch1.uplinks": ("vmnic1", "vmnic2"), "vswitch.vSwitch1.mtu": 9000,
       "portgroup.vMotion.vswitch": "vSwitch1", "portgroup.vMotion.vlan": 20}
VMK = {**NET, "vmknic.vMotion.ip": "static", "vmknic.vMotion.address": "10.0.20.11",
       "vmknic.vMotion.netmask": "255.255.255.0", "vmknic.vMotion.services": ("vmotion",)}

ITEMS: list[tuple[Any, ...]] = [
    ("vswitch", NET, _update_vswitch_mtu, {"vswitch.vSwitch1.mtu"}),
    ("portgroup", NET, _update_portgroup("vlan", 21), {"portgroup.vMotion.vlan"}),
    ("portgroup-teaming", {**NET, "portgroup.vMotion.teaming.active": ("vmnic2",),
                           "portgroup.vMotion.teaming.standby": ("vmnic1",)},
     _update_portgroup("teaming", ["vmnic1"]), {"portgroup.vMotion.teaming.active"}),
    ("vmknic-static", VMK, _vnic_address, {"vmknic.vMotion.address"}),
    ("vmknic-dhcp", {**NET, "vmknic.vMotion.ip": "dhcp"}, _vnic_static, {"vmknic.vMotion.ip"}),
    ("vmknic-services", VMK, _deselect_vmotion, {"vmknic.vMotion.services"}),
    ("ntp", {"ntp.servers": ("10.0.0.1",)}, _ntp, {"ntp.servers"}),
    ("ntp-policy", {"ntp.policy": "on"}, _service_policy("ntpd", "off"), {"ntp.policy"}),
    ("dns", {"dns.servers": ("10.0.0.53",), "dns.search": ("example.com",),
             "dns.hostname": "esx42", "dns.domain": "example.com"}, _dns, {"dns.search"}),
    ("syslog", {"syslog.targets": ("udp://10.0.0.5:514", "ssl://log.example.com:1514")},
     _option("Syslog.global.logHost", "udp://192.0.2.9:514"), {"syslog.targets"}),
    ("advanced", {"advanced.Net.TcpipHeapSize": 32, "advanced.Config.Etc.issue": "1"},
     _option("Config.Etc.issue", "2"), {"advanced.Config.Etc.issue"}),
    ("service", {"service.TSM-SSH.policy": "on"}, _service_policy("TSM-SSH", "off"),
     {"service.TSM-SSH.policy"}),
    ("nfs", {"nfs.iso.host": "nas01.example.com", "nfs.iso.path": "/export/iso",
             "nfs.iso.readonly": True, "nfs.iso.version": "3"}, _remove_nfs,
     {"nfs.iso.host", "nfs.iso.path", "nfs.iso.readonly", "nfs.iso.version"}),
    ("iscsi", {"iscsi.enabled": True, "iscsi.targets": ("10.0.5.10:3260",)}, _iscsi_targets,
     {"iscsi.targets"}),
    ("iscsi-chap", {"iscsi.enabled": True, "iscsi.chap.name": "iqn.1998-01.com.vmware:esx",
                    "iscsi.chap.secret": "iscsi-chap"}, _chap_name, {"iscsi.chap.name"}),
    ("lockdown", {"lockdown.mode": "normal"}, _lockdown_mode, {"lockdown.mode"}),
    ("lockdown-exceptions", {"lockdown.exceptions": ("svc-backup",)}, _lockdown_exceptions,
     {"lockdown.exceptions"}),
    ("snmp", {"snmp.enabled": True, "snmp.communities": ("secret:snmp-ro",),
              "snmp.targets": ("10.0.0.7:162/secret:snmp-trap",)}, _snmp, {"snmp.communities"}),
]


def _case(item: tuple[Any, ...]) -> Any:
    return pytest.param(*item[1:4], id=item[0], marks=item[4:])


@pytest.mark.parametrize(("settings", "drift", "keys"), [_case(i) for i in ITEMS])
def test_item_apply_read_back_drift_and_revert(
        client: VCenterClient, host: HostRef, call_log: CallLog, settings: dict[str, object],
        drift: Callable[[VCenterClient, HostRef], None], keys: set[str]) -> None:
    desired = HostConfig.from_settings(settings)
    assert client.compliance(host, desired) != []  # the item really is a change
    first = client.apply(host, desired)
    assert first.verified and first.plan
    assert client.compliance(host, desired) == []
    read_back = client.read(host, desired).to_settings()
    for key, value in desired.to_settings().items():
        if key not in ("vmknic.vMotion.ip", "iscsi.chap.secret"):
            assert read_back[key] == value, key

    mark = len(call_log.calls)
    second = client.apply(host, desired)
    assert not second.plan
    assert [c for c in call_log.since(mark) if c not in READS] == []

    drift(client, host)
    assert {d.key for d in client.compliance(host, desired)} == keys

    third = client.apply(host, desired)
    assert third.verified and third.plan
    assert client.compliance(host, desired) == []


def test_snmp_communities_reach_the_host_in_clear_and_read_back_as_references(
        client: VCenterClient, host: HostRef) -> None:
    desired = HostConfig.from_settings({"snmp.enabled": True, "snmp.communities": ("secret:snmp-ro",),
                                        "snmp.targets": ("10.0.0.7:162/secret:snmp-trap",)})
    client.apply(host, desired)
    on_host = managers(client, host)["snmpSystem"].configuration
    assert list(on_host.readOnlyCommunities) == [SECRETS["snmp-ro"]]
    assert [t.community for t in on_host.trapTargets] == [SECRETS["snmp-trap"]]
    read = client.read(host, desired).snmp
    assert read.communities == ("secret:snmp-ro",)
    assert read.targets == ("10.0.0.7:162/secret:snmp-trap",)


def test_the_root_password_is_set_when_its_secret_changes_and_only_then(
        sim: Any, client: VCenterClient, host: HostRef, call_log: CallLog) -> None:
    desired = HostConfig.from_settings({"account.root.password": "secret:esx-root"})
    esx = vim.HostSystem(host.moid, sim.connect()._stub)
    assert client.compliance(host, desired) != []  # no stamp yet: the password is due
    first = client.apply(host, desired)
    assert [c.kind for c in first.plan] == ["account"] and first.verified
    assert has_password(esx, "root", SECRETS["esx-root"])
    assert client.read(host, desired).root_password == "secret:esx-root"
    assert SECRETS["esx-root"] not in repr(esx.customValue)  # the stamp, never the password

    mark = len(call_log.calls)
    assert not client.apply(host, desired).plan  # nothing to read back: the stamp says it is set
    assert [c for c in call_log.since(mark) if c not in READS] == []

    SECRETS["esx-root"] = "R00t-second-8d2e"  # `stateless secret set root-password esx-root`
    try:
        assert [d.key for d in client.compliance(host, desired)] == ["account.root.password"]
        assert client.apply(host, desired).plan
        assert has_password(esx, "root", "R00t-second-8d2e")
        assert client.compliance(host, desired) == []
        fresh = client.apply(host, desired, fresh=True)  # added again: set it once more
        assert [c.kind for c in fresh.plan] == ["account"]
    finally:
        SECRETS["esx-root"] = "R00t-first-3f1c"


def test_removed_items_are_deleted_and_unmanaged_items_stay(client: VCenterClient,
                                                           host: HostRef) -> None:
    client.apply(host, HostConfig.from_settings(VMK))
    before = client.read(host)
    assert "VM Network" in before.portgroups
    removal = HostConfig.from_settings({"vswitch.vSwitch1.mtu": 9000},
                                       removed=["vmknic.vMotion", "portgroup.vMotion"])
    result = client.apply(host, removal)
    assert [str(c) for c in result.plan] == ["remove vmknic vMotion", "remove portgroup vMotion"]
    after = client.read(host)
    assert "vMotion" not in after.portgroups and "vMotion" not in after.vmknics
    assert "VM Network" in after.portgroups and "vSwitch1" in after.vswitches
    assert client.compliance(host, removal) == []


def test_expired_session_logs_in_again(sim: Any, host_pool: list[HostRef]) -> None:
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as c:
        ref = host_pool[0]
        c.read(ref)
        c.session.content.sessionManager.Logout()  # what an expired session looks like
        assert c.read(ref).vswitches  # transparently logged in again

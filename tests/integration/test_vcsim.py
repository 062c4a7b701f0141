"""The vCenter simulator launcher: read-after-write per host, faults and delays, over plain pyvmomi."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import VmomiSupport, vim, vmodl

from tests.integration.fixtures_vcsim import ROOT, Vcsim, has_password

HostPair = tuple[Any, Any]
LONG = VmomiSupport.GetVmodlType("long")


def hosts_of(si: Any) -> list[Any]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        return sorted(view.view, key=lambda h: h.name)
    finally:
        view.Destroy()


@pytest.fixture(scope="module")
def sim(vcsim_factory: Callable[..., Vcsim]) -> Vcsim:
    """A private instance, so the writes here never leak into other tests."""
    return vcsim_factory("-cluster", "1", "-host", "2", "-standalone", "1")


@pytest.fixture(scope="module")
def si(sim: Vcsim) -> Any:
    return sim.connect()


@pytest.fixture(scope="module")
def pair(si: Any) -> Iterator[HostPair]:
    """A host that came with the inventory and one added later with AddHost_Task."""
    content = si.RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    cluster = next(e for e in dc.hostFolder.childEntity if isinstance(e, vim.ClusterComputeResource))
    task = cluster.AddHost_Task(
        spec=vim.host.ConnectSpec(hostName="added-1.example.test", force=True), asConnected=True
    )
    WaitForTask(task)
    added = task.info.result
    first = next(h for h in hosts_of(si) if h.name != added.name)
    yield first, added


def vswitch(host: Any, name: str) -> Any:
    return next(v for v in host.config.network.vswitch if v.name == name)


def portgroup(host: Any, name: str) -> Any | None:
    return next((p for p in host.config.network.portgroup if p.spec.name == name), None)


def test_first_line_announces_url(vcsim: Vcsim) -> None:
    assert vcsim.first_line.startswith("VCSIM_URL=http://127.0.0.1:")
    assert vcsim.url == f"http://127.0.0.1:{vcsim.port}/sdk"
    assert len(hosts_of(vcsim.connect())) == 4


def test_vswitch_spec_is_kept_per_host(pair: HostPair) -> None:
    a, b = pair
    for host, nics, mtu in ((a, ["vmnic1", "vmnic2"], 9000), (b, ["vmnic3"], 1600)):
        teaming = vim.host.NetworkPolicy.NicTeamingPolicy(
            policy="failover_explicit",
            nicOrder=vim.host.NetworkPolicy.NicOrderPolicy(activeNic=nics[:1], standbyNic=nics[1:]),
        )
        spec = vim.host.VirtualSwitch.Specification(
            numPorts=64,
            mtu=mtu,
            bridge=vim.host.VirtualSwitch.BondBridge(nicDevice=nics),
            policy=vim.host.NetworkPolicy(nicTeaming=teaming),
        )
        host.configManager.networkSystem.AddVirtualSwitch("vSwitchT", spec)
    va, vb = vswitch(a, "vSwitchT"), vswitch(b, "vSwitchT")
    assert (va.mtu, va.numPorts, list(va.spec.bridge.nicDevice)) == (9000, 64, ["vmnic1", "vmnic2"])
    assert list(va.spec.policy.nicTeaming.nicOrder.standbyNic) == ["vmnic2"]
    assert va.spec.policy.nicTeaming.policy == "failover_explicit"
    assert (vb.mtu, list(vb.pnic)) == (1600, ["key-vim.host.PhysicalNic-vmnic3"])
    info = a.configManager.networkSystem.networkInfo
    assert next(v for v in info.vswitch if v.name == "vSwitchT").mtu == 9000

    upd = vim.host.VirtualSwitch.Specification(
        numPorts=128, mtu=1500, bridge=vim.host.VirtualSwitch.BondBridge(nicDevice=["vmnic1"])
    )
    a.configManager.networkSystem.UpdateVirtualSwitch("vSwitchT", upd)
    assert (vswitch(a, "vSwitchT").mtu, vswitch(a, "vSwitchT").numPorts) == (1500, 128)
    assert vswitch(b, "vSwitchT").mtu == 1600

    with pytest.raises(vim.fault.NotFound):
        a.configManager.networkSystem.AddVirtualSwitch(
            "vSwitchBad",
            vim.host.VirtualSwitch.Specification(
                numPorts=8, bridge=vim.host.VirtualSwitch.BondBridge(nicDevice=["vmnic9"])
            ),
        )
    with pytest.raises(vim.fault.ResourceInUse):  # vmnic1 is an uplink of vSwitchT already
        a.configManager.networkSystem.AddVirtualSwitch(
            "vSwitchBad",
            vim.host.VirtualSwitch.Specification(
                numPorts=8, bridge=vim.host.VirtualSwitch.BondBridge(nicDevice=["vmnic1"])
            ),
        )
    for host in pair:
        host.configManager.networkSystem.RemoveVirtualSwitch("vSwitchT")
        assert all(v.name != "vSwitchT" for v in host.config.network.vswitch)


def test_same_port_group_name_on_two_hosts(pair: HostPair) -> None:
    a, b = pair
    for host, vlan in ((a, 10), (b, 20)):
        spec = vim.host.PortGroup.Specification(
            name="pgShared", vlanId=vlan, vswitchName="vSwitch0", policy=vim.host.NetworkPolicy()
        )
        host.configManager.networkSystem.AddPortGroup(spec)
    pa, pb = portgroup(a, "pgShared"), portgroup(b, "pgShared")
    assert pa is not None and pb is not None
    assert (pa.spec.vlanId, pb.spec.vlanId) == (10, 20)
    assert "key-vim.host.PortGroup-pgShared" in vswitch(a, "vSwitch0").portgroup
    net_a = next(n for n in a.network if n.name == "pgShared")
    assert {h.name for h in net_a.host} == {a.name, b.name}

    override = vim.host.NetworkPolicy(
        nicTeaming=vim.host.NetworkPolicy.NicTeamingPolicy(
            nicOrder=vim.host.NetworkPolicy.NicOrderPolicy(activeNic=["vmnic0"]), policy="failover_explicit"
        )
    )
    a.configManager.networkSystem.UpdatePortGroup(
        "pgShared",
        vim.host.PortGroup.Specification(name="pgShared", vlanId=11, vswitchName="vSwitch0", policy=override),
    )
    pa = portgroup(a, "pgShared")
    assert pa is not None
    assert pa.spec.vlanId == 11
    assert pa.computedPolicy.nicTeaming.policy == "failover_explicit"
    assert portgroup(b, "pgShared").spec.vlanId == 20  # type: ignore[union-attr]

    a.configManager.networkSystem.RemovePortGroup("pgShared")
    assert portgroup(a, "pgShared") is None
    assert portgroup(b, "pgShared") is not None
    b.configManager.networkSystem.RemovePortGroup("pgShared")
    with pytest.raises(vim.fault.NotFound):
        b.configManager.networkSystem.RemovePortGroup("pgShared")


def test_virtual_nics_dns_and_nic_types(pair: HostPair) -> None:
    a, b = pair
    ns = a.configManager.networkSystem
    ns.AddPortGroup(
        vim.host.PortGroup.Specification(
            name="vmk-pg", vlanId=5, vswitchName="vSwitch0", policy=vim.host.NetworkPolicy()
        )
    )
    ip = vim.host.IpConfig(dhcp=False, ipAddress="192.0.2.10", subnetMask="255.255.255.0")
    dev = ns.AddVirtualNic("vmk-pg", vim.host.VirtualNic.Specification(ip=ip, mtu=9000))
    assert dev == "vmk1"
    nic = next(v for v in a.config.network.vnic if v.device == dev)
    assert (nic.portgroup, nic.spec.ip.ipAddress, nic.spec.mtu) == ("vmk-pg", "192.0.2.10", 9000)
    assert all(v.device != dev for v in b.config.network.vnic)

    ns.UpdateVirtualNic(dev, vim.host.VirtualNic.Specification(ip=vim.host.IpConfig(dhcp=True)))
    nic = next(v for v in a.config.network.vnic if v.device == dev)
    assert nic.spec.ip.dhcp and not nic.spec.ip.ipAddress and nic.spec.mtu == 9000

    vnm = a.configManager.virtualNicManager
    vnm.SelectVnicForNicType("vmotion", dev)
    vnm.SelectVnicForNicType("vsan", dev)
    assert list(vnm.QueryNetConfig("vmotion").selectedVnic) == [f"vmotion.key-vim.host.VirtualNic-{dev}"]
    cfg = {c.nicType: c for c in a.config.virtualNicManagerInfo.netConfig}
    assert list(cfg["vsan"].selectedVnic) == [f"vsan.key-vim.host.VirtualNic-{dev}"]
    assert not b.configManager.virtualNicManager.QueryNetConfig("vmotion").selectedVnic
    vnm.DeselectVnicForNicType("vsan", dev)
    assert not vnm.QueryNetConfig("vsan").selectedVnic

    with pytest.raises(vim.fault.ResourceInUse):
        ns.RemovePortGroup("vmk-pg")
    ns.RemoveVirtualNic(dev)
    assert all(v.device != dev for v in a.config.network.vnic)
    assert not vnm.QueryNetConfig("vmotion").selectedVnic
    ns.RemovePortGroup("vmk-pg")

    dns = vim.host.DnsConfig(
        dhcp=False,
        hostName="esx-a",
        domainName="example.test",
        address=["192.0.2.53"],
        searchDomain=["example.test"],
    )
    ns.UpdateDnsConfig(dns)
    got = a.config.network.dnsConfig
    assert (got.hostName, list(got.address)) == ("esx-a", ["192.0.2.53"])
    assert b.config.network.dnsConfig is None or b.config.network.dnsConfig.hostName != "esx-a"


def test_update_network_config_add_edit_remove(pair: HostPair) -> None:
    a, b = pair
    ns = a.configManager.networkSystem
    add = vim.host.NetworkConfig(
        vswitch=[
            vim.host.VirtualSwitch.Config(
                changeOperation="add",
                name="vSwitchB",
                spec=vim.host.VirtualSwitch.Specification(
                    numPorts=32, mtu=9000, bridge=vim.host.VirtualSwitch.BondBridge(nicDevice=["vmnic2"])
                ),
            )
        ],
        portgroup=[
            vim.host.PortGroup.Config(
                changeOperation="add",
                spec=vim.host.PortGroup.Specification(
                    name="pgB", vlanId=30, vswitchName="vSwitchB", policy=vim.host.NetworkPolicy()
                ),
            )
        ],
        vnic=[
            vim.host.VirtualNic.Config(
                changeOperation="add",
                portgroup="pgB",
                spec=vim.host.VirtualNic.Specification(
                    ip=vim.host.IpConfig(dhcp=False, ipAddress="198.51.100.7", subnetMask="255.255.255.0")
                ),
            )
        ],
        dnsConfig=vim.host.DnsConfig(
            dhcp=False, hostName="esx-b", domainName="example.test", address=["198.51.100.53"]
        ),
        ipRouteConfig=vim.host.IpRouteConfig(defaultGateway="198.51.100.1"),
    )
    result = ns.UpdateNetworkConfig(add, "modify")
    assert len(result.vnicDevice) == 1
    dev = result.vnicDevice[0]
    assert vswitch(a, "vSwitchB").mtu == 9000
    assert portgroup(a, "pgB").spec.vlanId == 30  # type: ignore[union-attr]
    assert next(v for v in a.config.network.vnic if v.device == dev).spec.ip.ipAddress == "198.51.100.7"
    assert a.config.network.dnsConfig.hostName == "esx-b"
    assert a.config.network.ipRouteConfig.defaultGateway == "198.51.100.1"
    assert portgroup(b, "pgB") is None

    edit = vim.host.NetworkConfig(
        portgroup=[
            vim.host.PortGroup.Config(
                changeOperation="edit",
                spec=vim.host.PortGroup.Specification(
                    name="pgB", vlanId=31, vswitchName="vSwitchB", policy=vim.host.NetworkPolicy()
                ),
            )
        ],
        vnic=[
            vim.host.VirtualNic.Config(
                changeOperation="edit",
                device=dev,
                portgroup="",
                spec=vim.host.VirtualNic.Specification(mtu=1500),
            )
        ],
    )
    ns.UpdateNetworkConfig(edit, "modify")
    assert portgroup(a, "pgB").spec.vlanId == 31  # type: ignore[union-attr]
    assert next(v for v in a.config.network.vnic if v.device == dev).spec.mtu == 1500

    # A failing batch changes nothing: the vSwitch edit is valid, the port group add is not.
    bad = vim.host.NetworkConfig(
        vswitch=[
            vim.host.VirtualSwitch.Config(
                changeOperation="edit",
                name="vSwitchB",
                spec=vim.host.VirtualSwitch.Specification(
                    numPorts=32, mtu=1500, bridge=vim.host.VirtualSwitch.BondBridge(nicDevice=["vmnic2"])
                ),
            )
        ],
        portgroup=[
            vim.host.PortGroup.Config(
                changeOperation="add",
                spec=vim.host.PortGroup.Specification(
                    name="pgX", vlanId=1, vswitchName="nope", policy=vim.host.NetworkPolicy()
                ),
            )
        ],
    )
    with pytest.raises(vim.fault.NotFound):
        ns.UpdateNetworkConfig(bad, "modify")
    assert vswitch(a, "vSwitchB").mtu == 9000
    assert portgroup(a, "pgX") is None

    remove = vim.host.NetworkConfig(
        vswitch=[vim.host.VirtualSwitch.Config(changeOperation="remove", name="vSwitchB")],
        portgroup=[
            vim.host.PortGroup.Config(
                changeOperation="remove",
                spec=vim.host.PortGroup.Specification(
                    name="pgB", vswitchName="vSwitchB", policy=vim.host.NetworkPolicy()
                ),
            )
        ],
        vnic=[vim.host.VirtualNic.Config(changeOperation="remove", device=dev, portgroup="")],
    )
    ns.UpdateNetworkConfig(remove, "modify")
    assert all(v.name != "vSwitchB" for v in a.config.network.vswitch)
    assert portgroup(a, "pgB") is None
    assert all(v.device != dev for v in a.config.network.vnic)


def test_date_time_services_lockdown_options_per_host(pair: HostPair) -> None:
    a, b = pair
    a.configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(
            ntpConfig=vim.host.NtpConfig(server=["ntp1.example.test", "ntp2.example.test"])
        )
    )
    assert list(a.config.dateTimeInfo.ntpConfig.server) == ["ntp1.example.test", "ntp2.example.test"]
    assert list(a.configManager.dateTimeSystem.dateTimeInfo.ntpConfig.server) == [
        "ntp1.example.test",
        "ntp2.example.test",
    ]
    assert not b.config.dateTimeInfo.ntpConfig.server

    svc = a.configManager.serviceSystem
    keys = {s.key for s in a.config.service.service}
    assert {"TSM-SSH", "TSM", "ntpd", "snmpd", "sfcbd-watchdog", "vpxa"} <= keys
    svc.UpdateServicePolicy("ntpd", "on")
    svc.StartService("ntpd")
    svc.StartService("TSM-SSH")
    svc.StopService("TSM-SSH")
    svc.RestartService("ntpd")
    svc.RefreshServices()
    state = {s.key: (s.running, s.policy) for s in a.config.service.service}
    assert state["ntpd"] == (True, "on")
    assert state["TSM-SSH"][0] is False
    assert {s.key: s.running for s in b.config.service.service}["ntpd"] is False
    with pytest.raises(vim.fault.NotFound):
        svc.StartService("no-such-service")

    acc = a.configManager.hostAccessManager
    acc.ChangeLockdownMode("lockdownNormal")
    acc.UpdateLockdownExceptions(["svc-backup"])
    assert a.config.lockdownMode == "lockdownNormal"
    assert acc.lockdownMode == "lockdownNormal"
    assert list(acc.QueryLockdownExceptions()) == ["svc-backup"]
    assert b.config.lockdownMode == "lockdownDisabled"
    acc.ChangeLockdownMode("lockdownDisabled")
    assert a.config.lockdownMode == "lockdownDisabled"

    om = a.configManager.advancedOption
    assert om != b.configManager.advancedOption
    om.UpdateOptions(
        [
            vim.option.OptionValue(key="Syslog.global.logHost", value="udp://192.0.2.1:514"),
            vim.option.OptionValue(key="Net.TcpipHeapSize", value=LONG(32)),
        ]
    )
    assert om.QueryOptions("Syslog.global.logHost")[0].value == "udp://192.0.2.1:514"
    assert om.QueryOptions("Net.TcpipHeapSize")[0].value == 32
    assert {o.key: o.value for o in a.config.option}["Syslog.global.logHost"] == "udp://192.0.2.1:514"
    assert b.configManager.advancedOption.QueryOptions("Syslog.global.logHost")[0].value == ""
    assert b.configManager.advancedOption.QueryOptions("Net.TcpipHeapSize")[0].value == 0


def test_advanced_options_follow_each_host_catalogue(pair: HostPair) -> None:
    for host in pair:  # the inventory's host and one added later
        om = host.configManager.advancedOption
        declared = {d.key: d.optionType for d in om.supportedOption}
        heap = declared["Net.TcpipHeapMax"]
        assert isinstance(heap, vim.option.LongOption)
        assert (heap.min, heap.max, heap.defaultValue) == (32, 1536, 512)
        assert isinstance(declared["Security.AccountLockFailures"], vim.option.IntOption)
        assert isinstance(declared["Syslog.global.logHost"], vim.option.StringOption)
        assert isinstance(declared["Config.HostAgent.plugins.solo.enableMob"], vim.option.BoolOption)
        # Every declared option has a value; never-written ones report the default.
        assert {o.key for o in om.QueryOptions()} == set(declared)
        assert {o.key for o in om.QueryOptions("Net.")} == {
            "Net.BlockGuestBPDU", "Net.TcpipHeapMax", "Net.TcpipHeapSize"}
        assert om.QueryOptions("Security.AccountLockFailures")[0].value == 5
    om = pair[1].configManager.advancedOption
    refused = [
        (vim.fault.InvalidName, vim.option.OptionValue(key="Custom.Unknown.Key", value="x")),
        (vmodl.fault.InvalidArgument, vim.option.OptionValue(key="Net.TcpipHeapMax", value=32)),
        (vmodl.fault.InvalidArgument, vim.option.OptionValue(key="Net.TcpipHeapMax", value=LONG(4096))),
        (vmodl.fault.InvalidArgument, vim.option.OptionValue(key="Security.AccountLockFailures",
                                                             value=LONG(3))),
    ]
    for fault, bad in refused:
        good = vim.option.OptionValue(key="Mem.ShareForceSalting", value=LONG(0))
        with pytest.raises(fault):
            om.UpdateOptions([good, bad])
        assert om.QueryOptions("Mem.ShareForceSalting")[0].value == 2  # nothing half-applied
    with pytest.raises(vim.fault.InvalidName):
        om.QueryOptions("Custom.")
    om.UpdateOptions([vim.option.OptionValue(key="Security.AccountLockFailures", value=3)])
    assert om.QueryOptions("Security.AccountLockFailures")[0].value == 3


def test_port_groups_without_override_report_unset_policies(pair: HostPair) -> None:
    a, _ = pair
    a.configManager.networkSystem.AddPortGroup(
        vim.host.PortGroup.Specification(name="NoOverride", vswitchName="vSwitch0", vlanId=5,
                                         policy=vim.host.NetworkPolicy()))
    pg = portgroup(a, "NoOverride")
    assert pg is not None
    policy = pg.spec.policy
    assert policy.security is not None and policy.security.allowPromiscuous is None
    assert policy.nicTeaming is not None and policy.nicTeaming.policy is None
    assert policy.nicTeaming.nicOrder is None and policy.nicTeaming.notifySwitches is None
    assert policy.nicTeaming.failureCriteria is not None
    assert policy.nicTeaming.failureCriteria.checkBeacon is None
    assert policy.offloadPolicy is not None and policy.offloadPolicy.csumOffload is None
    assert policy.shapingPolicy is not None and policy.shapingPolicy.enabled is None
    inherited = vswitch(a, "vSwitch0").spec.policy
    assert pg.computedPolicy.nicTeaming.policy == inherited.nicTeaming.policy == "loadbalance_srcid"
    assert pg.computedPolicy.security.forgedTransmits is inherited.security.forgedTransmits
    assert pg.computedPolicy.offloadPolicy.tcpSegmentation is True
    a.configManager.networkSystem.RemovePortGroup("NoOverride")


def test_iscsi_nas_and_snmp(pair: HostPair, si: Any) -> None:
    a, b = pair
    st = a.configManager.storageSystem
    st.UpdateSoftwareInternetScsiEnabled(True)
    hba = next(h for h in a.config.storageDevice.hostBusAdapter if isinstance(h, vim.host.InternetScsiHba))
    device = hba.device
    assert device.startswith("vmhba")
    target = vim.host.InternetScsiHba.SendTarget(address="192.0.2.20", port=3260)
    st.AddInternetScsiSendTargets(device, [target])
    st.UpdateInternetScsiAuthenticationProperties(
        device,
        vim.host.InternetScsiHba.AuthenticationProperties(
            chapAuthEnabled=True, chapName="iqn.x", chapSecret="s"
        ),
    )
    hba = next(h for h in a.config.storageDevice.hostBusAdapter if h.device == device)
    assert [t.address for t in hba.configuredSendTarget] == ["192.0.2.20"]
    assert hba.authenticationProperties.chapName == "iqn.x"
    assert a.config.storageDevice.softwareInternetScsiEnabled
    assert all(not isinstance(h, vim.host.InternetScsiHba) for h in b.config.storageDevice.hostBusAdapter)
    st.RemoveInternetScsiSendTargets(device, [target])
    hba = next(h for h in a.config.storageDevice.hostBusAdapter if h.device == device)
    assert not hba.configuredSendTarget

    spec = vim.host.NasVolume.Specification(
        remoteHost="192.0.2.30",
        remotePath="/export/iso",
        localPath="nfs-iso",
        accessMode="readOnly",
        type="NFS",
    )
    ds_a = a.configManager.datastoreSystem.CreateNasDatastore(spec)
    ds_b = b.configManager.datastoreSystem.CreateNasDatastore(spec)
    assert ds_a == ds_b
    assert ds_a.info.nas.remoteHost == "192.0.2.30"
    assert {m.key.name for m in ds_a.host} == {a.name, b.name}
    assert "nfs-iso" in [d.name for d in a.datastore]
    a.configManager.datastoreSystem.RemoveDatastore(ds_a)
    assert "nfs-iso" not in [d.name for d in a.datastore]
    assert "nfs-iso" in [d.name for d in b.datastore]
    b.configManager.datastoreSystem.RemoveDatastore(ds_b)

    snmp = a.configManager.snmpSystem
    snmp.ReconfigureSnmpAgent(
        vim.host.SnmpSystem.SnmpConfigSpec(enabled=True, port=161, readOnlyCommunities=["public"])
    )
    assert snmp.configuration.enabled and list(snmp.configuration.readOnlyCommunities) == ["public"]
    assert not b.configManager.snmpSystem.configuration.enabled


def test_standalone_host_added_later_is_equipped(si: Any) -> None:
    content = si.RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    task = dc.hostFolder.AddStandaloneHost_Task(
        spec=vim.host.ConnectSpec(hostName="lone-1.example.test", force=True), addConnected=True
    )
    WaitForTask(task)
    result = task.info.result
    host: Any = result if isinstance(result, vim.HostSystem) else result.host[0]
    host.configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["ntp3.example.test"]))
    )
    assert list(host.config.dateTimeInfo.ntpConfig.server) == ["ntp3.example.test"]
    host.configManager.networkSystem.AddPortGroup(
        vim.host.PortGroup.Specification(
            name="pgLone", vlanId=3, vswitchName="vSwitch0", policy=vim.host.NetworkPolicy()
        )
    )
    assert portgroup(host, "pgLone") is not None


def test_fault_injection_fails_add_port_group(vcsim_factory: Callable[..., Vcsim]) -> None:
    sim = vcsim_factory("-fault", "AddPortGroup:1.0", "-fault", "CurrentTime:1:delay=300ms")
    si = sim.connect()
    host = hosts_of(si)[0]
    spec = vim.host.PortGroup.Specification(
        name="pgFail", vlanId=1, vswitchName="vSwitch0", policy=vim.host.NetworkPolicy()
    )
    with pytest.raises(vmodl.MethodFault) as err:
        host.configManager.networkSystem.AddPortGroup(spec)
    assert isinstance(err.value, vmodl.fault.SystemError)
    assert portgroup(host, "pgFail") is None
    start = time.monotonic()
    si.CurrentTime()
    assert time.monotonic() - start >= 0.3


def test_fault_fraction_and_call_delay(vcsim_factory: Callable[..., Vcsim]) -> None:
    sim = vcsim_factory(
        "-delay", "40ms", "-fault", "CurrentTime:0.5", "-seed", "7", "-cluster", "0", "-standalone", "1"
    )
    si = sim.connect()
    failures = 0
    start = time.monotonic()
    for _ in range(20):
        try:
            si.CurrentTime()
        except vmodl.fault.SystemError:
            failures += 1
    elapsed = time.monotonic() - start
    assert 2 <= failures <= 18
    assert elapsed >= 20 * 0.04


def test_launcher_go_tests_pass() -> None:
    """The launcher's own Go tests (catalogue, option checks, policies, faults) run here too."""
    env = {**os.environ, "GOPATH": "/usr/share/gocode", "GO111MODULE": "off", "GOFLAGS": "",
           "GOCACHE": os.environ.get("GOCACHE", str(ROOT / ".gocache"))}
    result = subprocess.run(["go", "test", "-count=1", "."], cwd=ROOT / "contrib" / "vcsim",
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_each_host_keeps_its_own_local_account_passwords(pair: HostPair) -> None:
    a, b = pair
    spec = vim.host.LocalAccountManager.AccountSpecification(id="root", password="Acc0unt-pw")
    a.configManager.accountManager.UpdateUser(spec)
    assert has_password(a, "root", "Acc0unt-pw") and not has_password(a, "root", "wrong")
    assert not has_password(b, "root", "Acc0unt-pw")  # the other host's root is untouched
    with pytest.raises(vim.fault.UserNotFound):
        a.configManager.accountManager.UpdateUser(
            vim.host.LocalAccountManager.AccountSpecification(id="nobody", password="x"))

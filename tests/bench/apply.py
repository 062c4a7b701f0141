"""Apply the standard configuration to many simulator hosts: the project's applier vs a plain
minimal pyvmomi script, same simulator, same concurrency, same run.

    .venv/bin/python tests/bench/apply.py [--sizes 50,200] [--threads 8] [--delay 10ms]

The simulator (contrib/vcsim, `-delay` added to every SOAP call as a stand-in for a real
vCenter's latency) gets two clusters of N hosts: the applier configures cluster 0, the
minimal script cluster 1.  Printed per size: wall time, SOAP calls per host, and the ratio of
the applier's wall time to the script's (target <= 1.3).  The applier also reads the host
first and verifies afterwards; the script only writes.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pyVim.connect import Disconnect, SmartConnect  # noqa: E402
from pyVmomi import SoapAdapter, VmomiSupport, vim, vmodl  # noqa: E402

from stateless.model.config import HostConfig  # noqa: E402
from stateless.vcenter import HostRef, VCenterClient  # noqa: E402
from tests.integration.fixtures_vcsim import start_vcsim  # noqa: E402
from tests.integration.test_vcenter import STANDARD  # noqa: E402

PC = vmodl.query.PropertyCollector
LONG = VmomiSupport.GetVmodlType("long")


class Calls:
    """SOAP calls per thread, counted at the stub adapter for both contenders alike."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.total = 0
        original = SoapAdapter.SoapStubAdapter.InvokeMethod
        calls = self

        def counted(stub: Any, mo: Any, info: Any, args: Any, *rest: Any) -> Any:
            with calls.lock:
                calls.total += 1
            return original(stub, mo, info, args, *rest)

        SoapAdapter.SoapStubAdapter.InvokeMethod = counted  # type: ignore[method-assign]


def host_names(si: Any, cluster: str) -> list[tuple[str, str]]:
    """(moid, name) of the hosts of one cluster, in one call."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[PC.TraversalSpec(
            name="v", type=vim.view.ContainerView, path="view", skip=False)])],
        propSet=[PC.PropertySpec(type=vim.HostSystem, pathSet=["name"])])
    result = content.propertyCollector.RetrievePropertiesEx([spec], PC.RetrieveOptions())
    out = []
    while True:
        out += [(o.obj._moId, o.propSet[0].val) for o in result.objects]
        if not result.token:
            break
        result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
    return sorted(h for h in out if f"_{cluster}_" in h[1])


def minimal(si: Any, moid: str) -> None:
    """What a plain script does: fetch the managers, then one call per item, no checks."""
    host = vim.HostSystem(moid, si._stub)
    cm = host.configManager  # one property read; the managers come back as references
    net = cm.networkSystem
    vs = vim.host.VirtualSwitch.Specification(
        numPorts=128, mtu=9000,
        bridge=vim.host.VirtualSwitch.BondBridge(nicDevice=["vmnic1", "vmnic2"]),
        policy=vim.host.NetworkPolicy(nicTeaming=vim.host.NetworkPolicy.NicTeamingPolicy(
            policy="failover_explicit", nicOrder=vim.host.NetworkPolicy.NicOrderPolicy(
                activeNic=["vmnic1"], standbyNic=["vmnic2"]))))
    net.AddVirtualSwitch("vSwitch1", vs)
    for name, vlan in (("VM Prod", 10), ("vMotion", 20), ("Storage", 30)):
        net.AddPortGroup(vim.host.PortGroup.Specification(
            name=name, vlanId=vlan, vswitchName="vSwitch1", policy=vim.host.NetworkPolicy()))
    devices = {}
    for pg, address, mtu in (("vMotion", "10.0.20.11", 9000), ("Storage", "10.0.30.11", 1500)):
        devices[pg] = net.AddVirtualNic(pg, vim.host.VirtualNic.Specification(
            ip=vim.host.IpConfig(dhcp=False, ipAddress=address, subnetMask="255.255.255.0"),
            mtu=mtu))
    cm.virtualNicManager.SelectVnicForNicType("vmotion", devices["vMotion"])
    cm.virtualNicManager.SelectVnicForNicType("vSphereProvisioning", devices["Storage"])
    net.UpdateDnsConfig(vim.host.DnsConfig(dhcp=False, hostName="localhost", domainName="localdomain",
                                           address=["10.0.0.53", "10.0.1.53"],
                                           searchDomain=["example.com"]))
    cm.dateTimeSystem.UpdateDateTimeConfig(vim.host.DateTimeConfig(
        ntpConfig=vim.host.NtpConfig(server=["0.pool.ntp.org", "10.0.0.1"])))
    cm.advancedOption.UpdateOptions([
        vim.option.OptionValue(key="Syslog.global.logHost", value="udp://10.0.0.5:514"),
        vim.option.OptionValue(key="Net.TcpipHeapSize", value=LONG(32)),
        vim.option.OptionValue(key="Mem.ShareForceSalting", value=LONG(0)),
        vim.option.OptionValue(key="UserVars.SuppressShellWarning", value=LONG(1))])


def timed(threads: int, items: list[str], work: Callable[[str], Any]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, items))
    return time.perf_counter() - start


def run(size: int, threads: int, delay: str, calls: Calls) -> tuple[float, float, float, float]:
    sim = start_vcsim("-dc", "1", "-cluster", "2", "-host", str(size), "-standalone", "0",
                      "-delay", delay)
    try:
        si = SmartConnect(host=sim.host, port=sim.port, user=sim.user, pwd=sim.password,
                          protocol="http")
        si._stub.poolSize = threads
        ours = [m for m, _ in host_names(si, "C0")]
        theirs = [m for m, _ in host_names(si, "C1")]
        assert len(ours) == len(theirs) == size, (len(ours), len(theirs))
        desired = HostConfig.from_settings(STANDARD)
        with VCenterClient(sim.url, sim.user, sim.password, name="bench", pool_size=threads) as client:
            client.session.content  # noqa: B018 - log in before the clock starts
            before = calls.total
            wall_ours = timed(threads, ours, lambda m: client.apply(HostRef(m), desired))
            calls_ours = (calls.total - before) / size
            # The applier verified every host; check a sample independently too.
            assert client.compliance(HostRef(ours[0]), desired) == []
        before = calls.total
        wall_theirs = timed(threads, theirs, lambda m: minimal(si, m))
        calls_theirs = (calls.total - before) / size
        Disconnect(si)
        return wall_ours, calls_ours, wall_theirs, calls_theirs
    finally:
        sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--delay", default="10ms")
    args = parser.parse_args()
    calls = Calls()
    print(f"threads={args.threads} delay={args.delay} per SOAP call")
    print(f"{'hosts':>5} {'applier s':>10} {'calls/host':>10} {'minimal s':>10} {'calls/host':>10} "
          f"{'ratio':>6}")
    for size in (int(s) for s in args.sizes.split(",")):
        ours, ours_calls, theirs, theirs_calls = run(size, args.threads, args.delay, calls)
        print(f"{size:>5} {ours:>10.2f} {ours_calls:>10.1f} {theirs:>10.2f} {theirs_calls:>10.1f} "
              f"{ours / theirs:>6.2f}", flush=True)


if __name__ == "__main__":
    main()

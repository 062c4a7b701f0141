"""Advanced options checked against each host's catalogue, on the real simulator."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVmomi import VmomiSupport, vim

from stateless.errors import ValidationError, VCenterError
from stateless.model.config import HostConfig
from stateless.plan import UnsupportedOptionError
from stateless.vcenter import HostRef, VCenterClient

NET = {"vswitch.vSwitch1.uplinks": ("vmnic1", "vmnic2"), "portgroup.vMotion.vswitch": "vSwitch1",
       "portgroup.vMotion.vlan": 20}
LONG = VmomiSupport.GetVmodlType("long")


@pytest.fixture(scope="module")
def client(vcsim_factory: Callable[..., Any]) -> Iterator[VCenterClient]:
    sim = vcsim_factory("-cluster", "1", "-host", "8", "-standalone", "0")
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as c:
        yield c


@pytest.fixture(scope="module")
def host_pool(client: VCenterClient) -> list[HostRef]:
    content = client.session.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    return [HostRef(h._moId) for h in view.view]


@pytest.fixture
def host(host_pool: list[HostRef]) -> HostRef:
    """A host no other test touched."""
    return host_pool.pop()


@contextlib.contextmanager
def soap_calls(client: VCenterClient) -> Iterator[list[str]]:
    """The SOAP methods the client invokes inside the block (from this test's thread)."""
    names: list[str] = []
    stub = client.session.si._stub
    inner = stub.InvokeMethod

    def counted(mo: Any, info: Any, args: Any, *rest: Any) -> Any:
        names.append(info.wsdlName)
        return inner(mo, info, args, *rest)

    stub.InvokeMethod = counted
    try:
        yield names
    finally:
        stub.InvokeMethod = inner


def host_options(client: VCenterClient, ref: HostRef) -> dict[str, Any]:
    host = vim.HostSystem(ref.moid, client.session.si._stub)
    return {o.key: o.value for o in host.config.option}


def test_unknown_mistyped_and_out_of_range_options_stop_the_apply_before_any_write(
        client: VCenterClient, host: HostRef) -> None:
    desired = HostConfig.from_settings({
        **NET,
        "advanced.Net.TcpipHeapSise": 32,  # misspelt
        "advanced.Net.TcpipHeapMax": 4096,  # ESXi 6.5 takes 32..1536
        "advanced.UserVars.SuppressShellWarning": "yes",  # a LongOption
        "advanced.Mem.ShareForceSalting": 0,  # fine on its own
    })
    with soap_calls(client) as calls, pytest.raises(UnsupportedOptionError) as caught:
        client.apply(host, desired)
    assert set(calls) == {"RetrievePropertiesEx"}, calls  # reads only: nothing was written
    error = caught.value
    assert isinstance(error, ValidationError) and not isinstance(error, VCenterError)
    problems = dict(error.problems)
    assert sorted(problems) == ["advanced.Net.TcpipHeapMax", "advanced.Net.TcpipHeapSise",
                                "advanced.UserVars.SuppressShellWarning"]
    assert problems["advanced.Net.TcpipHeapSise"] == (
        "not supported by this host; remove it from the policy or check its spelling "
        "(did you mean Net.TcpipHeapSize?)")
    assert problems["advanced.Net.TcpipHeapMax"].startswith("'4096': 4096 is outside 32..1536 "
                                                            "(LongOption)")
    assert "expected an integer 0..1 (LongOption)" in problems["advanced.UserVars.SuppressShellWarning"]
    assert "nothing was written" in str(error) and "on host " in str(error)

    after = client.read(host)
    assert "vMotion" not in after.portgroups and "vSwitch1" not in after.vswitches
    assert after.advanced["Mem.ShareForceSalting"] == 2  # the good option was not written either

    with pytest.raises(UnsupportedOptionError) as again:
        client.compliance(host, desired)
    assert again.value.problems == error.problems


def test_syslog_and_values_are_written_in_the_types_the_host_declares(
        client: VCenterClient, host: HostRef) -> None:
    desired = HostConfig.from_settings({
        "syslog.targets": ("udp://10.0.0.5:514",),
        "advanced.Net.TcpipHeapSize": "32",  # quoted in the directory: a string
        "advanced.Security.AccountLockFailures": 3,  # an IntOption: xsd:int, not xsd:long
        "advanced.Config.Etc.issue": 7,  # a StringOption
        "advanced.Syslog.global.logDirUnique": "yes",  # a BoolOption
    })
    assert client.compliance(host, desired) != []
    result = client.apply(host, desired)
    assert result.verified and len(result.plan) == 5
    options = host_options(client, host)
    assert options["Net.TcpipHeapSize"] == 32 and type(options["Net.TcpipHeapSize"]) is LONG
    assert options["Security.AccountLockFailures"] == 3
    assert type(options["Security.AccountLockFailures"]) is int
    assert options["Config.Etc.issue"] == "7"
    assert options["Syslog.global.logDirUnique"] is True
    assert options["Syslog.global.logHost"] == "udp://10.0.0.5:514"
    assert client.compliance(host, desired) == []
    assert not client.apply(host, desired).plan


def test_the_catalogue_is_read_once_per_build_and_stored_once(client: VCenterClient,
                                                             host_pool: list[HostRef]) -> None:
    a, b = host_pool.pop(), host_pool.pop()
    with soap_calls(client) as first:
        client.apply(a, HostConfig.from_settings({"advanced.Net.TcpipHeapSize": 8}))
    with soap_calls(client) as second:
        client.apply(a, HostConfig.from_settings({"advanced.Net.TcpipHeapSize": 16}))
    assert first.count("RetrievePropertiesEx") <= second.count("RetrievePropertiesEx") + 1
    assert second == ["RetrievePropertiesEx", "UpdateOptions", "RetrievePropertiesEx"]
    with soap_calls(client) as same_build:  # another host of the same build: nothing more
        client.apply(b, HostConfig.from_settings({"advanced.Net.TcpipHeapSize": 8}))
    assert same_build == second
    with soap_calls(client) as unmanaged:
        client.apply(a, HostConfig.from_settings({"ntp.servers": ("10.0.0.1",)}))
    assert unmanaged.count("RetrievePropertiesEx") == 2  # no catalogue without advanced options
    catalogue = client.catalogue(client.view(a))
    assert client.catalogue(client.view(b)) is catalogue  # same build, stored once
    assert catalogue["Net.TcpipHeapSize"].describe() == "an integer 0..32 (LongOption)"
    assert catalogue["Security.AccountLockFailures"].kind == "int"
    assert catalogue["Syslog.global.logHost"].kind == "string"


def test_a_host_is_refused_an_option_only_by_its_own_catalogue(client: VCenterClient,
                                                                host_pool: list[HostRef]) -> None:
    a, b = host_pool.pop(), host_pool.pop()
    view = client.view(a)
    build = client.catalogue(view)
    assert view.build
    # Another host of the build declared fewer options (a driver it lacks adds some).
    client._catalogues.put(f"build {view.build}",
                           [o for k, o in build.items() if k != "Net.BlockGuestBPDU"])
    with soap_calls(client) as calls:
        client.apply(b, HostConfig.from_settings({"advanced.Net.BlockGuestBPDU": 1}))
    assert calls == ["RetrievePropertiesEx", "RetrievePropertiesEx", "UpdateOptions",
                     "RetrievePropertiesEx"]  # read, b's own catalogue, write, verify
    assert host_options(client, b)["Net.BlockGuestBPDU"] == 1
    with soap_calls(client) as calls, pytest.raises(UnsupportedOptionError) as err:
        client.apply(b, HostConfig.from_settings({"advanced.Net.NoSuchOption": 1}))
    assert calls == ["RetrievePropertiesEx"]  # b's own catalogue is known: refused at once
    assert "advanced.Net.NoSuchOption" in str(err.value)

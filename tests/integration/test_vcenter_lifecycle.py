"""Host placement and fault handling against the real simulator."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pyVmomi import vim, vmodl

from stateless.errors import TransientVCenterError, ValidationError, VCenterError
from stateless.model.config import HostConfig
from stateless.model.identity import HostIdentity
from stateless.vcenter import HostRef, VCenterClient
from stateless.vcenter.lifecycle import _create, split_path
from tests.integration.fixtures_daemon import wait_for
from tests.integration.test_vcenter import STANDARD


@pytest.fixture(scope="module")
def client(vcsim_factory: Callable[..., Any]) -> Any:
    sim = vcsim_factory("-cluster", "1", "-host", "2", "-standalone", "1")
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as c:
        yield c


def find(client: VCenterClient, path: str) -> Any:
    return client.session.content.searchIndex.FindByInventoryPath(path)


def hosts_named(client: VCenterClient, name: str) -> list[Any]:
    content = client.session.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    found = []
    for host in view.view:
        # The simulator leaves a destroyed cluster host listed in its cluster.
        try:
            if host.name == name:
                found.append(host)
        except vmodl.fault.ManagedObjectNotFound:
            continue
    return found


@pytest.mark.parametrize(
    ("path", "kind", "expected"),
    [
        ("/DC1/Prod/ClusterA", "cluster", ("DC1", ["Prod"], "ClusterA")),
        ("/DC1/ClusterA", "cluster", ("DC1", [], "ClusterA")),
        ("/DC1/Prod/Edge", "folder", ("DC1", ["Prod", "Edge"], None)),
        ("/DC1", "folder", ("DC1", [], None)),
    ],
)
def test_split_path(path: str, kind: str, expected: tuple[str, list[str], str | None]) -> None:
    assert split_path(path, kind) == expected


@pytest.mark.parametrize(("path", "kind"), [("/", "folder"), ("/DC1", "cluster"), ("/DC1/X", "rack")])
def test_split_path_rejects(path: str, kind: str) -> None:
    with pytest.raises(ValidationError):
        split_path(path, kind)


def test_missing_datacenter_folder_and_cluster_are_created(client: VCenterClient) -> None:
    assert find(client, "DC9") is None
    ref = client.ensure_host("esx-new-1.example.com", "/DC9/Prod/ClusterZ", "cluster")
    cluster = find(client, "DC9/host/Prod/ClusterZ")
    assert isinstance(cluster, vim.ClusterComputeResource)
    assert [h._moId for h in cluster.host] == [ref.moid]
    assert ref.name == "esx-new-1.example.com" and ref.uuid
    # Idempotent: the same call keeps the host and adds nothing.
    assert client.ensure_host("esx-new-1.example.com", "/DC9/Prod/ClusterZ", "cluster") == ref
    assert len(hosts_named(client, "esx-new-1.example.com")) == 1


def test_creating_what_another_apply_just_created_uses_theirs(client: VCenterClient) -> None:
    """Two births into a new cluster race to create it; the loser gets DuplicateName."""
    client.ensure_host("esx-race-0.example.com", "/DC8/Race", "cluster")
    folder = find(client, "DC8/host")
    existing = find(client, "DC8/host/Race")
    search = client.session.content.searchIndex
    got = _create(client.session, "CreateClusterEx Race",
                  lambda: search.FindChild(folder, "Race"), folder.CreateClusterEx, "Race",
                  vim.cluster.ConfigSpecEx())
    assert got._moId == existing._moId
    with pytest.raises(VCenterError, match="CreateClusterEx Race"):
        _create(client.session, "CreateClusterEx Race", lambda: None, folder.CreateClusterEx,
                "Race", vim.cluster.ConfigSpecEx())


def test_concurrent_placement_into_a_new_cluster(client: VCenterClient) -> None:
    with ThreadPoolExecutor(6) as pool:
        refs = list(pool.map(lambda i: client.ensure_host(f"esx-par-{i}.example.com",
                                                          "/DC7/Prod/Par", "cluster"), range(6)))
    cluster = find(client, "DC7/host/Prod/Par")
    assert sorted(h._moId for h in cluster.host) == sorted(r.moid for r in refs)


def test_standalone_host_in_a_folder(client: VCenterClient) -> None:
    ref = client.ensure_host("esx-edge-1.example.com", "/DC9/Edge", "folder")
    folder = find(client, "DC9/host/Edge")
    assert isinstance(folder, vim.Folder)
    resources = [c for c in folder.childEntity if isinstance(c, vim.ComputeResource)]
    assert [r.host[0]._moId for r in resources] == [ref.moid]
    result = client.apply(ref, HostConfig.from_settings(STANDARD))
    assert result.verified


def test_residual_with_the_same_uuid_is_removed_before_add(client: VCenterClient) -> None:
    old = client.ensure_host("esx-move-1.example.com", "/DC9/Old/ClusterOld", "cluster")
    identity = HostIdentity(uuid=old.uuid, hostname="esx-move-1", domain="example.com")
    new = client.ensure_host("esx-move-1.example.com", "/DC9/New/ClusterNew", "cluster",
                             identity=identity)
    assert new.moid != old.moid
    old_host = vim.HostSystem(old.moid, client.session.si._stub)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        old_host.name  # noqa: B018 - the old object is gone
    assert [h._moId for h in find(client, "DC9/host/New/ClusterNew").host] == [new.moid]
    found = client.session.content.searchIndex.FindByUuid(uuid=old.uuid, vmSearch=False)
    assert found is not None and found._moId == new.moid
    assert len(hosts_named(client, "esx-move-1.example.com")) == 1


def test_remove_host(client: VCenterClient) -> None:
    ref = client.ensure_host("esx-gone-1.example.com", "/DC9/Edge", "folder")
    client.remove_host(ref)
    assert hosts_named(client, "esx-gone-1.example.com") == []


def test_failing_network_update_names_host_and_operation_and_retry_succeeds(
        vcsim_factory: Callable[..., Any]) -> None:
    sim = vcsim_factory("-cluster", "1", "-host", "4", "-standalone", "0", "-seed", "7",
                        "-fault", "UpdateNetworkConfig:0.5")
    desired = HostConfig.from_settings(STANDARD)
    failures = 0
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as c:
        content = c.session.content
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        for host in view.view:
            ref = HostRef(host._moId)
            before = c.read(ref)
            for _ in range(20):
                try:
                    result = c.apply(ref, desired)
                    break
                except TransientVCenterError as exc:
                    failures += 1
                    text = str(exc)
                    assert f"vCenter vc1: UpdateNetworkConfig on host {host.name} (uuid " in text
                    assert "SystemError" in text
                    now = c.read(ref)  # nothing of the batch was half-applied
                    assert (now.vswitches, now.portgroups, now.vmknics, now.dns) == (
                        before.vswitches, before.portgroups, before.vmknics, before.dns)
            assert result.verified
            assert c.compliance(ref, desired) == []
    assert failures >= 1


def test_slow_add_host_is_a_clear_timeout_and_retry_finds_the_host(
        vcsim_factory: Callable[..., Any]) -> None:
    sim = vcsim_factory("-cluster", "1", "-host", "1", "-standalone", "0",
                        "-fault", "AddHost_Task:1:delay=1500ms")
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=0.5) as slow, \
            VCenterClient(sim.url, sim.user, sim.password, name="vc1", timeout=8) as c:
        with pytest.raises(TransientVCenterError) as info:
            slow.ensure_host("esx-slow-1.example.com", "/DC0/ClusterSlow", "cluster")
        assert "vCenter vc1: AddHost on host esx-slow-1.example.com" in str(info.value)
        # The timed-out add still lands (its session is alive); a retry finds that host and
        # does not add a second one.
        wait_for(lambda: hosts_named(c, "esx-slow-1.example.com"), timeout=30,
                 what="the delayed AddHost to land")
        ref = c.ensure_host("esx-slow-1.example.com", "/DC0/ClusterSlow", "cluster")
        assert len(hosts_named(c, "esx-slow-1.example.com")) == 1
        assert ref.name == "esx-slow-1.example.com"


def test_https_session_is_pinned_to_the_thumbprint(vcsim_factory: Callable[..., Any]) -> None:
    sim = vcsim_factory("-tls", "-cluster", "1", "-host", "1", "-standalone", "0")
    assert sim.url.startswith("https://")
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((sim.host, sim.port)))
    thumbprint = hashlib.sha256(der).hexdigest()
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", thumbprint=thumbprint) as c:
        assert c.session.content.about.apiType == "VirtualCenter"
    wrong = "00" * 32
    with VCenterClient(sim.url, sim.user, sim.password, name="vc1", thumbprint=wrong) as c:
        with pytest.raises(VCenterError) as info:
            c.session.content  # noqa: B018 - connects
        assert "vCenter vc1: login" in str(info.value)

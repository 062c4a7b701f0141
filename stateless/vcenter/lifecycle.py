"""Put a host where it belongs in vCenter: clean residual objects, create the path, add it.

A stateless host comes back with the same hardware UUID but maybe a new name or address, and
vCenter may still hold its old object (disconnected, or in the wrong cluster).  Residuals are
found by UUID, DNS name and IP, then kept (right place, connected), reconnected (right place,
disconnected) or removed, before the host is added to its cluster or folder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyVmomi import vim, vmodl

from stateless.errors import StatelessError, ValidationError, VCenterError
from stateless.vcenter.faults import Where
from stateless.vcenter.read import HostRef
from stateless.vcenter.session import PC, Session

LEAF_KINDS = ("cluster", "folder")


def split_path(path: str, leaf_kind: str) -> tuple[str, list[str], str | None]:
    """/DC1/Prod/ClusterA -> ("DC1", ["Prod"], "ClusterA") for a cluster leaf."""
    if leaf_kind not in LEAF_KINDS:
        raise ValidationError(f"leaf kind {leaf_kind!r}: expected cluster or folder")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ValidationError(f"path {path!r}: needs at least a datacenter, e.g. /DC1/ClusterA")
    if leaf_kind == "cluster":
        if len(parts) < 2:
            raise ValidationError(f"path {path!r}: a cluster path is /DC/[folders/]cluster")
        return parts[0], parts[1:-1], parts[-1]
    return parts[0], parts[1:], None


def _props(session: Session, where: Where, obj: Any, paths: list[str]) -> dict[str, Any]:
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=obj, skip=False)],
                         propSet=[PC.PropertySpec(type=type(obj), pathSet=paths)])
    objects = session.retrieve(where, f"read {', '.join(paths)}", [spec])
    return {p.name: p.val for p in objects[0].propSet or ()} if objects else {}


def ensure_container(session: Session, path: str, leaf_kind: str) -> Any:
    """The cluster or host folder at `path`, creating what is missing (datacenter first)."""
    where = session.where
    search = session.content.searchIndex
    dc_name, folders, cluster = split_path(path, leaf_kind)
    segments = [dc_name, "host", *folders] + ([cluster] if cluster else [])
    found = session.call(where, "FindByInventoryPath", search.FindByInventoryPath,
                         "/".join(_escape(s) for s in segments))
    if found is not None:
        return found
    root = session.content.rootFolder

    def find_dc() -> Any:
        return session.call(where, "FindByInventoryPath", search.FindByInventoryPath,
                            _escape(dc_name))

    if find_dc() is None:
        _create(session, f"CreateDatacenter {dc_name}", find_dc, root.CreateDatacenter, dc_name)
    parent = session.call(where, "FindByInventoryPath", search.FindByInventoryPath,
                          f"{_escape(dc_name)}/host")
    for name in [*folders, *([cluster] if cluster else [])]:
        def find(parent: Any = parent, name: str = name) -> Any:
            return session.call(where, "FindChild", search.FindChild, parent, name)

        child = find()
        if child is None:
            if name == cluster:
                child = _create(session, f"CreateClusterEx {name}", find, parent.CreateClusterEx,
                                name, vim.cluster.ConfigSpecEx())
            else:
                child = _create(session, f"CreateFolder {name}", find, parent.CreateFolder, name)
        parent = child
    return parent


def _create(session: Session, what: str, find: Callable[[], Any], create: Callable[..., Any],
            *args: Any) -> Any:
    """Create an inventory object; if another apply created it meanwhile, use that one."""
    try:
        return session.call(session.where, what, create, *args)
    except VCenterError as exc:
        if not isinstance(exc.__cause__, vim.fault.DuplicateName):
            raise
        found = find()
        if found is None:
            raise
        return found


def _escape(segment: str) -> str:
    return segment.replace("%", "%25").replace("/", "%2f")


def find_residuals(session: Session, *, uuid: str | None = None, name: str | None = None,
                   ip: str | None = None) -> list[Any]:
    """Host objects that match the host's UUID, DNS name or IP (each found once)."""
    where = Where(session.name, name or ip or "", uuid or "")
    search = session.content.searchIndex
    found: dict[str, Any] = {}
    lookups = [("FindByUuid", search.FindByUuid, uuid, {"uuid": uuid, "vmSearch": False}),
               ("FindByDnsName", search.FindByDnsName, name, {"dnsName": name, "vmSearch": False}),
               ("FindByIp", search.FindByIp, ip, {"ip": ip, "vmSearch": False})]
    for operation, method, value, kwargs in lookups:
        if value:
            host = session.call(where, operation, method, **kwargs)
            if host is not None:
                found.setdefault(host._moId, host)
    return list(found.values())


def remove_host(session: Session, host: Any, where: Where) -> None:
    """Remove a host object; a connected one enters maintenance mode first, as vCenter needs."""
    props = _props(session, where, host, ["parent", "runtime.connectionState",
                                          "runtime.inMaintenanceMode"])
    if str(props.get("runtime.connectionState")) == "connected" and not props.get(
            "runtime.inMaintenanceMode"):
        enter_maintenance(session, host, where)
    parent = props.get("parent")
    if isinstance(parent, vim.ComputeResource) and not isinstance(parent, vim.ClusterComputeResource):
        # A standalone host goes with its compute resource; the simulator only has
        # HostSystem.Destroy_Task, which removes both.
        try:
            task = parent.Destroy_Task()
        except vmodl.fault.MethodNotFound:
            task = None
        if task is not None:
            session.wait(where, "Destroy", task)
            return
    session.wait(where, "Destroy", session.call(where, "Destroy", host.Destroy_Task))


def _connect_spec(name: str, user: str, password: str, thumbprint: str | None) -> Any:
    return vim.host.ConnectSpec(hostName=name, userName=user, password=password,
                                sslThumbprint=thumbprint or None, force=True)


def ensure_host(session: Session, name: str, path: str, leaf_kind: str = "cluster", *,
                uuid: str | None = None, ip: str | None = None, thumbprint: str | None = None,
                user: str = "root", password: str = "", known: Any = None) -> HostRef:
    """Make `name` a connected host at `path`, cleaning residual objects of the same host.

    `known` is the host object this client placed before (a host moving to another cluster),
    which the searches by UUID, name and address may not find."""
    where = Where(session.name, name, uuid or "")
    container = ensure_container(session, path, leaf_kind)
    spec = _connect_spec(name, user, password, thumbprint)
    candidates = find_residuals(session, uuid=uuid, name=name, ip=ip)
    in_place = session.call(where, "FindChild", session.content.searchIndex.FindChild,
                            container, name)
    if isinstance(in_place, vim.ComputeResource):
        in_place = (_props(session, where, in_place, ["host"]).get("host") or [None])[0]
    if known is not None:
        try:
            _props(session, where, known, ["name"])
        except StatelessError:  # gone meanwhile: nothing to clean there
            known = None
    for extra in (in_place, known):
        if extra is not None and all(h._moId != extra._moId for h in candidates):
            candidates.append(extra)
    for host in candidates:
        props = _props(session, where, host, ["name", "parent", "runtime.connectionState"])
        parent = props.get("parent")
        place = parent if leaf_kind == "cluster" else _parent(session, where, parent)
        if place is not None and place._moId == container._moId and props.get("name") == name:
            if str(props.get("runtime.connectionState")) != "connected":
                session.wait(where, "ReconnectHost",
                             session.call(where, "ReconnectHost", host.ReconnectHost_Task, spec))
            return _ref(session, where, host)
        remove_host(session, host, where)
    if leaf_kind == "cluster":
        task = session.call(where, "AddHost", container.AddHost_Task, spec, True)
        host = session.wait(where, "AddHost", task)
    else:
        task = session.call(where, "AddStandaloneHost", container.AddStandaloneHost_Task,
                            spec, None, True)
        host = session.wait(where, "AddStandaloneHost", task)
        if not isinstance(host, vim.HostSystem):  # vCenter answers the compute resource
            host = _props(session, where, host, ["host"])["host"][0]
    if uuid:  # vCenter names an added host as it was added: nothing left to ask
        return HostRef(host._moId, name, uuid)
    return _ref(session, where, host)


def _parent(session: Session, where: Where, obj: Any) -> Any:
    if obj is None or isinstance(obj, vim.Folder):
        return obj
    return _props(session, where, obj, ["parent"]).get("parent")


def _ref(session: Session, where: Where, host: Any) -> HostRef:
    props = _props(session, where, host, ["name", "hardware.systemInfo.uuid"])
    return HostRef(host._moId, str(props.get("name", "")), str(props.get("hardware.systemInfo.uuid", "")))


def enter_maintenance(session: Session, host: Any, where: Where, timeout: int = 0) -> None:
    session.wait(where, "EnterMaintenanceMode",
                 session.call(where, "EnterMaintenanceMode", host.EnterMaintenanceMode_Task, timeout))


def exit_maintenance(session: Session, host: Any, where: Where, timeout: int = 0) -> None:
    session.wait(where, "ExitMaintenanceMode",
                 session.call(where, "ExitMaintenanceMode", host.ExitMaintenanceMode_Task, timeout))

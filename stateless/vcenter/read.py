"""Read a host's current configuration in one PropertyCollector round trip.

Everything the applier compares comes from one RetrievePropertiesEx over the HostSystem (and,
through a traversal, its datastores' names), plus the SNMP agent's configuration when its
reference is already known.  The host's `parent` (its cluster, or a standalone host's compute
resource) comes with it: where the host sits is part of compliance (`placement`).  Only the
property paths of the item kinds asked for are read (`stateless.vcenter.paths`).  Lazy pyvmomi
properties are never touched: each would cost a round trip of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from pyVmomi import vim

from stateless.errors import NotFoundError
from stateless.model.config import (
    NIC_TYPES,
    NTP_SERVICE,
    SECRET_SET,
    SYSLOG_OPTION,
    Dns,
    HostConfig,
    Iscsi,
    Lockdown,
    NfsDatastore,
    Ntp,
    PortGroup,
    Snmp,
    Teaming,
    VmkNic,
    VSwitch,
)
from stateless.model.inventory import frozen_map
from stateless.model.settings import SettingValue
from stateless.vcenter import pyvmomi_shim
from stateless.vcenter.faults import Where
from stateless.vcenter.paths import ALL_PATHS, NETWORK_PARTS, ordered
from stateless.vcenter.session import PC, Session

BASE_PATHS = ("name", "hardware.systemInfo.uuid", "runtime.connectionState",
              "runtime.inMaintenanceMode", "config.product.build", "parent")
LOCKDOWN_MODES = {"lockdownDisabled": "disabled", "lockdownNormal": "normal",
                  "lockdownStrict": "strict"}
NFS_VERSIONS = {"NFS": "3", "NFS41": "4.1"}
_NIC_SERVICES = {v: k for k, v in NIC_TYPES.items()}


@attrs.frozen
class HostRef:
    """A host as the adapter knows it: managed object id, name and hardware UUID."""

    moid: str
    name: str = ""
    uuid: str = ""

    def where(self, vcenter: str) -> Where:
        return Where(vcenter, self.name or self.moid, self.uuid)


@attrs.frozen
class HostView:
    """One read of a host: its configuration plus what the applier needs to change it."""

    ref: HostRef
    config: HostConfig
    connected: bool
    maintenance: bool
    managers: Mapping[str, Any]  # configManager field name -> managed object
    network: Any  # vim.host.NetworkInfo, to edit specs without losing unmanaged fields
    running: Mapping[str, bool]  # service key -> running
    iscsi_hba: str | None
    datastores: Mapping[str, Any]  # datastore name -> managed object
    custom: Mapping[int, str] = attrs.field(factory=dict)  # custom field key -> value
    build: str = ""  # the ESXi build: hosts of one build declare the same advanced options
    parent: Any = None  # its cluster or (standalone) compute resource: where it sits


def host_object(session: Session, moid: str) -> Any:
    return vim.HostSystem(moid, pyvmomi_shim.stub_of(session.si))


def read_host(session: Session, ref: HostRef, *, paths: Iterable[str] = ALL_PATHS,
              managers: Mapping[str, Any] | None = None, snmp_system: Any = None,
              lockdown_exceptions: bool = False) -> HostView:
    """Read `ref` with one RetrievePropertiesEx (one more if lockdown exceptions are asked).

    Only `paths` (see `stateless.vcenter.paths`) are read, plus identity and state; parts of
    the configuration not read are left unset (unmanaged) in the view.  `managers`, when
    known from an earlier read, saves reading configManager again.
    """
    host = host_object(session, ref.moid)
    where = ref.where(session.name)
    wanted = ordered(paths)
    host_paths = list(dict.fromkeys([*BASE_PATHS, *([] if managers else ["configManager"]),
                                     *wanted]))
    object_spec = PC.ObjectSpec(obj=host, skip=False)
    props = [PC.PropertySpec(type=vim.HostSystem, pathSet=host_paths)]
    if "config.fileSystemVolume" in wanted:
        object_spec.selectSet = [PC.TraversalSpec(name="ds", type=vim.HostSystem, path="datastore",
                                                  skip=False)]
        props.append(PC.PropertySpec(type=vim.Datastore, pathSet=["name"]))
    objects = [object_spec]
    if snmp_system is not None:
        objects.append(PC.ObjectSpec(obj=snmp_system, skip=False))
        props.append(PC.PropertySpec(type=vim.host.SnmpSystem, pathSet=["configuration"]))
    spec = PC.FilterSpec(objectSet=objects, propSet=props)
    host_props: dict[str, Any] = {}
    datastores: dict[str, Any] = {}
    snmp_config = None
    for content in session.retrieve(where, "read configuration", [spec]):
        values = {p.name: p.val for p in content.propSet or ()}
        if isinstance(content.obj, vim.HostSystem):
            host_props = values
        elif isinstance(content.obj, vim.Datastore):
            datastores[values.get("name", content.obj._moId)] = content.obj
        elif isinstance(content.obj, vim.host.SnmpSystem):
            snmp_config = values.get("configuration")
    if not host_props:
        raise NotFoundError(f"{where.describe('read configuration')}: the host is not in "
                            "vCenter any more; add it again (ensure_host)")
    if any(p.startswith("config.network.") for p in wanted):
        host_props["config.network"] = vim.host.NetworkInfo(**{
            p: host_props.pop(f"config.network.{p}", None) for p in NETWORK_PARTS})
    ref = attrs.evolve(ref, name=host_props.get("name", ref.name),
                       uuid=host_props.get("hardware.systemInfo.uuid", ref.uuid))
    found = dict(managers) if managers else _managers(host_props.get("configManager"))
    exceptions: tuple[str, ...] | None = None
    if lockdown_exceptions and "hostAccessManager" in found:
        exceptions = tuple(session.call(ref.where(session.name), "QueryLockdownExceptions",
                                        found["hostAccessManager"].QueryLockdownExceptions)
                           or ())
    return _view(ref, frozenset(wanted), host_props, found, datastores,
                 snmp_config if snmp_system is not None else _UNREAD, exceptions)


_UNREAD = object()


def pushed_config(values: Mapping[str, Any]) -> HostConfig:
    """The configuration held by property values vCenter pushed (path -> value): what a read
    of those paths would give, with everything else unset."""
    props = dict(values)
    if any(p.startswith("config.network.") for p in props):
        props["config.network"] = vim.host.NetworkInfo(**{
            p: props.pop(f"config.network.{p}", None) for p in NETWORK_PARTS})
    view = _view(HostRef(""), frozenset(values), props, {}, {}, _UNREAD, None)
    return view.config


def _managers(config_manager: Any) -> dict[str, Any]:
    if config_manager is None:
        return {}
    out = {}
    for prop in config_manager._GetPropertyList():
        value = getattr(config_manager, prop.name, None)
        if value is not None:
            out[prop.name] = value
    return out


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or ()))


def _teaming(policy: Any) -> Teaming:
    teaming = getattr(policy, "nicTeaming", None) if policy is not None else None
    if teaming is None:
        return Teaming()
    order = teaming.nicOrder
    return Teaming(
        active=_strings(order.activeNic) if order is not None else None,
        standby=_strings(order.standbyNic) if order is not None else None,
        policy=teaming.policy or None,
    )


def _view(ref: HostRef, read: frozenset[str], props: Mapping[str, Any],
          managers: dict[str, Any], datastores: dict[str, Any], snmp_config: Any,
          exceptions: tuple[str, ...] | None) -> HostView:
    network = props.get("config.network")
    vswitches: dict[str, VSwitch] = {}
    portgroups: dict[str, PortGroup] = {}
    vmknics: dict[str, VmkNic] = {}
    dns = Dns()
    if network is not None:
        for vs in network.vswitch or ():
            spec = vs.spec
            bridge = getattr(spec, "bridge", None) if spec else None
            uplinks = _strings(getattr(bridge, "nicDevice", None))
            vswitches[vs.name] = VSwitch(
                vs.name, uplinks, (spec.mtu if spec and spec.mtu else vs.mtu) or 1500,
                (spec.numPorts if spec else vs.numPorts) or None,
                _teaming(spec.policy if spec else None))
        for pg in network.portgroup or ():
            spec = pg.spec
            override = _teaming(spec.policy)
            portgroups[spec.name] = PortGroup(spec.name, spec.vswitchName, spec.vlanId or 0,
                                              None if override.is_empty() else override)
        services = _nic_services(props.get("config.virtualNicManagerInfo"))
        for nic in network.vnic or ():
            ip = nic.spec.ip
            route = getattr(nic.spec, "ipRouteSpec", None)
            gateway = route.ipRouteConfig.defaultGateway if route and route.ipRouteConfig else None
            vmknics[nic.portgroup] = VmkNic(
                nic.portgroup,
                tuple(sorted(services.get(nic.device, ())))
                if "config.virtualNicManagerInfo" in read else None,
                "dhcp" if ip.dhcp else "static",
                None if ip.dhcp else (ip.ipAddress or None),
                None if ip.dhcp else (ip.subnetMask or None),
                gateway or None, nic.spec.mtu or 1500, device=nic.device)
        d = network.dnsConfig
        if d is not None:
            dns = Dns(_strings(getattr(d, "address", None)), _strings(getattr(d, "searchDomain", None)),
                      d.hostName or None, d.domainName or None)

    service_info = props.get("config.service")
    ntp_policy_read = "config.service" in read
    policies: dict[str, str] = {}
    running: dict[str, bool] = {}
    for svc in (service_info.service if service_info is not None else None) or ():
        policies[svc.key] = svc.policy
        running[svc.key] = bool(svc.running)
    dt = props.get("config.dateTimeInfo")
    ntp_servers = _strings(dt.ntpConfig.server) if dt is not None and dt.ntpConfig else ()
    ntp = Ntp(ntp_servers if "config.dateTimeInfo" in read else None,
              policies.get(NTP_SERVICE) if ntp_policy_read else None)

    advanced: dict[str, SettingValue] = {}
    syslog: tuple[str, ...] | None = () if "config.option" in read else None
    for option in props.get("config.option") or ():
        if option.key == SYSLOG_OPTION:
            syslog = tuple(t.strip() for t in str(option.value or "").split(",") if t.strip())
        elif isinstance(option.value, bool | int | str):
            advanced[option.key] = option.value

    nfs: dict[str, NfsDatastore] = {}
    fsv = props.get("config.fileSystemVolume")
    for mount in (fsv.mountInfo if fsv is not None else None) or ():
        volume = mount.volume
        if isinstance(volume, vim.host.NasVolume):
            access = getattr(mount.mountInfo, "accessMode", "readWrite")
            nfs[volume.name] = NfsDatastore(volume.name, volume.remoteHost, volume.remotePath,
                                            access == "readOnly",
                                            NFS_VERSIONS.get(volume.type or "NFS", "3"))

    iscsi, hba = (_iscsi(props.get("config.storageDevice")) if "config.storageDevice" in read
                  else (Iscsi(), None))
    lockdown = Lockdown(LOCKDOWN_MODES.get(str(props.get("config.lockdownMode") or "")),
                        exceptions)
    snmp = Snmp()
    if snmp_config is None:
        snmp = Snmp(False, (), ())
    elif snmp_config is not _UNREAD:
        snmp = Snmp(bool(snmp_config.enabled), _strings(snmp_config.readOnlyCommunities),
                    tuple(_trap(t) for t in snmp_config.trapTargets or ()))
    config = HostConfig(vswitches=vswitches, portgroups=portgroups, vmknics=vmknics, ntp=ntp,
                        dns=dns, syslog=syslog, advanced=advanced, services=policies, nfs=nfs,
                        iscsi=iscsi, lockdown=lockdown, snmp=snmp)
    state = str(props.get("runtime.connectionState", ""))
    return HostView(ref=ref, config=config, connected=state == "connected",
                    maintenance=bool(props.get("runtime.inMaintenanceMode")),
                    managers=frozen_map(managers), network=network, running=frozen_map(running),
                    iscsi_hba=hba, datastores=frozen_map(datastores),
                    custom={int(v.key): str(getattr(v, "value", ""))
                            for v in props.get("customValue") or ()},
                    build=str(props.get("config.product.build") or ""),
                    parent=props.get("parent"))


def _nic_services(info: Any) -> dict[str, set[str]]:
    """vmk device -> services (setting names) it is selected for."""
    out: dict[str, set[str]] = {}
    for net in (info.netConfig if info is not None else None) or ():
        service = _NIC_SERVICES.get(net.nicType)
        if service is None:
            continue
        devices = {c.key: c.device for c in net.candidateVnic or ()}
        for key in net.selectedVnic or ():
            device = devices.get(key) or key.rsplit("-", 1)[-1]
            out.setdefault(device, set()).add(service)
    return out


def _iscsi(storage: Any) -> tuple[Iscsi, str | None]:
    if storage is None:
        return Iscsi(False, (), None, None), None
    enabled = bool(getattr(storage, "softwareInternetScsiEnabled", False))
    for hba in storage.hostBusAdapter or ():
        if isinstance(hba, vim.host.InternetScsiHba) and hba.isSoftwareBased:
            targets = tuple(f"{t.address}:{t.port or 3260}" for t in hba.configuredSendTarget or ())
            auth = hba.authenticationProperties
            chap = bool(auth and auth.chapAuthEnabled)
            return Iscsi(enabled, targets, auth.chapName if chap else None,
                         SECRET_SET if chap else None), hba.device
    return Iscsi(enabled, (), None, None), None


def _trap(target: Any) -> str:
    text = f"{target.hostName}:{target.port or 162}"
    return f"{text}/{target.community}" if target.community else text


__all__ = ["HostRef", "HostView", "pushed_config", "read_host"]

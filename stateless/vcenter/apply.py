"""Apply a plan to one host with as few SOAP calls as vSphere allows, then verify.

All network changes (vSwitches, port groups, VMkernel NICs, DNS) go in ONE
HostNetworkSystem.UpdateNetworkConfig(config, "modify"); all advanced options and syslog in ONE
OptionManager.UpdateOptions; NTP in one UpdateDateTimeConfig; then NIC-type tagging, services,
NFS, iSCSI, SNMP, the root password and, last, lockdown.  A failure in the network batch leaves the host as it
was, so a retry simply plans again.  Advanced options are checked against the host's
catalogue before the first write: one the host does not accept stops the whole apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
from pyVmomi import VmomiSupport, vim

from stateless.errors import VCenterError
from stateless.model.config import NIC_TYPES, SYSLOG_OPTION, HostConfig, PortGroup, Teaming, VmkNic, VSwitch
from stateless.plan import Change, KeyDiff, OptionCatalogue, Plan, compliance, managed_kinds, plan
from stateless.vcenter.account import set_root_password
from stateless.vcenter.faults import Where
from stateless.vcenter.options import needs_catalogue
from stateless.vcenter.read import HostView, host_object
from stateless.vcenter.secretrefs import (
    OpenedOnce,
    Secrets,
    clear_communities,
    clear_targets,
    resolve,
)
from stateless.vcenter.session import Session

LONG = VmomiSupport.GetVmodlType("long")
INT = VmomiSupport.GetVmodlType("int")
LOCKDOWN_MODES = {"disabled": "lockdownDisabled", "normal": "lockdownNormal",
                  "strict": "lockdownStrict"}
NFS_TYPES = {"3": "NFS", "4.1": "NFS41"}
# Changes that must not run while VMs use the host.
# The kinds one UpdateNetworkConfig carries.
NETWORK_KINDS = frozenset({"vswitch", "portgroup", "vmknic", "dns"})
MAINTENANCE_KINDS = {("vswitch", "remove"), ("vmknic", "remove"), ("nfs", "remove"),
                     ("nfs", "edit")}

Reader = Callable[[frozenset[str] | None], HostView]  # kinds to read; None: all desired names
Checker = Callable[[HostView, HostConfig], tuple[HostConfig, OptionCatalogue]]


@attrs.frozen
class ApplyResult:
    """What an apply did: the plan, SOAP calls it cost (read and verify included), verified."""

    host: str
    plan: Plan
    calls: int
    verified: bool
    diffs: tuple[KeyDiff, ...] = ()


def needs_maintenance(changes: Iterable[Change]) -> bool:
    return any((c.kind, c.op) in MAINTENANCE_KINDS for c in changes)


class Applier:
    """Carries out one plan on one host (one instance per apply)."""

    def __init__(self, session: Session, view: HostView, secrets: Secrets | None = None,
                 catalogue: OptionCatalogue | None = None) -> None:
        self.session = session
        self.view = view
        self.where: Where = view.ref.where(session.name)
        self.secrets = OpenedOnce(secrets) if secrets is not None else None
        self.catalogue = catalogue or {}

    def _call(self, operation: str, manager: str, *args: Any) -> Any:
        mo = self.view.managers.get(manager)
        if mo is None:
            raise VCenterError(f"{self.where.describe(operation)}: the host has no {manager}; "
                               "is it connected?")
        method = getattr(mo, operation)
        return self.session.call(self.where, operation, method, *args)

    def run(self, the_plan: Plan) -> None:
        self._secrets_first(the_plan)
        devices = self._network(the_plan)
        self._nic_types(the_plan.of("nictype"), devices)
        self._advanced(the_plan.of("advanced"))
        for change in the_plan.of("ntp"):
            ntp = vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=list(change.after.servers)))
            self._call("UpdateDateTimeConfig", "dateTimeSystem", ntp)
        for change in the_plan.of("service"):
            self._service(change.name, str(change.after))
        for change in the_plan.of("nfs"):
            self._nfs(change)
        for change in the_plan.of("iscsi"):
            self._iscsi(change)
        for change in the_plan.of("snmp"):
            self._snmp(change)
        for change in the_plan.of("account"):
            set_root_password(self.session, self.view, host_object(self.session, self.view.ref.moid),
                              change.after, self.secrets)
        for change in the_plan.of("lockdown"):
            self._lockdown(change)

    def _secrets_first(self, the_plan: Plan) -> None:
        """Open every secret the plan uses before the host is touched: one missing or of
        another kind than its setting needs stops the whole apply, not its second half."""
        what = self.where.describe("secrets")
        for change in the_plan.of("iscsi"):
            want = change.after
            if want.enabled and want.chap_name is not None and want.chap_secret is not None \
                    and self.secrets is not None:
                self.secrets(want.chap_secret, "iscsi.chap.secret")
        for change in the_plan.of("snmp"):
            clear_communities(change.after, self.secrets, what)
            clear_targets(change.after.targets or (), self.secrets, what)
        for change in the_plan.of("account"):
            resolve(change.after, self.secrets, what, "account.root.password")

    # --- network -------------------------------------------------------------------------

    def _network(self, the_plan: Plan) -> dict[str, str]:
        """One UpdateNetworkConfig for everything; returns port group -> new vmk device."""
        config = vim.host.NetworkConfig()
        added: list[str] = []
        for change in the_plan.changes:
            if change.kind == "vswitch":
                config.vswitch.append(self._vswitch(change))
            elif change.kind == "portgroup":
                config.portgroup.append(self._portgroup(change))
            elif change.kind == "vmknic":
                config.vnic.append(self._vnic(change))
                if change.op == "add":
                    added.append(change.name)
            elif change.kind == "dns":
                dns = change.after
                config.dnsConfig = vim.host.DnsConfig(
                    dhcp=False, hostName=dns.hostname or "", domainName=dns.domain or "",
                    address=list(dns.servers or ()), searchDomain=list(dns.search or ()))
        if not (config.vswitch or config.portgroup or config.vnic or config.dnsConfig):
            return {}
        result = self._call("UpdateNetworkConfig", "networkSystem", config, "modify")
        devices = list(getattr(result, "vnicDevice", None) or ())
        return dict(zip(added, devices, strict=False))

    def _existing_vswitch_spec(self, name: str) -> Any:
        for vs in getattr(self.view.network, "vswitch", None) or ():
            if vs.name == name:
                return vs.spec
        return None

    def _vswitch(self, change: Change) -> Any:
        if change.op == "remove":
            return vim.host.VirtualSwitch.Config(changeOperation="remove", name=change.name)
        vs: VSwitch = change.after
        spec = self._existing_vswitch_spec(change.name) if change.op == "edit" else None
        spec = spec or vim.host.VirtualSwitch.Specification()
        spec.numPorts = vs.ports
        spec.mtu = vs.mtu
        spec.bridge = vim.host.VirtualSwitch.BondBridge(nicDevice=list(vs.uplinks)) if vs.uplinks else None
        spec.policy = _policy(spec.policy, vs.teaming)
        return vim.host.VirtualSwitch.Config(changeOperation=change.op, name=change.name, spec=spec)

    def _portgroup(self, change: Change) -> Any:
        if change.op == "remove":
            before: PortGroup = change.before
            spec = vim.host.PortGroup.Specification(name=change.name, vswitchName=before.vswitch,
                                                    vlanId=before.vlan or 0,
                                                    policy=vim.host.NetworkPolicy())
            return vim.host.PortGroup.Config(changeOperation="remove", spec=spec)
        pg: PortGroup = change.after
        old = None
        if change.op == "edit":
            old = next((p.spec for p in getattr(self.view.network, "portgroup", None) or ()
                        if p.spec.name == change.name), None)
        policy = _policy(old.policy if old is not None else None, pg.teaming or Teaming())
        spec = vim.host.PortGroup.Specification(name=pg.name, vswitchName=pg.vswitch,
                                                vlanId=pg.vlan or 0, policy=policy)
        return vim.host.PortGroup.Config(changeOperation=change.op, spec=spec)

    def _vnic(self, change: Change) -> Any:
        if change.op == "remove":
            return vim.host.VirtualNic.Config(changeOperation="remove",
                                              device=change.before.device, portgroup=change.name)
        nic: VmkNic = change.after
        dhcp = nic.ip == "dhcp"
        ip = vim.host.IpConfig(dhcp=dhcp, ipAddress="" if dhcp else nic.address,
                               subnetMask="" if dhcp else nic.netmask)
        spec = vim.host.VirtualNic.Specification(ip=ip, mtu=nic.mtu)
        if nic.gateway:
            spec.ipRouteSpec = vim.host.VirtualNic.IpRouteSpec(
                ipRouteConfig=vim.host.IpRouteConfig(defaultGateway=nic.gateway))
        device = change.before.device if change.op == "edit" and change.before else ""
        return vim.host.VirtualNic.Config(changeOperation=change.op, device=device or "",
                                          portgroup=change.name, spec=spec)

    def _nic_types(self, changes: tuple[Change, ...], devices: dict[str, str]) -> None:
        for change in changes:
            portgroup = str(change.after)
            device = devices.get(portgroup)
            if device is None:
                current = self.view.config.vmknics.get(portgroup)
                device = current.device if current else None
            if device is None:
                raise VCenterError(f"{self.where.describe('SelectVnicForNicType')}: no VMkernel "
                                   f"NIC found on port group {portgroup} after the network update")
            operation = "SelectVnicForNicType" if change.op == "select" else "DeselectVnicForNicType"
            self._call(operation, "virtualNicManager", NIC_TYPES[change.name], device)

    # --- host-wide settings --------------------------------------------------------------

    def _advanced(self, changes: tuple[Change, ...]) -> None:
        values = []
        for change in changes:
            if change.name == "syslog":
                values.append(vim.option.OptionValue(key=SYSLOG_OPTION, value=",".join(change.after)))
            else:
                values.append(vim.option.OptionValue(key=change.name,
                                                     value=self._wire(change.name, change.after)))
        if values:
            self._call("UpdateOptions", "advancedOption", values)

    def _wire(self, key: str, value: Any) -> Any:
        """The value with the XML type the option takes: ESXi refuses xsd:int for a long."""
        if isinstance(value, int) and not isinstance(value, bool):
            option = self.catalogue.get(key)
            return INT(value) if option is not None and option.kind == "int" else LONG(value)
        return value

    def _service(self, key: str, policy: str) -> None:
        self._call("UpdateServicePolicy", "serviceSystem", key, policy)
        running = self.view.running.get(key, False)
        if policy == "on" and not running:
            self._call("StartService", "serviceSystem", key)
        elif policy == "off" and running:
            self._call("StopService", "serviceSystem", key)

    def _nfs(self, change: Change) -> None:
        if change.op in ("remove", "edit"):
            datastore = self.view.datastores.get(change.name)
            if datastore is not None:
                self._call("RemoveDatastore", "datastoreSystem", datastore)
        if change.op in ("add", "edit"):
            ds = change.after
            spec = vim.host.NasVolume.Specification(
                remoteHost=ds.host, remotePath=ds.path, localPath=ds.name,
                accessMode="readOnly" if ds.readonly else "readWrite",
                type=NFS_TYPES.get(ds.version or "3", "NFS"))
            self._call("CreateNasDatastore", "datastoreSystem", spec)

    def _iscsi(self, change: Change) -> None:
        want, have = change.after, change.before
        if want.enabled is not None and want.enabled != have.enabled:
            self._call("UpdateSoftwareInternetScsiEnabled", "storageSystem", want.enabled)
        if not want.enabled:
            return
        hba = self.view.iscsi_hba or self._find_iscsi_hba()
        wanted, current = list(want.targets or ()), list(have.targets or ())
        add = [t for t in wanted if t not in current]
        remove = [t for t in current if t not in wanted] if want.targets is not None else []
        if remove:
            self._call("RemoveInternetScsiSendTargets", "storageSystem", hba, [_target(t) for t in remove])
        if add:
            self._call("AddInternetScsiSendTargets", "storageSystem", hba, [_target(t) for t in add])
        if want.chap_name is not None and want.chap_secret is not None:
            if self.secrets is None:
                raise VCenterError(f"{self.where.describe('iSCSI CHAP')}: no secret store to "
                                   f"resolve {want.chap_secret!r}; configure the server's secrets")
            auth = vim.host.InternetScsiHba.AuthenticationProperties(
                chapAuthEnabled=True, chapName=want.chap_name,
                chapSecret=self.secrets(want.chap_secret, "iscsi.chap.secret"),
                chapAuthenticationType="chapRequired")
            self._call("UpdateInternetScsiAuthenticationProperties", "storageSystem", hba, auth)

    def _find_iscsi_hba(self) -> str:
        info = self.session.call(self.where, "read storage devices",
                                 getattr, self.view.managers["storageSystem"], "storageDeviceInfo")
        for hba in info.hostBusAdapter or ():
            if isinstance(hba, vim.host.InternetScsiHba) and hba.isSoftwareBased:
                return str(hba.device)
        raise VCenterError(f"{self.where.describe('iSCSI')}: no software iSCSI adapter after "
                           "enabling it")

    def _snmp(self, change: Change) -> None:
        """The communities are references: their secrets are opened here, for this call only."""
        snmp, what = change.after, self.where.describe("SNMP")
        targets = [vim.host.SnmpSystem.SnmpConfigSpec.Destination(
            hostName=d.host, port=d.port, community=d.community)
            for d in clear_targets(snmp.targets or (), self.secrets, what)]
        spec = vim.host.SnmpSystem.SnmpConfigSpec(
            enabled=bool(snmp.enabled), readOnlyCommunities=clear_communities(snmp, self.secrets, what),
            trapTargets=targets)
        self._call("ReconfigureSnmpAgent", "snmpSystem", spec)

    def _lockdown(self, change: Change) -> None:
        want, have = change.after, change.before
        if want.exceptions is not None and want.exceptions != have.exceptions:
            self._call("UpdateLockdownExceptions", "hostAccessManager", list(want.exceptions))
        if want.mode is not None and want.mode != have.mode:
            self._call("ChangeLockdownMode", "hostAccessManager", LOCKDOWN_MODES[want.mode])


def _policy(existing: Any, teaming: Teaming) -> Any:
    """A network policy with the managed teaming fields set and the rest kept."""
    policy = existing or vim.host.NetworkPolicy()
    if teaming.is_empty():
        return policy
    nic_teaming = policy.nicTeaming or vim.host.NetworkPolicy.NicTeamingPolicy()
    if teaming.policy is not None:
        nic_teaming.policy = teaming.policy
    if teaming.active is not None or teaming.standby is not None:
        order = nic_teaming.nicOrder or vim.host.NetworkPolicy.NicOrderPolicy()
        if teaming.active is not None:
            order.activeNic = list(teaming.active)
        if teaming.standby is not None:
            order.standbyNic = list(teaming.standby)
        nic_teaming.nicOrder = order
    policy.nicTeaming = nic_teaming
    return policy


def _target(text: str) -> Any:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return vim.host.InternetScsiHba.SendTarget(address=host, port=int(port or 3260))


def verified_kinds(the_plan: Plan, desired: HostConfig) -> frozenset[str]:
    """The item kinds read back after applying `the_plan`.

    Those the plan changed (all network kinds when any changed: they go in one batch, and
    vSphere recomputes the network as a whole), among those `desired` names.  Kinds the plan
    left alone were compliant in the read it was made from.  NIC-type tagging is not read
    back: each Select/DeselectVnicForNicType either did what it names or raised a fault.
    """
    changed = {c.kind for c in the_plan}
    if changed & NETWORK_KINDS:
        changed |= NETWORK_KINDS
    return frozenset(changed & managed_kinds(desired) - {"nictype"})


def apply_config(session: Session, read: Reader, desired: HostConfig, *, host: Any = None,
                 secrets: Secrets | None = None, maintenance: bool = True,
                 first: HostView | None = None, check: Checker | None = None) -> ApplyResult:
    """Read, check, plan, apply, verify; raise VCenterError if still non-compliant.

    With `check`, advanced options are checked against the host's catalogue (and put in
    their options' types) before anything is written; UnsupportedOptionError otherwise.
    The verify reads back only what the plan changed (`verified_kinds`).
    """
    start = session.calls
    view = first or read(None)
    where = view.ref.where(session.name)
    catalogue: OptionCatalogue = {}
    if check is not None and needs_catalogue(desired):
        desired, catalogue = check(view, desired)
    the_plan = plan(view.config, desired)
    if not the_plan:
        return ApplyResult(view.ref.name, the_plan, session.calls - start, True)
    enter = maintenance and needs_maintenance(the_plan) and not view.maintenance
    if enter and host is not None:
        session.wait(where, "EnterMaintenanceMode",
                     session.call(where, "EnterMaintenanceMode", host.EnterMaintenanceMode_Task, 0))
    try:
        Applier(session, view, secrets, catalogue).run(the_plan)
    finally:
        if enter and host is not None:
            session.wait(where, "ExitMaintenanceMode",
                         session.call(where, "ExitMaintenanceMode", host.ExitMaintenanceMode_Task, 0))
    kinds = verified_kinds(the_plan, desired)
    diffs: tuple[KeyDiff, ...] = ()
    if kinds:
        diffs = tuple(compliance(read(kinds).config, desired, kinds))
    if diffs:
        raise VCenterError(f"{where.describe('verify')}: still non-compliant after applying "
                           f"{len(the_plan)} change(s): " + "; ".join(map(str, diffs)))
    return ApplyResult(view.ref.name, the_plan, session.calls - start, True)

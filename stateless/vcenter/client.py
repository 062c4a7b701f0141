"""The vCenter adapter's facade: read, apply, compliance and host placement per host.

Blocking (pyvmomi); the daemon and the CLI run it in a thread pool.  One client holds one
session per vCenter and remembers, per host, its managed object id and the SNMP agent's
references of its managers, so that reading a host that is known costs one SOAP call, and
reads only the properties that hold what the desired configuration manages.  It also keeps
the inventory path of each host's parent (`placement`), so where a host sits is known without
a call of its own once its cluster was seen.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import attrs

from stateless.errors import NotFoundError
from stateless.model.config import HostConfig
from stateless.model.identity import HostIdentity
from stateless.plan import (
    KeyDiff,
    OptionCatalogue,
    UnsupportedOptionError,
    compliance,
    managed_kinds,
    placement,
)
from stateless.vcenter import lifecycle
from stateless.vcenter.account import as_applied, stamp_field
from stateless.vcenter.apply import ApplyResult, apply_config
from stateless.vcenter.faults import Where
from stateless.vcenter.options import Catalogues, checked, needs_catalogue, read_catalogue
from stateless.vcenter.paths import paths_for, paths_of_kinds
from stateless.vcenter.placement import Locations, read_chain
from stateless.vcenter.read import HostRef, HostView, host_object, read_host
from stateless.vcenter.secretrefs import Secrets, as_references
from stateless.vcenter.session import Session

Host = HostRef | str


class VCenterClient:
    """One vCenter: `read`, `apply`, `compliance`, `ensure_host`, `remove_host`."""

    def __init__(self, url: str, user: str, password: str, *, name: str | None = None,
                 thumbprint: str | None = None, pool_size: int = 8, timeout: float = 60.0,
                 secrets: Secrets | None = None) -> None:
        self.session = Session(url, user, password, name=name, thumbprint=thumbprint,
                               pool_size=pool_size, timeout=timeout)
        self.secrets = secrets
        self._lock = threading.Lock()
        self._refs: dict[str, HostRef] = {}
        self._managers: dict[str, Mapping[str, Any]] = {}
        self._catalogues = Catalogues()
        self._root_field: int | None = None
        self._locations = Locations()

    @property
    def name(self) -> str:
        return self.session.name

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> VCenterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def calls(self) -> int:
        """SOAP calls made so far by the calling thread."""
        return self.session.calls

    # --- hosts -----------------------------------------------------------------------------

    def resolve(self, host: Host) -> HostRef:
        """A host's reference, by reference or by DNS name (looked up once, then cached)."""
        if isinstance(host, HostRef):
            return host
        with self._lock:
            cached = self._refs.get(host)
        if cached is not None:
            return cached
        where = Where(self.name, host)
        found = self.session.call(where, "FindByDnsName",
                                  self.session.content.searchIndex.FindByDnsName,
                                  dnsName=host, vmSearch=False)
        if found is None:
            raise NotFoundError(f"vCenter {self.name}: no host named {host!r}; add it first "
                                "(ensure_host) or check the name")
        ref = HostRef(found._moId, host)
        with self._lock:
            self._refs[host] = ref
        return ref

    def view(self, host: Host, desired: HostConfig | None = None,
             kinds: frozenset[str] | None = None, *, fresh: bool = False) -> HostView:
        """Read a host in one call: only what `desired` manages (everything when None), or
        only the item kinds `kinds` of it.

        `fresh` (a host just added) ignores the stamp of the root password it may carry.
        """
        ref = self.resolve(host)
        if kinds is None:
            kinds = None if desired is None else managed_kinds(desired)
        paths = paths_for(None) if kinds is None else paths_of_kinds(kinds)
        want_snmp = kinds is None or "snmp" in kinds
        want_exceptions = desired is None or (desired.lockdown.exceptions is not None and (
            kinds is None or "lockdown" in kinds))
        with self._lock:
            managers = self._managers.get(ref.moid)
        snmp = managers.get("snmpSystem") if managers and want_snmp else None
        view = read_host(self.session, ref, paths=paths, managers=managers,
                         snmp_system=snmp, lockdown_exceptions=want_exceptions)
        with self._lock:
            self._managers[ref.moid] = view.managers
        if want_snmp and snmp is None and view.managers.get("snmpSystem") is not None:
            view = read_host(self.session, view.ref, paths=paths,
                             managers=view.managers, snmp_system=view.managers["snmpSystem"],
                             lockdown_exceptions=want_exceptions)
        if desired is not None and want_snmp:
            snmp = as_references(view.config.snmp, desired.snmp, self.secrets,
                                 view.ref.where(self.name).describe("read SNMP"))
            view = attrs.evolve(view, config=attrs.evolve(view.config, snmp=snmp))
        if desired is not None and desired.root_password is not None and (
                kinds is None or "account" in kinds):
            view = as_applied(view, desired, self.secrets, self._stamp_field(view), fresh=fresh)
        return view

    def _stamp_field(self, view: HostView) -> int | None:
        """The root password stamp's field key, looked up until it exists, then kept."""
        if self._root_field is None:
            self._root_field = stamp_field(self.session, view.ref.where(self.name))
        return self._root_field

    def read(self, host: Host, desired: HostConfig | None = None) -> HostConfig:
        """The host's current configuration."""
        return self.view(host, desired).config

    def catalogue(self, view: HostView, *, own: bool = False) -> OptionCatalogue:
        """The advanced options the host declares: read at first use, then kept.

        Hosts of one ESXi build declare the same options, so one read serves every host of
        that build; `own` asks for the host's own (read once, then kept per host).
        """
        key = f"build {view.build}" if view.build and not own else view.ref.moid
        cached = self._catalogues.get(key)
        if cached is None:
            options = read_catalogue(self.session, view.ref.where(self.name),
                                     view.managers.get("advancedOption"))
            cached = self._catalogues.put(key, options)
            if key != view.ref.moid:
                self._catalogues.put(view.ref.moid, options)
        return cached

    def checked(self, view: HostView, desired: HostConfig) -> tuple[HostConfig, OptionCatalogue]:
        """`desired` with advanced values in the host's types, and the catalogue used.

        UnsupportedOptionError when the host does not accept them; the catalogue of the
        host's build is tried first, and the host's own before anything is refused (a host
        can declare options others of its build lack).
        """
        where = view.ref.where(self.name)
        catalogue = self.catalogue(view)
        try:
            return checked(desired, catalogue, where), catalogue
        except UnsupportedOptionError:
            own = self.catalogue(view, own=True)
            if own is catalogue:
                raise
            return checked(desired, own, where), own

    def location(self, view: HostView, expected: str | None = None) -> str | None:
        """Where the host of `view` sits (`/DC/cluster`, `/DC/folder`), None when unknown.

        Its parent's path is kept per parent; one that is not `expected` is read again once
        before it is believed (one RetrievePropertiesEx over the chain of parents).
        """
        return self._locations.locate(
            view.parent, lambda parent: read_chain(self.session, view.ref.where(self.name), parent),
            expected)

    def placed(self, view: HostView, location: str) -> None:
        """The host of `view` was just put at `location`: its parent's path is known."""
        if view.parent is not None:
            self._locations.put(view.parent._moId, location)

    def compliance(self, host: Host, desired: HostConfig, location: str | None = None,
                   *, view: HostView | None = None) -> list[KeyDiff]:
        """Desired vs actual per key (the keys of `rsop`); empty when compliant.

        With `location`, where the host sits is compared too (key `location`).  `view`, a
        read of the host just made, saves reading it again.  Raises UnsupportedOptionError,
        as `apply` does, for advanced options the host does not accept.
        """
        view = view or self.view(host, desired)
        if needs_catalogue(desired):
            desired = self.checked(view, desired)[0]
        diffs = compliance(view.config, desired)
        if location is not None:
            diffs += placement(location, self.location(view, location))
        return diffs

    def apply(self, host: Host, desired: HostConfig, *, maintenance: bool = True,
              fresh: bool = False, first: HostView | None = None) -> ApplyResult:
        """Check, plan, apply, verify; ApplyResult.calls counts every SOAP call made.

        `fresh`: the host was just added, so what it carries says nothing of its root password.
        `first`: the host as just read (with `view(host, desired, fresh=fresh)`), not read again
        (nor counted in ApplyResult.calls: `converge`'s Converged.calls counts it).
        """
        start = self.session.calls
        ref = self.resolve(host)
        # only the first read is fresh; the verifying one is not
        reads = iter(() if first is not None else (fresh,))
        result = apply_config(self.session,
                              lambda kinds: self.view(ref, desired, kinds, fresh=next(reads, False)),
                              desired, first=first,
                              host=host_object(self.session, ref.moid), secrets=self.secrets,
                              maintenance=maintenance, check=self.checked)
        return ApplyResult(result.host, result.plan, self.session.calls - start, result.verified,
                           result.diffs)

    def ensure_host(self, name: str, path: str, leaf_kind: str = "cluster", *,
                    identity: HostIdentity | None = None, thumbprint: str | None = None,
                    user: str = "root", password: str = "") -> HostRef:
        """Add `name` to the cluster (or folder) at `path`, cleaning residuals of the same host."""
        with self._lock:
            before = self._refs.get(name)
        ref = lifecycle.ensure_host(
            self.session, name, path, leaf_kind,
            uuid=identity.uuid if identity else None, ip=identity.ipv4 if identity else None,
            thumbprint=thumbprint, user=user, password=password,
            known=host_object(self.session, before.moid) if before is not None else None)
        with self._lock:
            self._refs[name] = ref
        self._catalogues.drop(ref.moid)  # a host placed again may run another build
        return ref

    def forget_if_gone(self, ref: HostRef, exc: BaseException) -> bool:
        """Whether `exc` (a VCenterError) says the host of `ref` is no longer in vCenter
        (removed by hand, or by another server): its kept reference and managers are dropped
        then, so the next lookup searches for it again instead of failing on the same id."""
        from pyVmomi import vmodl  # the facade's other methods leave pyVmomi to its modules

        cause = exc.__cause__
        if not isinstance(cause, vmodl.fault.ManagedObjectNotFound):
            return False
        with self._lock:
            managers = self._managers.get(ref.moid) or {}
        ours = {ref.moid} | {getattr(m, "_moId", None) for m in managers.values()}
        if getattr(cause.obj, "_moId", None) not in ours:
            return False
        with self._lock:
            if self._refs.get(ref.name) == ref:
                del self._refs[ref.name]
            self._managers.pop(ref.moid, None)
        self._catalogues.drop(ref.moid)
        return True

    def remove_host(self, host: Host) -> None:
        ref = self.resolve(host)
        lifecycle.remove_host(self.session, host_object(self.session, ref.moid),
                              ref.where(self.name))
        with self._lock:
            self._refs.pop(ref.name, None)
            self._managers.pop(ref.moid, None)
        self._catalogues.drop(ref.moid)

    def find_host(self, name: str, location: str, leaf_kind: str = "cluster", *,
                  uuid: str | None = None) -> HostRef | None:
        """The host's reference, or None when vCenter does not have it; nothing is created.

        By DNS name first (what vCenter indexes, and only for names hosts report
        themselves), then by name inside the container at `location`, where `ensure_host`
        puts it, then by hardware `uuid` (a host of that name moved elsewhere meanwhile).
        """
        try:
            return self.resolve(name)
        except NotFoundError:
            pass
        found = self._find_in(name, location, leaf_kind)
        if found is None and uuid:
            found = self._find_by_uuid(name, uuid)
        if found is None:
            return None
        ref = HostRef(found._moId, name)
        with self._lock:
            self._refs[name] = ref
        return ref

    def _find_in(self, name: str, location: str, leaf_kind: str) -> Any:
        from pyVmomi import vim  # the facade's other methods leave pyVmomi to its modules

        session, where = self.session, Where(self.name, name)
        search = session.content.searchIndex
        dc, folders, cluster = lifecycle.split_path(location, leaf_kind)
        segments = [dc, "host", *folders] + ([cluster] if cluster else [])
        path = "/".join(s.replace("%", "%25").replace("/", "%2f") for s in segments)
        container = session.call(where, "FindByInventoryPath", search.FindByInventoryPath, path)
        if container is None:
            return None
        found = session.call(where, "FindChild", search.FindChild, container, name)
        if isinstance(found, vim.ComputeResource) and not isinstance(found, vim.HostSystem):
            hosts = session.call(where, "host", lambda: list(found.host))
            found = hosts[0] if hosts else None
        return found if isinstance(found, vim.HostSystem) else None

    def _find_by_uuid(self, name: str, uuid: str) -> Any:
        """The host of hardware `uuid` if vCenter knows it by `name` (another name is another
        host object: placing the host again cleans it up)."""
        session, where = self.session, Where(self.name, name, uuid)
        found = session.call(where, "FindByUuid", session.content.searchIndex.FindByUuid,
                             uuid=uuid, vmSearch=False)
        if found is None:
            return None
        named = session.call(where, "name", lambda: found.name)
        return found if named == name else None

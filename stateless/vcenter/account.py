"""The hosts' root password: set through HostLocalAccountManager when its secret changes.

A password cannot be read back, so the host carries a *stamp* of what was applied: a custom
field (`FIELD`) on its HostSystem holding the secret store's stamp of the sealed value (a
digest that changes whenever the secret is set or re-sealed, and reveals nothing about the
password). The read reports `account.root.password` as the wanted reference only when the
stamp matches, so the planner sets the password exactly when the secret changed, the host
was (re)added, or the field was cleared. A stamp lives as long as the HostSystem object:
a host added again starts without one and gets its password again.
"""

from __future__ import annotations

from typing import Any

import attrs
from pyVmomi import vim

from stateless.errors import VCenterError
from stateless.model.config import HostConfig
from stateless.vcenter.faults import Where
from stateless.vcenter.read import HostView
from stateless.vcenter.secretrefs import Secrets, resolve, secret_name
from stateless.vcenter.session import Session

FIELD = "stateless.rootPasswordStamp"
USER = "root"


def stamp_field(session: Session, where: Where, *, create: bool = False) -> int | None:
    """The key of the stamp's custom field in this vCenter (made when `create`), or None."""
    manager = session.content.customFieldsManager
    if manager is None:
        raise VCenterError(f"{where.describe('root password')}: this vCenter has no custom "
                           "fields manager to record which password a host has")
    fields = session.call(where, "read custom fields", getattr, manager, "field")
    for field in fields or ():
        if field.name == FIELD:
            return int(field.key)
    if not create:
        return None
    made = session.call(where, "AddCustomFieldDef", manager.AddCustomFieldDef, name=FIELD,
                        moType=vim.HostSystem)
    return int(made.key)


def _stamp(secrets: Secrets | None, ref: str, what: str) -> str:
    name, store = secret_name(ref, secrets, what)
    return store.stamp(name)


def as_applied(view: HostView, desired: HostConfig, secrets: Secrets | None, field: int | None,
               *, fresh: bool = False) -> HostView:
    """`view` with `root_password` the wanted reference when the host's stamp is current."""
    want = desired.root_password
    if want is None:
        return view
    what = view.ref.where("").describe("root password")
    have = view.custom.get(field) if field is not None and not fresh else None
    current = want if have is not None and have == _stamp(secrets, want, what) else None
    return attrs.evolve(view, config=attrs.evolve(view.config, root_password=current))


def set_root_password(session: Session, view: HostView, host: Any, ref: str,
                      secrets: Secrets | None) -> None:
    """UpdateUser with the opened secret, then record its stamp on the host."""
    where = view.ref.where(session.name)
    what = where.describe("root password")
    stamp = _stamp(secrets, ref, what)  # before opening: a change meanwhile shows at the next read
    manager = view.managers.get("accountManager")
    if manager is None:
        raise VCenterError(f"{what}: the host has no accountManager; is it connected?")
    password = resolve(ref, secrets, what, "account.root.password")  # of kind root-password only
    spec = vim.host.LocalAccountManager.AccountSpecification(id=USER, password=password)
    session.call(where, "UpdateUser", manager.UpdateUser, spec)
    field = stamp_field(session, where, create=True)
    session.call(where, "SetField", session.content.customFieldsManager.SetField,
                 entity=host, key=field, value=stamp)


__all__ = ["FIELD", "as_applied", "set_root_password", "stamp_field"]

"""vSphere faults as the project's errors, each naming vCenter, operation and host.

Messages look like `vCenter vc1: AddPortGroup on host esx01 (uuid 4c4c...): <fault message>`,
so an admin reading a host's failure reason knows where to look.  Faults that a retry may
fix become TransientVCenterError; everything else is VCenterError.
"""

from __future__ import annotations

import http.client
import socket
import ssl

import attrs
from pyVmomi import vim, vmodl

from stateless.errors import TransientVCenterError, VCenterError

# Fault types a later retry can fix: the server was busy, slow, or lost our session.
_TRANSIENT: tuple[type, ...] = (
    vmodl.fault.SystemError,
    vmodl.fault.HostCommunication,
    vmodl.fault.RequestCanceled,
    vim.fault.Timedout,
    vim.fault.TaskInProgress,
    vim.fault.ConcurrentAccess,
    vim.fault.HostConnectFault,
    vim.fault.NotAuthenticated,
    vim.fault.InvalidState,
)
_NETWORK: tuple[type, ...] = (OSError, http.client.HTTPException, socket.timeout, ssl.SSLError)


@attrs.frozen
class Where:
    """What an error message says about the place of a failure."""

    vcenter: str
    host: str = ""
    uuid: str = ""

    def describe(self, operation: str) -> str:
        text = f"vCenter {self.vcenter}: {operation}"
        if self.host:
            text += f" on host {self.host}"
            if self.uuid:
                text += f" (uuid {self.uuid})"
        return text


def fault_message(exc: BaseException) -> str:
    """The most useful text of a vSphere fault (msg, then faultMessage, then the type)."""
    msg = getattr(exc, "msg", None) or ""
    if not msg:
        messages = getattr(exc, "faultMessage", None) or []
        msg = "; ".join(str(getattr(m, "message", m)) for m in messages)
    name = type(exc).__name__
    return f"{name}: {msg}" if msg else name


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT + _NETWORK)


def wrap(exc: BaseException, where: Where, operation: str) -> VCenterError:
    """The project error for a library exception (raise it `from exc`)."""
    if isinstance(exc, VCenterError):
        return exc
    text = f"{where.describe(operation)}: {fault_message(exc)}"
    if is_transient(exc):
        return TransientVCenterError(text + " (transient; a retry may succeed)")
    return VCenterError(text)

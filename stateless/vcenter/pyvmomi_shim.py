"""The pyVmomi internals the vCenter session relies on, in one place.

Every SOAP call of a pyVmomi session goes through `si._stub.InvokeMethod(mo, info, args)`
(managed object methods and property collector reads alike); wrapping it is the only way to
count the calls an apply makes.  The stub's HTTP connection pool size is `stub.poolSize`,
which `SmartConnect` does not take.

This holds for the pyvmomi versions in `SUPPORTED` (setup.cfg pins the same range);
`tests/unit/test_pyvmomi_shim.py` checks the stub and the method dispatch still look so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SUPPORTED = ((9, 1),)  # (major, minor) of the pyvmomi releases checked


def supported(version: str) -> bool:
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) in SUPPORTED


def count_calls(si: Any, on_call: Callable[[], None]) -> None:
    """Call `on_call` before every SOAP call made through the service instance `si`."""
    stub = si._stub
    invoke = stub.InvokeMethod

    def counted(mo: Any, info: Any, args: Any, *rest: Any) -> Any:
        on_call()
        return invoke(mo, info, args, *rest)

    stub.InvokeMethod = counted


def set_pool_size(si: Any, size: int) -> None:
    """At most `size` HTTP connections kept open to vCenter by `si`'s stub."""
    si._stub.poolSize = size


def stub_of(si: Any) -> Any:
    """The SOAP stub, for binding managed objects by id (`vim.HostSystem(moid, stub)`)."""
    return si._stub


__all__ = ["SUPPORTED", "count_calls", "set_pool_size", "stub_of", "supported"]

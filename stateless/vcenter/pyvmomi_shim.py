"""The pyVmomi internals the vCenter session relies on, in one place.

Every SOAP call of a pyVmomi session goes through `si._stub.InvokeMethod(mo, info, args)`
(managed object methods and property collector reads alike); wrapping it is the only way to
count the calls an apply makes.  The stub's HTTP connection pool size is `stub.poolSize`,
which `SmartConnect` does not take.

Decoding a SOAP answer builds one `DataObject` per element, and pyVmomi's constructor walks
the class hierarchy and tests every property's type for every object it builds
(`_GetPropertyList` makes a fresh list each time).  `fast_data_objects` works both out once
per class; a host's read then costs about a sixth less CPU.

This holds for the pyvmomi versions in `SUPPORTED` (setup.cfg pins the same range);
`tests/unit/test_pyvmomi_shim.py` checks the stub and the method dispatch still look so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyVmomi import VmomiSupport

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


# Per-class caches live on the classes themselves (in their own __dict__, never inherited).
_PROPS = "_stateless_props"
_DEFAULTS = "_stateless_defaults"


def _property_list(cls: Any) -> list[Any]:
    """What `DataObject._GetPropertyList` answers, built once per class."""
    cached = cls.__dict__.get(_PROPS)
    if cached is None:
        cached = _STOCK_PROPERTY_LIST.__func__(cls)
        setattr(cls, _PROPS, cached)
    return list(cached)


def _defaults(cls: Any) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """A fresh object's attributes: constants, and list attributes (a new list each)."""
    cached = cls.__dict__.get(_DEFAULTS)
    if cached is None:
        constants: dict[str, Any] = {}
        lists: list[tuple[str, Any]] = []
        for prop in _property_list(cls):
            ptype = prop.type
            if issubclass(ptype, list):
                lists.append((prop.name, ptype))
            elif prop.flags & VmomiSupport.F_OPTIONAL or issubclass(ptype, VmomiSupport.Enum):
                constants[prop.name] = None
            elif ptype is bool:
                constants[prop.name] = False
            elif issubclass(ptype, str):
                constants[prop.name] = ""
            elif issubclass(ptype, int | float):
                constants[prop.name] = ptype(0)
            else:
                constants[prop.name] = None
        cached = (constants, tuple(lists))
        setattr(cls, _DEFAULTS, cached)
    return cached


def _init(self: Any, **kwargs: Any) -> None:
    """`DataObject.__init__` with the per-class work done once."""
    constants, lists = _defaults(type(self))
    fields = self.__dict__
    fields.update(constants)
    for name, ptype in lists:
        fields[name] = ptype()
    for key, value in kwargs.items():
        setattr(self, key, value)


_STOCK_PROPERTY_LIST = VmomiSupport.DataObject.__dict__["_GetPropertyList"]
STOCK_INIT = VmomiSupport.DataObject.__init__


def fast_data_objects() -> None:
    """Make pyVmomi build data objects without re-deriving their class's properties each time.

    Process-wide and idempotent; what the objects hold is unchanged (the unit tests compare
    both ways of building every data type the adapter decodes).
    """
    data = VmomiSupport.DataObject
    if data.__dict__.get("__init__") is _init:
        return
    data._GetPropertyList = classmethod(  # type: ignore[method-assign,assignment]
        lambda cls, includeBaseClassProps=True: _property_list(cls) if includeBaseClassProps
        else cls._propList)
    data.__init__ = _init  # type: ignore[method-assign]


__all__ = ["SUPPORTED", "count_calls", "fast_data_objects", "set_pool_size", "stub_of",
           "supported"]

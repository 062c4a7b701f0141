"""Real SOAP answers from the simulator, recorded as pyVmomi received them, and decoded again
either with pyVmomi's own element handlers or with `pyvmomi_shim`'s.

`recording()` keeps the bytes of every answer decoded while it is active; `decode` decodes one
again; `assert_same` compares two decoded values field by field, type by type.
"""

from __future__ import annotations

import contextlib
import copy
import types
from collections.abc import Iterator
from typing import Any

import attrs
from pyVmomi import SoapAdapter, VmomiSupport, vim, vmodl

from stateless.vcenter import pyvmomi_shim

PC = vmodl.query.PropertyCollector
LONG = VmomiSupport.GetVmodlType("long")
# The HostSystem properties a host's read decodes (stateless.vcenter.paths), one answer.
HOST_PATHS = ["name", "hardware.systemInfo.uuid", "runtime.connectionState", "configManager",
              "config.network.vswitch", "config.network.portgroup", "config.network.vnic",
              "config.network.dnsConfig", "config.option", "config.dateTimeInfo",
              "config.service", "config.virtualNicManagerInfo", "config.storageDevice",
              "config.fileSystemVolume", "config.lockdownMode", "config.product"]


@attrs.frozen
class Answer:
    """One SOAP answer: its bytes and what pyVmomi was asked to decode it as."""

    data: bytes
    result_type: Any
    ns_map: dict[str, Any]
    stub: Any


@contextlib.contextmanager
def recording() -> Iterator[list[Answer]]:
    """Record every SOAP answer pyVmomi decodes in this process while active."""
    stock = SoapAdapter.SoapResponseDeserializer.Deserialize
    answers: list[Answer] = []

    def record(self: Any, response: Any, resultType: Any, nsMap: Any = None) -> Any:
        data = response if isinstance(response, bytes) else response.read()
        answers.append(Answer(data, resultType, copy.deepcopy(nsMap or {}), self.stub))
        return stock(self, data, resultType, nsMap)

    SoapAdapter.SoapResponseDeserializer.Deserialize = record  # type: ignore[method-assign]
    try:
        yield answers
    finally:
        SoapAdapter.SoapResponseDeserializer.Deserialize = stock  # type: ignore[method-assign]


@contextlib.contextmanager
def shipped_data_objects() -> Iterator[None]:
    """pyVmomi's own DataObject constructor and property list while active."""
    data = VmomiSupport.DataObject
    init, plist = data.__dict__["__init__"], data.__dict__["_GetPropertyList"]
    data.__init__ = pyvmomi_shim.STOCK_INIT  # type: ignore[method-assign]
    data._GetPropertyList = pyvmomi_shim._STOCK_PROPERTY_LIST  # type: ignore[method-assign]
    try:
        yield
    finally:
        data.__init__ = init  # type: ignore[method-assign]
        data._GetPropertyList = plist  # type: ignore[method-assign]


def decode(answer: Answer, *, stock: bool) -> Any:
    """Decode `answer` as pyVmomi does (stock) or with the shim's handlers."""
    reader = SoapAdapter.SoapResponseDeserializer(answer.stub)
    deser = reader.deser
    if stock:
        deser.StartElementHandler = types.MethodType(pyvmomi_shim.STOCK_START, deser)
        deser.EndElementHandler = types.MethodType(pyvmomi_shim.STOCK_END, deser)
    else:
        deser.StartElementHandler = types.MethodType(pyvmomi_shim._start, deser)
        deser.EndElementHandler = types.MethodType(pyvmomi_shim._end, deser)
    return reader.Deserialize(answer.data, answer.result_type, copy.deepcopy(answer.ns_map))


def outcome(answer: Answer, *, stock: bool) -> tuple[str, Any]:
    """What decoding gives: ("value", value) or ("raised", exception).  Stock is pyVmomi as
    shipped: its handlers and its own data-object constructor."""
    try:
        if stock:
            with shipped_data_objects():
                return "value", decode(answer, stock=True)
        return "value", decode(answer, stock=False)
    except Exception as exc:
        return "raised", exc


def assert_same(a: Any, b: Any, where: str = "answer") -> int:
    """Fail unless `a` and `b` are the same value of the same types; answers the values seen."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, VmomiSupport.DataObject):
        assert a.__dict__.keys() == b.__dict__.keys(), where
        if isinstance(a, BaseException):
            assert (a.args, str(a)) == (b.args, str(b)), where
        return 1 + sum(assert_same(v, b.__dict__[k], f"{where}.{k}") for k, v in a.__dict__.items())
    if isinstance(a, VmomiSupport.ManagedObject):
        assert (a._moId, a._serverGuid, a._stub) == (b._moId, b._serverGuid, b._stub), where
        return 1
    if isinstance(a, list):
        assert len(a) == len(b), where
        return 1 + sum(assert_same(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True)))
    if isinstance(a, BaseException):
        assert (a.args, str(a)) == (b.args, str(b)), where
        return 1
    if isinstance(a, VmomiSupport.UnknownManagedMethod):  # made anew at each decode
        assert a.name == b.name, where
        return 1
    assert a == b, f"{where}: {a!r} != {b!r}"
    return 1


def walk(value: Any) -> Iterator[Any]:
    """`value` and every value inside it."""
    yield value
    if isinstance(value, VmomiSupport.DataObject):
        for inner in value.__dict__.values():
            yield from walk(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from walk(inner)


def host_config_spec(host: Any) -> Any:
    """A RetrievePropertiesEx filter for one host's configuration, as a host's read asks it."""
    return PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=host, skip=False)],
                         propSet=[PC.PropertySpec(type=vim.HostSystem, pathSet=HOST_PATHS)])


def first_host(si: Any) -> Any:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        return sorted(view.view, key=lambda h: h._moId)[0]
    finally:
        view.Destroy()

"""The pyVmomi internals the vCenter session relies on, in one place.

Every SOAP call of a pyVmomi session goes through `si._stub.InvokeMethod(mo, info, args)`
(managed object methods and property collector reads alike); wrapping it is the only way to
count the calls an apply makes.  The stub's HTTP connection pool size is `stub.poolSize`,
which `SmartConnect` does not take.

Decoding a SOAP answer builds one `DataObject` per element, and pyVmomi's constructor walks
the class hierarchy and tests every property's type for every object it builds
(`_GetPropertyList` makes a fresh list each time).  `fast_data_objects` works both out once
per class; a host's read then costs about a sixth less CPU.

The SOAP deserializer's element handlers redo the same work for every element as well: split
the tag, walk the class hierarchy for the property, look the xsi:type up in the WSDL map and
widen it to the session's version (each under pyVmomi's global lock), then `setattr` checks the
value's type against the property with `CheckField`.  `fast_decoding` (installed by
`fast_data_objects`) answers the lookups from caches per (class, tag), per (declared type,
xsi:type, version) and per type, and stores a decoded value without `CheckField` when it is an
instance of its property's type, the one case `CheckField` accepts without looking further;
every other value still goes through `setattr`, and objects built outside the deserializer keep
all of pyVmomi's checks.  Decoding a host's configuration costs about half the CPU
(`tests/bench/decode.py`).  The answer's top element, pyVmomi's type guesses for names the WSDL
does not know, and every error path are left to pyVmomi's own code.

A property collector answers an object entering a filter with every value it watches: a
baseline, where a watch wants only what changes afterwards.  Inside `baselines_skipped()` the
handlers pass over an entering object's `changeSet` elements without building anything (the
update keeps its kind and object; modifications decode as always), so a host joining the
push-drift watch costs parsing, not a host's read decoded and thrown away.

This holds for the pyvmomi versions in `SUPPORTED` (setup.cfg pins the same range);
`tests/unit/test_library_shims.py` checks the stub, the method dispatch and the decoding
functions still look so (a digest of each function the handlers follow), and
`tests/integration/test_vcenter_decode.py` decodes the simulator's answers both ways.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

from pyVmomi import SoapAdapter, VmomiSupport

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
    fast_decoding()
    data = VmomiSupport.DataObject
    if data.__dict__.get("__init__") is _init:
        return
    data._GetPropertyList = classmethod(  # type: ignore[method-assign,assignment]
        lambda cls, includeBaseClassProps=True: _property_list(cls) if includeBaseClassProps
        else cls._propList)
    data.__init__ = _init  # type: ignore[method-assign]


# --- decoding SOAP answers ----------------------------------------------------------------------

_DataObject = VmomiSupport.DataObject
_ManagedObject = VmomiSupport.ManagedObject
_LocalizedMethodFault = SoapAdapter.LocalizedMethodFault
_STOCK_SETATTR = VmomiSupport.DataObject.__setattr__
_GetWsdlType = VmomiSupport.GetWsdlType
_GetCompatibleType = VmomiSupport.GetCompatibleType
_isDynamicType = SoapAdapter.isDynamicType
_Deserializer = SoapAdapter.SoapDeserializer
_XSI_TYPE = SoapAdapter.XSI_TYPE
_NS_SEP = SoapAdapter.NS_SEP
_set_field = object.__setattr__
_object_new = object.__new__
_ManagedMethod = SoapAdapter.ManagedMethod
_binary = SoapAdapter.binary
_datetime = SoapAdapter.datetime

_ObjectUpdate = VmomiSupport.GetVmodlType("vmodl.query.PropertyCollector.ObjectUpdate")
_BASELINES = threading.local()  # .skip: entering objects' values are passed over

STOCK_START = _Deserializer.StartElementHandler
STOCK_END = _Deserializer.EndElementHandler

# Per class: child element tag -> (the tag's name, property type, the type is a list, the class
# sets attributes through DataObject.__setattr__, property name, the child is a localized
# fault's own fault).
Child = tuple[str, Any, bool, bool, str, bool]
_CLASS_TAGS: dict[Any, dict[str, Child]] = {}
_MAX_TAGS = 1024  # per class, at most (a property's tag in many namespaces is asked anew)
_NO_TAGS: dict[str, Child] = {}
# What an element decodes to: (type, kind, defaults of a data object built here).
Resolved = tuple[Any, int, Any]
_WSDL: dict[tuple[str, str], Any] = {}  # (namespace, wsdl name) -> type: found ones, no guesses
_TYPED: dict[tuple[Any, str | None], Resolved] = {}  # (declared type, version), no xsi:type
_DYNAMIC: dict[tuple[Any, str, str, str | None], Resolved] = {}  # (declared, xsi ns, name, version)
_NAMED: set[Any] = set()  # types of values CheckField took for an xsd:anyType property
# Kinds: a managed object reference, a fault, a data object built from its class's defaults,
# one built by calling its type (a list, or a class with another constructor), a typed value.
_MANAGED, _FAULT, _NEW, _BUILD, _TYPED_VALUE = range(5)


def _child(cls: Any, tag: str) -> Child:
    """What `SplitTag` and `_GetPropertyInfo` answer for the child element `tag` of a `cls`."""
    name = tag[tag.find(_NS_SEP) + 1:]  # SplitTag: the name after the namespace, if any
    info = cls._GetPropertyInfo(name)  # AttributeError for an unknown one, as before
    found = (name, info.type, issubclass(info.type, list), cls.__setattr__ is _STOCK_SETATTR,
             info.name, name == "fault" and issubclass(cls, _LocalizedMethodFault))
    tags = _CLASS_TAGS.setdefault(cls, {})
    if len(tags) < _MAX_TAGS:  # the namespace is the server's: keep what a class can have
        tags[tag] = found
    return found


def _kind(obj_type: Any) -> int:
    if issubclass(obj_type, _ManagedObject):
        return _MANAGED
    if not (issubclass(obj_type, _DataObject) or issubclass(obj_type, list)):
        return _TYPED_VALUE
    if issubclass(obj_type, Exception):
        return _FAULT
    if issubclass(obj_type, list) or obj_type.__init__ is not _init:
        return _BUILD
    return _NEW if obj_type.__new__ is _object_new else _BUILD


def _finish(obj_type: Any, version: str | None) -> Resolved:
    """`GetCompatibleType` for the deserializer's version, and how to build the result."""
    if version:
        obj_type = _GetCompatibleType(obj_type, version)
    kind = _kind(obj_type)
    return obj_type, kind, _defaults(obj_type) if kind == _NEW else None


def _typed(declared: Any, version: str | None) -> Resolved:
    """An element without xsi:type: its declared type (an array's item type)."""
    obj_type = declared.Item if issubclass(declared, list) else declared
    found = _TYPED[(declared, version)] = _finish(obj_type, version)
    return found


def _dynamic(self: Any, declared: Any, ns: str, name: str) -> Resolved:
    """An element with xsi:type: the type it names, as `StartElementHandler` picks it."""
    obj_type = declared
    keep = (ns, name) in _WSDL  # the type named is ignored here: kept only if the WSDL has it
    if not _isDynamicType(declared):
        keep = True
        dyn_type = _WSDL.get((ns, name))
        if dyn_type is None:
            try:
                dyn_type = _WSDL[(ns, name)] = _GetWsdlType(ns, name)
            except KeyError:  # guessed by pyVmomi: asked again each time, as before
                dyn_type = self.LookupWsdlType(ns, name, allowManagedObjectReference=True)
                keep = False
        if not (issubclass(dyn_type, list) and issubclass(declared, list)):
            obj_type = dyn_type
    found = _finish(obj_type, self.version)
    if keep:
        _DYNAMIC[(declared, ns, name, self.version)] = found
    return found


def _start(self: Any, tag: str, attr: dict[str, str]) -> None:
    """`SoapDeserializer.StartElementHandler`, answered from caches after the first time."""
    stack = self.stack
    if not stack:
        STOCK_START(self, tag, attr)  # the answer's top element: once per answer
        return
    self.data = ""  # serverGuid is set at managed object references, the only readers
    top = stack[-1]
    as_localized = True
    if isinstance(top, _DataObject):
        cls = top.__class__
        child = _CLASS_TAGS.get(cls, _NO_TAGS).get(tag) or _child(cls, tag)
        if cls is _ObjectUpdate and child[0] == "changeSet" \
                and getattr(top, "kind", None) == "enter" \
                and getattr(_BASELINES, "skip", False):
            _Skip(self.parser)  # nothing is pushed: its end pops nothing either
            return
        declared = child[1]
        if child[5]:
            as_localized = False  # a localized fault's fault is the fault itself
    elif isinstance(top, list):
        declared = cast(Any, top).Item  # a pyVmomi Array: typed items
    else:
        raise TypeError(f"Invalid type for tag {tag}")
    xsi_type = attr.get(_XSI_TYPE)
    version = self.version
    if xsi_type:
        ns, name = self.GetNSAndWsdlname(xsi_type)
        found = _DYNAMIC.get((declared, ns, name, version)) or _dynamic(self, declared, ns, name)
    else:
        found = _TYPED.get((declared, version)) or _typed(declared, version)
    obj_type, kind, defaults = found
    if kind == _TYPED_VALUE:
        stack.append(obj_type)
    elif kind == _NEW:  # what DataObject.__init__ (`_init`) does, without the call
        obj = _object_new(obj_type)
        fields = obj.__dict__
        fields.update(defaults[0])
        for field, ptype in defaults[1]:
            fields[field] = ptype()
        stack.append(obj)
    elif kind == _MANAGED:
        ns, name = self.GetNSAndWsdlname(attr["type"])
        self.serverGuid = None
        if "serverGuid" in attr and (not self.stub or not self.stub.SupportServerGUIDs()):
            self.serverGuid = attr["serverGuid"]
        stack.append(_lookup(self, ns, name))
    elif kind == _FAULT:
        stack.append((_LocalizedMethodFault if as_localized else obj_type)())
    else:
        stack.append(obj_type())


def _lookup(self: Any, ns: str, name: str) -> Any:
    """`LookupWsdlType`, remembering the types the WSDL maps (never pyVmomi's guesses)."""
    found = _WSDL.get((ns, name))
    if found is None:
        try:
            found = _WSDL[(ns, name)] = _GetWsdlType(ns, name)
        except KeyError:
            return self.LookupWsdlType(ns, name)
    return found


def _end(self: Any, tag: str) -> None:
    """`SoapDeserializer.EndElementHandler`.  A decoded value that is an instance of its
    property's type is stored without `CheckField`, which could only say yes to it; any
    other goes through `setattr` and pyVmomi's checks, as before."""
    stack = self.stack
    if len(stack) < 2:
        STOCK_END(self, tag)  # the answer's top element, or past its end
        return
    obj = stack.pop()
    if isinstance(obj, type):
        obj = str(self.data) if obj is str else _value(self, obj, self.data)
    elif isinstance(obj, _LocalizedMethodFault):
        obj.fault.msg = obj.localizedMessage
        obj = obj.fault
    top = stack[-1]
    if isinstance(top, _DataObject):
        cls = top.__class__
        _, ptype, is_list, plain, name, _ = (_CLASS_TAGS.get(cls, _NO_TAGS).get(tag)
                                             or _child(cls, tag))
        if is_list and not isinstance(obj, list):
            getattr(top, name).append(obj)
        elif plain and obj is not None and not (isinstance(obj, list) and len(obj) == 0) and (
                isinstance(obj, ptype) if ptype is not object else obj.__class__ in _NAMED):
            _set_field(top, name, obj)
        else:
            setattr(top, name, obj)
            if ptype is object and obj is not None:  # CheckField found the value's WSDL name
                _NAMED.add(obj.__class__)
    elif isinstance(top, list):
        top.append(obj)
    else:
        setattr(top, self.SplitTag(tag)[1], obj)


def _value(self: Any, obj: Any, data: str) -> Any:
    """A typed element's text as its type (the stock conversions, the commonest first)."""
    if obj is str:
        return str(data)
    if obj is bool:
        if data == "0" or data.lower() == "false":
            return False
        if data == "1" or data.lower() == "true":
            return True
        raise TypeError(data)
    if obj is type or obj is _ManagedMethod or obj is _binary or obj is _datetime:
        return _typed_rare(self, obj, data)
    if issubclass(obj, _ManagedObject):
        return obj(data, self.stub, self.serverGuid)
    if issubclass(obj, VmomiSupport.Enum):
        return getattr(obj, data)
    return obj(data)


def _typed_rare(self: Any, obj: Any, data: str) -> Any:
    """The rarer conversions, as `EndElementHandler` does them."""
    if obj is type:
        if not data:
            return None
        try:
            ns, name = self.GetNSAndWsdlname(data)
            return self.LookupWsdlType(ns, name)
        except KeyError:
            raise TypeError(data) from None
    if obj is _ManagedMethod:
        ns, name = self.GetNSAndWsdlname(data)
        try:
            return SoapAdapter.GetWsdlMethod(ns, name)
        except KeyError:
            try:
                return SoapAdapter.GuessWsdlMethod(name)
            except KeyError:
                return SoapAdapter.UnknownManagedMethod(name)
    if obj is _binary:
        return obj(base64.b64decode(data))
    parsed = SoapAdapter.Iso8601.ParseISO8601(data)
    if not parsed:
        raise TypeError(data)
    return parsed


class _Skip:
    """Parser handlers that pass over the element just started and everything in it, then
    give the parser its handlers back (namespace declarations are still tracked)."""

    __slots__ = ("depth", "handlers", "parser")

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.handlers = (parser.StartElementHandler, parser.EndElementHandler,
                         parser.CharacterDataHandler)
        self.depth = 1
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = None

    def start(self, tag: str, attr: dict[str, str]) -> None:
        self.depth += 1

    def end(self, tag: str) -> None:
        self.depth -= 1
        if not self.depth:
            parser = self.parser
            parser.StartElementHandler, parser.EndElementHandler, \
                parser.CharacterDataHandler = self.handlers


@contextlib.contextmanager
def baselines_skipped() -> Iterator[None]:
    """In this thread, while active: objects entering a property filter decode without their
    values (`ObjectUpdate.changeSet` empty, `kind` "enter"); everything else as always."""
    before = getattr(_BASELINES, "skip", False)
    _BASELINES.skip = True
    try:
        yield
    finally:
        _BASELINES.skip = before


def fast_decoding() -> None:
    """Make pyVmomi decode SOAP answers from per-class caches (process-wide, idempotent).

    Every answer decodes to the same values and raises the same errors; the unit tests
    decode recorded answers both ways and compare them.
    """
    _Deserializer.StartElementHandler = _start  # type: ignore[method-assign]
    _Deserializer.EndElementHandler = _end  # type: ignore[method-assign]


__all__ = ["SUPPORTED", "baselines_skipped", "count_calls", "fast_data_objects", "fast_decoding",
           "set_pool_size", "stub_of", "supported"]

"""Contract tests of the library internals the shims patch: they fail loudly when ldap3 or
pyvmomi change what `ldap3_shim` and `pyvmomi_shim` rely on (then check the shim, and the
upper bounds in setup.cfg, against the new release)."""

from __future__ import annotations

import configparser
import datetime
import hashlib
import importlib.metadata
import inspect
import random
import re
import socket
import threading
import types
from pathlib import Path
from typing import Any
from xml.parsers.expat import ParserCreate

import ldap3
import pytest
from ldap3.strategy.asynchronous import AsyncStrategy
from ldap3.strategy.asyncStream import AsyncStreamStrategy
from pyVmomi import SoapAdapter, VmomiSupport, vim, vmodl

from stateless.directory import ldap3_shim
from stateless.vcenter import pyvmomi_shim
from tests.soap_answers import assert_same

ROOT = Path(__file__).resolve().parents[2]


def requirement(name: str) -> str:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].split("\n")
    return next(line.strip() for line in lines if re.match(rf"\s*{name}\b", line))


def upper_bound(name: str) -> tuple[int, int]:
    found = re.search(r"<\s*(\d+)\.(\d+)", requirement(name))
    assert found, f"setup.cfg: {requirement(name)!r} has no upper bound"
    return int(found.group(1)), int(found.group(2))


# --- ldap3 -------------------------------------------------------------------------------------

def test_the_installed_ldap3_is_one_the_shim_was_checked_against() -> None:
    version = importlib.metadata.version("ldap3")
    assert ldap3_shim.supported(version), f"ldap3 {version}: check ldap3_shim, then SUPPORTED"
    assert max(ldap3_shim.SUPPORTED) < upper_bound("ldap3")


def test_ldap3s_receiver_accumulates_then_calls_accumulate_stream() -> None:
    run = inspect.getsource(AsyncStrategy.ReceiverSocketThread.run)
    assert "strategy.async_lock" in run and "strategy._responses[message_id]" in run
    assert "strategy.accumulate_stream(message_id, dict_response)" in run
    assert run.index("_responses[message_id]") < run.index("accumulate_stream(")
    assert "can_stream" in run and AsyncStreamStrategy(_connection()).can_stream


def _connection() -> Any:
    server = ldap3.Server("ldap://127.0.0.1:1", connect_timeout=0.1)
    return ldap3.Connection(server, client_strategy=ldap3.ASYNC_STREAM, lazy=True)


def test_the_hook_hands_messages_over_and_drops_streamed_entries() -> None:
    strategy = _connection().strategy
    assert isinstance(strategy.async_lock, type(threading.Lock()))
    assert strategy.receiver is None and not ldap3_shim.receiver_alive(strategy)
    got: list[tuple[int, dict[str, Any]]] = []
    ldap3_shim.stream_messages(strategy, lambda mid, msg: got.append((mid, msg)))
    strategy._responses = {7: [{"type": "searchResEntry"}], 8: [{"type": "searchResDone"}]}
    strategy.accumulate_stream(7, {"type": "searchResEntry"})  # as the receiver calls it
    strategy.accumulate_stream(8, {"type": "searchResDone"})
    assert [mid for mid, _ in got] == [7, 8]
    assert 7 not in strategy._responses and 8 in strategy._responses


def test_a_connection_waiting_on_a_silent_server_is_closed_at_once() -> None:
    """`close_now` wakes a thread blocked in an operation instead of waiting its receive
    timeout behind the connection's lock (a daemon stopping must not wait on a dead server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    server = ldap3.Server(f"ldap://127.0.0.1:{listener.getsockname()[1]}", connect_timeout=5,
                          get_info=ldap3.NONE)
    conn = ldap3.Connection(server, receive_timeout=120, raise_exceptions=True)
    conn.open()
    failed: list[BaseException] = []

    def search() -> None:
        try:
            conn.search("dc=x", "(objectClass=*)")
        except Exception as exc:  # what the waiting thread gets once its socket is shut
            failed.append(exc)

    waiting = threading.Thread(target=search, daemon=True)
    waiting.start()
    while not _held_elsewhere(conn):  # until the search holds the lock, waiting for its answer
        threading.Event().wait(0.01)
    ldap3_shim.close_now(conn)
    waiting.join(timeout=60)
    assert not waiting.is_alive() and failed, "the waiting search was not woken"
    listener.close()
    for peer in accepted:
        peer.close()


def _held_elsewhere(conn: Any) -> bool:
    if conn.connection_lock.acquire(blocking=False):
        conn.connection_lock.release()
        return False
    return True



def test_ldap3s_receiver_decodes_with_the_module_decoder_the_fast_reader_replaces() -> None:
    """decode_entries_fast swaps `decode_message_fast` in the receiver's module: the
    receiver must still look it up there, by that name, for every message."""
    from ldap3.strategy import asynchronous

    run = inspect.getsource(AsyncStrategy.ReceiverSocketThread.run)
    assert "ldap_resp = decode_message_fast(unprocessed[:length])" in run
    assert "decode_response_fast(ldap_resp)" in run
    assert callable(asynchronous.decode_message_fast)


def _entry_ber(message_id: int, dn: str, attributes: dict[str, list[bytes]],
               controls: list[tuple[str, bool | None, bytes | None]]) -> bytes:
    """An LDAPMessage carrying a searchResEntry, encoded with ldap3's own ASN.1 classes."""
    from ldap3.protocol import rfc4511 as asn
    from ldap3.utils.asn1 import encode

    entry = asn.SearchResultEntry()
    entry["object"] = asn.LDAPDN(dn)
    values = asn.PartialAttributeList()
    for name, given in attributes.items():
        attribute = asn.PartialAttribute()
        attribute["type"] = asn.AttributeDescription(name)
        vals = asn.Vals()
        for value in given:
            vals.append(asn.AttributeValue(value))
        attribute["vals"] = vals
        values.append(attribute)
    entry["attributes"] = values
    message = asn.LDAPMessage()
    message["messageID"] = asn.MessageID(message_id)
    op = asn.ProtocolOp()
    op["searchResEntry"] = entry
    message["protocolOp"] = op
    if controls:
        encoded = asn.Controls()
        for oid, critical, control_value in controls:
            control = asn.Control()
            control["controlType"] = asn.LDAPOID(oid)
            if critical is not None:
                control["criticality"] = asn.Criticality(critical)
            if control_value is not None:
                control["controlValue"] = asn.ControlValue(control_value)
            encoded.append(control)
        message["controls"] = encoded
    return bytes(encode(message))


def _random_entry(rng: random.Random) -> bytes:
    def blob() -> bytes:
        size = rng.choice([0, 1, 5, 126, 127, 128, 255, 256, 70_000])
        return bytes(rng.getrandbits(8) for _ in range(size))

    attributes = {f"attr{k}": [blob() for _ in range(rng.choice([0, 1, 1, 3]))]
                  for k in range(rng.randint(0, 6))}
    controls = [(rng.choice(["1.3.6.1.4.1.4203.1.9.1.2", "2.16.840.1.113730.3.4.2"]),
                 rng.choice([None, True, False]), rng.choice([None, b"", blob()]))
                for _ in range(rng.choice([0, 1, 1, 2]))]
    dn = rng.choice(["cn=a,dc=x", "statelessUuid=5c4c,ou=hosts,ou=stateless,dc=example,dc=com",
                     r"cn=Bj\C3\B6rk,dc=x", "cn=Björk,dc=x", "cn=" + "x" * 300 + ",dc=x"])
    return _entry_ber(rng.randint(0, 2**31 - 1), dn, attributes, controls)


@pytest.mark.parametrize("seed", range(40))
def test_the_fast_reader_reads_entries_as_ldap3s_decoder_does(seed: int) -> None:
    from ldap3.utils.asn1 import decode_message_fast

    ber = _random_entry(random.Random(seed))
    read = ldap3_shim.read_entry(ber)
    strategy = _connection().strategy
    ldap3_shim.decode_entries_raw(strategy)
    assert strategy.decode_response_fast(read) == strategy.decode_response_fast(
        dict(decode_message_fast(ber)))
    # As a dict it is ldap3's decoded message, payload and controls decoded on first use.
    assert read == decode_message_fast(ber)
    assert read["payload"] == decode_message_fast(ber)["payload"]


def test_the_fast_reader_leaves_other_messages_and_surprises_to_ldap3() -> None:
    from ldap3.utils.asn1 import decode_message_fast

    done = bytes.fromhex("300c02010265070a010004000400")  # searchResDone, success
    entry = _entry_ber(3, "cn=a,dc=x", {"cn": [b"a"]}, [])
    paged = _entry_ber(3, "cn=a,dc=x", {"cn": [b"a"]},
                       [("1.2.840.113556.1.4.319", None, bytes.fromhex("30050201000400"))])
    latin1 = _entry_ber(3, "cn=a,dc=x", {"cn": [b"a"]}, []).replace(b"cn=a", b"cn=\xe9")
    for ber in (done, entry[:-1], entry + b"\x00", paged, latin1):
        with pytest.raises((ldap3_shim._Unread, IndexError, UnicodeDecodeError)):
            ldap3_shim.read_entry(ber)
    ldap3_shim.decode_entries_fast()
    ldap3_shim.decode_entries_fast()  # once is enough; twice changes nothing
    from ldap3.strategy import asynchronous

    assert asynchronous.decode_message_fast(done) == decode_message_fast(done)
    assert asynchronous.decode_message_fast(latin1) == decode_message_fast(latin1)
    assert isinstance(asynchronous.decode_message_fast(entry), ldap3_shim.ReadEntry)

# --- pyvmomi -----------------------------------------------------------------------------------

def test_the_installed_pyvmomi_is_one_the_shim_was_checked_against() -> None:
    version = importlib.metadata.version("pyvmomi")
    assert pyvmomi_shim.supported(version), f"pyvmomi {version}: check pyvmomi_shim, then SUPPORTED"
    assert max(pyvmomi_shim.SUPPORTED) < upper_bound("pyvmomi")


def test_every_managed_object_method_goes_through_the_stubs_invoke_method() -> None:
    dispatch = inspect.getsource(VmomiSupport.ManagedObject._InvokeMethod)
    assert "self._stub.InvokeMethod(self, info, args)" in dispatch
    params = list(inspect.signature(SoapAdapter.SoapStubAdapter.InvokeMethod).parameters)
    assert params[:4] == ["self", "mo", "info", "args"]
    init = inspect.getsource(SoapAdapter.SoapStubAdapter.__init__)
    assert "self.poolSize = poolSize" in init


def test_counting_wraps_the_stub_and_keeps_its_answers() -> None:
    class Stub:
        poolSize = 5

        def InvokeMethod(self, mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:
            return ("answer", mo, args)

    class Si:
        _stub = Stub()

    calls: list[int] = []
    si = Si()
    pyvmomi_shim.count_calls(si, lambda: calls.append(1))
    pyvmomi_shim.set_pool_size(si, 3)
    host = vim.HostSystem("host-1", pyvmomi_shim.stub_of(si))
    assert host._stub is si._stub and si._stub.poolSize == 3
    assert si._stub.InvokeMethod("mo", "info", ["a"]) == ("answer", "mo", ["a"])
    assert len(calls) == 1


def test_data_objects_built_the_fast_way_hold_what_pyvmomi_would_build() -> None:
    """Every data type pyVmomi knows, built empty and with a value, both ways."""
    pyvmomi_shim.fast_data_objects()
    pyvmomi_shim.fast_data_objects()  # idempotent
    data = VmomiSupport.DataObject
    assert data.__init__ is not pyvmomi_shim.STOCK_INIT
    compared = 0
    for name in VmomiSupport.ListDataTypes():
        cls = VmomiSupport.GetVmodlType(name)
        if not issubclass(cls, data) or cls is data:
            continue
        fast, stock = cls(), cls.__new__(cls)
        pyvmomi_shim.STOCK_INIT(stock)
        assert fast.__dict__ == stock.__dict__, name
        assert [p.name for p in cls._GetPropertyList()] == [
            p.name for p in pyvmomi_shim._STOCK_PROPERTY_LIST.__func__(cls)], name
        lists = [k for k, v in fast.__dict__.items() if isinstance(v, list)]
        assert all(getattr(fast, k) is not getattr(cls(), k) for k in lists), name
        compared += 1
    assert compared > 3000
    ip = vim.host.IpConfig(dhcp=True)
    nic = vim.host.VirtualNic.Specification(mtu=9000, ip=ip)
    assert nic.mtu == 9000 and nic.ip is ip and ip.dhcp and ip.ipAddress is None
    with pytest.raises(TypeError):
        vim.host.VirtualNic.Specification(mtu="large")


def test_ldap3_decodes_every_received_message_with_decode_response_fast() -> None:
    """decode_entries_raw replaces it on one strategy; the receiver must still call it."""
    run = inspect.getsource(AsyncStrategy.ReceiverSocketThread.run)
    assert "decode_response_fast(" in run
    strategy = _connection().strategy
    assert callable(strategy.decode_response_fast) and callable(strategy.decode_control_fast)


def test_raw_entries_keep_the_dn_raw_values_and_controls() -> None:
    """A searchResEntry as ldap3's BER decoder hands it over, read the way the shim reads it."""
    from ldap3.utils.asn1 import decode_message_fast  # what the receiver decodes BER with

    ber = bytes.fromhex(  # message 2: searchResEntry dn "cn=a,dc=x", cn: a, b
        "3020020102641b0409636e3d612c64633d78300e300c0402636e3106040161040162")
    decoded = dict(decode_message_fast(ber))
    strategy = _connection().strategy
    ldap3_shim.decode_entries_raw(strategy)
    entry = strategy.decode_response_fast(decoded)
    assert entry["type"] == "searchResEntry" and entry["dn"] == "cn=a,dc=x"
    assert entry["raw_attributes"] == {"cn": [b"a", b"b"]}


# --- pyvmomi: decoding SOAP answers ------------------------------------------------------------

# What `fast_decoding`'s handlers re-implement or rely on, as read in pyvmomi 9.1: a digest of
# each function's source.  A new release that changes one must be read against the shim
# (then the shim and these digests updated together).
DECODING_SOURCES = {
    "SoapDeserializer.StartElementHandler": (pyvmomi_shim.STOCK_START, "af76a40365330e70"),
    "SoapDeserializer.EndElementHandler": (pyvmomi_shim.STOCK_END, "4a0fd1ddfc9ee5c0"),
    "SoapDeserializer.Deserialize": (SoapAdapter.SoapDeserializer.Deserialize,
                                     "1fb197b242cee4b8"),
    "SoapDeserializer.SplitTag": (SoapAdapter.SoapDeserializer.SplitTag, "1cfe4a1bfad561d7"),
    "SoapDeserializer.LookupWsdlType": (SoapAdapter.SoapDeserializer.LookupWsdlType,
                                        "9516729dc1476063"),
    "GetHandlers": (SoapAdapter.GetHandlers, "c5efdbe1bd5f92ca"),
    "isDynamicType": (SoapAdapter.isDynamicType, "11c06b98804e969b"),
    "DataObject.__setattr__": (VmomiSupport.DataObject.__setattr__, "29f9353efb251a8c"),
    "CheckField": (VmomiSupport.CheckField, "8017eb330a6bb7eb"),
    "GetPropertyInfo": (VmomiSupport.GetPropertyInfo, "142fec6170922069"),
    "GetCompatibleType": (VmomiSupport.GetCompatibleType, "8c856ae4fc235190"),
    "GetWsdlType": (VmomiSupport.GetWsdlType, "f7ebcba7b1e28593"),
}


def test_the_pyvmomi_decoding_functions_are_the_ones_the_fast_handlers_follow() -> None:
    changed = [name for name, (func, digest) in DECODING_SOURCES.items()
               if hashlib.sha256(inspect.getsource(func).encode()).hexdigest()[:16] != digest]
    assert not changed, f"pyvmomi changed {changed}: check pyvmomi_shim's decoding against them"
    # How the handlers are found: looked up on the deserializer when an answer starts.
    assert "SetHandlers(parser, GetHandlers(self))" in inspect.getsource(
        SoapAdapter.SoapDeserializer.Deserialize)
    assert "obj.StartElementHandler, obj.EndElementHandler" in inspect.getsource(
        SoapAdapter.GetHandlers)
    assert "self.deser = SoapDeserializer(stub)" in inspect.getsource(
        SoapAdapter.SoapResponseDeserializer.__init__)


def test_fast_decoding_is_installed_once_with_the_data_objects() -> None:
    pyvmomi_shim.fast_data_objects()
    pyvmomi_shim.fast_data_objects()
    pyvmomi_shim.fast_decoding()
    deser = SoapAdapter.SoapDeserializer
    assert deser.StartElementHandler is pyvmomi_shim._start
    assert deser.EndElementHandler is pyvmomi_shim._end
    assert pyvmomi_shim.STOCK_START is not pyvmomi_shim._start


def test_objects_built_by_hand_keep_pyvmomis_type_checks() -> None:
    """Only the deserializer stores values unchecked: specs the project builds still fail
    on a value of the wrong type, the same way as without the shim."""
    pyvmomi_shim.fast_data_objects()
    spec = vim.host.VirtualNic.Specification()
    with pytest.raises(TypeError, match="mtu"):
        spec.mtu = "large"
    with pytest.raises(TypeError, match="Required field"):
        vim.host.PortGroup.Specification(name=None)
    with pytest.raises(TypeError):
        vim.host.DnsConfig(address=[1, 2])
    with pytest.raises(TypeError):
        vim.host.NetworkPolicy(nicTeaming="x")


def _rich_answer() -> Any:
    """A property collector answer with every kind of value the decoder converts."""
    pc = vmodl.query.PropertyCollector
    long, strings = VmomiSupport.GetVmodlType("long"), VmomiSupport.GetVmodlType("string[]")
    host = vim.HostSystem("host-7")
    option = vim.option.OptionValue
    options = option.Array([
        option(key="a", value="s"), option(key="b", value=long(3)), option(key="c", value=True),
        option(key="d", value=strings(["x", "y"])),
        option(key="e", value=VmomiSupport.binary(b"\0\1abc")), option(key="f", value=host),
        option(key="g", value=1.5), option(key="h", value=strings())])
    info = vim.TaskInfo(
        key="task-1", name=vim.HostSystem.Reboot, task=vim.Task("task-1"), descriptionId="x",
        entity=host, entityName="h", state="error", cancelled=False, cancelable=True,
        error=vim.fault.InvalidPowerState(msg="off", requestedState="poweredOn",
                                          existingState="poweredOff"),
        reason=vim.TaskReasonUser(userName="root"), eventChainId=3,
        queueTime=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
    spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=host)],
                         propSet=[pc.PropertySpec(type=vim.HostSystem, pathSet=["name"])])
    nic = vim.host.VirtualNic(device="vmk0", spec=vim.host.VirtualNic.Specification(
        mtu=9000, ip=vim.host.IpConfig(dhcp=False, ipAddress="192.0.2.5")))
    props = [vmodl.DynamicProperty(name=name, val=val) for name, val in [
        ("config.option", options), ("info", info), ("spec", spec), ("nic", nic)]]
    answer = pc.RetrieveResult(objects=[pc.ObjectContent(obj=host, propSet=props)])
    return SoapAdapter.Serialize(answer, version="vim.version.version9"), pc.RetrieveResult


def _decode(data: bytes, result_type: Any, *, stock: bool) -> Any:
    parser = ParserCreate(namespace_separator=SoapAdapter.NS_SEP)
    deser = SoapAdapter.SoapDeserializer(None, version="vim.version.version9")
    if stock:
        deser.StartElementHandler = types.MethodType(pyvmomi_shim.STOCK_START, deser)
        deser.EndElementHandler = types.MethodType(pyvmomi_shim.STOCK_END, deser)
    deser.Deserialize(parser, result_type)
    parser.Parse(data)
    return deser.GetResult()


def test_every_kind_of_value_decodes_the_same_both_ways() -> None:
    pyvmomi_shim.fast_data_objects()
    data, result_type = _rich_answer()
    stock, fast = _decode(data, result_type, stock=True), _decode(data, result_type, stock=False)
    assert assert_same(stock, fast) > 50
    values = {p.name: p.val for p in fast.objects[0].propSet}
    assert [o.value for o in values["config.option"]][:4] == ["s", 3, True, ["x", "y"]]
    assert values["config.option"][4].value == b"\0\1abc"
    assert values["config.option"][5].value._moId == "host-7"
    assert isinstance(values["info"].error, vim.fault.InvalidPowerState)
    assert values["info"].error.msg == "off" and values["info"].name.info.name == "Reboot"
    assert values["spec"].propSet[0].type is vim.HostSystem
    assert values["nic"].spec.mtu == 9000 and values["nic"].spec.ip.ipAddress == "192.0.2.5"
    broken = data.replace(b"<mtu>9000</mtu>", b'<mtu xsi:type="xsd:string">x</mtu>')
    for stock_way in (True, False):
        with pytest.raises(TypeError, match='For "mtu" expected type int'):
            _decode(broken, result_type, stock=stock_way)


def test_tags_in_ever_new_namespaces_do_not_grow_the_caches_without_bound() -> None:
    """The namespace of an element is the server's to choose; the per-class cache keeps at
    most `_MAX_TAGS` tags per class and decodes the rest as pyVmomi does."""
    pyvmomi_shim.fast_data_objects()
    option = vim.option.OptionValue
    many = option.Array([option(key=f"k{i}", value="v") for i in range(pyvmomi_shim._MAX_TAGS + 50)])
    data = SoapAdapter.Serialize(many, version="vim.version.version9")
    for i in range(len(many)):
        data = data.replace(b"<key>", f'<key xmlns="urn:ns{i}">'.encode(), 1)
    result_type = option.Array
    stock, fast = _decode(data, result_type, stock=True), _decode(data, result_type, stock=False)
    assert assert_same(stock, fast) > len(many) and fast[-1].key == f"k{len(many) - 1}"
    assert len(pyvmomi_shim._CLASS_TAGS[option]) == pyvmomi_shim._MAX_TAGS  # full, no more

"""Contract tests of the library internals the shims patch: they fail loudly when ldap3 or
pyvmomi change what `ldap3_shim` and `pyvmomi_shim` rely on (then check the shim, and the
upper bounds in setup.cfg, against the new release)."""

from __future__ import annotations

import configparser
import importlib.metadata
import inspect
import re
import socket
import threading
from pathlib import Path
from typing import Any

import ldap3
from ldap3.strategy.asynchronous import AsyncStrategy
from ldap3.strategy.asyncStream import AsyncStreamStrategy
from pyVmomi import SoapAdapter, VmomiSupport, vim

from stateless.directory import ldap3_shim
from stateless.vcenter import pyvmomi_shim

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

"""One long-lived vCenter session, shared by the threads of a small pool.

pyvmomi is blocking; callers run these methods in a thread pool.  The session logs in once,
logs in again by itself when vCenter says the session expired (NotAuthenticated), and counts
the SOAP calls of each thread, so the applier can report (and tests can bound) what a host
cost.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from stateless.errors import TransientVCenterError, VCenterError
from stateless.vcenter import pyvmomi_shim
from stateless.vcenter.faults import Where, wrap

T = TypeVar("T")

PC = vmodl.query.PropertyCollector


class Session:
    """A logged-in connection to one vCenter (http, or https pinned to a thumbprint)."""

    def __init__(self, url: str, user: str, password: str, *, name: str | None = None,
                 thumbprint: str | None = None, pool_size: int = 8,
                 timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise VCenterError(f"vCenter URL {url!r}: expected http(s)://host[:port]/sdk")
        self.url = url
        self.name = name or parts.hostname
        self._protocol = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._path = parts.path or "/sdk"
        self._user = user
        self._password = password
        self._thumbprint = thumbprint
        self._pool_size = pool_size
        self._timeout = timeout
        self._lock = threading.Lock()
        self._si: Any = None
        self._content: Any = None
        self._generation = 0
        self._local = threading.local()

    # --- connection ----------------------------------------------------------------------

    @property
    def where(self) -> Where:
        return Where(self.name)

    def _connect(self) -> None:
        kwargs: dict[str, Any] = {}
        if self._protocol == "https":
            context = ssl.create_default_context()
            if self._thumbprint:
                # pyvmomi checks a thumbprint only when CA verification fails: check the pin
                # ourselves, then trust the pinned certificate (self-signed, weak key or not).
                self._check_thumbprint()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                kwargs["thumbprint"] = self._thumbprint
            kwargs["sslContext"] = context
        try:
            si = SmartConnect(protocol=self._protocol, host=self._host, port=self._port,
                              path=self._path, user=self._user, pwd=self._password,
                              httpConnectionTimeout=self._timeout, **kwargs)
        except Exception as exc:
            raise wrap(exc, self.where, "login") from exc
        pyvmomi_shim.set_pool_size(si, self._pool_size)
        pyvmomi_shim.count_calls(si, self._count)
        pyvmomi_shim.fast_data_objects()
        self._si = si
        self._content = si.RetrieveContent()
        self._generation += 1

    def _count(self) -> None:
        """One more SOAP call in this thread (see `calls`)."""
        self._local.calls = getattr(self._local, "calls", 0) + 1

    def _check_thumbprint(self) -> None:
        assert self._thumbprint is not None
        want = self._thumbprint.replace(":", "").lower()
        algorithm = {40: "sha1", 64: "sha256", 128: "sha512"}.get(len(want))
        if algorithm is None:
            raise VCenterError(f"vCenter {self.name}: thumbprint {self._thumbprint!r}: expected "
                               "a SHA-1, SHA-256 or SHA-512 hex digest")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((self._host, self._port), timeout=self._timeout) as raw, \
                    context.wrap_socket(raw, server_hostname=self._host) as tls:
                der = tls.getpeercert(binary_form=True) or b""
        except OSError as exc:
            raise wrap(exc, self.where, "login") from exc
        got = hashlib.new(algorithm, der).hexdigest()
        if got != want:
            raise VCenterError(f"vCenter {self.name}: login: the server's certificate has "
                               f"{algorithm} thumbprint {got}, not the pinned {want}; check the "
                               "vCenter's thumbprint in its directory entry")

    @property
    def si(self) -> Any:
        with self._lock:
            if self._si is None:
                self._connect()
            return self._si

    @property
    def content(self) -> Any:
        self.si  # noqa: B018 - connects on first use
        return self._content

    def _relogin(self, generation: int) -> None:
        """Log in again, once for all threads that saw the same expired session."""
        with self._lock:
            if generation != self._generation or self._si is None:
                return
            try:
                self._content.sessionManager.Login(self._user, self._password)
            except Exception:
                self._si = None
                self._connect()
            else:
                self._generation += 1

    def close(self) -> None:
        with self._lock:
            if self._si is not None:
                with contextlib.suppress(Exception):  # the session is gone either way
                    Disconnect(self._si)
                self._si = None

    # --- calls ---------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """SOAP calls made so far by the current thread."""
        return int(getattr(self._local, "calls", 0))

    def call(self, where: Where, operation: str, fn: Callable[..., T], *args: Any,
             **kwargs: Any) -> T:
        """Invoke one vSphere method; log in again on an expired session; wrap faults."""
        for attempt in (1, 2):
            generation = self._generation
            try:
                return fn(*args, **kwargs)
            except vim.fault.NotAuthenticated as exc:
                if attempt == 2:
                    raise wrap(exc, where, operation) from exc
                self._relogin(generation)
            except Exception as exc:
                raise wrap(exc, where, operation) from exc
        raise AssertionError("unreachable")

    def wait(self, where: Where, operation: str, task: Any, timeout: float = 600.0) -> Any:
        """Wait for a task by polling its info (one call per poll); return its result."""
        spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=task)],
                             propSet=[PC.PropertySpec(type=vim.Task, pathSet=["info"])])
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            result = self.call(where, operation, self.content.propertyCollector.RetrievePropertiesEx,
                               [spec], PC.RetrieveOptions())
            info = result.objects[0].propSet[0].val
            if info.state == "success":
                return info.result
            if info.state == "error":
                raise wrap(info.error, where, operation) from None
            if time.monotonic() > deadline:
                raise TransientVCenterError(
                    f"{where.describe(operation)}: task {info.key} still {info.state} after "
                    f"{timeout:.0f}s")
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def retrieve(self, where: Where, operation: str, specs: list[Any]) -> list[Any]:
        """RetrievePropertiesEx, following continuation tokens (rarely more than one call).

        A property vCenter could not read comes back in `missingSet`, not as a fault; such a
        fault is raised, so an expired session logs in again and nothing half-read is used.
        """
        pc = self.content.propertyCollector

        def once() -> list[Any]:
            result = pc.RetrievePropertiesEx(specs, PC.RetrieveOptions())
            objects = list(result.objects) if result else []
            while result and result.token:
                result = pc.ContinueRetrievePropertiesEx(result.token)
                objects += list(result.objects)
            for content in objects:
                for missing in content.missingSet or ():
                    raise missing.fault
            return objects

        return self.call(where, operation, once)

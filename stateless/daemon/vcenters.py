"""The vCenters this daemon applies through: one long-lived client each, made on first use.

Blocking (it logs in, and every method talks to vCenter): the engine calls it through its
thread pool.  Connection details come from the directory's current view, passwords are
decrypted with the daemon's key only when a client is made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from stateless.errors import NotFoundError, StatelessError
from stateless.model.inventory import VCenter
from stateless.plan import KeyDiff
from stateless.prepare import Target
from stateless.vcenter.client import VCenterClient
from stateless.vcenter.converge import Converged, check, converge, find
from stateless.vcenter.secretrefs import Secrets
from stateless.vcenter.session import Session
from stateless.vcenter.watch import HostWatch


class VCenterClients:
    """Satisfies `stateless.daemon.ports.VCenters`."""

    def __init__(self, lookup: Callable[[str], VCenter | None], secret_key: Path, *,
                 pool_size: int, host_password: str = "",
                 secrets: Secrets | None = None) -> None:
        self._lookup = lookup  # name -> its entry in the directory's current view
        self._secret_key = secret_key
        self._pool_size = pool_size
        self._host_password = host_password
        self._secrets = secrets  # named secrets, opened by the applier only
        self._clients: dict[str, VCenterClient] = {}
        self._lock = threading.Lock()

    def client(self, name: str) -> VCenterClient:
        from stateless.directory.secrets import decrypt_password

        with self._lock:
            client = self._clients.get(name)
            if client is None:
                vc = self._lookup(name)
                if vc is None:
                    raise StatelessError(f"vCenter {name}: not registered in the directory")
                client = VCenterClient(vc.url, vc.user, decrypt_password(vc.password, self._secret_key),
                                       name=name, thumbprint=vc.thumbprint,
                                       pool_size=self._pool_size, secrets=self._secrets)
                self._clients[name] = client
            return client

    def converge(self, vcenter: str, target: Target, *, place: bool,
                 thumbprint: str | None) -> Converged:
        return converge(self.client(vcenter), target, place=place, thumbprint=thumbprint,
                        password=self._host_password)

    def check(self, vcenter: str, target: Target) -> list[KeyDiff] | None:
        return check(self.client(vcenter), target)

    def remove(self, vcenter: str, name: str, location: str | None, leaf: str) -> bool:
        """Remove the host object named `name`; False when vCenter does not have it."""
        client = self.client(vcenter)
        ref = client.find_host(name, location, leaf) if location else None
        if ref is None:
            try:
                ref = client.resolve(name)
            except NotFoundError:
                return False
        client.remove_host(ref)
        return True
    def watch(self, name: str, max_wait: int) -> HostWatch:
        """A change watch on vCenter `name`, with a session of its own (made when it subscribes)."""
        from stateless.directory.secrets import decrypt_password

        def connect() -> Session:
            vc = self._lookup(name)
            if vc is None:
                raise StatelessError(f"vCenter {name}: not registered in the directory")
            return Session(vc.url, vc.user, decrypt_password(vc.password, self._secret_key),
                           name=name, thumbprint=vc.thumbprint, pool_size=2,
                           timeout=max_wait + 30.0)

        return HostWatch(connect, name=name, max_wait=max_wait)

    def find(self, vcenter: str, target: Target) -> str | None:
        """The managed object id of the host in vCenter (cached once known), or None."""
        ref = find(self.client(vcenter), target)
        return ref.moid if ref is not None else None

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


__all__ = ["VCenterClients"]

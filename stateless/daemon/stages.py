"""The daemon's own stages of the service tree: directory, engine, announcement, scan.

See `services` for the order they start in and why.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from stateless.daemon.audit import Audit
from stateless.daemon.loops import Periodic
from stateless.daemon.services import InPool, Parts, Stage
from stateless.directory.connection import read_secret
from stateless.errors import StatelessError
from stateless.model.inventory import Server, Snapshot

log = Logger()

SCAN_JITTER = 0.2  # scans run every scan interval times U(0.8, 1.2)
NONCE_PURGE = 60.0  # seconds between purges of expired birth nonces


class DirectoryStage(Stage):
    """The directory connection; with no `--ldap`, an embedded slapd first."""

    name = "directory"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.embedded: Any = None

    @defer.inlineCallbacks
    def start(self) -> Any:
        from stateless.directory import Directory

        cfg, parts = self.parts.config, self.parts
        yield parts.thread(cfg.state_dir.mkdir, 0o755, True, True)
        if cfg.embedded:
            from stateless.directory.embedded import EmbeddedDirectory

            self.embedded = EmbeddedDirectory(cfg.state_dir / "directory")
            yield parts.thread(self.embedded.start)
            urls: tuple[str, ...] = (self.embedded.url,)
            bind_dn = self.embedded.bind_dn
            password = read_secret(self.embedded.password_file, "directory password file")
        else:
            urls, bind_dn = cfg.ldap_urls, cfg.bind_dn
            if cfg.password_file is None:
                raise StatelessError("an external directory needs --password-file")
            password = read_secret(cfg.password_file, "directory password file")
        parts.connection = (urls, bind_dn, password)
        parts.directory = Directory(urls, bind_dn, password, cfg.base)
        if cfg.embedded:
            yield parts.thread(parts.directory.init)

    @defer.inlineCallbacks
    def stop(self) -> Any:
        if self.parts.directory is not None:
            yield self.parts.thread(self.parts.directory.close)
        if self.embedded is not None:
            yield self.parts.thread(self.embedded.stop)


class EngineStage(Stage):
    """The engine and the vCenter clients it applies through."""

    name = "engine"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.vcenters: Any = None

    def start(self) -> None:
        from stateless.daemon.auth import AdminAuth
        from stateless.daemon.engine import Engine
        from stateless.daemon.vcenters import VCenterClients
        from stateless.directory.nonces import NonceStore
        from stateless.directory.secrets import secret_resolver

        parts, cfg = self.parts, self.parts.config
        host_password = ""
        if cfg.host_password_file is not None:
            host_password = read_secret(cfg.host_password_file, "host password file")
        self.vcenters = VCenterClients(self._registered_vcenter, cfg.secret_key,
                                       pool_size=cfg.vcenter_concurrency,
                                       host_password=host_password,
                                       secrets=secret_resolver(parts.directory, cfg.secret_key))
        parts.auth = AdminAuth.from_config(cfg)  # an unreadable token file stops the start here
        nonces = NonceStore(parts.directory)
        parts.engine = Engine(cfg, parts.reactor, parts.blocking, parts.directory, self.vcenters,
                              parts.registry, audit=Audit(parts.reactor, cfg.host_events),
                              ring=enrollment_keyring(cfg.secret_key), replay=nonces.seen)

    def _registered_vcenter(self, name: str) -> Any:
        engine = self.parts.engine
        return engine.snapshot.vcenters.get(name) if engine is not None else None

    @defer.inlineCallbacks
    def stop(self) -> Any:
        if self.parts.engine is not None:
            self.parts.engine.stop()  # its timers; a running apply ends in the pool
        if self.vcenters is not None:
            yield self.parts.thread(self.vcenters.close)


class AnnounceStage(Stage):
    """This server's entry in the directory (its URL carries the port actually bound), its
    lease and the takeover of dead servers' hosts, then the engine takes back its hosts."""

    name = "announce"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.lease: Any = None  # stateless.daemon.leases.Lease
        self.takeover: Any = None  # the takeover loop (stateless.daemon.takeover)

    @defer.inlineCallbacks
    def start(self) -> Any:
        from stateless.daemon.takeover import start_ownership

        parts, cfg = self.parts, self.parts.config
        assert parts.api is not None and parts.api.port is not None
        parts.api_url = cfg.api_url(*bound(parts.api.port))
        snapshot: Snapshot = parts.engine.snapshot
        existing = snapshot.servers.get(cfg.name)
        me = Server(cfg.name, cfg.site, parts.api_url,
                    tuple(existing.vcenters) if existing is not None else ())
        yield parts.thread(parts.directory.put_server, me)
        parts.me = me
        # The lease first (its first renewal must succeed): the engine applies only under it.
        self.lease, self.takeover = yield start_ownership(
            parts.reactor, parts.blocking, parts.directory, parts.engine, cfg.name, cfg.lease)
        parts.engine.resume()

    def stop(self) -> None:
        if self.takeover is not None:
            self.takeover.stop()
        if self.lease is not None:
            self.lease.stop()


def bound(port: Any) -> tuple[str, int]:
    """The address and port a listening port is bound to ('', 0 for a unix socket)."""
    address: Any = port.getHost()
    return str(getattr(address, "host", "")), int(getattr(address, "port", 0))


class ScanStage(Stage):
    """The periodic compliance scan, jittered so daemons do not fall into step."""

    name = "scan"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.loop: Periodic | None = None

    def start(self) -> None:
        parts = self.parts
        self.loop = Periodic(parts.reactor, parts.config.scan_interval, parts.engine.scan,
                             name="compliance scan", jitter=SCAN_JITTER, rng=random.Random())
        self.loop.start()

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()  # a scan waiting on vCenter must not hold the shutdown up


class WatchStage(Stage):
    """Drift pushed by vCenter: one property-collector session per vCenter (`drift`)."""

    name = "vcenter watch"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.watch: Any = None

    def start(self) -> None:
        from stateless.daemon.drift import DriftWatch

        parts, cfg = self.parts, self.parts.config
        self.watch = DriftWatch(parts.engine, parts.engine.vcenters, parts.reactor,
                                parts.blocking, server=cfg.name, mode=cfg.mode,
                                waiting=InPool(parts.reactor, parts.watch_pool))
        parts.engine.overview.vcenter_health = self.watch.health
        self.watch.start()

    def stop(self) -> Any:
        if self.watch is not None:
            return self.watch.stop()
        return None


def enrollment_keyring(secret_key: Any) -> Any:
    """The key ring that opens the sites' enrollment keys; empty without a key file (a site
    with keys then authenticates nothing, and says so to every birth)."""
    from stateless.security.seal import KeyRing, key_path, load_keyring

    path = key_path(secret_key)
    return load_keyring(path) if path.exists() else KeyRing([])


class NoncePurgeStage(Stage):
    """Expired birth nonces leave the directory (they only guard against replays)."""

    name = "nonce purge"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.loop: Periodic | None = None

    def start(self) -> None:
        from stateless.directory.nonces import NonceStore

        parts = self.parts
        store = NonceStore(parts.directory)

        def purge() -> None:
            gone = store.purge(datetime.fromtimestamp(parts.reactor.seconds(), UTC))
            if gone:
                log.info("purged {count} expired birth nonce(s)", count=gone,
                         event="nonces_purged")

        self.loop = Periodic(parts.reactor, NONCE_PURGE, lambda: parts.thread(purge),
                             name="nonce purge", jitter=SCAN_JITTER, rng=random.Random())
        self.loop.start()

    def stop(self) -> Any:
        return self.loop.stop() if self.loop is not None else None


__all__ = ["AnnounceStage", "DirectoryStage", "EngineStage", "NoncePurgeStage", "ScanStage",
           "WatchStage", "bound"]

"""The statelessd service tree: directory, change feed, engine, HTTP API, DNS, scans.

Start order matters: the directory first (embedded or external), then the change feed until
its first refresh so the engine starts from a complete view, then the API (its port goes
into this server's directory entry and SRV records), then discovery and the periodic scan.
Stop runs the other way round and removes this server's SRV records.

The change feed is also the daemon's directory health: when it loses the directory the
engine says so (`/healthz` answers 503) and every directory connection is dropped; the feed
tries again at least twice a second, and once it is synchronized the engine retries what
waited for the directory.
"""

from __future__ import annotations

import random
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry
from twisted.application import service
from twisted.internet import defer, threads
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from stateless.daemon.api import build_site
from stateless.daemon.config import DaemonConfig
from stateless.daemon.engine import Engine
from stateless.daemon.loops import Periodic
from stateless.daemon.ports import Blocking, Clock
from stateless.daemon.vcenters import VCenterClients
from stateless.errors import StatelessError
from stateless.model.inventory import Server

T = TypeVar("T")
log = Logger()

FEED_RETRY = (0.05, 0.5)  # seconds: the change feed's reconnect backoff, first and longest
SCAN_JITTER = 0.2  # scans run every scan interval times U(0.8, 1.2)


class InPool:
    """The `Blocking` runner of the engine: a call in the daemon's thread pool."""

    def __init__(self, reactor: Any, pool: ThreadPool) -> None:
        self._reactor = reactor
        self._pool = pool

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        return threads.deferToThreadPool(self._reactor, self._pool, fn, *args, **kwargs)


def srv_refresh(clock: Clock, blocking: Blocking, refresh: Callable[[], None],
                interval: float) -> Periodic:
    """The loop that refreshes this server's SRV records; a failed refresh waits for the next."""
    return Periodic(clock, interval, lambda: blocking(refresh), name="SRV refresh")


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def read_secret(path: Path, what: str) -> str:
    try:
        return path.read_text().strip("\r\n")
    except OSError as exc:
        raise StatelessError(f"{what} {path}: {exc.strerror}; create it with the secret "
                             "(mode 0600)") from None


class StatelessService(service.MultiService):
    def __init__(self, config: DaemonConfig, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.registry = CollectorRegistry()
        self.pool = ThreadPool(minthreads=2, maxthreads=config.threads, name="stateless-blocking")
        # Snapshot builds get a thread of their own: queued behind a storm's directory writes
        # in the shared pool, every birth would wait that much longer to be seen and applied.
        self.build_pool = ThreadPool(minthreads=1, maxthreads=1, name="stateless-mirror")
        self.embedded: Any = None
        self.directory: Any = None
        self.consumer: Any = None
        self.mirror: Any = None
        self.engine: Engine | None = None
        self.port: Any = None
        self.api_url = ""
        self.zone: Any = None
        self.dns_ports: tuple[Any, ...] = ()
        self.dns_port = 0
        self.registrar: Any = None
        self.vcenters: VCenterClients | None = None
        self.started: defer.Deferred[None] = defer.Deferred()
        self._loops: list[Periodic] = []
        self._rebuild_scheduled = False
        self._rebuilding = False
        self._stopping = False

    # --- start -------------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        sys.setswitchinterval(self.config.switch_interval)  # see DaemonConfig.switch_interval
        self.pool.start()
        self.build_pool.start()
        d = self._start()
        d.addCallbacks(self.started.callback, self._start_failed)

    def _start_failed(self, failure: Failure) -> None:
        if failure.check(StatelessError):
            log.error("statelessd cannot start: {error}", error=failure.value)
        else:
            log.failure("statelessd cannot start", failure)
        self.started.errback(failure)
        if self.reactor.running:
            self.reactor.stop()

    def _thread(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        return threads.deferToThreadPool(self.reactor, self.pool, fn, *args)

    @defer.inlineCallbacks
    def _start(self) -> Any:
        from stateless.directory import Directory

        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        if cfg.embedded:
            from stateless.directory.embedded import EmbeddedDirectory

            self.embedded = EmbeddedDirectory(cfg.state_dir / "directory")
            yield self._thread(self.embedded.start)
            urls: tuple[str, ...] = (self.embedded.url,)
            bind_dn, base = self.embedded.bind_dn, cfg.base
            password = read_secret(self.embedded.password_file, "directory password file")
        else:
            urls, bind_dn, base = cfg.ldap_urls, cfg.bind_dn, cfg.base
            assert cfg.password_file is not None
            password = read_secret(cfg.password_file, "directory password file")
        self.directory = Directory(urls, bind_dn, password, base)
        if cfg.embedded:
            yield self._thread(self.directory.init)
        host_password = ""
        if cfg.host_password_file is not None:
            host_password = read_secret(cfg.host_password_file, "host password file")
        self.vcenters = VCenterClients(self._registered_vcenter, cfg.secret_key,
                                       pool_size=cfg.vcenter_concurrency,
                                       host_password=host_password)
        self.engine = Engine(cfg, self.reactor, InPool(self.reactor, self.pool), self.directory,
                             self.vcenters, self.registry)

        # The change feed: a complete first view before anything is decided.
        self._follow(urls, base, bind_dn, password)
        refreshed = yield self._thread(self.consumer.wait_refreshed, 120.0)
        if not refreshed:
            raise StatelessError(f"directory {', '.join(urls)}: no complete view after 120 s; "
                                 "is the syncprov overlay configured on the database?")
        update = yield self._thread(self.mirror.update, base)
        snapshot = update.snapshot
        self.engine.set_snapshot(snapshot, update.hosts, since=update.before)

        # The API, then this server's entry (its URL carries the port actually bound).
        host, port = cfg.listen_endpoint
        self.port = self.reactor.listenTCP(port, build_site(self.engine, self.registry),
                                           interface=host)
        self.api_url = cfg.api_url(self.port.getHost().port)
        me = Server(cfg.name, cfg.site, self.api_url, self._served_vcenters(snapshot))
        yield self._thread(self.directory.put_server, me)
        self.engine.resume()

        if cfg.dns == "serve":
            yield self._serve_zone(snapshot)
        elif cfg.dns == "update":
            yield self._register_dns(me)
        scan = Periodic(self.reactor, cfg.scan_interval, self.engine.scan, name="compliance scan",
                        jitter=SCAN_JITTER, rng=random.Random())
        self._loops.append(scan)
        scan.start()
        log.info("statelessd {name} (site {site}) serving {url}", name=cfg.name, site=cfg.site,
                 url=self.api_url)

    def _follow(self, urls: tuple[str, ...], base: str, bind_dn: str, password: str) -> None:
        """Start the change feed: the mirror the engine resolves from, and its health."""
        from stateless.directory.mapping import MODEL_ATTRIBUTES
        from stateless.directory.mirror import Mirror
        from stateless.directory.syncrepl import SyncConsumer

        self.mirror = Mirror(on_batch=lambda _batch: self.reactor.callFromThread(self._changed))
        self.consumer = SyncConsumer(list(urls), base, self.mirror.on_change,
                                     self._feed_refreshed,
                                     on_refresh_start=self.mirror.on_refresh_start,
                                     on_lost=self._feed_lost, bind_dn=bind_dn, password=password,
                                     attributes=MODEL_ATTRIBUTES, retry_delay=FEED_RETRY[0],
                                     max_retry_delay=FEED_RETRY[1])
        self.consumer.start()

    def _served_vcenters(self, snapshot: Any) -> tuple[str, ...]:
        existing = snapshot.servers.get(self.config.name)
        return tuple(existing.vcenters) if existing is not None else ()

    def _registered_vcenter(self, name: str) -> Any:
        return self.engine.snapshot.vcenters.get(name) if self.engine is not None else None

    # --- directory changes -------------------------------------------------------------------

    def _feed_refreshed(self) -> None:
        """In the feed's thread: the mirror is complete, and the directory reachable."""
        self.mirror.on_refresh_done()
        if self.engine is not None:
            self.reactor.callFromThread(self.engine.directory_back)

    def _feed_lost(self, reason: str) -> None:
        """In the feed's thread: no directory until the feed is synchronized again."""
        if self.directory is not None:
            self.directory.reset()
        if self.engine is not None and not self._stopping:
            self.reactor.callFromThread(self.engine.directory_lost, reason)

    def _changed(self) -> None:
        """Coalesce bursts of change notifications into one snapshot update."""
        if not self._rebuild_scheduled and not self._stopping:
            self._rebuild_scheduled = True
            # Updates cost in proportion to the change (the mirror applies each entry to the
            # last snapshot): a fixed 10 ms gathers a burst of writes into one, whatever the
            # size of the directory.
            self.reactor.callLater(0.01, self._rebuild)

    @defer.inlineCallbacks
    def _rebuild(self) -> Any:
        if self._rebuilding:
            self.reactor.callLater(0.01, self._rebuild)
            return
        self._rebuild_scheduled = False
        self._rebuilding = True
        try:
            update = yield threads.deferToThreadPool(self.reactor, self.build_pool,
                                                     self.mirror.update, self.config.base)
            assert self.engine is not None
            self.engine.set_snapshot(update.snapshot, update.hosts, since=update.before)
            if self.zone is not None:
                self.zone.update(list(update.snapshot.servers.values()))
        except Exception:
            log.failure("applying a directory change")
        finally:
            self._rebuilding = False

    # --- discovery ----------------------------------------------------------------------------

    def _serve_zone(self, snapshot: Any) -> defer.Deferred[None]:
        from stateless.dns.zone import ServerZone, listen

        host, port = self.config.dns_listen_endpoint
        self.zone = ServerZone(self.config.domain, list(snapshot.servers.values()),
                               nameserver_address=host)
        for _ in range(20):
            # DNS needs the same port for UDP and TCP: with port 0, try ports free for UDP.
            candidate = port or _free_udp_port(host)
            try:
                self.dns_ports = tuple(listen(self.zone, self.reactor, port=candidate,
                                              interface=host))
                break
            except CannotListenError:
                if port:
                    raise
        self.dns_port = self.dns_ports[0].getHost().port
        log.info("serving {domain} SRV records on {host}:{port}", domain=self.config.domain,
                 host=host, port=self.dns_port)
        return defer.succeed(None)

    @defer.inlineCallbacks
    def _register_dns(self, me: Server) -> Any:
        from stateless.dns.register import Registrar
        from stateless.dns.tsig import TsigKey

        cfg = self.config
        assert cfg.tsig_key_file is not None
        key = TsigKey.from_file(cfg.tsig_key_file)
        host, _, port = cfg.dns_server.rpartition(":")
        self.registrar = Registrar(me, cfg.domain, nameserver=host, port=int(port), key=key,
                                   a_records=True)  # targets must resolve for the agents
        yield self._thread(self.registrar.register)
        refresh = srv_refresh(self.reactor, InPool(self.reactor, self.pool), self.registrar.refresh,
                              cfg.dns_refresh)
        self._loops.append(refresh)
        refresh.start()

    # --- stop --------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        self._stopping = True
        for loop in self._loops:
            loop.stop()  # a scan waiting on vCenter must not hold the shutdown up
        if self.engine is not None:
            self.engine.stop()
        if self.port is not None:
            yield self.port.stopListening()
        for p in self.dns_ports:
            yield p.stopListening()
        if self.registrar is not None:
            try:
                yield self._thread(self.registrar.unregister)
            except StatelessError as exc:
                log.warn("removing SRV records: {error}", error=exc)
        if self.consumer is not None:
            yield self._thread(self.consumer.stop)
        if self.vcenters is not None:
            yield self._thread(self.vcenters.close)
        if self.directory is not None:
            yield self._thread(self.directory.close)
        if self.embedded is not None:
            yield self._thread(self.embedded.stop)
        self.pool.stop()
        self.build_pool.stop()
        yield super().stopService()

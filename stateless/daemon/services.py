"""statelessd's service tree: one child service per part, started in order, stopped in reverse.

`makeService` (`stateless.tap`) builds the tree with `build_service`.  Its children, in start
order: the two thread pools, the directory connection (and the embedded slapd), the engine,
the change feed (until its first complete view, so the engine starts from the whole
directory), the API's listening port, this server's entry in the directory, discovery (the
served SRV zone or RFC 2136 registration) and the compliance scan.  Each child is a `Stage`:
the tree waits for one to be ready before it starts the next, and stops them one at a time in
reverse order, so nothing is stopped while a later part still uses it.  No service here stops
the reactor or changes process-wide settings: that is the process front's business
(`stateless.tap`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from prometheus_client import CollectorRegistry
from twisted.application import service
from twisted.internet import defer, threads
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from stateless.daemon.config import DaemonConfig

T = TypeVar("T")
log = Logger()


class InPool:
    """The `Blocking` runner of the engine: a call in the daemon's thread pool."""

    def __init__(self, reactor: Any, pool: ThreadPool) -> None:
        self._reactor = reactor
        self._pool = pool

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        return threads.deferToThreadPool(self._reactor, self._pool, fn, *args, **kwargs)


class Stage(service.Service):
    """A child whose start may take a while: `start` and `stop` return Deferreds.

    `ready` fires when `start` has finished; a `Sequence` waits for it before starting the
    next child.
    """

    ready: defer.Deferred[None]
    name: str | None = None  # type: ignore[assignment]  # Service's is None until named

    def startService(self) -> None:
        super().startService()
        self.ready = deferred(self.start)

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        return deferred(self.stop)

    def start(self) -> Any:
        """Returns None, or a Deferred that fires once started."""

    def stop(self) -> Any:
        """Returns None, or a Deferred that fires once stopped."""


def deferred(fn: Callable[[], Any]) -> defer.Deferred[Any]:
    """`fn()` as a Deferred, whether it returned one, a value or raised."""
    call: Any = defer.maybeDeferred
    result: defer.Deferred[Any] = call(fn)
    return result


class Sequence(service.MultiService):
    """Children started one after the other, each once the previous is ready; stopped one at
    a time in reverse order.  `started` fires when the last child is ready, or fails with the
    first child's failure (the later ones are then not started)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: defer.Deferred[None] = defer.Deferred()
        self._begun: list[Any] = []  # IService children started, in order

    def startService(self) -> None:
        service.Service.startService(self)
        self._start_all().chainDeferred(self.started)

    @defer.inlineCallbacks
    def _start_all(self) -> Any:
        for child in list(self):
            if not self.running:
                return
            self._begun.append(child)
            child.startService()
            ready = getattr(child, "ready", None)
            if isinstance(ready, defer.Deferred):
                try:
                    yield ready
                except Exception:
                    if self.running:
                        raise
                    return  # stopped while starting: what failed was told to stop

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        service.Service.stopService(self)
        while self._begun:
            child: Any = self._begun.pop()
            try:
                yield deferred(child.stopService)
            except Exception:
                log.failure("stopping {name}", name=child.name or type(child).__name__)


class ThreadPoolService(Stage):
    """A thread pool as a service: started with the tree, its threads joined when it stops.

    The join happens off the reactor thread and waits at most `grace` seconds: a call stuck
    on a silent server (up to its receive timeout) must not hold up a SIGTERM. The pool's
    threads are daemon threads, so the process can exit without them; what they were doing
    is in the directory's hands (a pending host is taken up again at the next start).
    """

    def __init__(self, pool: ThreadPool, reactor: Any, grace: float = 10.0) -> None:
        self.pool = pool
        self.name = pool.name
        self._reactor = reactor
        self.grace = grace
        pool.threadFactory = _daemon_thread  # type: ignore[assignment]

    def start(self) -> None:
        self.pool.start()

    def stop(self) -> defer.Deferred[None]:
        done: defer.Deferred[None] = defer.Deferred()

        def joined() -> None:
            if not done.called:
                done.callback(None)

        def join() -> None:
            self.pool.stop()  # runs what is queued, then joins every thread
            self._reactor.callFromThread(joined)

        threading.Thread(target=join, name=f"{self.name}-stop", daemon=True).start()

        def late() -> None:
            busy = sum(t.is_alive() for t in self.pool.threads)
            log.warn("{pool}: {busy} thread(s) still busy after {grace} s; stopping without "
                     "them", pool=self.name, busy=busy, grace=self.grace)
            joined()

        timer = self._reactor.callLater(self.grace, late)
        return done.addBoth(_cancel, timer)


def _daemon_thread(*args: Any, **kwargs: Any) -> threading.Thread:
    return threading.Thread(*args, daemon=True, **kwargs)


def _cancel(result: T, timer: Any) -> T:
    if timer.active():
        timer.cancel()
    return result


class ListeningPort(Stage):
    """A listening port from a Twisted endpoint; the factory is made when the port opens, so
    it can use what earlier stages built."""

    def __init__(self, endpoint: Any, factory: Callable[[], Any],
                 name: str) -> None:
        self.endpoint = endpoint
        self.factory = factory  # makes an IProtocolFactory
        self.name = name
        self.port: Any = None  # the IListeningPort, while listening

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.port = yield self.endpoint.listen(self.factory())

    def stop(self) -> Any:
        port, self.port = self.port, None
        return deferred(port.stopListening) if port is not None else None


# Connections the kernel queues before the reactor accepts them: hosts of a boot storm ask
# for their boot files at once, and a dropped SYN costs a client 1 s, then 3 s, 7 s, ...
LISTEN_BACKLOG = 1024


def api_endpoint(reactor: Any, config: DaemonConfig) -> IStreamServerEndpoint:
    """Where the HTTP API listens: `--listen` as a Twisted endpoint; with --tls-cert and
    --tls-key the TCP port answers HTTPS (client certificates from --client-ca, see `tls`)."""
    if config.tls_cert is not None and config.tls_key is not None:
        from stateless.daemon.tls import tls_endpoint

        host, port = config.listen_address
        return tls_endpoint(reactor, host, port, LISTEN_BACKLOG, config.tls_cert, config.tls_key,
                            config.client_ca)
    description = config.listen_description
    if description.partition(":")[0] in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        description += f":backlog={LISTEN_BACKLOG}"
    endpoint: IStreamServerEndpoint = serverFromString(reactor, description)
    return endpoint


def api_site(parts: Parts) -> Any:
    """The API's site with /boot mounted; with --tftp-root, the TFTP root's sync starts here."""
    from stateless.daemon.api import build_site
    from stateless.daemon.boot import start_boot

    boot, parts.tftp = start_boot(parts.config, lambda: parts.engine.snapshot, parts.registry,
                                  parts.thread, lambda: parts.api_url)
    if not parts.auth.configured and not parts.config.insecure_admin:
        log.warn("the admin API is closed: no --admin-token-file nor --client-ca")
    return build_site(parts.engine, parts.registry, reactor=parts.reactor, boot=boot,
                      auth=parts.auth)


@attrs.define
class Parts:
    """What the stages build and share, filled in as the tree starts."""

    config: DaemonConfig
    reactor: Any
    registry: CollectorRegistry
    pool: ThreadPool
    build_pool: ThreadPool
    watch_pool: ThreadPool
    directory: Any = None  # stateless.directory.Directory
    connection: tuple[tuple[str, ...], str, str] = ((), "", "")  # urls, bind DN, password
    engine: Any = None  # stateless.daemon.engine.Engine
    feed: Any = None  # stateless.daemon.feed.FeedStage
    api: ListeningPort | None = None
    api_url: str = ""
    me: Any = None  # this server's entry (stateless.model.inventory.Server), once announced
    zone: Any = None  # stateless.dns.zone.ServerZone, when this server serves it
    registrar: Any = None  # stateless.dns.register.Registrar, when this server registers
    coverage: Any = None  # stateless.daemon.coverage.SiteCoverage, once started
    tftp: Any = None  # stateless.daemon.boot.TftpSync, with --tftp-root
    auth: Any = None  # stateless.daemon.auth.AdminAuth, who may read and write the admin API

    @property
    def blocking(self) -> InPool:
        return InPool(self.reactor, self.pool)

    def thread(self, fn: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        return threads.deferToThreadPool(self.reactor, self.pool, fn, *args)


class StatelessService(Sequence):
    """The root of the tree; `parts` gives tests and the process front what it built."""

    def __init__(self, parts: Parts) -> None:
        super().__init__()
        self.parts = parts
        self.started.addCallback(self._ready)

    def _ready(self, _: object) -> None:
        """Every child is started: the line launchers and tests wait for."""
        cfg = self.parts.config
        if not self.running:
            return  # stopped while starting
        log.info("statelessd {name} (site {site}) serving {url}", name=cfg.name, site=cfg.site,
                 url=self.parts.api_url)

    @property
    def engine(self) -> Any:
        return self.parts.engine

    @property
    def api_url(self) -> str:
        return self.parts.api_url


def build_service(config: DaemonConfig, reactor: Any = None) -> StatelessService:
    """The whole tree for `config`; nothing starts until `startService`."""
    from stateless.daemon import discovery, feed, sitestages, stages
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    parts = Parts(config, reactor, CollectorRegistry(),
                  ThreadPool(minthreads=2, maxthreads=config.threads, name="stateless-blocking"),
                  # Snapshot builds get a thread of their own: queued behind a storm's
                  # directory writes in the shared pool, every birth would wait that much
                  # longer to be seen and applied.
                  ThreadPool(minthreads=1, maxthreads=1, name="stateless-mirror"),
                  # The vCenter watch's long poll: in the shared pool it would wait behind a
                  # storm's applies while vCenter piles up their changes for it.
                  ThreadPool(minthreads=0, maxthreads=1, name="stateless-watch"))
    root = StatelessService(parts)
    parts.api = ListeningPort(api_endpoint(reactor, config), lambda: api_site(parts), name="api")
    parts.feed = feed.FeedStage(parts)
    children: list[Any] = [
        ThreadPoolService(parts.pool, reactor), ThreadPoolService(parts.build_pool, reactor),
        ThreadPoolService(parts.watch_pool, reactor),
        stages.DirectoryStage(parts), stages.EngineStage(parts), parts.feed,
        parts.api, stages.AnnounceStage(parts)]
    if config.dns == "serve":
        children.append(discovery.ZoneStage(parts))
    elif config.dns == "update":
        children.append(discovery.RegistrarStage(parts))
    children.append(sitestages.SitesStage(parts))
    children.append(stages.ScanStage(parts))
    if config.vcenter_watch:
        children.append(stages.WatchStage(parts))
    children.append(stages.NoncePurgeStage(parts))
    for child in children:
        child.setServiceParent(root)
    return root


def start_failed(failure: Failure) -> str:
    """The one line a failed start is reported with."""
    from stateless.errors import StatelessError

    if failure.check(StatelessError):
        return f"statelessd cannot start: {failure.getErrorMessage()}"
    if failure.check(OSError) or type(failure.value).__module__.startswith("twisted.internet"):
        return f"statelessd cannot start: {failure.getErrorMessage()}"  # e.g. port in use
    return f"statelessd cannot start: {failure.type.__name__}: {failure.getErrorMessage()}"


__all__ = ["InPool", "ListeningPort", "Parts", "Sequence", "Stage", "StatelessService",
           "ThreadPoolService", "api_endpoint", "build_service", "start_failed"]

"""How agents find servers: the SRV zone this server serves, or its records in a primary.

`--dns serve` answers the zone itself on `--dns-listen` (UDP and TCP on the same port);
`--dns update` registers this server's SRV and A records with RFC 2136 updates, refreshes them
every `dns_refresh` seconds (a failed refresh waits for the next) and removes them on stop.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from stateless.daemon.loops import Periodic
from stateless.daemon.ports import Blocking, Clock
from stateless.daemon.services import Parts, Stage
from stateless.errors import StatelessError
from stateless.model.inventory import Server

log = Logger()

PORT_TRIES = 20  # with port 0: ports free for UDP tried for TCP too


def srv_refresh(clock: Clock, blocking: Blocking, refresh: Callable[[], None],
                interval: float) -> Periodic:
    """The loop that refreshes this server's SRV records; a failed refresh waits for the next."""
    return Periodic(clock, interval, lambda: blocking(refresh), name="SRV refresh")


def _free_udp_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ZoneStage(Stage):
    """The served zone on UDP and TCP; its records follow the directory's servers."""

    name = "dns zone"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.ports: tuple[Any, ...] = ()
        self.port = 0

    def start(self) -> None:
        from stateless.dns.zone import ServerZone, listen

        parts, cfg = self.parts, self.parts.config
        host, port = cfg.dns_listen_endpoint
        zone = ServerZone(cfg.domain, list(parts.engine.snapshot.servers.values()),
                          nameserver_address=host)
        for _ in range(PORT_TRIES):
            # DNS needs the same port for UDP and TCP: with port 0, try ports free for UDP.
            candidate = port or _free_udp_port(host)
            try:
                self.ports = tuple(listen(zone, parts.reactor, port=candidate, interface=host))
                break
            except CannotListenError:
                if port:
                    raise
        else:
            raise StatelessError(f"dns listen {host}:0: no port free for both UDP and TCP")
        parts.zone = zone
        self.port = self.ports[0].getHost().port
        log.info("serving {domain} SRV records on {host}:{port}", domain=cfg.domain, host=host,
                 port=self.port)

    @defer.inlineCallbacks
    def stop(self) -> Any:
        self.parts.zone = None
        ports, self.ports = self.ports, ()
        for p in ports:
            yield p.stopListening()


class RegistrarStage(Stage):
    """This server's records in a primary name server, kept fresh, removed on stop."""

    name = "dns registration"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.registrar: Any = None
        self.loop: Periodic | None = None

    @defer.inlineCallbacks
    def start(self) -> Any:
        from stateless.dns.register import Registrar
        from stateless.dns.tsig import TsigKey

        parts, cfg = self.parts, self.parts.config
        if cfg.tsig_key_file is None:
            raise StatelessError("dns update needs a TSIG key file (--tsig-key-file)")
        key = TsigKey.from_file(cfg.tsig_key_file)
        host, _, port = cfg.dns_server.rpartition(":")
        me = parts.me or Server(cfg.name, cfg.site, parts.api_url)
        self.registrar = Registrar(me, cfg.domain, nameserver=host.strip("[]"), port=int(port),
                                   key=key, a_records=True)  # targets must resolve for agents
        yield parts.thread(self.registrar.register)
        parts.registrar = self.registrar
        self.loop = srv_refresh(parts.reactor, parts.blocking, self.registrar.refresh,
                                cfg.dns_refresh)
        self.loop.start()

    @defer.inlineCallbacks
    def stop(self) -> Any:
        self.parts.registrar = None
        if self.loop is not None:
            yield self.loop.stop()
        if self.registrar is not None:
            try:
                yield self.parts.thread(self.registrar.unregister)
            except StatelessError as exc:
                log.warn("removing SRV records: {error}", error=exc)


__all__ = ["RegistrarStage", "ZoneStage", "srv_refresh"]

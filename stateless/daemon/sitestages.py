"""The federation stage: site coverage, directory failover and the replica divergence check.

Started after the DNS stage (coverage publishes into the served zone or the registrar) and
before the scan; each part runs its own loop, which logs its failures and keeps going.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from stateless.daemon.services import Parts, Stage


class SitesStage(Stage):
    """Coverage of sites with no live server, failing over between replicas, divergence."""

    name = "federation"

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.loops: list[Any] = []

    def start(self) -> None:
        from stateless.daemon.coverage import INTERVAL, SiteCoverage
        from stateless.daemon.failover import DirectoryFailover
        from stateless.daemon.loops import Periodic
        from stateless.daemon.replicacheck import ReplicaCheck

        parts, cfg = self.parts, self.parts.config
        engine = parts.engine
        urls, bind_dn, password = parts.connection
        parts.coverage = SiteCoverage(parts.reactor, parts.blocking, cfg.site,
                                      lambda: engine.snapshot, zone=parts.zone,
                                      registrar=parts.registrar)
        coverage = Periodic(parts.reactor, INTERVAL, parts.coverage.refresh,
                            name="site coverage")
        self.loops.append(coverage)
        coverage.start(now=True)
        check = ReplicaCheck(parts.reactor, parts.blocking, parts.registry, urls, bind_dn,
                             password, cfg.base, cfg.replica_check)
        engine.health_fields.append(check.fields)
        if check.enabled:
            self.loops.append(check.loop)
            check.start()
        failover = DirectoryFailover(parts.reactor, parts.blocking, parts.feed.consumer,
                                     parts.directory, urls, bind_dn, password, cfg.base)
        if failover.enabled:
            engine.health_fields.append(failover.fields)
            self.loops.append(failover.loop)
            failover.start()

    def stop(self) -> Any:
        self.parts.coverage = None
        loops, self.loops = self.loops, []
        return defer.gatherResults([defer.maybeDeferred(loop.stop) for loop in loops])


__all__ = ["SitesStage"]

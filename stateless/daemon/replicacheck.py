"""The periodic divergence check: compare the daemon's directory replicas every few minutes.

Multi-provider replication can leave two replicas different for good (near-simultaneous
writes of one entry), and nothing in slapd says so. The daemon runs `replicas.check` on the
replicas it knows (its `--ldap` URLs, when there are two or more) every `--replica-check`
seconds in a thread, exports the number of diverged entries as `stateless_directory_diverged`
and shows it in `/healthz`. A failed check is logged and shown (the gauge reads -1: nothing
can be said about the replicas); the loop goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from twisted.internet import defer
from twisted.logger import Logger

from stateless.daemon.loops import Periodic
from stateless.daemon.ports import Blocking, Clock
from stateless.errors import StatelessError

log = Logger()

SETTLE = 2.0  # seconds replication in flight may take before a difference counts


def default_check(urls: Sequence[str], bind_dn: str, password: str, base: str) -> Any:
    from stateless.directory import replicas

    return replicas.check(urls, bind_dn, password, base, settle=SETTLE)


class ReplicaCheck:
    """Runs the check on a timer; `fields()` is what `/healthz` shows of it."""

    def __init__(self, clock: Clock, blocking: Blocking, registry: CollectorRegistry,
                 urls: Sequence[str], bind_dn: str, password: str, base: str, interval: float, *,
                 check: Callable[[Sequence[str], str, str, str], Any] = default_check) -> None:
        self.urls = tuple(dict.fromkeys(u.rstrip("/") for u in urls))
        self.interval = interval
        self._blocking = blocking
        self._check = check
        self._args = (self.urls, bind_dn, password, base)
        self.diverged: int | None = None  # None: not checked yet, or the last check failed
        self.error = ""
        self.gauge = Gauge("stateless_directory_diverged", "entries that differ between the "
                           "directory replicas at the last check (-1: the check failed)",
                           registry=registry)
        self.loop = Periodic(clock, interval or 1.0, self.run, name="replica check")

    @property
    def enabled(self) -> bool:
        """Only with a positive interval and something to compare."""
        return self.interval > 0 and len(self.urls) >= 2

    def start(self) -> None:
        if self.enabled:
            self.loop.start(now=True)

    def stop(self) -> defer.Deferred[None]:
        return self.loop.stop()

    def fields(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        out: dict[str, Any] = {"directory_diverged": self.diverged}
        if self.error:
            out["directory_check_error"] = self.error
        return out

    @defer.inlineCallbacks
    def run(self) -> Any:
        """One check; never raises (the loop must outlive any failure)."""
        try:
            report = yield self._blocking(self._check, *self._args)
        except StatelessError as exc:
            self._failed(str(exc))
            return
        except Exception as exc:  # a library surprise: keep the traceback, keep the loop
            log.failure("replica check", event="replicas_check_failed")
            self._failed(repr(exc))
            return
        diverged = list(report.diverged)
        if diverged:
            log.warn("directory replicas diverged: {count} entries differ ({dns}); run "
                     "`stateless directory check --repair`", event="replicas_diverged",
                     count=len(diverged), dns=", ".join(d.dn for d in diverged[:5]))
        elif self.diverged:
            log.info("directory replicas agree again", event="replicas_converged")
        self.diverged, self.error = len(diverged), ""
        self.gauge.set(len(diverged))

    def _failed(self, reason: str) -> None:
        log.warn("directory replica check failed: {reason}", event="replicas_check_failed",
                 reason=reason)
        self.diverged, self.error = None, reason
        self.gauge.set(-1)


__all__ = ["SETTLE", "ReplicaCheck", "default_check"]

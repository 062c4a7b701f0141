"""The audit log: one line per thing that happened to a host or to the directory.

Every event goes to twisted.logger (namespace `stateless.audit`) with a stable `event` name,
its fields, and `text`, the human sentence the text log shows (`log_format` is `{text}`);
`statelessd --log-format json` writes the same event with every field as JSON.  Events about
one host also go to that host's history (`events.HostEvents`, the API's
`/v1/hosts/{uuid}/events`).  Callers use one typed method per event, never a format string.

Field values are JSON types only (strings, numbers, lists of strings, null), so a JSON line
and a history entry carry them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from twisted.logger import Logger, LogLevel

from stateless.daemon.events import HostEvents
from stateless.daemon.ports import Clock
from stateless.model.identity import HostIdentity
from stateless.model.inventory import Problem

NAMESPACE = "stateless.audit"
log = Logger(namespace=NAMESPACE)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def identity_summary(identity: HostIdentity) -> str:
    """vendor model, serial, name and address, as far as the host told them."""
    parts = [" ".join(p for p in (identity.vendor, identity.model) if p)]
    if identity.serial:
        parts.append(f"serial {identity.serial}")
    if identity.fqdn:
        parts.append(identity.fqdn)
    if identity.ipv4:
        parts.append(identity.ipv4)
    return ", ".join(p for p in parts if p) or "no identity fields"


def _listed(keys: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


class Audit:
    """The emitter: a method per event, each logging one line and filing host events."""

    def __init__(self, clock: Clock, history: HostEvents | int = 50) -> None:
        self.clock = clock
        self.history = history if isinstance(history, HostEvents) else HostEvents(history)

    def _emit(self, level: LogLevel, event: str, text: str, host: str | None = None,
              **fields: Any) -> None:
        if host is not None:
            fields["host"] = host
        log.emit(level, "{text}", event=event, text=text, **fields)
        if host is not None:
            self.history.add(host, {"time": iso(self.clock.seconds()), "event": event,
                                    "message": text, **fields})

    # --- hosts -------------------------------------------------------------------------------

    def birth(self, *, host: str, identity: HostIdentity, site: str, server: str) -> None:
        summary = identity_summary(identity)
        self._emit(LogLevel.info, "birth", f"host {host}: born ({summary}); site {site}, "
                   f"owned by {server}", host, identity=summary, site=site, server=server)

    def referral(self, *, host: str, identity: HostIdentity, site: str,
                 servers: Sequence[str]) -> None:
        summary = identity_summary(identity)
        self._emit(LogLevel.info, "referral", f"host {host}: born in site {site} ({summary}); "
                   f"referred to {', '.join(servers) or 'no server'}", host, identity=summary,
                   site=site, servers=list(servers))

    def admission_refused(self, *, host: str, backlog: int, limit: int, retry_after: int) -> None:
        self._emit(LogLevel.warn, "admission_refused", f"host {host}: birth refused, {backlog} "
                   f"in progress (limit {limit}); retry after {retry_after} s", host,
                   backlog=backlog, limit=limit, retry_after=retry_after)

    def birth_refused(self, *, host: str, peer: str, status: int, reason: str) -> None:
        """An unauthenticated or refused birth: logged, kept out of the host's history (the
        UUID is the sender's claim, and anyone can send any number of them)."""
        self._emit(LogLevel.warn, "admission_refused", f"birth of {host} from {peer} refused "
                   f"({status}): {reason}", None, uuid=host, peer=peer, status=status,
                   reason=reason)

    def quarantined(self, *, host: str, peer: str, reason: str) -> None:
        self._emit(LogLevel.warn, "quarantined", f"host {host}: birth from {peer} quarantined: "
                   f"{reason}", host, peer=peer, reason=reason)

    def rule(self, *, host: str, location: str | None, placed_by: str,
             matched: Mapping[str, str]) -> None:
        """The rule outcome of a born host: where it goes, and which deploy rule won for what."""
        rules = "; ".join(f"{item}: rule {name}" for item, name in sorted(matched.items()))
        text = (f"host {host}: placed at {location} by {placed_by}" if location
                else f"host {host}: no location")
        text += f" ({rules})" if rules else "; no deploy rule matched"
        self._emit(LogLevel.info, "rule", text, host, location=location, placed_by=placed_by,
                   matched=dict(matched))

    def apply(self, *, host: str, keys: Sequence[str], calls: int, seconds: float,
              vcenter: str) -> None:
        what = f"{len(keys)} change(s): {_listed(keys)}" if keys else "no change"
        self._emit(LogLevel.info, "apply", f"host {host}: applied through vCenter {vcenter}, "
                   f"{what}, {calls} SOAP call(s) in {seconds:.2f} s", host, keys=list(keys),
                   calls=calls, seconds=round(seconds, 3), vcenter=vcenter)

    def failure(self, *, host: str, reason: str, cause: str, attempts: int,
                permanent: bool) -> None:
        then = "waits for a change of its configuration" if permanent else "will be retried"
        self._emit(LogLevel.warn, "failure", f"host {host}: apply failed ({cause or 'host'}): "
                   f"{reason}; {then}", host, reason=reason, cause=cause or "host",
                   attempts=attempts, permanent=permanent)

    def retry(self, *, host: str, attempt: int, next_try: float) -> None:
        self._emit(LogLevel.info, "retry", f"host {host}: try {attempt} at {iso(next_try)}", host,
                   attempt=attempt, next_try=iso(next_try))

    def drift(self, *, host: str, keys: Sequence[str], source: str, reason: str,
              action: str) -> None:
        shown = f": {_listed(keys)}" if keys else ""
        self._emit(LogLevel.warn, "drift", f"host {host}: drift found in {source}{shown} "
                   f"({reason}); {action}", host, keys=list(keys), source=source,
                   reason=reason, action=action)

    def drift_reverted(self, *, host: str, keys: Sequence[str], calls: int) -> None:
        self._emit(LogLevel.info, "drift_reverted", f"host {host}: drift reverted, "
                   f"{len(keys)} change(s): {_listed(keys)}, {calls} SOAP call(s)", host,
                   keys=list(keys), calls=calls)

    def state(self, *, host: str, state: str, previous: str | None, reason: str) -> None:
        text = f"host {host}: {previous or 'new'} -> {state}" + (f" ({reason})" if reason else "")
        self._emit(LogLevel.debug, "state", text, host, state=state, previous=previous,
                   reason=reason)

    def host_taken(self, *, host: str, owner: str, previous: str, why: str) -> None:
        self._emit(LogLevel.info, "host_taken", f"host {host}: now owned by {owner} "
                   f"(was {previous or 'nobody'}): {why}", host, owner=owner, previous=previous,
                   why=why)

    # --- the directory -----------------------------------------------------------------------

    def directory_problems(self, new: Iterable[Problem], resolved: Iterable[Problem]) -> None:
        for p in new:
            self._emit(LogLevel.warn, "directory_problem", f"directory problem: {p}", dn=p.dn,
                       attribute=p.attribute, value=p.value, reason=p.reason)
        for p in resolved:
            self._emit(LogLevel.info, "directory_problem_resolved", f"directory problem "
                       f"resolved: {p}", dn=p.dn, attribute=p.attribute, value=p.value,
                       reason=p.reason)

    def directory_down(self, *, reason: str) -> None:
        self._emit(LogLevel.error, "directory_down", f"directory unreachable: {reason}",
                   reason=reason)

    def directory_up(self) -> None:
        self._emit(LogLevel.info, "directory_up", "directory reachable again; retrying what "
                   "waited for it")


__all__ = ["NAMESPACE", "Audit", "identity_summary", "iso"]

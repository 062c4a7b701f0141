"""Divergence check and repair across the replicas of the stateless subtree.

Multi-provider replication gives no consistency guarantee: two writes to one entry on two
providers within a few milliseconds, or a partition that deletes a container on one side while
the other adds below it, can leave replicas different for good.  This module finds such entries
and makes every replica converge on the newest version.

API (blocking; call it from a thread you own, never from the reactor)::

    report = check(urls, bind_dn, password, base, settle=2.0)    # -> CheckReport
    report.converged; report.checked; len(report.diverged)        # the number to export
    result = repair(report, bind_dn, password, timeout=30.0)      # -> RepairResult
    result.actions; result.after.converged

`check` reads the subtree under `base` from every replica (all user attributes, `entryCSN`,
`entryUUID`, and the replica's `contextCSN`) and compares entry by entry.  An entry is
diverged when it is missing on some replica (kind `missing`), has different values or
`entryUUID` (`values`), or only a different `entryCSN` (`csn`).  Replication in flight is not
divergence: when the first read finds differences, the replicas are read again every
`poll` seconds for at most `settle` seconds, and only entries that differed in the first read
and still differ in the last are reported.  A replica that cannot be read fails the whole
check (`DirectoryError`): nothing can be said about it.

Which version wins (`Divergence.newest`, `Divergence.action`):

* present everywhere: the version with the highest `entryCSN` (`rewrite` on its replica);
* missing somewhere: the entry was *deleted* after its newest version when a replica that lacks
  it has already seen that version (its `contextCSN` for the server ID in the version's CSN is
  at least that CSN) and nothing below it stays; the deletion is then propagated (`delete` on
  every replica that still holds it, `newest` names the replica that deleted it).  Otherwise
  the version never reached the replicas that lack it, or an entry below it stays (added there
  meanwhile, e.g. on the other side of a partition), and it is restored (`rewrite` on the
  replica with the newest version).  A deleted entry leaves no tombstone, so this is the best
  any reader can decide.

`repair` re-reads each winning entry on its replica and writes it back unchanged (a modify that
replaces every user attribute with the values it has there), which gives it a new CSN that
syncrepl carries to every replica; deletions go deepest first, rewrites parents first.  It
then checks again until the replicas converge or `timeout` passes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
import ldap3
from ldap3.core import exceptions as lx
from ldap3.utils.dn import to_dn

from stateless.errors import DirectoryError, ValidationError

Kind = Literal["missing", "values", "csn"]
ActionKind = Literal["rewrite", "delete"]
OPERATIONAL = ("entryCSN", "entryUUID")
PAGE = 500


# --- what one replica holds ---------------------------------------------------------------------


@attrs.frozen
class Entry:
    """One entry as a replica holds it; `values` maps lower-case attribute names to value sets."""

    dn: str
    csn: str
    uuid: str
    values: frozenset[tuple[str, frozenset[bytes]]]


@attrs.frozen
class ReplicaView:
    """The subtree on one replica, keyed by lower-case DN, and the CSNs it has seen per server."""

    url: str
    entries: Mapping[str, Entry]
    context: Mapping[int, str] = attrs.field(factory=dict)  # server ID -> contextCSN

    def has_seen(self, csn: str) -> bool:
        seen = self.context.get(csn_server(csn))
        return seen is not None and seen >= csn


def csn_server(csn: str) -> int:
    """The server ID in a CSN (`20240101120000.000000Z#000000#001#000000`)."""
    try:
        return int(csn.split("#")[2], 16)
    except (IndexError, ValueError):
        raise ValidationError(f"CSN {csn!r}: not of the form TIME#COUNT#SID#MOD") from None


# --- the report -----------------------------------------------------------------------------------


@attrs.frozen
class Version:
    csn: str | None
    present: bool


@attrs.frozen
class Divergence:
    dn: str
    kind: Kind
    newest: str  # the replica whose version wins
    action: ActionKind
    replicas: Mapping[str, Version]

    def as_json(self) -> dict[str, Any]:
        return {"dn": self.dn, "kind": self.kind, "newest": self.newest, "action": self.action,
                "replicas": {url: {"csn": v.csn, "present": v.present}
                             for url, v in self.replicas.items()}}


@attrs.frozen
class CheckReport:
    base: str
    replicas: tuple[str, ...]
    diverged: tuple[Divergence, ...]
    checked: int  # distinct entries seen on any replica

    @property
    def converged(self) -> bool:
        return not self.diverged

    def as_json(self) -> dict[str, Any]:
        return {"replicas": list(self.replicas), "diverged": [d.as_json() for d in self.diverged],
                "checked": self.checked}


@attrs.frozen
class Action:
    dn: str
    action: ActionKind
    replica: str
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"dn": self.dn, "action": self.action, "replica": self.replica, "error": self.error}


@attrs.frozen
class RepairResult:
    before: CheckReport
    actions: tuple[Action, ...]
    after: CheckReport

    @property
    def converged(self) -> bool:
        return self.after.converged


# --- comparison (pure) ----------------------------------------------------------------------------


def _depth(dn: str) -> int:
    return len(to_dn(dn))


def _parent(key: str) -> str:
    parts = to_dn(key)
    return ",".join(parts[1:]) if len(parts) > 1 else ""


def _diverged(key: str, views: Sequence[ReplicaView], kept_below: bool) -> Divergence | None:
    states = [(view, view.entries.get(key)) for view in views]
    held = [(view, entry) for view, entry in states if entry is not None]
    # highest CSN wins; among equals the first replica in the order given
    top_view, top = max(held, key=lambda pair: pair[1].csn)
    versions = {view.url: Version(entry.csn if entry else None, entry is not None)
                for view, entry in states}
    if len(held) < len(views):
        deleted = [view for view, entry in states if entry is None and view.has_seen(top.csn)]
        if deleted and not kept_below:
            return Divergence(top.dn, "missing", deleted[0].url, "delete", versions)
        return Divergence(top.dn, "missing", top_view.url, "rewrite", versions)
    if len({(entry.values, entry.uuid) for _, entry in held}) > 1:
        return Divergence(top.dn, "values", top_view.url, "rewrite", versions)
    if len({entry.csn for _, entry in held}) > 1:
        return Divergence(top.dn, "csn", top_view.url, "rewrite", versions)
    return None


def compare(views: Sequence[ReplicaView]) -> list[Divergence]:
    """Every entry that is not the same on all replicas, parents before children.

    Children are decided first: an entry that stays (on every replica, or restored) keeps its
    ancestors from being deleted.
    """
    keys = {key for view in views for key in view.entries}
    kept_below: set[str] = set()
    found: dict[str, Divergence] = {}
    for key in sorted(keys, key=lambda k: (-_depth(k), k)):
        divergence = _diverged(key, views, key in kept_below)
        if divergence is not None:
            found[key] = divergence
        if divergence is None or divergence.action != "delete":
            parent = _parent(key)
            while parent and parent not in kept_below:
                kept_below.add(parent)
                parent = _parent(parent)
    return [found[key] for key in sorted(found, key=lambda k: (_depth(k), k))]


# --- reading a replica ----------------------------------------------------------------------------


def _connect(url: str, bind_dn: str | None, password: str | None) -> ldap3.Connection:
    server = ldap3.Server(url, get_info=ldap3.NONE, connect_timeout=5)
    try:
        return ldap3.Connection(server, bind_dn, password, auto_bind=ldap3.AUTO_BIND_NO_TLS,
                                receive_timeout=30, raise_exceptions=True, read_only=False)
    except lx.LDAPException as exc:
        raise DirectoryError(f"replica {url}: cannot bind as {bind_dn or 'anonymous'}: {exc}; check "
                             "the URL, that it runs, and --bind-dn/--password-file") from exc


def _entry(dn: str, raw: Mapping[str, Sequence[bytes]]) -> Entry:
    attrs_ = {name.lower(): frozenset(values) for name, values in raw.items() if values}
    csn = b"".join(attrs_.pop("entrycsn", frozenset())).decode()
    uuid = b"".join(attrs_.pop("entryuuid", frozenset())).decode()
    return Entry(dn, csn, uuid, frozenset(attrs_.items()))


def _naming_context(conn: ldap3.Connection, base: str) -> str | None:
    conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["namingContexts"])
    contexts = [str(v) for e in conn.response for v in e.get("attributes", {}).get("namingContexts", [])]
    matching = [c for c in contexts if base.lower() == c.lower() or base.lower().endswith("," + c.lower())]
    return max(matching, key=len) if matching else None


def _context_csns(conn: ldap3.Connection, base: str) -> dict[int, str]:
    context = _naming_context(conn, base)
    if context is None:
        return {}
    conn.search(context, "(objectClass=*)", ldap3.BASE, attributes=["contextCSN"])
    values = [str(v) for e in conn.response for v in e.get("attributes", {}).get("contextCSN", [])]
    return {csn_server(v): v for v in values}


def context_csns(url: str, bind_dn: str | None, password: str | None, base: str) -> dict[int, str]:
    """A replica's `contextCSN` of the database holding `base`: server ID -> newest change."""
    conn = _connect(url, bind_dn, password)
    try:
        return _context_csns(conn, base)
    except lx.LDAPException as exc:
        raise DirectoryError(f"replica {url}: cannot read the contextCSN: {exc}") from exc
    finally:
        with contextlib.suppress(lx.LDAPException):
            conn.unbind()


def caught_up(url: str, other: str, bind_dn: str | None, password: str | None, base: str) -> bool:
    """`url` holds every change `other` holds (per server ID), so reading it loses nothing."""
    theirs = context_csns(other, bind_dn, password, base)
    mine = context_csns(url, bind_dn, password, base)
    return all(mine.get(sid, "") >= csn for sid, csn in theirs.items())


def read_replica(url: str, bind_dn: str | None, password: str | None, base: str) -> ReplicaView:
    """The subtree under `base` on one replica (empty when the base entry is not there)."""
    conn = _connect(url, bind_dn, password)
    try:
        context = _context_csns(conn, base)
        try:
            results = conn.extend.standard.paged_search(
                base, "(objectClass=*)", ldap3.SUBTREE, dereference_aliases=ldap3.DEREF_NEVER,
                attributes=["*", *OPERATIONAL], paged_size=PAGE, generator=False)
        except lx.LDAPNoSuchObjectResult:
            results = []
        entries = {r["dn"].lower(): _entry(r["dn"], r["raw_attributes"])
                   for r in results if r.get("type") == "searchResEntry"}
        return ReplicaView(url, entries, context)
    except lx.LDAPException as exc:
        raise DirectoryError(f"replica {url}: cannot read {base}: {exc}; check that the account "
                             "may read the whole subtree") from exc
    finally:
        conn.unbind()


# --- check and repair -----------------------------------------------------------------------------


Clock = Callable[[], float]
Sleep = Callable[[float], None]


def check(urls: Iterable[str], bind_dn: str | None, password: str | None, base: str, *,
          settle: float = 2.0, poll: float = 0.2, clock: Clock = time.monotonic,
          sleep: Sleep = time.sleep) -> CheckReport:
    """Compare `base`'s subtree on every replica; see the module docstring for the rules."""
    replicas = tuple(dict.fromkeys(u.rstrip("/") for u in urls))
    if len(replicas) < 2:
        raise ValidationError(f"replicas {', '.join(replicas) or '(none)'}: a check compares at "
                              "least two; give each with --replica URL (or --ldap)")

    def read() -> tuple[list[ReplicaView], list[Divergence]]:
        views = [read_replica(url, bind_dn, password, base) for url in replicas]
        return views, compare(views)

    views, diverged = read()
    if not any(v.entries for v in views):
        raise DirectoryError(f"{base}: not found on any of {', '.join(replicas)}; check --base")
    checked = len({key for view in views for key in view.entries})
    first = {d.dn.lower() for d in diverged}
    deadline = clock() + settle
    while diverged and clock() < deadline:
        sleep(poll)
        _, latest = read()
        diverged = [d for d in latest if d.dn.lower() in first]
    return CheckReport(base, replicas, tuple(diverged), checked)


def _rewrite(conn: ldap3.Connection, dn: str) -> str | None:
    """Write the entry back as it is on this replica; None, or why it could not."""
    try:
        conn.search(dn, "(objectClass=*)", ldap3.BASE, dereference_aliases=ldap3.DEREF_NEVER,
                    attributes=["*"])
    except lx.LDAPNoSuchObjectResult:
        return "no longer there; the next check decides again"
    found = [r for r in conn.response if r.get("type") == "searchResEntry"]
    if not found:
        return "no longer there; the next check decides again"
    changes = {name: [(ldap3.MODIFY_REPLACE, list(values))]
               for name, values in found[0]["raw_attributes"].items() if values}
    conn.modify(dn, changes)
    return None


def _apply(action: Action, bind_dn: str | None, password: str | None) -> Action:
    conn = _connect(action.replica, bind_dn, password)
    try:
        if action.action == "delete":
            with contextlib.suppress(lx.LDAPNoSuchObjectResult):  # replication got there first
                conn.delete(action.dn)
            return action
        return attrs.evolve(action, error=_rewrite(conn, action.dn))
    except lx.LDAPException as exc:
        return attrs.evolve(action, error=str(exc))
    finally:
        conn.unbind()


def plan(report: CheckReport) -> list[Action]:
    """Deletions deepest first (on every replica that holds the entry), then rewrites parents first."""
    deletes = [Action(d.dn, "delete", url)
               for d in sorted(report.diverged, key=lambda d: -_depth(d.dn)) if d.action == "delete"
               for url, version in d.replicas.items() if version.present]
    rewrites = [Action(d.dn, "rewrite", d.newest) for d in report.diverged if d.action == "rewrite"]
    return deletes + rewrites


def repair(report: CheckReport, bind_dn: str | None, password: str | None, *,
           timeout: float = 30.0, settle: float = 2.0, poll: float = 0.2,
           clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> RepairResult:
    """Write each winning version where it is, then re-check until converged or `timeout`."""
    if report.converged:
        return RepairResult(report, (), report)
    actions = tuple(_apply(action, bind_dn, password) for action in plan(report))
    deadline = clock() + timeout
    while True:
        after = check(report.replicas, bind_dn, password, report.base,
                      settle=max(0.0, min(settle, deadline - clock())), poll=poll, clock=clock,
                      sleep=sleep)
        if after.converged or clock() >= deadline:
            return RepairResult(report, actions, after)
        sleep(poll)


__all__ = ["Action", "CheckReport", "Divergence", "Entry", "RepairResult", "ReplicaView",
           "Version", "check", "compare", "csn_server", "plan", "read_replica", "repair"]

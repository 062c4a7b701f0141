"""Changes to hosts' configuration, pushed by vCenter: one `WaitForUpdatesEx` session.

Blocking (pyvmomi); the daemon runs `wait` in its vCenter thread pool, one call at a time,
and `set_hosts` from any other thread.  The watch has a session of its own, a property
collector of its own (`CreatePropertyCollector`) and one filter over a `ListView` of the
watched hosts on the properties the compliance read compares for them (`paths`, from
`stateless.vcenter.paths`), so adding or removing hosts is one `ModifyListView` (hosts join
`BATCH` at a time: each comes back with every watched value, which is parsed but not decoded,
`pyvmomi_shim.baselines_skipped`), and an idle watch costs one call
per `max_wait` seconds.  Other paths replace the filter (a new one
first, then the old one goes, so no change falls in between).

Any failure (the session expired, vCenter restarted, the network broke) drops everything; the
next `wait` logs in and subscribes again and says so (`Updates.resubscribed`): whatever changed
in between is unknown, so the caller compares every watched host once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from pyVmomi import vim

from stateless.errors import TransientVCenterError
from stateless.vcenter.faults import Where, fault_message
from stateless.vcenter.paths import ALL_PATHS, ordered
from stateless.vcenter.pyvmomi_shim import baselines_skipped
from stateless.vcenter.session import PC, Session

MAX_WAIT = 30  # seconds one WaitForUpdatesEx is held by vCenter when nothing changes
# Hosts that join the list view at a time.  A host joining comes back in the next answer with
# every watched value (tens of KB of XML each, ~100 KB of objects were it decoded): a daemon
# subscribing at once for the 2,500 hosts a vCenter can hold would have one answer of a
# hundred megabytes parsed in one go.  The rest join at the next calls.
BATCH = 200


@attrs.frozen
class Change:
    """A watched host whose configuration properties changed, with their values as pushed
    (the last one of each path in the answer)."""

    moid: str
    paths: tuple[str, ...]
    values: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen
class Updates:
    """What one `wait` brought: changed hosts, or a new subscription."""

    changes: tuple[Change, ...] = ()
    resubscribed: bool = False


class _Subscription:
    """One live session: its collector, list view and filter version."""

    def __init__(self, session: Session, hosts: Iterable[str], paths: tuple[str, ...]) -> None:
        self.session = session
        content = session.content
        self.collector = content.propertyCollector.CreatePropertyCollector()
        self.view = content.viewManager.CreateListView(obj=[_host(session, m) for m in hosts])
        self.paths = paths
        self.filter = self.collector.CreateFilter(self.spec(paths), partialUpdates=False)
        self.version = ""

    def spec(self, paths: tuple[str, ...]) -> Any:
        return PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=self.view, skip=True, selectSet=[
                PC.TraversalSpec(name="hosts", type=vim.view.ListView, path="view", skip=False)])],
            propSet=[PC.PropertySpec(type=vim.HostSystem, pathSet=list(paths))])

    def refilter(self, paths: tuple[str, ...]) -> None:
        """Watch `paths` from now on: the new filter first, then the old one goes."""
        old = self.filter
        self.filter = self.collector.CreateFilter(self.spec(paths), partialUpdates=False)
        self.paths = paths
        old.DestroyPropertyFilter()


def _host(session: Session, moid: str) -> Any:
    return vim.HostSystem(moid, session.si._stub)


def _changes(result: Any) -> tuple[Change, ...]:
    """The watched hosts that changed, one Change per host, per WaitForUpdatesEx answer.

    A host entering a filter brings its values as they are: a baseline, not a change.
    """
    values: dict[str, dict[str, Any]] = {}
    for filter_update in result.filterSet or ():
        for update in filter_update.objectSet or ():
            if update.kind == "modify" and isinstance(update.obj, vim.HostSystem):
                pushed = values.setdefault(update.obj._moId, {})
                for change in update.changeSet or ():
                    pushed[change.name] = change.val
    return tuple(Change(moid, tuple(sorted(pushed)), pushed) for moid, pushed in values.items())


class HostWatch:
    """The configuration changes of a set of hosts of one vCenter, as vCenter reports them."""

    def __init__(self, connect: Callable[[], Session], *, name: str = "",
                 max_wait: int = MAX_WAIT, paths: Iterable[str] = ALL_PATHS) -> None:
        self._connect = connect  # a new, not yet logged-in session
        self.name = name
        self.max_wait = max_wait
        self.paths = ordered(paths)  # wanted; the subscription's own are `_sub.paths`
        self._lock = threading.Lock()
        self._hosts: set[str] = set()  # moids wanted
        self._viewed: set[str] = set()  # moids in the subscription's list view
        self._sub: _Subscription | None = None
        self.calls = 0  # SOAP calls made by this watch (login and subscription included)

    @property
    def where(self) -> Where:
        return Where(self.name)

    def stale(self) -> bool:
        """Subscribed with other hosts or paths than the ones last asked for."""
        with self._lock:
            return self._sub is not None and (self._viewed != self._hosts
                                               or self._sub.paths != self.paths)

    def set_hosts(self, moids: Iterable[str], paths: Iterable[str] | None = None) -> None:
        """Watch exactly these hosts (and, when given, these paths) from now on.

        One ModifyListView when subscribed and the hosts changed, adding at most BATCH of
        them (`stale` stays true until the others are added by the next calls); two calls
        more when the paths changed (a new filter, then the old one destroyed).
        """
        wanted = set(moids)
        with self._lock:
            self._hosts = wanted
            if paths is not None:
                self.paths = ordered(paths)
            sub, viewed, want_paths = self._sub, set(self._viewed), self.paths
        if sub is None:
            return
        try:
            if want_paths != sub.paths:
                sub.refilter(want_paths)
                with self._lock:
                    self.calls += 2
            viewing = viewed
            if wanted != viewed:
                add, remove = sorted(wanted - viewed)[:BATCH], sorted(viewed - wanted)
                sub.view.ModifyListView(add=[_host(sub.session, m) for m in add],
                                        remove=[_host(sub.session, m) for m in remove])
                viewing = (viewed - set(remove)) | set(add)
                with self._lock:
                    self.calls += 1
        except Exception as exc:
            self._drop(sub)
            raise TransientVCenterError(f"{self.where.describe('watch hosts')}: "
                                        f"{fault_message(exc)}") from exc
        with self._lock:
            if self._sub is sub:
                self._viewed = viewing

    def wait(self) -> Updates:
        """Block until watched hosts change or `max_wait` passes (subscribing first if needed)."""
        with self._lock:
            sub = self._sub
        if sub is None:
            return self._subscribe()
        try:
            with baselines_skipped():  # hosts joining: a baseline, never compared
                result = sub.collector.WaitForUpdatesEx(
                    sub.version, PC.WaitOptions(maxWaitSeconds=self.max_wait))
        except Exception as exc:
            self._drop(sub)
            raise TransientVCenterError(f"{self.where.describe('wait for updates')}: "
                                        f"{fault_message(exc)}") from exc
        with self._lock:
            self.calls += 1
        if result is None:
            return Updates()
        sub.version = result.version
        return Updates(_changes(result))

    def _subscribe(self) -> Updates:
        session = self._connect()
        try:
            with self._lock:
                hosts, paths = set(sorted(self._hosts)[:BATCH]), self.paths
            before = session.calls
            sub = _Subscription(session, sorted(hosts), paths)
            # The first answer is every watched host as it is now: the baseline, not changes.
            with baselines_skipped():
                result = sub.collector.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=0))
            sub.version = result.version if result is not None else ""
            made = session.calls - before
        except Exception as exc:
            session.close()
            raise TransientVCenterError(f"{self.where.describe('subscribe to updates')}: "
                                        f"{fault_message(exc)}") from exc
        with self._lock:
            self._sub, self._viewed = sub, hosts
            self.calls += made
        return Updates(resubscribed=True)

    def _drop(self, sub: _Subscription) -> None:
        with self._lock:
            if self._sub is sub:
                self._sub, self._viewed = None, set()
        sub.session.close()

    def close(self) -> None:
        """End the subscription; a `wait` in progress in another thread returns at once."""
        with self._lock:
            sub, self._sub, self._viewed = self._sub, None, set()
        if sub is not None:
            with contextlib.suppress(Exception):  # the session may be gone already
                sub.collector.CancelWaitForUpdates()
            sub.session.close()


__all__ = ["MAX_WAIT", "Change", "HostWatch", "Updates"]

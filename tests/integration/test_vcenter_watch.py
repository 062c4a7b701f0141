"""The vCenter change watch against the simulator: changes made with pyvmomi are pushed.

Each change goes through the simulator's own managers (the ones the launcher adds report
through the property collector), and comes back from `HostWatch.wait` as a change of the
host's property; hosts not watched stay silent; a lost session subscribes again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVmomi import VmomiSupport, vim

from stateless.errors import TransientVCenterError
from stateless.vcenter.session import Session
from stateless.vcenter.watch import HostWatch, Updates

MAX_WAIT = 2
LONG = VmomiSupport.GetVmodlType("long")


@pytest.fixture(scope="module")
def sim(vcsim_factory: Callable[..., Any]) -> Any:
    return vcsim_factory("-cluster", "1", "-host", "3", "-standalone", "0")


@pytest.fixture
def hosts(sim: Any) -> list[Any]:
    si = sim.connect()
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    return sorted(view.view, key=lambda h: h._moId)


@pytest.fixture
def watch(sim: Any) -> Iterator[HostWatch]:
    w = HostWatch(lambda: Session(sim.url, sim.user, sim.password, name="vc1", timeout=10),
                  name="vc1", max_wait=MAX_WAIT)
    try:
        yield w
    finally:
        w.close()


def changes_until(watch: HostWatch, moid: str, path: str, tries: int = 10) -> Updates:
    """Wait until `moid` shows a change of `path` (each wait is bounded by MAX_WAIT)."""
    for _ in range(tries):
        updates = watch.wait()
        if any(c.moid == moid and path in c.paths for c in updates.changes):
            return updates
    raise AssertionError(f"no change of {path} on {moid} in {tries} waits")


def test_changes_of_watched_hosts_are_pushed(watch: HostWatch, hosts: list[Any]) -> None:
    one, other = hosts[0], hosts[1]
    watch.set_hosts([one._moId])
    assert watch.wait() == Updates(resubscribed=True)  # the baseline is not a change

    one.configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.7"])))
    changes_until(watch, one._moId, "config.dateTimeInfo")

    one.configManager.networkSystem.UpdatePortGroup("VM Network", vim.host.PortGroup.Specification(
        name="VM Network", vlanId=77, vswitchName="vSwitch0", policy=vim.host.NetworkPolicy()))
    changes_until(watch, one._moId, "config.network.portgroup")

    one.configManager.advancedOption.UpdateOptions(
        changedValue=[vim.option.OptionValue(key="Net.TcpipHeapSize", value=LONG(24))])
    changes_until(watch, one._moId, "config.option")

    # A host not watched changes: nothing; then it is added to the watch, and its change shows.
    other.configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.8"])))
    assert all(c.moid != other._moId for c in watch.wait().changes)
    watch.set_hosts([one._moId, other._moId])
    other.configManager.serviceSystem.UpdateServicePolicy(id="TSM-SSH", policy="on")
    changes_until(watch, other._moId, "config.service")


def test_a_lost_session_subscribes_again(watch: HostWatch, hosts: list[Any]) -> None:
    one = hosts[2]
    watch.set_hosts([one._moId])
    assert watch.wait().resubscribed
    sub = watch._sub
    assert sub is not None
    sub.session.content.sessionManager.Logout()  # what an expired session looks like
    with pytest.raises(TransientVCenterError):
        watch.wait()
    assert watch.wait().resubscribed
    one.configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.9"])))
    changes_until(watch, one._moId, "config.dateTimeInfo")


def test_an_idle_watch_costs_one_call_per_wait(watch: HostWatch, hosts: list[Any]) -> None:
    watch.set_hosts([h._moId for h in hosts])
    watch.wait()
    before = watch.calls
    assert watch.wait() == Updates()  # nothing changed for MAX_WAIT seconds
    assert watch.calls == before + 1


def test_hosts_join_the_watch_a_batch_at_a_time(watch: HostWatch, hosts: list[Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Each host that joins comes back with all its values in the next answer: however many
    are asked for, at most BATCH join per call, and the rest at the calls after."""
    monkeypatch.setattr("stateless.vcenter.watch.BATCH", 2)
    moids = [h._moId for h in hosts]
    watch.set_hosts(moids)
    assert watch.wait().resubscribed
    sub = watch._sub
    assert sub is not None
    assert sorted(h._moId for h in sub.view.view) == moids[:2] and watch.stale()
    watch.set_hosts(moids)
    assert sorted(h._moId for h in sub.view.view) == moids and not watch.stale()
    hosts[2].configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.10"])))
    changes_until(watch, moids[2], "config.dateTimeInfo")
    watch.set_hosts(moids[1:])  # leaving is never held back
    assert sorted(h._moId for h in sub.view.view) == moids[1:] and not watch.stale()

"""Drift pushed by vCenter: a real daemon, slapd and simulator; changes made with pyvmomi.

The periodic scan is set to an hour, so whatever is reverted or reported here was found by
the change watch (`stateless_scans_total` stays 0).  Every check of a host reads the
simulator directly.  How fast: `tests/bench/drift.py`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyVim.task import WaitForTask
from pyVmomi import VmomiSupport, vim

from tests.integration.fixtures_daemon import Daemon, Estate, hosts_by_name, wait_for
from tests.integration.fixtures_vcsim import Vcsim
from tests.integration.test_daemon import (
    NTP,
    births,
    identity,
    ntp_servers,
    one_host,
    vlan,
    wait_states,
)

LONG = VmomiSupport.GetVmodlType("long")
HEAP = "Net.TcpipHeapSize"  # the example estate's Baseline sets it to 32


def option(host: Any, key: str) -> Any:
    return next(o.value for o in host.config.option if o.key == key)


def watching(d: Daemon, hosts: int) -> None:
    """Wait until the daemon's watch of vc1 is subscribed and covers `hosts` hosts."""
    def ready() -> bool:
        watch = d.get("/v1/summary")["vcenters"].get("vc1", {})
        return watch.get("state") == "watching" and watch.get("hosts", 0) >= hosts
    wait_for(ready, timeout=30, what=f"the vCenter watch to cover {hosts} hosts")


def start(estate: Estate, tmp_path: Path,
          daemons: Callable[..., Daemon], *extra: str
          ) -> tuple[Daemon, dict[str, Any]]:
    d = daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--scan-interval", "3600", *extra))
    idents = [identity(1, "siteA"), identity(2, "siteA")]
    assert births(d, idents) == [202, 202]
    wait_states(d, [i["uuid"] for i in idents])
    watching(d, 2)
    return d, idents[0]


def reverted(what: str, check: Callable[[], bool]) -> float:
    started = time.monotonic()
    wait_for(check, timeout=30, what=f"the watch to revert {what}")
    elapsed = time.monotonic() - started
    print(f"{what}: reverted {elapsed:.2f}s after the change")
    return elapsed


def test_changes_made_in_vcenter_are_reverted_without_a_scan(
        estate: Estate, sim: Vcsim, tmp_path: Path,
        daemons: Callable[..., Daemon]) -> None:
    d, ident = start(estate, tmp_path, daemons)
    si = sim.connect()
    host = one_host(si, ident)

    host.configManager.networkSystem.UpdatePortGroup("vMotion", vim.host.PortGroup.Specification(
        name="vMotion", vlanId=99, vswitchName="vSwitch1", policy=vim.host.NetworkPolicy()))
    reverted("a port group VLAN", lambda: vlan(one_host(si, ident), "vMotion") == 20)

    host.configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"])))
    reverted("an NTP server", lambda: ntp_servers(one_host(si, ident)) == NTP)

    host.configManager.advancedOption.UpdateOptions(
        changedValue=[vim.option.OptionValue(key=HEAP, value=LONG(24))])
    reverted("an advanced option", lambda: option(one_host(si, ident), HEAP) == 32)

    wait_states(d, [ident["uuid"]])
    metrics = d.metrics()
    assert metrics["stateless_scans_total"] == 0
    assert metrics['stateless_drift_total{source="vcenter"}'] >= 3
    log = d.log.read_text()
    for key in ("portgroup.vMotion.vlan", "ntp.servers", f"advanced.{HEAP}"):
        assert f"differs in vCenter: {key}" in log, key


def test_report_mode_marks_the_host_drifted_with_the_key(
        estate: Estate, sim: Vcsim, tmp_path: Path,
        daemons: Callable[..., Daemon]) -> None:
    d, ident = start(estate, tmp_path, daemons, "--mode", "report")
    si = sim.connect()
    one_host(si, ident).configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"])))
    drifted = wait_states(d, [ident["uuid"]], "drifted", timeout=30)
    assert drifted[ident["uuid"]]["reason"] == "differs in vCenter: ntp.servers"
    assert ntp_servers(one_host(si, ident)) == ["192.0.2.1"]  # reported, not reverted
    assert d.metrics()["stateless_scans_total"] == 0
    attention = {a["host"]: a for a in d.get("/v1/summary")["attention"]}
    assert attention[ident["uuid"]]["state"] == "drifted"
    # A clean stop does not wait for the watch's held WaitForUpdatesEx to time out.
    started = time.monotonic()
    assert d.stop(timeout=60) == 0
    print(f"stopped in {time.monotonic() - started:.2f}s")


def test_the_watch_subscribes_again_after_its_session_is_lost(
        estate: Estate, sim: Vcsim, tmp_path: Path,
        daemons: Callable[..., Daemon]) -> None:
    d, ident = start(estate, tmp_path, daemons)
    si = sim.connect()
    manager = si.content.sessionManager
    mine = manager.currentSession.key
    subscriptions = d.log.read_text().count("subscribed,")
    for session in manager.sessionList:  # every session of the daemon: vCenter restarted, say
        if session.key != mine:
            manager.TerminateSession([session.key])
    wait_for(lambda: d.log.read_text().count("subscribed,") > subscriptions, timeout=60,
             what="the watch to subscribe again")
    watching(d, 2)
    one_host(si, ident).configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.1"])))
    reverted("an NTP server after a new subscription",
             lambda: ntp_servers(one_host(si, ident)) == NTP)
    assert d.metrics()["stateless_scans_total"] == 0
    assert d.alive()


def test_a_host_removed_in_vcenter_is_placed_again_and_watched_anew(
        estate: Estate, sim: Vcsim, tmp_path: Path,
        daemons: Callable[..., Daemon]) -> None:
    d, ident = start(estate, tmp_path, daemons)
    si = sim.connect()
    name = f"{ident['hostname']}.example.com"
    [old] = hosts_by_name(si).get(name, [])
    WaitForTask(old.Destroy_Task())  # removed by hand; the daemon keeps its reference
    status, _, body = d.request("POST", f"/v1/hosts/{ident['uuid']}/apply")
    assert status in (200, 202), body
    wait_for(lambda: [h._moId for h in hosts_by_name(si).get(name, [])]
             not in ([], [old._moId]) and d.host(ident["uuid"])["state"] == "compliant", timeout=60,
             what="the host placed again in vCenter and compliant")
    [new] = hosts_by_name(si).get(name, [])
    assert vlan(new, "vMotion") == 20
    # The watch takes the new object in at a sync after the apply: a change made before it
    # does is its baseline, so the change is made again until the watch has seen one.
    for _ in range(20):
        new.configManager.networkSystem.UpdatePortGroup("vMotion", vim.host.PortGroup.Specification(
            name="vMotion", vlanId=99, vswitchName="vSwitch1", policy=vim.host.NetworkPolicy()))
        with contextlib.suppress(AssertionError):
            wait_for(lambda: vlan(new, "vMotion") == 20, timeout=3, what="the revert")
            break
    else:
        raise AssertionError("the watch never reverted a change of the host placed again")
    wait_states(d, [ident["uuid"]])
    assert d.metrics()["stateless_scans_total"] == 0  # the watch, not a scan

"""reboot-required: the image a host runs against the one it would boot now."""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry

from stateless.daemon.reboots import Reboots
from stateless.model.inventory import HostRecord
from tests.unit.test_boot_select import DEFAULT, DELL, DELL_RULE, HPE, NOW, U1, U2, world

T = NOW.timestamp()


def test_born_hosts_are_flagged_when_their_image_changes_and_cleared_when_undone() -> None:
    registry = CollectorRegistry()
    reboots = Reboots("paris", registry)
    hosts = (HostRecord(U1, identity=DELL), HostRecord(U2, identity=HPE))
    snap = world((DELL_RULE, DEFAULT), hosts=hosts)
    reboots.born(snap, DELL, "esx8", T)  # reported by the agent
    reboots.born(snap, HPE, None, T)  # reported nothing: what it was given
    assert reboots.update(snap, [U1, U2], T) == []
    assert reboots.document(U2) == {"reboot_required": False, "boot_image": "esx7",
                                    "image": "esx7"}

    changed = world((DELL_RULE, attrs.evolve(DEFAULT, image="esx8u1")), hosts=hosts)
    assert reboots.update(changed, [U1, U2], T, before=snap) == [U2]
    assert reboots.document(U2)["reboot_required"] and not reboots.required(U1)
    assert registry.get_sample_value("stateless_hosts_reboot_required") == 1
    assert reboots.update(changed, [U1, U2], T, before=changed) == []  # nothing new

    assert reboots.update(snap, [U1, U2], T, before=changed) == []  # undone
    assert not reboots.required(U2)
    assert registry.get_sample_value("stateless_hosts_reboot_required") == 0


def test_the_entrys_boot_image_is_what_the_host_runs() -> None:
    reboots = Reboots("paris", CollectorRegistry())
    snap = world((DELL_RULE,), hosts=(HostRecord(U1, identity=DELL, boot_image="esx7"),))
    assert reboots.update(snap, [U1], T) == [U1]  # found at start running another image
    assert reboots.document(U1) == {"reboot_required": True, "boot_image": "esx7",
                                    "image": "esx8"}


def test_a_change_feed_entry_costs_the_hosts_it_changed() -> None:
    """Told which entries changed, only those (and hosts owned since) are worked out again;
    a host whose entry is gone is forgotten, and the gauge follows both."""
    registry = CollectorRegistry()
    reboots = Reboots("paris", registry)
    snap = world((DELL_RULE,), hosts=(HostRecord(U1, identity=DELL, boot_image="esx7"),
                                      HostRecord(U2, identity=HPE)))
    assert reboots.update(snap, {U1}, T, before=snap, changed=()) == [U1]  # owned since
    assert registry.get_sample_value("stateless_hosts_reboot_required") == 1
    rebooted = world((DELL_RULE,), hosts=(HostRecord(U1, identity=DELL, boot_image="esx8"),
                                          HostRecord(U2, identity=HPE)))
    assert reboots.update(rebooted, {U1}, T, before=snap, changed=()) == []
    assert reboots.required(U1)  # its change was not named: not looked at again
    assert reboots.update(rebooted, {U1}, T, before=snap, changed=[U1]) == []
    assert not reboots.required(U1)
    assert registry.get_sample_value("stateless_hosts_reboot_required") == 0

    reboots.update(snap, {U1}, T, before=rebooted, changed=[U1])
    assert reboots.required(U1)
    gone = world((DELL_RULE,), hosts=(HostRecord(U2, identity=HPE),))
    reboots.update(gone, set(), T, before=snap, changed=[U1])
    assert reboots.document(U1) == {"reboot_required": False, "boot_image": None, "image": None}
    assert registry.get_sample_value("stateless_hosts_reboot_required") == 0

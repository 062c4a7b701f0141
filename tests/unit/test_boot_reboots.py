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

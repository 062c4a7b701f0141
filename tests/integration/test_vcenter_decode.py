"""Real simulator answers decode to the same values with `pyvmomi_shim`'s element handlers as
with pyVmomi as shipped (its handlers and data objects): a host's configuration,
property-collector updates (enter and modify), task info (success and error) and SOAP faults,
compared field by field; and, with baselines skipped, the same less entering objects' values."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import SoapAdapter, vim, vmodl

from stateless.vcenter import pyvmomi_shim
from tests.integration.fixtures_vcsim import Vcsim
from tests.integration.test_vcsim import hosts_of
from tests.soap_answers import (
    LONG,
    PC,
    Answer,
    assert_same,
    decode,
    host_config_spec,
    outcome,
    recording,
    walk,
)

Answers = dict[str, list[Answer]]


def _record_updates(si: Any, host: Any) -> None:
    collector = si.RetrieveContent().propertyCollector.CreatePropertyCollector()
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=host, skip=False)], propSet=[
        PC.PropertySpec(type=vim.HostSystem, pathSet=[
            "name", "config.option", "config.dateTimeInfo", "config.network.portgroup"])])
    collector.CreateFilter(spec, partialUpdates=False)
    first = collector.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=0))
    host.configManager.advancedOption.UpdateOptions(
        changedValue=[vim.option.OptionValue(key="Net.TcpipHeapSize", value=LONG(24))])
    host.configManager.dateTimeSystem.UpdateDateTimeConfig(
        vim.host.DateTimeConfig(ntpConfig=vim.host.NtpConfig(server=["192.0.2.7"])))
    version, kinds = first.version, set()
    for _ in range(10):  # until vCenter reports the changes (it answers as soon as it has some)
        result = collector.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=30))
        version = result.version if result else version
        kinds |= {o.kind for f in (result.filterSet if result else []) for o in f.objectSet}
        if "modify" in kinds:
            break
    collector.DestroyPropertyCollector()
    assert "modify" in kinds, f"no modify update in ten waits: {kinds}"


def _record_tasks(si: Any, host: Any) -> None:
    WaitForTask(host.EnterMaintenanceMode_Task(timeout=0), si=si)
    WaitForTask(host.ExitMaintenanceMode_Task(timeout=0), si=si)
    vm = next(v for v in si.RetrieveContent().viewManager.CreateContainerView(
        si.RetrieveContent().rootFolder, [vim.VirtualMachine], True).view
        if v.runtime.powerState == "poweredOn")
    with pytest.raises(vim.fault.InvalidPowerState):
        WaitForTask(vm.PowerOnVM_Task(), si=si)  # the task's info carries the error


def _record_faults(si: Any) -> None:
    missing = vim.HostSystem("host-missing", si._stub)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        missing.name  # noqa: B018 - the read is the point
    with pytest.raises(vim.fault.NotFound):
        si.RetrieveContent().customFieldsManager.RenameCustomFieldDef(key=987654, name="x")


@pytest.fixture(scope="module")
def answers(vcsim_factory: Callable[..., Vcsim]) -> Iterator[Answers]:
    """Answers of a simulator of its own (the updates and tasks change it)."""
    pyvmomi_shim.fast_data_objects()
    si = vcsim_factory("-vm", "1").connect()
    hosts = hosts_of(si)
    collector = si.RetrieveContent().propertyCollector
    got: Answers = {}
    with recording() as got["host config"]:
        collector.RetrievePropertiesEx([host_config_spec(h) for h in hosts],
                                       PC.RetrieveOptions())
    with recording() as got["updates"]:
        _record_updates(si, hosts[0])
    with recording() as got["tasks"]:
        _record_tasks(si, hosts[0])
    with recording() as got["faults"]:
        _record_faults(si)
    yield got


@pytest.mark.parametrize("which", ["host config", "updates", "tasks", "faults"])
def test_real_answers_decode_the_same_both_ways(answers: Answers, which: str) -> None:
    assert SoapAdapter.SoapDeserializer.StartElementHandler is pyvmomi_shim._start
    assert answers[which]
    for answer in answers[which]:
        stock, fast = outcome(answer, stock=True), outcome(answer, stock=False)
        assert stock[0] == fast[0] == "value", (stock, fast)
        assert_same(stock[1], fast[1])


def _values(answer: Answer) -> Any:
    return decode(answer, stock=False)


def test_the_recorded_answers_hold_what_they_are_recorded_for(answers: Answers) -> None:
    """The comparisons above ran over the kinds of values they are meant to cover."""
    config = _values(answers["host config"][-1])
    props = {p.name: p.val for p in config.objects[0].propSet}
    assert props["config.option"] and isinstance(props["config.option"][0], vim.option.OptionValue)
    assert props["config.network.vnic"][0].spec.ip.ipAddress
    assert props["config.service"].service and props["config.dateTimeInfo"].ntpConfig
    assert props["config.virtualNicManagerInfo"].netConfig
    assert isinstance(props["configManager"].networkSystem, vim.host.NetworkSystem)
    assert assert_same(config, config) > 1000

    kinds = {v.kind for a in answers["updates"] for v in walk(_values(a))
             if isinstance(v, PC.ObjectUpdate)}
    assert {"enter", "modify"} <= kinds
    infos = [v for a in answers["tasks"] for v in walk(_values(a)) if isinstance(v, vim.TaskInfo)]
    states = {v for a in answers["tasks"] for v in walk(_values(a))
              if isinstance(v, vim.TaskInfo.State)}
    assert "success" in states | {i.state for i in infos}
    errors = [v for a in answers["tasks"] for v in walk(_values(a))
              if isinstance(v, vim.fault.InvalidPowerState)]
    assert errors and all(e.msg for e in errors)
    faults = [f for a in answers["faults"] if isinstance(f := _values(a), vmodl.MethodFault)]
    assert {type(f) for f in faults} >= {vmodl.fault.ManagedObjectNotFound, vim.fault.NotFound}
    assert any("already been deleted" in f.msg for f in faults
               if isinstance(f, vmodl.fault.ManagedObjectNotFound) and f.obj._moId == "host-missing")


def _edited(answer: Answer, old: bytes, new: bytes) -> Answer:
    assert old in answer.data
    return Answer(answer.data.replace(old, new, 1), answer.result_type, answer.ns_map,
                  answer.stub)


@pytest.mark.parametrize(("old", "new"), [
    (b"<mtu>", b'<mtu xsi:type="xsd:string">x</mtu><mtu>'),  # a string for an int: CheckField
    (b"<mtu>", b"<mtu>large</mtu><mtu>"),  # not a number
    (b"<key>", b"<nosuchproperty>1</nosuchproperty><key>"),  # not a property of the type
    (b"<ipAddress>", b'<ipAddress xsi:type="NoSuchType">'),  # a type no namespace knows
    (b"<nicDevice>", b'<nicDevice xsi:type="ArrayOfString"></nicDevice><nicDevice>'),  # empty
])
def test_a_broken_answer_fails_the_same_way_both_ways(answers: Answers, old: bytes,
                                                      new: bytes) -> None:
    broken = _edited(answers["host config"][-1], old, new)
    stock, fast = outcome(broken, stock=True), outcome(broken, stock=False)
    assert stock[0] == fast[0] == "raised", (stock, fast)
    assert type(stock[1]) is type(fast[1]) and str(stock[1]) == str(fast[1])


def _without_baselines(value: Any) -> int:
    """Empty the changeSet of every entering object in `value` (in place); how many had one."""
    emptied = 0
    for update in [v for v in walk(value) if isinstance(v, PC.ObjectUpdate)]:
        if update.kind == "enter" and update.changeSet:
            del update.changeSet[:]
            emptied += 1
    return emptied


def test_baselines_skipped_drop_only_what_entering_objects_carry(answers: Answers) -> None:
    """Inside `baselines_skipped` an entering object keeps its kind and object and loses its
    values; modifications, and every other answer, decode as they always do."""
    emptied = modified = 0
    for answer in answers["updates"] + answers["host config"] + answers["tasks"]:
        expected = decode(answer, stock=False)
        emptied += _without_baselines(expected)
        modified += sum(1 for v in walk(expected)
                        if isinstance(v, PC.ObjectUpdate) and v.kind == "modify" and v.changeSet)
        with pyvmomi_shim.baselines_skipped():
            skipped = decode(answer, stock=False)
        assert_same(expected, skipped)
    assert emptied and modified  # both kinds were there to tell apart


def test_baselines_are_skipped_only_in_the_thread_that_asks(answers: Answers) -> None:
    enter = next(a for a in answers["updates"]
                 if any(isinstance(v, PC.ObjectUpdate) and v.kind == "enter" and v.changeSet
                        for v in walk(decode(a, stock=False))))
    elsewhere: list[Any] = []
    with pyvmomi_shim.baselines_skipped():
        thread = threading.Thread(target=lambda: elsewhere.append(decode(enter, stock=False)))
        thread.start()
        thread.join()
        here = decode(enter, stock=False)
    assert_same(elsewhere[0], decode(enter, stock=False))  # the other thread kept the values
    assert _without_baselines(elsewhere[0]) and not _without_baselines(here)

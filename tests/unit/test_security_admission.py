"""Admission of authenticated births: pinned identity, registered hosts, the three modes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stateless.model.birth import BirthMessage
from stateless.model.identity import HostIdentity
from stateless.model.inventory import HostRecord, HostState, Rule
from stateless.model.security import AdmissionMode
from stateless.security.admission import Decision, admit, contradictions, pin_from_birth

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TP = ":".join(["AB"] * 20)
MACS = ("00:50:56:aa:bb:01", "00:50:56:aa:bb:02")
RULES = (Rule("dell", order=10, match={"vendor": "Dell*"}, location="/DC1"),
         Rule("default", order=100, location="/Lab"))


def birth(*, thumbprint: str | None = TP, serial: str = "SN1", macs: tuple[str, ...] = MACS,
          vendor: str = "Dell Inc.") -> BirthMessage:
    return BirthMessage(HostIdentity(UUID, serial=serial, vendor=vendor, macs=macs),
                        thumbprint=thumbprint)


PINNED = HostRecord(UUID, pinned=pin_from_birth(birth(), T0, "esx01.example.com"))


def test_pin_from_birth() -> None:
    pin = PINNED.pinned
    assert pin is not None and pin.thumbprint == TP and pin.macs == MACS
    assert (pin.serial, pin.name, pin.pinned_at) == ("SN1", "esx01.example.com", T0)


@pytest.mark.parametrize("changed, what", [
    (birth(thumbprint=":".join(["CD"] * 20)), "thumbprint"),
    (birth(thumbprint=None), "thumbprint (none)"),
    (birth(serial="SN2"), "serial"),
    (birth(macs=MACS[:1]), "MACs"),
    (birth(macs=(*MACS, "00:50:56:aa:bb:03")), "MACs"),
])
def test_a_changed_identity_is_quarantined_and_never_repinned(changed: BirthMessage, what: str) -> None:
    assert PINNED.pinned is not None
    assert any(what in c for c in contradictions(PINNED.pinned, changed))
    for mode in AdmissionMode:
        result = admit(mode, PINNED, changed, RULES)
        assert result.decision == Decision.QUARANTINE and not result.pin
        assert what.split()[0] in result.reason


def test_the_same_identity_is_admitted() -> None:
    same = birth(thumbprint=TP.lower(), serial="sn1", macs=tuple(reversed(MACS)))
    assert PINNED.pinned is not None and contradictions(PINNED.pinned, same) == ()
    result = admit(AdmissionMode.APPROVAL, PINNED, same, RULES)
    assert result.decision == Decision.ADMIT and not result.pin


@pytest.mark.parametrize("mode, host, vendor, decision", [
    (AdmissionMode.OPEN, None, "HPE", Decision.ADMIT),
    (AdmissionMode.RULES, None, "Dell Inc.", Decision.ADMIT),
    (AdmissionMode.RULES, None, "HPE", Decision.REFUSE),  # only the default rule matches
    (AdmissionMode.APPROVAL, None, "Dell Inc.", Decision.QUARANTINE),
    (AdmissionMode.RULES, HostRecord(UUID, location="/DC1"), "HPE", Decision.ADMIT),
    (AdmissionMode.APPROVAL, HostRecord(UUID, location="/DC1"), "HPE", Decision.ADMIT),
    (AdmissionMode.APPROVAL, HostRecord(UUID, state=HostState.QUARANTINED), "HPE",
     Decision.QUARANTINE),
    (AdmissionMode.RULES, HostRecord(UUID), "HPE", Decision.REFUSE),  # recorded, not registered
])
def test_unknown_hosts_by_mode(mode: AdmissionMode, host: HostRecord | None, vendor: str,
                               decision: Decision) -> None:
    result = admit(mode, host, birth(vendor=vendor), RULES)
    assert result.decision == decision
    assert result.pin == (decision == Decision.ADMIT)
    assert result.reason

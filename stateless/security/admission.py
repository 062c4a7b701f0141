"""Who may join: identity continuity of known hosts and the admission mode of unknown ones.

Pure. After a birth is authenticated (`birthauth`), the daemon asks `admit`, which says
whether to apply the host, quarantine it (recorded, never applied, waiting for an admin) or
refuse it, and whether to pin its identity now. A pinned identity is never replaced by a
birth: a host whose thumbprint, serial or MACs differ from the pin is quarantined.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

import attrs

from stateless.model.birth import BirthMessage
from stateless.model.inventory import HostRecord, HostState, Rule
from stateless.model.security import AdmissionMode, PinnedIdentity, normalize_thumbprint
from stateless.rules import rule_matches


class Decision(enum.StrEnum):
    ADMIT = "admit"  # apply the host
    QUARANTINE = "quarantine"  # record it with state quarantined; apply nothing
    REFUSE = "refuse"  # answer 403; record nothing beyond what the daemon logs


@attrs.frozen
class Admission:
    decision: Decision
    reason: str
    pin: bool = False  # pin the birth's identity now (first approval)


def pin_from_birth(birth: BirthMessage, when: datetime, name: str) -> PinnedIdentity:
    """What to pin at first approval; `name` is what vCenter's AddHost will be given."""
    ident = birth.identity
    return PinnedIdentity(when, birth.thumbprint, ident.serial, ident.macs, name)


def contradictions(pinned: PinnedIdentity, birth: BirthMessage) -> tuple[str, ...]:
    """How a birth differs from the pinned identity (thumbprint, serial, MACs); empty if not."""
    out = []
    if pinned.thumbprint:
        got = normalize_thumbprint(birth.thumbprint) if birth.thumbprint else None
        if got != pinned.thumbprint:
            out.append(f"thumbprint {got or '(none)'} differs from the pinned {pinned.thumbprint}")
    serial = birth.identity.serial
    if pinned.serial and serial.casefold() != pinned.serial.casefold():
        out.append(f"serial {serial or '(none)'!r} differs from the pinned {pinned.serial!r}")
    macs = tuple(sorted(set(birth.identity.macs)))
    if pinned.macs and macs != pinned.macs:
        out.append(f"MACs {', '.join(macs) or '(none)'} differ from the pinned "
                   f"{', '.join(pinned.macs)}")
    return tuple(out)


def matches_specific_rule(rules: Sequence[Rule], birth: BirthMessage) -> Rule | None:
    """The first rule with patterns (not a catch-all default) the birth's identity matches."""
    for rule in sorted(rules, key=lambda r: (r.order, r.name)):
        if rule.match and rule_matches(rule, birth.identity):
            return rule
    return None


def admit(mode: AdmissionMode, host: HostRecord | None, birth: BirthMessage,
          rules: Sequence[Rule]) -> Admission:
    """The admission of an authenticated birth of the site whose mode is `mode`.

    A pinned host is admitted when the birth matches the pin and quarantined when it does
    not. A host an admin registered (its entry has a location) is admitted and pinned. Any
    other host is unknown: `open` admits it, `rules` only when a non-default deploy rule
    matches it, `approval` quarantines it until an admin approves it.
    """
    if host is not None and host.pinned is not None:
        differences = contradictions(host.pinned, birth)
        if differences:
            return Admission(Decision.QUARANTINE, "identity changed since it was pinned: "
                             + "; ".join(differences) + "; an admin must approve it again")
        return Admission(Decision.ADMIT, "matches the pinned identity")
    if host is not None and host.state == HostState.QUARANTINED and mode == AdmissionMode.APPROVAL:
        return Admission(Decision.QUARANTINE, "waiting for approval")
    if host is not None and host.location:
        return Admission(Decision.ADMIT, "registered by an admin", pin=True)
    if mode == AdmissionMode.OPEN:
        return Admission(Decision.ADMIT, "admission open", pin=True)
    if mode == AdmissionMode.RULES:
        rule = matches_specific_rule(rules, birth)
        if rule is not None:
            return Admission(Decision.ADMIT, f"matches deploy rule {rule.name}", pin=True)
        return Admission(Decision.REFUSE, "unknown host: no deploy rule with patterns matches it "
                         "and it is not registered (stateless host add)")
    return Admission(Decision.QUARANTINE, "unknown host: waiting for approval")

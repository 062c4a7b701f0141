"""Quarantined births in the directory: recorded, never applied, until an admin decides.

A quarantined birth's claim (the birth message as JSON) goes to `statelessClaim` of the
host's entry with state `quarantined`. A host the directory did not know gets a new entry
with the claimed identity; a known host keeps its identity, thumbprint and pin untouched, so a
birth that contradicts a pin can never overwrite what the real host was pinned with.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import ldap3

from stateless.directory import mapping
from stateless.errors import ConflictError, NotFoundError, ValidationError
from stateless.model.birth import BirthError, BirthMessage, birth_from_json
from stateless.model.inventory import HostState, check_name

if TYPE_CHECKING:
    from stateless.directory.client import Directory

CLAIM = "statelessClaim"


def claim_text(message: BirthMessage) -> str:
    return json.dumps(message.to_json(), sort_keys=True, separators=(",", ":"))


def parse_claim(text: str) -> BirthMessage:
    """A stored claim back as a birth message; ValidationError when it is not one."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise ValidationError("statelessClaim: not a JSON document") from None
    if not isinstance(doc, dict):
        raise ValidationError("statelessClaim: expected a JSON object")
    try:
        return birth_from_json(doc)
    except BirthError as exc:
        raise ValidationError(f"statelessClaim: {exc}") from None


def record(directory: Directory, message: BirthMessage, when: datetime, owner: str,
           reason: str, *, known: bool) -> None:
    """Record the birth as quarantined; a known host's identity and pin are left as they are."""
    uuid = message.identity.uuid
    dn = directory.host_dn(uuid)
    state = {"statelessState": [str(HostState.QUARANTINED)], "statelessStateReason": [reason],
             CLAIM: [claim_text(message)],
             "statelessLastBirth": [mapping.generalized_time(when)]}
    what = f"quarantine birth of {uuid}"
    if not known:
        entry = {"objectClass": ["top", "statelessHost"], "statelessUuid": [uuid],
                 **{k: v for k, v in mapping.identity_attrs(message.identity).items() if v},
                 "statelessOwner": [check_name(owner, "server")], **state}
        try:
            directory.add_entry(dn, entry, what)
            return
        except ConflictError:
            pass  # it exists after all: keep what it holds
    directory.modify(dn, {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in state.items()}, what)


def read_claim(directory: Directory, uuid: str) -> BirthMessage | None:
    """The quarantined claim of a host, None when it has none; NotFoundError when unknown."""
    entry = directory.read(directory.host_dn(uuid), "read host", [CLAIM, "statelessState"])
    if entry is None:
        raise NotFoundError(f"host {uuid}: unknown")
    values = entry.get(CLAIM) or []
    return parse_claim(str(values[0])) if values else None


def clear(directory: Directory, uuid: str, state: HostState, reason: str) -> None:
    """Drop the claim and set the host's state, in one modify."""
    directory.modify(directory.host_dn(uuid),
                     {CLAIM: [(ldap3.MODIFY_REPLACE, [])],
                      "statelessState": [(ldap3.MODIFY_REPLACE, [str(state)])],
                      "statelessStateReason": [(ldap3.MODIFY_REPLACE, [reason] if reason else [])]},
                     f"clear the quarantine of host {uuid}")


__all__ = ["CLAIM", "claim_text", "clear", "parse_claim", "read_claim", "record"]

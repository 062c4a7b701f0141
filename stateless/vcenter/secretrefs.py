"""Secret references (`secret:NAME`) on the way to a host; SNMP communities on the way back.

Policies name communities (`secret:NAME`), never hold them. A host's agent reports its
communities in clear, so the read maps each one back to the reference whose secret it
equals (anything else becomes `UNKNOWN_COMMUNITY`): the configuration the planner, compliance
and every output see carries references only, and the clear value exists only inside the
vCenter adapter, in the call that writes it and in the comparison after a read. Every use
says which setting it serves, and so which kind of secret it needs (`NEEDS`): a secret
stored as another kind is refused (`SecretKindError`), never opened.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Protocol

import attrs

from stateless.errors import NotFoundError, SecretKindError, VCenterError
from stateless.model.config import Snmp
from stateless.model.secretref import NEEDS, SecretKind, secret_ref


class Secrets(Protocol):
    """Named secrets as the applier sees them."""

    def __call__(self, name: str, key: str) -> str:
        """The clear value, only if the secret is of the kind setting `key` needs (`NEEDS`;
        SecretKindError otherwise): only ever put into the vCenter call that needs it."""
        ...

    def stamp(self, name: str) -> str:
        """A digest that changes whenever the secret is set again, revealing nothing of it."""
        ...


class StaticSecrets:
    """Secrets held in memory (tools, tests); stamps are keyed digests, unguessable outside.

    With `kinds` (name -> kind) every use is checked as in the directory, and a name without
    a kind there is refused; without it, the store holds no kinds and serves any use.
    """

    def __init__(self, values: MutableMapping[str, str],
                 kinds: Mapping[str, SecretKind] | None = None) -> None:
        self.values = values  # kept, not copied: a change shows at the next use
        self.kinds = kinds
        self._key = os.urandom(16)

    def _value(self, name: str) -> str:
        try:
            return self.values[name]
        except KeyError:
            raise NotFoundError(f"secret {name}: not known") from None

    def __call__(self, name: str, key: str) -> str:
        value = self._value(name)
        if self.kinds is not None:
            stored = self.kinds.get(name)
            if stored is None:
                raise NotFoundError(f"secret {name}: its kind is not known")
            if stored is not NEEDS[key]:
                raise SecretKindError(key, name, stored, NEEDS[key])
        return value

    def stamp(self, name: str) -> str:
        return hmac.new(self._key, f"{name}\0{self._value(name)}".encode(),
                        hashlib.sha256).hexdigest()[:32]


class OpenedOnce:
    """One apply's view of a store: each secret opened once for each setting.

    The applier opens every secret its plan uses before it touches the host, then again in
    the call that needs it; the second time is the first one's value, not another directory
    read.  Lives as long as the apply.
    """

    def __init__(self, store: Secrets) -> None:
        self._store = store
        self._opened: dict[tuple[str, str], str] = {}

    def __call__(self, name: str, key: str) -> str:
        found = self._opened.get((name, key))
        if found is None:
            found = self._opened[(name, key)] = self._store(name, key)
        return found

    def stamp(self, name: str) -> str:
        return self._store.stamp(name)


# What a community the host reports but no wanted reference opens reads back as: it never
# equals a reference, so the planner puts the wanted ones in its place.
UNKNOWN_COMMUNITY = "(other)"
DEFAULT_TRAP_PORT = 162


def _wanted_refs(snmp: Snmp) -> list[tuple[str, str]]:
    """(reference, the setting it comes from) of every community the host should have."""
    refs = [(c, "snmp.communities") for c in snmp.communities or ()]
    refs += [(t.partition("/")[2], "snmp.targets") for t in snmp.targets or () if "/" in t]
    return [(r, key) for r, key in refs if secret_ref(r) is not None]


def secret_name(ref: str, secrets: Secrets | None, what: str) -> tuple[str, Secrets]:
    """The name a `secret:NAME` reference gives and the store that opens it, or VCenterError."""
    name = secret_ref(ref)
    if name is None:
        raise VCenterError(f"{what}: {ref!r} is not a secret reference (secret:NAME)")
    if secrets is None:
        raise VCenterError(f"{what}: no secret store to resolve {name!r}; configure the "
                           "server's secrets (--secret-key-file)")
    return name, secrets


def resolve(ref: str, secrets: Secrets | None, what: str, key: str) -> str:
    """The clear value of a `secret:NAME` reference that setting `key` makes, or VCenterError
    naming the reference (SecretKindError when the secret is not of the kind `key` needs)."""
    name, store = secret_name(ref, secrets, what)
    return store(name, key)


def as_references(actual: Snmp, desired: Snmp, secrets: Secrets | None, what: str) -> Snmp:
    """`actual` (read from a host) with each clear community replaced by its reference."""
    refs = _wanted_refs(desired)
    if actual.communities is None and actual.targets is None:
        return actual
    by_value: dict[str, str] = {}
    for ref, key in dict.fromkeys(refs):
        by_value.setdefault(resolve(ref, secrets, what, key), ref)

    def named(community: str) -> str:
        return by_value.get(community, UNKNOWN_COMMUNITY)

    communities = None if actual.communities is None else \
        tuple(named(c) for c in actual.communities)
    targets = None if actual.targets is None else tuple(_target_ref(t, named) for t in actual.targets)
    return attrs.evolve(actual, communities=communities, targets=targets)


def _target_ref(text: str, named: Callable[[str], str]) -> str:
    address, sep, community = text.partition("/")
    return f"{address}/{named(community)}" if sep else address


@attrs.frozen
class Destination:
    host: str
    port: int
    community: str  # clear: only ever handed to the vCenter call


def clear_communities(snmp: Snmp, secrets: Secrets | None, what: str) -> list[str]:
    return [resolve(c, secrets, what, "snmp.communities") for c in snmp.communities or ()]


def clear_targets(targets: Iterable[str], secrets: Secrets | None, what: str) -> list[Destination]:
    out = []
    for text in targets:
        address, _, ref = text.partition("/")
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        community = resolve(ref, secrets, what, "snmp.targets") if ref else ""
        out.append(Destination(host, int(port or DEFAULT_TRAP_PORT), community))
    return out


__all__ = ["UNKNOWN_COMMUNITY", "Destination", "OpenedOnce", "Secrets", "StaticSecrets", "as_references",
           "clear_communities", "clear_targets", "resolve", "secret_name"]

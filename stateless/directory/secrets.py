"""Secrets in the directory are sealed (`stateless.security.seal`), never stored in clear.

Three places hold them: a vCenter's `statelessPassword`, a site's enrollment keys
(`statelessEnrollKey`, see `enrollkeys`), and named secrets below `ou=secrets`
(`cn=NAME`, objectClass statelessSecret: CHAP secrets, SNMP communities, the hosts' root
password), which settings refer to by name. Every server and the CLI share one key file; the
directory alone (a replica, a backup, an LDIF export) never reveals a secret.

Values written by earlier versions (`fernet:`) still open with the old key file; `stateless
secret rotate` re-seals every value under a new AES-GCM key (`reseal_all`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import ldap3

from stateless.errors import NotFoundError, SecretKindError, StatelessError, ValidationError
from stateless.model.inventory import check_name
from stateless.model.secretref import NEEDS, SecretKind, named_secrets
from stateless.model.security import EnrollKey, parse_enroll_key
from stateless.security.enroll import enroll_context
from stateless.security.seal import (
    KeyFileRing,
    KeyRing,
    SecretError,
    is_sealed,
    key_id_of,
    key_path,
    load_keyring,
)

if TYPE_CHECKING:
    from stateless.directory.client import Directory

VCENTER_CONTEXT = "statelessPassword"
SEALED_ATTRIBUTES = ("statelessPassword", "statelessEnrollKey", "statelessSealed")

__all__ = [
    "SEALED_ATTRIBUTES",
    "SecretError",
    "SecretKind",
    "SecretResolver",
    "decrypt_password",
    "encrypt_password",
    "enroll_context",
    "is_sealed",
    "key_path",
    "read_secret",
    "refused_references",
    "reseal_all",
    "secret_context",
    "secret_resolver",
    "set_secret",
    "set_vcenter_password",
    "stored_kind",
]


def secret_context(name: str) -> str:
    return f"statelessSealed:{name}"


def encrypt_password(password: str, location: Path, *, create: bool = False) -> str:
    """A vCenter password sealed with the newest key of the key file at `location`."""
    if not password:
        raise ValidationError("empty password: the password file holds nothing")
    return load_keyring(location, create=create).seal(password, VCENTER_CONTEXT)


def decrypt_password(stored: str, location: Path) -> str:
    if not is_sealed(stored):
        raise SecretError("vCenter password is not encrypted in the directory; set it with "
                          "`stateless secret set vcenter NAME --from-file F`")
    return load_keyring(location).unseal_text(stored, VCENTER_CONTEXT)


def set_vcenter_password(directory: Directory, name: str, password: str, ring: KeyRing) -> None:
    dn = directory.named_dn("vcenters", check_name(name, "vcenter"))
    if directory.read(dn, f"read vCenter {name}", ["objectClass"]) is None:
        raise NotFoundError(f"vCenter {name}: not registered; add it with `stateless vcenter add`")
    if not password:
        raise ValidationError(f"vCenter {name}: empty password")
    directory.modify(dn, {"statelessPassword": [
        (ldap3.MODIFY_REPLACE, [ring.seal(password, VCENTER_CONTEXT)])]}, f"set password of {name}")


def set_secret(directory: Directory, kind: SecretKind, name: str, secret: str,
               ring: KeyRing) -> str:
    """Store (or replace) the named secret `cn=NAME,ou=secrets`; returns its DN."""
    if kind is SecretKind.VCENTER:
        set_vcenter_password(directory, name, secret, ring)
        return directory.named_dn("vcenters", name)
    if not secret:
        raise ValidationError(f"secret {name}: empty")
    dn = directory.named_dn("secrets", check_name(name, "secret"))
    sealed = ring.seal(secret, secret_context(name))
    existing = directory.read(dn, f"read secret {name}", ["statelessSecretKind"])
    if existing is None:
        directory.add_entry(dn, {"objectClass": ["top", "statelessSecret"], "cn": [name],
                                 "statelessSealed": [sealed], "statelessSecretKind": [str(kind)]},
                            f"add secret {name}")
    else:
        directory.modify(dn, {"statelessSealed": [(ldap3.MODIFY_REPLACE, [sealed])],
                              "statelessSecretKind": [(ldap3.MODIFY_REPLACE, [str(kind)])]},
                         f"set secret {name}")
    return dn


def _kind(name: str, raw: Mapping[str, list[str]]) -> SecretKind:
    """The stored kind; an entry written without one (raw LDAP) counts as chap."""
    text = (raw.get("statelessSecretKind") or ["chap"])[0]
    try:
        return SecretKind(text.lower())
    except ValueError:
        raise ValidationError(f"secret {name}: unknown kind {text!r}; set it again with "
                              f"`stateless secret set chap|snmp|root-password {name}`") from None


def _entry(directory: Directory, name: str) -> tuple[SecretKind, str] | None:
    """(kind, sealed value) of `cn=NAME,ou=secrets`, or None when there is no such secret."""
    raw = directory.read(directory.named_dn("secrets", check_name(name, "secret")),
                         f"read secret {name}", ["statelessSealed", "statelessSecretKind"])
    if raw is None or not raw.get("statelessSealed"):
        return None
    return _kind(name, raw), str(raw["statelessSealed"][0])


def _sealed_entry(directory: Directory, name: str) -> tuple[SecretKind, str]:
    found = _entry(directory, name)
    if found is None:
        raise NotFoundError(f"secret {name}: not in the directory; set it with `stateless secret "
                            f"set chap|snmp|root-password {name}`")
    return found


def read_secret(directory: Directory, name: str, ring: KeyRing) -> tuple[SecretKind, str]:
    """(kind, plaintext) of a named secret: for the applier only, never for output."""
    kind, sealed = _sealed_entry(directory, name)
    return kind, ring.unseal_text(sealed, secret_context(name))


def stored_kind(directory: Directory, name: str) -> SecretKind | None:
    """The kind a named secret was stored as (nothing is opened), or None when it is unset."""
    found = _entry(directory, name)
    return None if found is None else found[0]


def refused_references(directory: Directory, settings: Mapping[str, object]) -> list[str]:
    """Why each secret the settings name cannot serve its setting: it exists as another kind.

    A secret not set yet is no refusal (it may be sealed later; until then the hosts that
    need it wait for it).
    """
    problems = []
    for key, value in settings.items():
        for name in dict.fromkeys(named_secrets(key, value)):
            kind = stored_kind(directory, name)
            if kind is not None and kind is not NEEDS[key]:
                problems.append(str(SecretKindError(key, name, kind, NEEDS[key])))
    return problems


class SecretResolver:
    """The applier's secrets: a name opens to its clear value only when a vCenter call needs it,
    and only for the kind it was stored as (`SecretKindError` otherwise, nothing opened).

    The key ring is kept and read again when the key file changes (`KeyFileRing`), so a
    server given a rotated key file opens values sealed with the new key without a restart.
    `stamp` is a digest of the sealed value (key id, nonce and ciphertext): it changes
    whenever the secret is set or re-sealed and reveals nothing.
    """

    def __init__(self, directory: Directory, key_file: Path) -> None:
        self._directory = directory
        self._key_file = key_file
        self._ring = KeyFileRing(key_file)

    def __repr__(self) -> str:
        return f"SecretResolver(key_file={self._key_file})"

    def __call__(self, name: str, key: str) -> str:
        stored, sealed = _sealed_entry(self._directory, name)
        if stored is not NEEDS[key]:
            raise SecretKindError(key, name, stored, NEEDS[key])
        return self._ring().unseal_text(sealed, secret_context(name))

    def stamp(self, name: str) -> str:
        sealed = _sealed_entry(self._directory, name)[1]
        return hashlib.sha256(f"{name}\0{sealed}".encode()).hexdigest()[:32]


def secret_resolver(directory: Directory, key_file: Path) -> SecretResolver:
    return SecretResolver(directory, key_file)


@attrs.frozen
class ResealReport:
    resealed: int
    current: int  # already sealed with the newest key
    failed: tuple[str, ...]  # "DN attribute: reason", never a value


def _resealed(attribute: str, dn_name: str, value: str, ring: KeyRing) -> str | None:
    """The value sealed with the newest key, or None when it already is."""
    newest = ring.newest.key_id
    if attribute == "statelessEnrollKey":
        key: EnrollKey = parse_enroll_key(value)
        if key_id_of(key.sealed) == newest:
            return None
        context = enroll_context(dn_name, key.key_id)
        plain = ring.unseal(key.sealed, context)
        return EnrollKey(key.key_id, key.created, ring.seal(plain, context)).to_text()
    context = VCENTER_CONTEXT if attribute == "statelessPassword" else secret_context(dn_name)
    if key_id_of(value) == newest:
        return None
    plain = ring.unseal(value, context) if is_sealed(value) else value.encode("utf-8")
    return ring.seal(plain, context)


def reseal_all(directory: Directory, ring: KeyRing) -> ResealReport:
    """Re-seal every sealed value under the newest key (clear vCenter passwords get sealed).

    Each value is replaced by one modify (delete the old value, add the new), so a value
    changed meanwhile fails alone and is reported; nothing is ever half-written.
    """
    from stateless.directory.mapping import one

    filt = "(|" + "".join(f"({a}=*)" for a in SEALED_ATTRIBUTES) + ")"
    resealed = current = 0
    failed: list[str] = []
    for dn, attrs_ in directory.search(directory.base, filt, ("cn", *SEALED_ATTRIBUTES),
                                       "find sealed values"):
        for attribute in SEALED_ATTRIBUTES:
            for value in attrs_.get(attribute, ()):
                try:
                    new = _resealed(attribute, one(attrs_, "cn"), value, ring)
                    if new is None:
                        current += 1
                        continue
                    directory.modify(dn, {attribute: [(ldap3.MODIFY_DELETE, [value]),
                                                      (ldap3.MODIFY_ADD, [new])]},
                                     f"re-seal {attribute}")
                    resealed += 1
                except StatelessError as exc:  # this value only: the rest go on
                    failed.append(f"{dn} {attribute}: {exc}")
    return ResealReport(resealed, current, tuple(failed))

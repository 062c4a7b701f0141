"""Per-site enrollment keys: made, rotated (two valid at once), opened for the verifier.

A key is 32 random bytes with a short id; the site entry keeps it sealed
(`statelessEnrollKey`), the boot renderers put it on the boot line as
`stateless.enroll-key=KEYID:BASE64URL`, and a birth signed with any of the site's current keys
is authenticated (`stateless.security.birthauth`). Rotation adds a key and keeps only the
newest two, so hosts booted with the previous key still authenticate until the next rotation.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import attrs

from stateless.agent.signing import SECRET_BYTES, format_enrollment_key
from stateless.model.inventory import Site
from stateless.model.security import EnrollKey, newest_first, utc
from stateless.security.seal import KeyRing, SecretError

KEEP = 2  # keys valid at once: the new one and the one before


def enroll_context(site: str, key_id: str) -> str:
    """The sealing context of a site's key: a sealed key copied elsewhere does not open."""
    return f"statelessEnrollKey:{site}:{key_id}"


@attrs.frozen
class NewKey:
    key: EnrollKey
    secret: bytes = attrs.field(repr=False)


def new_key(site: str, ring: KeyRing, now: datetime, existing: Iterable[EnrollKey] = (),
            random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> NewKey:
    """A fresh key for `site`, sealed with the newest key of `ring`.

    Its id is unused among `existing`, and it is newer than all of them even when rotations
    come within one second (the directory keeps whole seconds), so "newest" stays exact.
    """
    existing = list(existing)
    taken = {k.key_id for k in existing}
    key_id = random_bytes(4).hex()
    while key_id in taken:
        key_id = random_bytes(4).hex()
    created = max([utc(now), *(k.created + timedelta(seconds=1) for k in existing)])
    secret = random_bytes(SECRET_BYTES)
    return NewKey(EnrollKey(key_id, created, ring.seal(secret, enroll_context(site, key_id))),
                  secret)


def rotated(keys: Iterable[EnrollKey], new: EnrollKey) -> tuple[tuple[EnrollKey, ...],
                                                                 tuple[EnrollKey, ...]]:
    """(kept, dropped): the new key and the newest one before it are kept, older ones dropped."""
    ordered = newest_first([*keys, new])
    return ordered[:KEEP], ordered[KEEP:]


def open_key(site: str, key: EnrollKey, ring: KeyRing) -> bytes:
    secret = ring.unseal(key.sealed, enroll_context(site, key.key_id))
    if len(secret) != SECRET_BYTES:
        raise SecretError(f"site {site}: enrollment key {key.key_id} is not {SECRET_BYTES} bytes")
    return secret


def valid_keys(site: Site, ring: KeyRing) -> tuple[dict[str, bytes], list[str]]:
    """The site's keys a birth may be signed with, by id, and why any could not be opened.

    A key that does not open authenticates nothing (fail closed) and is reported; the
    verifier gets only the newest `KEEP`, whatever the entry holds.
    """
    keys: dict[str, bytes] = {}
    errors: list[str] = []
    for key in newest_first(site.enroll_keys)[:KEEP]:
        try:
            keys[key.key_id] = open_key(site.name, key, ring)
        except SecretError as exc:
            errors.append(str(exc))
    return keys, errors


def boot_option(key_id: str, secret: bytes) -> str:
    """The boot-line word the agent reads its key from."""
    return f"stateless.enroll-key={format_enrollment_key(key_id, secret)}"

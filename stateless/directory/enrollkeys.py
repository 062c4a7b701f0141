"""Enrollment keys in the site entry (`statelessEnrollKey`, sealed): rotate, list, reveal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from secrets import token_bytes
from typing import TYPE_CHECKING

import attrs
import ldap3

from stateless.errors import NotFoundError, StatelessError
from stateless.model.inventory import check_name
from stateless.model.security import EnrollKey, newest_first, parse_enroll_key
from stateless.security.enroll import NewKey, new_key, open_key, rotated
from stateless.security.seal import KeyRing

if TYPE_CHECKING:
    from stateless.directory.client import Directory

ATTRIBUTE = "statelessEnrollKey"


@attrs.frozen
class Rotation:
    new: NewKey
    kept: tuple[EnrollKey, ...]  # newest first, the new one included
    dropped: tuple[str, ...]  # ids of the keys no longer valid


def _site(directory: Directory, site: str) -> tuple[str, list[str]]:
    dn = directory.named_dn("sites", check_name(site, "site"))
    raw = directory.read(dn, f"read site {site}", ["cn", ATTRIBUTE])
    if raw is None:
        raise NotFoundError(f"site {site}: not found; add it with `stateless site add {site}`")
    return dn, raw.get(ATTRIBUTE, [])


def read_keys(directory: Directory, site: str) -> list[EnrollKey]:
    """The site's keys, newest first; a value that cannot be read is an error naming its id."""
    _, values = _site(directory, site)
    keys = []
    for text in values:
        try:
            keys.append(parse_enroll_key(text))
        except StatelessError as exc:
            raise StatelessError(f"site {site}: enrollment key {text.split(';', 1)[0].strip()!r} "
                                 f"cannot be read ({exc}); rotate twice to replace it") from None
    return list(newest_first(keys))


def rotate(directory: Directory, site: str, ring: KeyRing, now: datetime,
           random_bytes: Callable[[int], bytes] = token_bytes) -> Rotation:
    """Add a new key and keep only it and the newest one before it, in one atomic modify.

    Unreadable values are dropped too (they authenticate nothing). If another rotation
    changed the entry meanwhile, the delete of the old values fails and nothing is written.
    """
    dn, values = _site(directory, site)
    readable = {}
    for text in values:
        try:
            readable[text] = parse_enroll_key(text)
        except StatelessError:
            continue
    fresh = new_key(site, ring, now, readable.values(), random_bytes)
    kept, dropped = rotated(readable.values(), fresh.key)
    gone = [text for text in values if text not in readable or readable[text] in dropped]
    changes: list[tuple[str, list[str]]] = []
    if gone:
        changes.append((ldap3.MODIFY_DELETE, gone))
    changes.append((ldap3.MODIFY_ADD, [fresh.key.to_text()]))
    directory.modify(dn, {ATTRIBUTE: changes}, f"rotate the enrollment key of site {site}")
    return Rotation(fresh, kept, tuple(k.key_id for k in dropped) + tuple(
        text.split(";", 1)[0].strip() for text in values if text not in readable))


def reveal(directory: Directory, site: str, ring: KeyRing) -> list[tuple[EnrollKey, bytes]]:
    """Each current key with its secret, newest first: for the boot line, nowhere else."""
    return [(key, open_key(site, key, ring)) for key in read_keys(directory, site)]

"""The site-wide replay store of signed births: one directory entry per nonce, until it expires.

`statelessNonce=SITE:NONCE,ou=nonces,<base>` (objectClass statelessNonceRecord) with
`statelessExpires`. Recording a nonce is one LDAP add, and the directory refuses a second add
of the same DN, so two daemons (or two threads) can never both accept one nonce: whichever
comes second sees it as replayed. Nonces survive restarts because they live in the directory.
A nonce is kept until its birth's timestamp could no longer be accepted (timestamp + allowed
skew) plus a grace period for clocks that differ between servers; `purge` deletes the rest.

With multi-provider replication the store is exact on one provider; two providers accept the
same nonce only within the replication delay (milliseconds), and only if a captured request
reaches both in that time. Daemons of a site should write to the same provider first.

The change feed of the daemon should leave these entries out (`FEED_FILTER`): they change on
every birth and carry nothing a host's configuration is built from.
"""

from __future__ import annotations

import re
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from stateless.agent.signing import DEFAULT_SKEW, Authorization
from stateless.errors import ConflictError, NotFoundError, ValidationError
from stateless.model.security import format_time

if TYPE_CHECKING:
    from stateless.directory.client import Directory

OBJECT_CLASS = "statelessNonceRecord"
FEED_FILTER = f"(!(objectClass={OBJECT_CLASS}))"
GRACE = 60.0  # seconds a nonce is kept beyond its expiry, for servers' clocks that differ
_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NONCE = re.compile(r"[0-9a-f]{32,64}")


class NonceStore:
    """Records nonces of one directory's `ou=nonces`; thread-safe as `Directory` is."""

    def __init__(self, directory: Directory, *, skew: float = DEFAULT_SKEW, grace: float = GRACE) -> None:
        self.directory = directory
        self.skew = skew
        self.grace = grace

    @property
    def ou(self) -> str:
        return self.directory.ou("nonces")

    def dn(self, site: str, nonce: str) -> str:
        if not _SITE.fullmatch(site) or not _NONCE.fullmatch(nonce):
            raise ValidationError(f"nonce {nonce[:70]!r} of site {site[:70]!r}: expected a site name "
                                  "and 32-64 lower-case hex digits")
        return f"statelessNonce={site}:{nonce},{self.ou}"

    def record(self, site: str, nonce: str, expires: datetime) -> bool:
        """Record a nonce; False when it was recorded before (by anyone): a replay."""
        dn = self.dn(site, nonce)
        entry = {"objectClass": ["top", OBJECT_CLASS], "statelessNonce": [f"{site}:{nonce}"],
                 "statelessExpires": [format_time(expires)], "statelessSite": [site]}
        try:
            self.directory.add_entry(dn, entry, "record birth nonce")
        except ConflictError:
            return False
        except NotFoundError:  # a base made before the store existed: add its branch once
            self._add_branch()
            try:
                self.directory.add_entry(dn, entry, "record birth nonce")
            except ConflictError:
                return False
        return True

    def seen(self, auth: Authorization) -> bool:
        """The `replay` callback of `birthauth.authenticate`: record, True if seen before."""
        expires = datetime.fromtimestamp(auth.ts + self.skew, UTC)
        return not self.record(auth.site, auth.nonce, expires)

    def purge(self, now: datetime) -> int:
        """Delete the nonces that expired more than `grace` ago; returns how many went."""
        cutoff = format_time(now - timedelta(seconds=self.grace))
        filt = f"(&(objectClass={OBJECT_CLASS})(statelessExpires<={cutoff}))"
        try:
            expired = self.directory.search(self.ou, filt, ("statelessExpires",), "find expired nonces")
        except NotFoundError:
            return 0
        gone = 0
        for dn, _ in expired:
            try:
                self.directory.delete_entry(dn, "purge expired nonce")
                gone += 1
            except NotFoundError:
                continue  # another server purged it first
        return gone

    def _add_branch(self) -> None:
        with suppress(ConflictError):
            self.directory.add_entry(self.ou, {"objectClass": ["top", "organizationalUnit"],
                                               "ou": ["nonces"]}, "create the nonce store")


__all__ = ["FEED_FILTER", "GRACE", "OBJECT_CLASS", "NonceStore"]

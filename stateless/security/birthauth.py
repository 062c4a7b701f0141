"""The server's side of signed births: one call from a request to "authenticated for site S".

Pure apart from the `replay` callback (the daemon backs it with the site-wide nonce store,
`stateless.directory.nonces.NonceStore.seen`, which talks to the directory: call this from a
thread pool). Every refusal is a `BirthAuthError` whose `reason` is safe to send back in the
401 answer and to log: it never holds a key or a signature that would match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stateless.agent.signing import (
    DEFAULT_SKEW,
    HEADER,
    Authorization,
    SignatureError,
    parse_authorization,
    verify,
)
from stateless.errors import StatelessError
from stateless.model.inventory import Site
from stateless.security.enroll import valid_keys
from stateless.security.seal import KeyRing

__all__ = ["DEFAULT_SKEW", "HEADER", "Authorization", "BirthAuthError", "authenticate",
           "parse_header"]


class BirthAuthError(StatelessError):
    """The birth is not authenticated (answer 401 with `reason`)."""

    status = 401

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"birth not authenticated: {reason}")


def parse_header(value: str | None) -> Authorization:
    """The fields of the Authorization header, or BirthAuthError."""
    try:
        return parse_authorization(value)
    except SignatureError as exc:
        raise BirthAuthError(exc.reason) from None


def authenticate(header: str | None, body: bytes, sites: Mapping[str, Site], ring: KeyRing, *,
                 now: float, skew: float = DEFAULT_SKEW,
                 replay: Callable[[Authorization], bool] | None = None) -> Authorization:
    """Check a birth request: header syntax, the site and its current keys, the timestamp,
    the HMAC over `body` (the exact bytes received), then the nonce (`replay` records it and
    says whether it was seen before). Returns the header's fields; `site` is the site the
    host's key belongs to."""
    auth = parse_header(header)
    site = sites.get(auth.site)
    if site is None:
        raise BirthAuthError(f"unknown site {auth.site}")
    keys, _unopened = valid_keys(site, ring)  # a key that does not open authenticates nothing
    if not keys:
        raise BirthAuthError(f"site {auth.site} has no enrollment key the server can use; run "
                             f"`stateless enroll-key rotate {auth.site}`")
    try:
        return verify(auth, body, keys, now=now, skew=skew, seen=replay)
    except SignatureError as exc:
        raise BirthAuthError(exc.reason) from None

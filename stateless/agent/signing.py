"""Signed births: an HMAC-SHA256 over the exact body with the site's enrollment key.

Both ends use this module: the agent signs (it runs on the host's Python, so only the standard
library), the server verifies. The request carries

    Authorization: Stateless-HMAC-SHA256 site=SITE, key=KEYID, ts=UNIX, nonce=HEX, sig=HEX

where `sig` is the hex HMAC-SHA256, keyed with the enrollment key's secret, of

    stateless-birth-v1 \\n SITE \\n KEYID \\n UNIX \\n NONCE \\n hex SHA-256 of the body bytes

(one field per line, no spaces). The label fixes what is signed (a birth of this protocol
version), the body hash binds every byte sent, the timestamp bounds how long a captured request
is worth anything and the nonce makes each one usable once. Every field is checked against a
strict grammar before anything else, so a line break cannot smuggle a field in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SCHEME = "Stateless-HMAC-SHA256"
LABEL = "stateless-birth-v1"
HEADER = "Authorization"
MAX_HEADER = 512
SECRET_BYTES = 32
DEFAULT_SKEW = 300  # seconds a timestamp may be off the server's clock, either way
_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TS = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"(?:[0-9a-f]{2}){16,32}")
_SIG = re.compile(r"[0-9a-f]{64}")
_PARAM = re.compile(r"\s*([a-z]+)=([^,\s]*)\s*")
_FIELDS = ("site", "key", "ts", "nonce", "sig")


class SignatureError(ValueError):
    """A birth's signature is missing, malformed, stale, replayed or wrong; `reason` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class EnrollmentKey:
    """A site's enrollment key as the agent holds it (`KEYID:BASE64` on the boot line)."""

    key_id: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class Authorization:
    site: str
    key_id: str
    ts: int
    nonce: str
    sig: str


def parse_enrollment_key(text: str) -> EnrollmentKey:
    """`KEYID:BASE64` (standard or URL-safe alphabet, padding optional) of 32 secret bytes."""
    key_id, sep, encoded = text.strip().partition(":")
    if not sep or not _KEY_ID.fullmatch(key_id):
        raise SignatureError("enrollment key: expected KEYID:BASE64 (the value `stateless "
                             "enroll-key show SITE --reveal` prints)")
    encoded = encoded.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", encoded):
            raise ValueError
        secret = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise SignatureError(f"enrollment key {key_id}: the secret is not base64") from None
    if len(secret) != SECRET_BYTES:
        raise SignatureError(f"enrollment key {key_id}: the secret must be {SECRET_BYTES} bytes")
    return EnrollmentKey(key_id, secret)


def format_enrollment_key(key_id: str, secret: bytes) -> str:
    return f"{key_id}:{base64.urlsafe_b64encode(secret).rstrip(b'=').decode('ascii')}"


def string_to_sign(site: str, key_id: str, ts: int, nonce: str, body: bytes) -> bytes:
    return "\n".join((LABEL, site, key_id, str(ts), nonce,
                      hashlib.sha256(body).hexdigest())).encode("ascii")


def _mac(secret: bytes, site: str, key_id: str, ts: int, nonce: str, body: bytes) -> str:
    return hmac.new(secret, string_to_sign(site, key_id, ts, nonce, body), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign(body: bytes, site: str, key: EnrollmentKey, ts: int, nonce: str | None = None) -> str:
    """The Authorization header value for `body`, signed now (`ts`) with a fresh nonce."""
    nonce = nonce or new_nonce()
    _check(Authorization(site, key.key_id, ts, nonce, "0" * 64))
    return (f"{SCHEME} site={site}, key={key.key_id}, ts={ts}, nonce={nonce}, "
            f"sig={_mac(key.secret, site, key.key_id, ts, nonce, body)}")


def _check(auth: Authorization) -> Authorization:
    for name, value, pattern in (("site", auth.site, _SITE), ("key", auth.key_id, _KEY_ID),
                                 ("ts", str(auth.ts), _TS), ("nonce", auth.nonce, _NONCE),
                                 ("sig", auth.sig, _SIG)):
        if not pattern.fullmatch(value):
            raise SignatureError(f"malformed Authorization header: bad {name}")
    return auth


def parse_authorization(value: str | None) -> Authorization:
    """The fields of a `Stateless-HMAC-SHA256 ...` header; SignatureError for anything else."""
    if value is None or not value.strip():
        raise SignatureError(f"no Authorization header: births must be signed ({SCHEME})")
    if len(value) > MAX_HEADER:
        raise SignatureError(f"malformed Authorization header: longer than {MAX_HEADER} characters")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise SignatureError(f"Authorization scheme {scheme[:40]!r}: expected {SCHEME}")
    params: dict[str, str] = {}
    for part in rest.split(","):
        match = _PARAM.fullmatch(part)
        if match is None or match.group(1) not in _FIELDS or match.group(1) in params:
            raise SignatureError("malformed Authorization header: expected site=, key=, ts=, "
                                 "nonce=, sig= once each, comma-separated")
        params[match.group(1)] = match.group(2)
    if set(params) != set(_FIELDS):
        missing = ", ".join(f for f in _FIELDS if f not in params)
        raise SignatureError(f"malformed Authorization header: missing {missing}")
    if not _TS.fullmatch(params["ts"]):
        raise SignatureError("malformed Authorization header: bad ts")
    return _check(Authorization(params["site"], params["key"], int(params["ts"]),
                                params["nonce"], params["sig"]))


def verify(auth: Authorization | str | None, body: bytes, keys: Mapping[str, bytes], *,
           now: float, skew: float = DEFAULT_SKEW,
           seen: Callable[[Authorization], bool] | None = None) -> Authorization:
    """Check a birth's signature; return its fields or raise SignatureError with the reason.

    `keys` are the currently valid keys of the header's site by key id (two while a rotation
    is under way). The nonce is checked last, only for a request that is otherwise good, so
    forged requests cannot fill the replay store: `seen(auth)` records it and says whether it
    was recorded before (by this server or another one of the site).
    """
    if not isinstance(auth, Authorization):
        auth = parse_authorization(auth)
    secret = keys.get(auth.key_id)
    if secret is None:
        raise SignatureError(f"unknown enrollment key {auth.key_id} for site {auth.site} (rotated "
                             "out, or another site's); boot the host with a current key")
    if abs(now - auth.ts) > skew:
        raise SignatureError(f"timestamp {auth.ts} is {int(auth.ts - now):+d}s from the server's "
                             f"clock (allowed ±{int(skew)}s); check the host's and the server's time")
    if not hmac.compare_digest(_mac(secret, auth.site, auth.key_id, auth.ts, auth.nonce, body),
                               auth.sig):
        raise SignatureError("bad signature: the body, a header field or the key differs from "
                             "what the host signed")
    if seen is not None and seen(auth):
        raise SignatureError(f"nonce {auth.nonce} was used before: a replayed birth")
    return auth

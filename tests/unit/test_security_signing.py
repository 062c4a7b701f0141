"""Signed births: the header, the HMAC over the exact body, skew, rotation and replay."""

from __future__ import annotations

import json
import re

import pytest

from stateless.agent import signing
from stateless.agent.signing import Authorization, EnrollmentKey, SignatureError
from stateless.security.birthauth import BirthAuthError, parse_header

NOW = 1_767_000_000
OLD = EnrollmentKey("old1", bytes(range(32)))
NEW = EnrollmentKey("new2", bytes(range(32, 64)))
KEYS = {OLD.key_id: OLD.secret, NEW.key_id: NEW.secret}
BODY = json.dumps({"uuid": "4c4c4544-0042-3510-8052-b4c04f4b4e31"}).encode()


def header(body: bytes = BODY, *, site: str = "siteA", key: EnrollmentKey = NEW, ts: int = NOW,
           nonce: str = "ab" * 16) -> str:
    return signing.sign(body, site, key, ts, nonce)


def verify(value: str, body: bytes = BODY, keys: dict[str, bytes] | None = None,
           now: float = NOW, seen: object = None) -> Authorization:
    return signing.verify(value, body, KEYS if keys is None else keys, now=now, skew=300,
                          seen=seen)  # type: ignore[arg-type]


def test_round_trip() -> None:
    value = header()
    assert re.fullmatch(r"Stateless-HMAC-SHA256 site=siteA, key=new2, ts=1767000000, "
                        r"nonce=(ab){16}, sig=[0-9a-f]{64}", value)
    auth = verify(value)
    assert (auth.site, auth.key_id, auth.ts, auth.nonce) == ("siteA", "new2", NOW, "ab" * 16)
    assert signing.new_nonce() != signing.new_nonce()


def _replace(value: str, name: str, new: str) -> str:
    return re.sub(rf"{name}=[^,]*", f"{name}={new}", value)


@pytest.mark.parametrize("tamper, reason", [
    (lambda v: (v, BODY + b" "), "bad signature"),
    (lambda v: (v, BODY.replace(b"4e31", b"4e32")), "bad signature"),
    (lambda v: (_replace(v, "ts", str(NOW + 1)), BODY), "bad signature"),
    (lambda v: (_replace(v, "nonce", "cd" * 16), BODY), "bad signature"),
    (lambda v: (_replace(v, "site", "siteB"), BODY), "bad signature"),
    (lambda v: (_replace(v, "key", "old1"), BODY), "bad signature"),
    (lambda v: (_replace(v, "key", "gone3"), BODY), "unknown enrollment key gone3"),
    (lambda v: (_replace(v, "sig", "0" * 64), BODY), "bad signature"),
])
def test_tampering_is_refused_with_a_reason(tamper, reason: str) -> None:  # type: ignore[no-untyped-def]
    value, body = tamper(header())
    with pytest.raises(SignatureError, match=reason):
        verify(value, body)


def test_the_wrong_key_is_refused() -> None:
    forged = header(key=EnrollmentKey("new2", b"\x00" * 32))
    with pytest.raises(SignatureError, match="bad signature"):
        verify(forged)


def test_rotation_keeps_the_previous_key_valid() -> None:
    assert verify(header(key=OLD)).key_id == "old1"
    assert verify(header(key=NEW)).key_id == "new2"
    with pytest.raises(SignatureError, match="unknown enrollment key old1"):
        verify(header(key=OLD), keys={NEW.key_id: NEW.secret})


@pytest.mark.parametrize("offset, ok", [(0, True), (300, True), (-300, True), (301, False),
                                        (-301, False), (86400, False)])
def test_clock_skew(offset: int, ok: bool) -> None:
    value = header(ts=NOW + offset)
    if ok:
        verify(value)
    else:
        with pytest.raises(SignatureError, match=r"timestamp .* from the server's clock"):
            verify(value)


def test_replay_is_checked_last_and_only_for_good_requests() -> None:
    recorded: set[str] = set()

    def seen(auth: Authorization) -> bool:
        known = auth.nonce in recorded
        recorded.add(auth.nonce)
        return known

    value = header()
    verify(value, seen=seen)
    with pytest.raises(SignatureError, match="used before"):
        verify(value, seen=seen)
    with pytest.raises(SignatureError, match="bad signature"):
        verify(header(nonce="ef" * 16), BODY + b"x", seen=seen)
    assert recorded == {"ab" * 16}  # the forged request recorded nothing


@pytest.mark.parametrize("value, reason", [
    (None, "no Authorization header"),
    ("", "no Authorization header"),
    ("Bearer abc", "expected Stateless-HMAC-SHA256"),
    ("Stateless-HMAC-SHA256 site=a, key=k", "missing ts, nonce, sig"),
    ("Stateless-HMAC-SHA256 site=a, site=b, key=k, ts=1, nonce=" + "a" * 32 + ", sig=" + "0" * 64,
     "once each"),
    ("Stateless-HMAC-SHA256 site=a, key=k, ts=1, nonce=" + "a" * 32 + ", sig=" + "0" * 64
     + ", extra=1", "once each"),
    ("Stateless-HMAC-SHA256 site=a b, key=k, ts=1, nonce=" + "a" * 32 + ", sig=" + "0" * 64,
     "once each"),
    ("Stateless-HMAC-SHA256 site=-a, key=k, ts=1, nonce=" + "a" * 32 + ", sig=" + "0" * 64,
     "bad site"),
    ("Stateless-HMAC-SHA256 site=a, key=k, ts=-1, nonce=" + "a" * 32 + ", sig=" + "0" * 64,
     "bad ts"),
    ("Stateless-HMAC-SHA256 site=a, key=k, ts=1, nonce=abc, sig=" + "0" * 64, "bad nonce"),
    ("Stateless-HMAC-SHA256 site=a, key=k, ts=1, nonce=" + "A" * 32 + ", sig=" + "0" * 64,
     "bad nonce"),
    ("Stateless-HMAC-SHA256 site=a, key=k, ts=1, nonce=" + "a" * 32 + ", sig=00", "bad sig"),
    ("Stateless-HMAC-SHA256 " + "x" * 600, "longer than"),
])
def test_malformed_headers(value: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        signing.parse_authorization(value)
    with pytest.raises(BirthAuthError, match=reason):
        parse_header(value)


def test_enrollment_key_text() -> None:
    text = signing.format_enrollment_key("k1", bytes(range(32)))
    assert "=" not in text and signing.parse_enrollment_key(text) == EnrollmentKey("k1", bytes(range(32)))
    standard = "k1:" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # standard alphabet, padded
    assert signing.parse_enrollment_key(standard).secret == bytes(range(32))
    for bad in ("k1", "k1:", ":abc", "k1:not base64!", "k1:AAAA", "bad id:" + text[3:]):
        with pytest.raises(SignatureError):
            signing.parse_enrollment_key(bad)
    assert "xxxx" not in repr(EnrollmentKey("k1", b"x" * 32))

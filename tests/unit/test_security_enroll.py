"""Enrollment keys (rotation, opening) and the server's authentication of a birth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stateless.agent import signing
from stateless.agent.signing import Authorization, EnrollmentKey
from stateless.model.inventory import Site
from stateless.security import enroll, seal
from stateless.security.birthauth import BirthAuthError, authenticate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BODY = b'{"uuid": "4c4c4544-0042-3510-8052-b4c04f4b4e31"}'


@pytest.fixture
def ring(tmp_path: Path) -> seal.KeyRing:
    return seal.load_keyring(tmp_path / "secret.key", create=True)


def test_rotation_keeps_the_newest_two(ring: seal.KeyRing) -> None:
    keys: list = []  # type: ignore[type-arg]
    history = []
    for _ in range(4):  # all within one second: each new key is still the newest
        new = enroll.new_key("siteA", ring, T0, keys)
        kept, dropped = enroll.rotated(keys, new.key)
        history.append(([k.key_id for k in kept], [k.key_id for k in dropped]))
        keys = list(kept)
    ids = [h[0][0] for h in history]
    assert history[0] == ([ids[0]], [])
    assert history[1] == ([ids[1], ids[0]], [])
    assert history[2] == ([ids[2], ids[1]], [ids[0]])  # the third rotation drops the oldest
    assert history[3] == ([ids[3], ids[2]], [ids[1]])


def test_valid_keys_open_and_fail_closed(ring: seal.KeyRing, tmp_path: Path) -> None:
    a = enroll.new_key("siteA", ring, T0)
    b = enroll.new_key("siteA", ring, T0 + timedelta(days=1))
    site = Site("siteA", enroll_keys=(a.key, b.key))
    keys, errors = enroll.valid_keys(site, ring)
    assert keys == {a.key.key_id: a.secret, b.key.key_id: b.secret} and errors == []
    # A key sealed for another site does not open here: it authenticates nothing.
    moved = Site("siteB", enroll_keys=(a.key,))
    assert enroll.valid_keys(moved, ring)[0] == {} and "cannot decrypt" in enroll.valid_keys(
        moved, ring)[1][0]
    other = seal.load_keyring(tmp_path / "other.key", create=True)
    assert enroll.valid_keys(site, other)[0] == {}
    assert enroll.boot_option("k1", bytes(32)).startswith("stateless.enroll-key=k1:")


def _sites(ring: seal.KeyRing) -> tuple[dict[str, Site], enroll.NewKey, enroll.NewKey]:
    old = enroll.new_key("siteA", ring, T0)
    new = enroll.new_key("siteA", ring, T0 + timedelta(days=1))
    return {"siteA": Site("siteA", enroll_keys=(old.key, new.key)), "siteB": Site("siteB")}, old, new


def test_authenticate_a_birth(ring: seal.KeyRing) -> None:
    sites, old, new = _sites(ring)
    now = 1_767_000_000
    seen: set[str] = set()

    def replay(auth: Authorization) -> bool:
        known = auth.nonce in seen
        seen.add(auth.nonce)
        return known

    for key in (old, new):
        value = signing.sign(BODY, "siteA", EnrollmentKey(key.key.key_id, key.secret), now)
        auth = authenticate(value, BODY, sites, ring, now=now, replay=replay)
        assert auth.site == "siteA" and auth.key_id == key.key.key_id
        with pytest.raises(BirthAuthError, match="used before") as caught:
            authenticate(value, BODY, sites, ring, now=now, replay=replay)
        assert caught.value.status == 401
    good = EnrollmentKey(new.key.key_id, new.secret)
    with pytest.raises(BirthAuthError, match="unknown site siteZ"):
        authenticate(signing.sign(BODY, "siteZ", good, now), BODY, sites, ring, now=now)
    with pytest.raises(BirthAuthError, match="site siteB has no enrollment key"):
        authenticate(signing.sign(BODY, "siteB", good, now), BODY, sites, ring, now=now)
    with pytest.raises(BirthAuthError, match="bad signature"):
        authenticate(signing.sign(BODY, "siteA", good, now), BODY + b" ", sites, ring, now=now)
    with pytest.raises(BirthAuthError, match="timestamp"):
        authenticate(signing.sign(BODY, "siteA", good, now - 3600), BODY, sites, ring, now=now)
    with pytest.raises(BirthAuthError, match="no Authorization header"):
        authenticate(None, BODY, sites, ring, now=now)


def test_only_the_newest_two_keys_authenticate(ring: seal.KeyRing) -> None:
    keys = [enroll.new_key("siteA", ring, T0 + timedelta(days=i)) for i in range(3)]
    sites = {"siteA": Site("siteA", enroll_keys=tuple(k.key for k in keys))}
    now = 1_767_000_000
    oldest = EnrollmentKey(keys[0].key.key_id, keys[0].secret)
    with pytest.raises(BirthAuthError, match="unknown enrollment key"):
        authenticate(signing.sign(BODY, "siteA", oldest, now), BODY, sites, ring, now=now)

"""Sealed secrets: AES-GCM with a key id in every value, a key file of several keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from stateless.security import seal
from stateless.security.seal import KeyRing, SealKey, SecretError

CANARY = "canary-Zq8w3"


def ring(tmp_path: Path, *keys: SealKey) -> KeyRing:
    path = tmp_path / "secret.key"
    for key in keys or (seal.new_key(),):
        seal.add_key(path, key)
    return seal.load_keyring(path)


def test_round_trip_and_format(tmp_path: Path) -> None:
    keys = ring(tmp_path)
    value = keys.seal(CANARY, "statelessPassword")
    prefix, key_id, nonce, _ = value.split(":")
    assert (prefix, key_id) == ("aesgcm", keys.newest.key_id)
    assert len(seal.unb64url(nonce)) == 12 and "=" not in value
    assert CANARY not in value
    assert keys.unseal_text(value, "statelessPassword") == CANARY
    assert keys.seal(CANARY, "statelessPassword") != value  # a fresh nonce each time
    assert seal.is_sealed(value) and seal.key_id_of(value) == key_id
    assert not seal.is_sealed(CANARY) and seal.key_id_of(CANARY) is None


def test_a_value_opens_only_in_its_context(tmp_path: Path) -> None:
    keys = ring(tmp_path)
    value = keys.seal(CANARY, "statelessEnrollKey:siteA:k1")
    with pytest.raises(SecretError, match="cannot decrypt") as caught:
        keys.unseal(value, "statelessEnrollKey:siteB:k1")
    assert CANARY not in str(caught.value)


@pytest.mark.parametrize("damage", [
    lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),  # ciphertext or tag
    lambda v: ":".join([*v.split(":")[:2], "AAAAAAAAAAAAAAAA", v.split(":")[3]]),  # nonce
    lambda v: v.replace("aesgcm:", "aesgcm:zz", 1),  # unknown key id
    lambda v: v + ":extra",
    lambda v: v.replace("aesgcm", "rot13", 1),
])
def test_altered_values_are_refused_without_revealing_anything(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    keys = ring(tmp_path)
    value = damage(keys.seal(CANARY, "ctx"))
    with pytest.raises(SecretError) as caught:
        keys.unseal(value, "ctx")
    assert CANARY not in str(caught.value)


def test_the_newest_key_seals_every_key_unseals(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    first = seal.add_key(path)
    old = seal.load_keyring(path).seal(CANARY, "ctx")
    second = seal.add_key(path)
    keys = seal.load_keyring(path)
    assert keys.newest == second and keys.key_ids == (first.key_id, second.key_id)
    assert seal.key_id_of(keys.seal("x", "ctx")) == second.key_id
    assert keys.unseal_text(old, "ctx") == CANARY
    assert path.stat().st_mode & 0o777 == 0o600
    # A ring without the first key cannot open what it sealed, and says which key is missing.
    only_second = KeyRing([second], path=path)
    with pytest.raises(SecretError, match=f"sealed with key {first.key_id}"):
        only_second.unseal(old, "ctx")


def test_values_of_earlier_versions_still_open(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    legacy = Fernet.generate_key()
    path.write_bytes(legacy + b"\n")
    old = "fernet:" + Fernet(legacy).encrypt(CANARY.encode()).decode()
    keys = seal.load_keyring(path)
    assert keys.unseal_text(old, "statelessPassword") == CANARY
    with pytest.raises(SecretError, match="secret rotate"):
        keys.seal("x", "ctx")  # nothing seals until an AES-GCM key is added
    seal.add_key(path)
    keys = seal.load_keyring(path)
    assert keys.unseal_text(old, "statelessPassword") == CANARY  # the legacy key is kept
    assert keys.unseal_text(keys.seal(CANARY, "ctx"), "ctx") == CANARY
    other = KeyRing([], [Fernet.generate_key()], path=path)
    with pytest.raises(SecretError, match="cannot decrypt"):
        other.unseal(old, "statelessPassword")


@pytest.mark.parametrize("text, message", [
    ("", "holds no key"),
    ("# only a comment\n", "holds no key"),
    ("not a key\n", "line 1: expected KEYID:BASE64URL"),
    ("k1:c2hvcnQ\n", "line 1"),  # too short
    ("bad id!:" + "A" * 43 + "\n", "line 1"),
])
def test_bad_key_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "secret.key"
    path.write_text(text)
    with pytest.raises(SecretError, match=message):
        seal.load_keyring(path)


def test_duplicate_key_ids_are_refused(tmp_path: Path) -> None:
    key = seal.new_key()
    with pytest.raises(SecretError, match="appears twice"):
        KeyRing([key, key])
    path = tmp_path / "k"
    seal.add_key(path, key)
    with pytest.raises(SecretError, match="exists already"):
        seal.add_key(path, key)


def test_missing_file_and_create(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="No such file"):
        seal.load_keyring(tmp_path / "none")
    keys = seal.load_keyring(tmp_path / "new" / "secret.key", create=True)
    assert len(keys.keys) == 1
    assert (tmp_path / "new" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert seal.key_path(tmp_path / "new") == tmp_path / "new" / "secret.key"


def test_keys_never_show_in_reprs(tmp_path: Path) -> None:
    keys = ring(tmp_path)
    text = repr(keys) + repr(keys.newest)
    assert seal.b64url(keys.newest.secret) not in text and keys.newest.key_id in text

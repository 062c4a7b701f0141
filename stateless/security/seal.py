"""Sealed secrets: AES-256-GCM with a key id in every value, keys in one file shared by the servers.

A sealed value is `aesgcm:KEYID:NONCE:CIPHERTEXT` (base64url without padding; the ciphertext
carries GCM's 16-byte tag). The associated data is the value's *context* (for example
`statelessPassword` or `statelessEnrollKey:siteA:k1`), so a value copied to another place does
not open. The key file holds one key per line, `KEYID:BASE64URL` (32 bytes); the last line
seals, every line unseals, so keys rotate without a flag day. A bare Fernet key line (the
format of earlier versions) still opens `fernet:` values until `stateless secret rotate`
re-seals them.

Nothing here ever puts a secret or a key into an exception, a repr or a log line.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets as pysecrets
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stateless.errors import StatelessError

PREFIX = "aesgcm"
LEGACY_PREFIX = "fernet:"
KEY_FILE = "secret.key"
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_HEADER = ("# stateless sealing keys, one KEYID:BASE64URL per line: the last line seals, every "
           "line unseals. Mode 0600; every server and the CLI need the same file.\n")


class SecretError(StatelessError):
    """A secret could not be sealed or unsealed."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """Base64 in either alphabet, padding optional; ValueError when it is not base64."""
    if not re.fullmatch(r"[A-Za-z0-9_+/-]*=*", text):
        raise ValueError("not base64")
    text = text.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


@attrs.frozen
class SealKey:
    key_id: str
    secret: bytes = attrs.field(repr=False)


def is_sealed(value: str) -> bool:
    """Whether a stored value is sealed (now or by an earlier version), not clear text."""
    return value.startswith((PREFIX + ":", LEGACY_PREFIX))


def key_id_of(value: str) -> str | None:
    """The key a sealed value needs (`fernet` for values of earlier versions), else None."""
    if value.startswith(LEGACY_PREFIX):
        return "fernet"
    parts = value.split(":")
    return parts[1] if len(parts) == 4 and parts[0] == PREFIX else None


def _aad(context: str) -> bytes:
    return b"stateless:" + context.encode("utf-8")


class KeyRing:
    """The keys of one key file: the newest seals, every one unseals."""

    def __init__(self, keys: Sequence[SealKey], legacy: Sequence[bytes] = (), path: Path | None = None,
                 *, nonce_source: Callable[[int], bytes] = os.urandom) -> None:
        self.keys = tuple(keys)
        self._legacy = tuple(Fernet(k) for k in legacy)
        self.path = path
        self._nonce = nonce_source
        ids = [k.key_id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise SecretError(f"secret key file {path}: a key id appears twice; every line needs "
                              "its own id")

    def __repr__(self) -> str:
        return f"KeyRing(path={self.path}, key_ids={[k.key_id for k in self.keys]})"

    @property
    def newest(self) -> SealKey:
        if not self.keys:
            raise SecretError(f"secret key file {self.path}: holds only a Fernet key of an earlier "
                              "version, which opens old values but seals nothing; run `stateless "
                              "secret rotate` to add an AES-GCM key and re-seal every value")
        return self.keys[-1]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(k.key_id for k in self.keys) + (("fernet",) if self._legacy else ())

    def seal(self, plaintext: str | bytes, context: str) -> str:
        """`aesgcm:KEYID:NONCE:CIPHERTEXT` of the newest key, bound to `context`."""
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        key = self.newest
        nonce = self._nonce(NONCE_BYTES)
        sealed = AESGCM(key.secret).encrypt(nonce, data, _aad(context))
        return f"{PREFIX}:{key.key_id}:{b64url(nonce)}:{b64url(sealed)}"

    def unseal(self, value: str, context: str) -> bytes:
        """The plaintext of a sealed value, or SecretError saying which key or context failed."""
        if value.startswith(LEGACY_PREFIX):
            return self._unseal_legacy(value[len(LEGACY_PREFIX):])
        parts = value.split(":")
        if len(parts) != 4 or parts[0] != PREFIX or not _KEY_ID.fullmatch(parts[1]) \
                or not all(_B64URL.fullmatch(p) for p in parts[2:]):
            raise SecretError(f"{context}: not a sealed value (expected aesgcm:KEYID:NONCE:"
                              "CIPHERTEXT); set it again with `stateless secret set`")
        key = next((k for k in self.keys if k.key_id == parts[1]), None)
        if key is None:
            raise SecretError(f"{context}: cannot decrypt: sealed with key {parts[1]}, which "
                              f"{self.path} does not hold (it has {', '.join(self.key_ids)}); "
                              "give every server the key file the value was sealed with")
        try:
            nonce, sealed = unb64url(parts[2]), unb64url(parts[3])
            if len(nonce) != NONCE_BYTES:
                raise ValueError("nonce length")
            return AESGCM(key.secret).decrypt(nonce, sealed, _aad(context))
        except (InvalidTag, ValueError):
            raise SecretError(f"{context}: cannot decrypt with key {key.key_id} of {self.path}: the "
                              "value was altered, belongs elsewhere, or the key file differs from "
                              "the one that sealed it") from None

    def unseal_text(self, value: str, context: str) -> str:
        try:
            return self.unseal(value, context).decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"{context}: the sealed value is not text") from None

    def _unseal_legacy(self, token: str) -> bytes:
        for fernet in self._legacy:
            try:
                return fernet.decrypt(token.encode("ascii"))
            except (InvalidToken, UnicodeEncodeError):
                continue
        raise SecretError(f"value sealed by an earlier version (fernet:): cannot decrypt with "
                          f"{self.path}; the servers and the CLI must share one key file")


def key_path(location: Path) -> Path:
    """A key file, or the default one inside a state directory."""
    return location / KEY_FILE if location.is_dir() else location


def new_key(random_bytes: Callable[[int], bytes] = pysecrets.token_bytes) -> SealKey:
    return SealKey(random_bytes(4).hex(), random_bytes(KEY_BYTES))


def parse_keys(text: str, path: Path | None = None) -> tuple[list[SealKey], list[bytes]]:
    """(AES-GCM keys oldest first, legacy Fernet keys) of a key file's text."""
    keys: list[SealKey] = []
    legacy: list[bytes] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, encoded = line.partition(":")
        try:
            if not sep:
                Fernet(line.encode("ascii"))  # validates a key of an earlier version
                legacy.append(line.encode("ascii"))
                continue
            secret = unb64url(encoded)
        except (ValueError, UnicodeEncodeError):
            secret = b""
        if not _KEY_ID.fullmatch(key_id) or len(secret) != KEY_BYTES:
            raise SecretError(f"secret key file {path}, line {number}: expected KEYID:BASE64URL of "
                              f"{KEY_BYTES} bytes (or a Fernet key of an earlier version)")
        keys.append(SealKey(key_id, secret))
    if not keys and not legacy:
        raise SecretError(f"secret key file {path}: holds no key; create one with "
                          "`stateless secret rotate`")
    return keys, legacy


def load_keyring(location: Path, *, create: bool = False) -> KeyRing:
    """The key ring of a key file (or STATE_DIR/secret.key); `create` makes a new file."""
    path = key_path(location)
    if create and not path.exists():
        _write(path, [new_key()], [], exclusive=True)
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise SecretError(f"secret key file {path}: {exc.strerror}; every server and the CLI "
                          "need the same key file (--secret-key-file)") from None
    except UnicodeDecodeError:
        raise SecretError(f"secret key file {path}: not a key file (not ASCII)") from None
    keys, legacy = parse_keys(text, path)
    return KeyRing(keys, legacy, path)


class KeyFileRing:
    """One key file's key ring, read again only when the file changed (inode, size, mtime).

    So a rotated key file (`stateless secret rotate` writes a new file and renames it into
    place) is picked up by a running server without a restart, and an unchanged one is not
    parsed again for every secret opened. The file is looked at before it is read, so a
    change meanwhile shows at the next use; a file gone or unreadable fails as it would
    have without the cache.
    """

    def __init__(self, key_file: Path) -> None:
        self.path = key_path(key_file)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._ring: KeyRing | None = None

    def __call__(self) -> KeyRing:
        try:
            st = os.stat(self.path)
        except OSError:
            return load_keyring(self.path)  # raises the usual error, naming the file
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if self._ring is None or seen != self._seen:
                self._ring, self._seen = load_keyring(self.path), seen
            return self._ring


def add_key(location: Path, key: SealKey | None = None) -> SealKey:
    """Append a new newest key to the file (created when missing) and return it."""
    path = key_path(location)
    keys: list[SealKey] = []
    legacy: list[bytes] = []
    if path.exists():
        keys, legacy = parse_keys(path.read_text(encoding="ascii"), path)
    key = key or new_key()
    if any(k.key_id == key.key_id for k in keys):
        raise SecretError(f"secret key file {path}: key id {key.key_id} exists already")
    _write(path, [*keys, key], legacy, exclusive=not path.exists())
    return key


def _write(path: Path, keys: Sequence[SealKey], legacy: Sequence[bytes], *, exclusive: bool) -> None:
    """Write the whole file through a 0600 temporary file and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [_HEADER, *(k.decode("ascii") + "\n" for k in legacy),
             *(f"{k.key_id}:{b64url(k.secret)}\n" for k in keys)]
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.writelines(lines)
        return
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.writelines(lines)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)

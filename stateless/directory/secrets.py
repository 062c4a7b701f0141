"""vCenter passwords are stored in the directory encrypted, never in clear.

Every server and the admin CLI share one Fernet key file (mode 0600); the directory alone
(a replica, a backup, an LDIF export) never reveals a vCenter password.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from stateless.errors import StatelessError, ValidationError

PREFIX = "fernet:"
KEY_FILE = "secret.key"


class SecretError(StatelessError):
    """A secret could not be read or decrypted."""


def key_path(location: Path) -> Path:
    """A key file, or the default one inside a state directory."""
    return location / KEY_FILE if location.is_dir() else location


def load_key(location: Path, *, create: bool = False) -> Fernet:
    path = key_path(location)
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key() + b"\n")
    try:
        return Fernet(path.read_bytes().strip())
    except OSError as exc:
        raise SecretError(f"secret key file {path}: {exc.strerror}; every server and the CLI "
                          "need the same key file (--secret-key-file)") from None
    except ValueError:
        raise SecretError(f"secret key file {path}: not a Fernet key (32 url-safe base64 bytes)") \
            from None


def encrypt_password(password: str, location: Path, *, create: bool = False) -> str:
    if not password:
        raise ValidationError("empty password: the password file holds nothing")
    return PREFIX + load_key(location, create=create).encrypt(password.encode()).decode()


def decrypt_password(stored: str, location: Path) -> str:
    if not stored.startswith(PREFIX):
        raise SecretError("vCenter password is not encrypted in the directory; register the "
                          "vCenter again with `stateless vcenter add ... --password-file F`")
    try:
        return load_key(location).decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise SecretError(f"vCenter password: cannot decrypt with {key_path(location)}; the "
                          "servers and the CLI must share one key file") from None

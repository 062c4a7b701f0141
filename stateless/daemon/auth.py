"""Who may call the admin API: a client certificate from the CA, or the bearer token.

Each route of `api.routes` says what it needs (`Access`): OPEN (health, metrics, births,
locate), READ (host details: open only with `--public-read`; STATUS, one host's document, also
with that host's status token) or WRITE (apply, approve, deny).
A request passes with a client certificate the TLS handshake verified against `--client-ca`,
or `Authorization: Bearer TOKEN` equal to the content of `--admin-token-file` (compared in
constant time). With neither configured the admin API is closed (403 naming the options)
unless `--insecure-admin` opens it, so it is never open by accident.

An agent waits for its own host on the `status_url` of its birth's answer, which carries a
token for that host alone (an HMAC of the UUID under a key kept in the state directory): it
reads that host's document and nothing else.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.logger import Logger
from twisted.web import server

from stateless.daemon.config import DaemonConfig
from stateless.daemon.tls import peer_name
from stateless.errors import StatelessError

log = Logger()

Handler = Callable[[server.Request, dict[str, str]], bytes | int]
STATUS_KEY = "status.key"
STATUS_PARAM = b"token"


class Access(enum.Enum):
    OPEN = "open"
    STATUS = "status"  # one host's document: READ, or that host's status token
    READ = "read"
    WRITE = "write"


@attrs.frozen
class Denied:
    status: int
    reason: str


def _read_token(path: Path) -> bytes:
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise StatelessError(f"admin token file {path}: {exc.strerror}; write a long random "
                             "token into it (mode 0600)") from None
    if len(token) < 16:
        raise StatelessError(f"admin token file {path}: the token must be at least 16 characters")
    return token


def status_key(state_dir: Path) -> bytes:
    """The key of agents' status tokens: created once (mode 0600), kept across restarts."""
    path = state_dir / STATUS_KEY
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
        raise StatelessError(f"{path}: damaged (shorter than 32 bytes); delete it") from None
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class AdminAuth:
    """The admin API's gate; `guard(access, handler)` wraps one route's handler."""

    def __init__(self, *, token: bytes | None, client_ca: bool, public_read: bool = False,
                 insecure_admin: bool = False, key: bytes | None = None) -> None:
        self._token = token
        self._client_ca = client_ca
        self.public_read = public_read
        self.insecure_admin = insecure_admin
        self._key = key or secrets.token_bytes(32)

    @classmethod
    def from_config(cls, config: DaemonConfig) -> AdminAuth:
        token = _read_token(config.admin_token_file) if config.admin_token_file else None
        return cls(token=token, client_ca=config.client_ca is not None,
                   public_read=config.public_read, insecure_admin=config.insecure_admin,
                   key=status_key(config.state_dir))

    @property
    def configured(self) -> bool:
        return self._token is not None or self._client_ca

    def status_token(self, uuid: str) -> str:
        return hmac.new(self._key, uuid.encode(), hashlib.sha256).hexdigest()[:32]

    def check(self, request: server.Request, access: Access, uuid: str | None = None) -> Denied | None:
        """None when the request may go on, else why not (401 or 403)."""
        if access is Access.OPEN:
            return None
        raw = request.getHeader(b"authorization") or b""
        header = (raw.decode("latin-1") if isinstance(raw, bytes) else raw).strip()
        if header:
            return self._bearer(header)
        if peer_name(getattr(request, "transport", None)) is not None:
            return None
        if access is Access.STATUS and self._status(request, uuid):
            return None
        if access is not Access.WRITE and self.public_read:
            return None
        if self.insecure_admin:
            return None
        if not self.configured:
            return Denied(403, "the admin API is closed: this server has neither "
                               "--admin-token-file nor --client-ca")
        ways = " or ".join(w for w, on in (("a client certificate from the server's CA",
                                             self._client_ca),
                                            ("Authorization: Bearer TOKEN", self._token))
                           if on)
        return Denied(401, f"this request needs {ways}")

    def _bearer(self, header: str) -> Denied | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return Denied(401, "expected Authorization: Bearer TOKEN")
        if self._token is None:
            return Denied(401, "this server takes no bearer token (no --admin-token-file)")
        if not hmac.compare_digest(value.strip().encode(), self._token):
            return Denied(401, "bad admin token")
        return None

    def _status(self, request: server.Request, uuid: str | None) -> bool:
        values = request.args.get(STATUS_PARAM) if request.args else None
        if uuid is None or not values:
            return False
        return hmac.compare_digest(values[0], self.status_token(uuid).encode())

    def guard(self, access: Access, handler: Handler, *,
              refuse: Callable[[server.Request, Denied], bytes]) -> Handler:
        def guarded(request: server.Request, params: dict[str, str]) -> bytes | int:
            denied = self.check(request, access, params.get("uuid"))
            if denied is None:
                return handler(request, params)
            peer: Any = request.getClientAddress()
            log.warn("admin request refused: {method} {path}: {reason}", event="admin_refused",
                     method=(request.method or b"").decode("ascii", "replace"),
                     path=(request.uri or b"").decode("utf-8", "replace")[:200],
                     reason=denied.reason, peer=getattr(peer, "host", ""))
            return refuse(request, denied)

        return guarded


__all__ = ["Access", "AdminAuth", "Denied", "status_key"]

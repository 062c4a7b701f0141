"""Pinning the API's CA by fingerprint: the agent trusts one CA, given as a SHA-256 on its boot line.

The host has no copy of the CA, only its fingerprint (`stateless.ca=`, `--ca-fingerprint`).
The servers send their certificate chain, CA included (`stateless pki issue` writes the
certificate file that way). The first time the agent talks HTTPS it opens one connection
without verification only to read that chain, takes the certificate whose SHA-256 (of its DER)
equals the pinned one, and from then on connects with ordinary full verification (chain,
validity, host name) against that certificate as the only trust anchor. A server that does not
send the pinned CA, or whose certificate that CA did not sign, is never talked to.

Reading the chain needs Python 3.10 or later (`SSLObject.get_unverified_chain`).
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading

_ENCODING_DER = 2  # _ssl.ENCODING_DER


class PinError(ssl.SSLError):
    """The server's chain does not contain the pinned CA, or it cannot be read."""


def normalize_fingerprint(text: str) -> str:
    value = text.strip().lower().replace(":", "")
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"CA fingerprint {text!r}: expected 64 hex digits, the SHA-256 that "
                         "`stateless pki fingerprint ca.crt` prints")
    return value


def _chain(tls: ssl.SSLSocket) -> list[bytes]:
    """DER of every certificate the server sent, leaf first."""
    obj = getattr(tls, "_sslobj", None)
    getter = getattr(obj, "get_unverified_chain", None)
    if getter is None:
        raise PinError("this Python cannot read a server's certificate chain (3.10 or later "
                       "needed to pin the CA)")
    return [cert.public_bytes(_ENCODING_DER) for cert in getter() or ()]


class PinnedCA:
    """Builds, once, the verifying context whose only trust anchor is the pinned CA."""

    def __init__(self, fingerprint: str, timeout: float = 10.0) -> None:
        self.fingerprint = normalize_fingerprint(fingerprint)
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def context(self, host: str, port: int, address: str | None = None) -> ssl.SSLContext:
        """The verifying context; the first call reads the chain of `host:port` (at `address`)."""
        with self._lock:
            if self._context is None:
                ca = self.find_ca(host, port, address)
                context = ssl.create_default_context(cadata=ca)
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                self._context = context
            return self._context

    def find_ca(self, host: str, port: int, address: str | None = None) -> bytes:
        """The DER of the pinned CA, as the server at `host:port` sends it in its chain."""
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE  # only to read the chain; nothing is sent
        with socket.create_connection((address or host, port), timeout=self.timeout) as raw, \
                probe.wrap_socket(raw, server_hostname=host) as tls:
            chain = _chain(tls)
        for der in chain:
            if hashlib.sha256(der).hexdigest() == self.fingerprint:
                return der
        raise PinError(f"{host}:{port} did not send the pinned CA {self.fingerprint[:16]}… in its "
                       f"certificate chain ({len(chain)} certificate(s)); not talking to it")

"""The API's port: plain TCP, or HTTPS with optional client certificates.

Twisted serves TLS through pyOpenSSL, so the context is built here with the same policy as
`stateless.security.pki.server_context` (TLS 1.2 or later, the whole chain from the
certificate file, client certificates from `--client-ca` asked for but optional at the TLS
level): the admin layer (`auth`) decides which requests need one. `server_context` loads the
files first so a key that does not match its certificate fails the start with its message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet import endpoints

from stateless.security import pki


class ServerTLS:
    """A pyOpenSSL context factory for Twisted's SSL endpoints (one context, shared)."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        pki.server_context(cert, key, client_ca=client_ca)  # PkiError with a clear message
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.use_certificate_chain_file(str(cert))
        context.use_privatekey_file(str(key))
        context.check_privatekey()
        if client_ca is not None:
            context.load_verify_locations(str(client_ca))
            # VERIFY_PEER without FAIL_IF_NO_PEER_CERT: a certificate is optional, but one
            # that is sent must chain to the CA, or the handshake fails.
            context.set_verify(SSL.VERIFY_PEER, _verified)
            context.set_session_id(b"statelessd")
        self._context = context

    def getContext(self) -> SSL.Context:  # Twisted's IOpenSSLServerConnectionCreator, old style
        return self._context


def _verified(_conn: Any, _cert: Any, _errno: int, _depth: int, ok: int) -> bool:
    return bool(ok)


def tls_endpoint(reactor: Any, host: str, port: int, backlog: int, cert: Path, key: Path,
                 client_ca: Path | None) -> Any:
    """HTTPS on `host:port` (an IStreamServerEndpoint)."""
    return endpoints.SSL4ServerEndpoint(reactor, port, ServerTLS(cert, key, client_ca),
                                        backlog=backlog, interface=host)


def peer_name(transport: Any) -> str | None:
    """The CN of the client certificate the TLS handshake verified, or None (no TLS, no
    certificate). A certificate is only present once it was verified against the client CA."""
    get = getattr(transport, "getPeerCertificate", None)
    if get is None:
        return None
    try:
        cert = get()
    except SSL.Error:
        return None
    if not isinstance(cert, crypto.X509):
        return None
    name = cert.get_subject().commonName
    return str(name) if name else None


__all__ = ["ServerTLS", "peer_name", "tls_endpoint"]

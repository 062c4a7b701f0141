"""TLS to the directory: the slapd side (cn=config) and the client side (ldap3), both pinned to
the service's CA.

slapd serves LDAPS on an `ldaps://` listener and StartTLS on `ldap://` once cn=config names a
certificate, its key and the CA (`slapd_tls_ldif`, applied with ldapmodify; slapd takes it
without a restart, an `ldaps://` listener needs `-h`). Clients verify the server against the
CA and its name (use the name or IP address the certificate carries in the URL).
`Directory(..., tls=client_tls(ca))` then does LDAPS for `ldaps://` URLs and StartTLS before
binding for `ldap://` ones, so no password crosses the network in clear.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import ldap3

from stateless.security.pki import PkiError


def slapd_tls_ldif(cert_file: Path, key_file: Path, ca_file: Path) -> str:
    """ldapmodify LDIF that gives slapd its certificate (files readable by the slapd user)."""
    lines = ["dn: cn=config", "changetype: modify"]
    for attr, path in (("olcTLSCACertificateFile", ca_file), ("olcTLSCertificateFile", cert_file),
                       ("olcTLSCertificateKeyFile", key_file)):
        lines += [f"replace: {attr}", f"{attr}: {Path(path).resolve()}", "-"]
    return "\n".join(lines[:-1]) + "\n"


def client_tls(ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None) -> ldap3.Tls:
    """ldap3 TLS settings that trust only `ca_file` and check the server's name (TLS 1.2+);
    with `cert_file`/`key_file`, a client certificate for SASL EXTERNAL set-ups."""
    if not Path(ca_file).is_file():
        raise PkiError(f"directory CA file {ca_file}: not found; give the CA that issued the "
                       "directory's certificate (`stateless pki init` writes ca.crt)")
    return ldap3.Tls(ca_certs_file=str(ca_file), validate=ssl.CERT_REQUIRED,
                     version=ssl.PROTOCOL_TLS_CLIENT,
                     local_certificate_file=str(cert_file) if cert_file else None,
                     local_private_key_file=str(key_file) if key_file else None)

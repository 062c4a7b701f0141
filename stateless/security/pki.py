"""A small CA for the service: server certificates for the API and the directory, client
certificates for admins, and the SHA-256 fingerprint the boot agent pins.

Keys are ECDSA P-256: every TLS stack involved (OpenSSL under Python and Twisted, GnuTLS under
Debian's slapd) supports it, keys and handshakes are cheap, and a certificate is a few hundred
bytes. The CA lives ten years, certificates 825 days. Keys are written unencrypted with mode
0600 (the daemon starts unattended); an admin may bring their own CA and certificates instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import ssl
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stateless.errors import StatelessError, ValidationError

CA_DAYS = 3650
CERT_DAYS = 825
CA_KEY, CA_CERT = "ca.key", "ca.crt"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


class PkiError(StatelessError):
    """A certificate or key could not be made, read or used."""


@attrs.frozen
class Issued:
    """Files written for one certificate: the key (0600) and the certificate (then the CA's)."""

    key: Path
    cert: Path
    fingerprint: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fingerprint_der(der: bytes) -> str:
    """SHA-256 of a certificate's DER, 64 lower-case hex digits: the form the agent pins."""
    return hashlib.sha256(der).hexdigest()


def fingerprint(cert: x509.Certificate) -> str:
    return fingerprint_der(cert.public_bytes(serialization.Encoding.DER))


def normalize_fingerprint(text: str) -> str:
    """Accept `AB:CD:…` or `abcd…`; return 64 lower-case hex digits."""
    value = text.strip().lower().replace(":", "")
    if not _FINGERPRINT.fullmatch(value):
        raise ValidationError(f"fingerprint {text!r}: expected the SHA-256 of a certificate, 64 hex "
                              "digits (`stateless pki fingerprint ca.crt` prints it)")
    return value


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file (or the one in a DER file)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"certificate file {path}: {exc.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise PkiError(f"certificate file {path}: not a PEM or DER certificate") from None
    return certs


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"key file {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise PkiError(f"key file {path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"key file {path}: expected an ECDSA key (made by `stateless pki`)")
    return key


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def init_ca(directory: Path, name: str = "stateless CA", *, now: dt.datetime | None = None,
            days: int = CA_DAYS) -> Issued:
    """A new CA in `directory`: ca.key (0600) and ca.crt; refuses to replace an existing one."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file, cert_file = directory / CA_KEY, directory / CA_CERT
    if key_file.exists() or cert_file.exists():
        raise PkiError(f"{directory} already holds a CA ({CA_KEY}, {CA_CERT}); issue certificates "
                       "with `stateless pki issue`, or choose another --dir")
    if not name.strip() or len(name) > 64:
        raise ValidationError(f"CA name {name!r}: give 1-64 characters")
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    _write(key_file, _key_pem(key), 0o600)
    _write(cert_file, _pem(cert), 0o644)
    return Issued(key_file, cert_file, fingerprint(cert))


def _load_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    if not (directory / CA_KEY).exists():
        raise PkiError(f"{directory}: no CA ({CA_KEY}); create one with `stateless pki init --dir "
                       f"{directory}`")
    return load_key(directory / CA_KEY), load_certificates(directory / CA_CERT)[0]


def _san(name: str, dns: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for value in [name, *dns]:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
            continue
        except ValueError:
            pass
        if not _NAME.fullmatch(value):
            raise ValidationError(f"DNS name {value!r}: expected a host name such as "
                                  "sd-a1.example.com")
        names.append(x509.DNSName(value))
    for value in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            raise ValidationError(f"--ip {value!r}: not an IP address") from None
    return list(dict.fromkeys(names))


def issue(directory: Path, name: str, *, client: bool = False, dns: Sequence[str] = (),
          ips: Sequence[str] = (), now: dt.datetime | None = None, days: int = CERT_DAYS) -> Issued:
    """A server (or, with `client`, a client) certificate signed by the CA in `directory`.

    A server certificate names `name`, every `dns` and every `ips` in its subjectAltName; its
    file holds the certificate then the CA's, so a server sends the chain the agent pins.
    """
    if not _NAME.fullmatch(name):
        raise ValidationError(f"name {name!r}: use letters, digits, '.', '_' and '-' (it also "
                              "names the files)")
    ca_key, ca_cert = _load_ca(directory)
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    if key_file.exists() or cert_file.exists():
        raise PkiError(f"{cert_file}: exists already; remove {key_file.name} and {cert_file.name} "
                       "to issue a new one")
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if not client:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san(name, dns, ips)),
                                        critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(key_file, _key_pem(key), 0o600)
    _write(cert_file, _pem(cert) + _pem(ca_cert), 0o644)
    return Issued(key_file, cert_file, fingerprint(cert))


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca` issued `cert` (name and signature)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def server_context(cert_file: Path, key_file: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """The TLS context a server (the daemon's HTTPS API) serves with: TLS 1.2 or later, the
    chain from `cert_file`; with `client_ca`, client certificates issued by it are asked for
    and verified (optional at the TLS level: the API decides which requests need one)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
        if client_ca is not None:
            context.load_verify_locations(cafile=str(client_ca))
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise PkiError(f"TLS files {cert_file}, {key_file}{', ' + str(client_ca) if client_ca else ''}"
                       f": {getattr(exc, 'strerror', None) or exc}; check that the key matches "
                       "the certificate (`stateless pki issue` writes both)") from None
    return context


def client_name(peer: dict[str, object] | None) -> str | None:
    """The common name of a verified client certificate (`SSLSocket.getpeercert()`), or None."""
    for rdn in (peer or {}).get("subject", ()):  # type: ignore[attr-defined]
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None

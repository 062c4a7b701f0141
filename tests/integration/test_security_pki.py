"""`stateless pki`: the certificates it makes serve real TLS on loopback and verify as they should."""

from __future__ import annotations

import io
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from stateless.cli import main
from stateless.security import pki
from tests.integration.fixtures_daemon import wait_for
from tests.integration.tls_server import ask, tls_server


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out=out, err=err, environ={})
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    status, out, err = run("pki", "init", "--dir", str(directory), "--name", "Test CA")
    assert status == 0, err
    assert "fingerprint" in out
    return directory


def client_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def test_init_writes_a_ca_with_private_keys(ca: Path) -> None:
    assert (ca / "ca.key").stat().st_mode & 0o777 == 0o600
    cert = pki.load_certificates(ca / "ca.crt")[0]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject.rfc4514_string() == "CN=Test CA"
    status, _, err = run("pki", "init", "--dir", str(ca))
    assert status == 1 and "already holds a CA" in err


def test_server_certificate_serves_tls_that_only_its_ca_accepts(ca: Path, tmp_path: Path) -> None:
    status, _, err = run("pki", "issue", "--dir", str(ca), "--server", "sd-a1.example.com",
                           "--dns", "localhost", "--ip", "127.0.0.1")
    assert status == 0, err
    assert (ca / "sd-a1.example.com.key").stat().st_mode & 0o777 == 0o600
    leaf, chain_ca = pki.load_certificates(ca / "sd-a1.example.com.crt")
    assert pki.signed_by(leaf, chain_ca) and chain_ca == pki.load_certificates(ca / "ca.crt")[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"sd-a1.example.com", "localhost"}
    other = tmp_path / "other"
    assert run("pki", "init", "--dir", str(other))[0] == 0

    context = pki.server_context(ca / "sd-a1.example.com.crt", ca / "sd-a1.example.com.key")
    with tls_server(context) as server:
        assert ask(server.port, client_context(ca / "ca.crt")) == "hello -"
        assert ask(server.port, client_context(ca / "ca.crt"), "127.0.0.1") == "hello -"
        with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate in"):
            ask(server.port, client_context(other / "ca.crt"))
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            ask(server.port, client_context(ca / "ca.crt"), "sd-b1.example.com")


def test_client_certificate_verifies_against_the_ca(ca: Path, tmp_path: Path) -> None:
    assert run("pki", "issue", "--dir", str(ca), "--server", "localhost")[0] == 0
    assert run("pki", "issue", "--dir", str(ca), "--client", "alice")[0] == 0
    other = tmp_path / "other"
    assert run("pki", "init", "--dir", str(other))[0] == 0
    assert run("pki", "issue", "--dir", str(other), "--client", "mallory")[0] == 0

    context = pki.server_context(ca / "localhost.crt", ca / "localhost.key",
                                 client_ca=ca / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED  # this test: a connection without one fails
    with tls_server(context) as server:
        alice = client_context(ca / "ca.crt")
        alice.load_cert_chain(ca / "alice.crt", ca / "alice.key")
        assert ask(server.port, alice) == "hello alice"
        mallory = client_context(ca / "ca.crt")
        mallory.load_cert_chain(other / "mallory.crt", other / "mallory.key")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ask(server.port, mallory)
        # A server certificate is not a client certificate (extended key usage).
        impostor = client_context(ca / "ca.crt")
        impostor.load_cert_chain(ca / "localhost.crt", ca / "localhost.key")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ask(server.port, impostor)
        # The server records a refused handshake in its own thread, maybe after the client
        # has seen the refusal: wait for it rather than race it.
        wait_for(lambda: len(server.errors) == 2, timeout=10, what="two refused handshakes")
        assert server.clients == ["alice"]


def test_fingerprint_is_the_sha256_of_the_der(ca: Path) -> None:
    status, out, _ = run("pki", "fingerprint", str(ca / "ca.crt"))
    der = ssl.PEM_cert_to_DER_cert((ca / "ca.crt").read_text())
    assert status == 0 and out.strip() == pki.fingerprint_der(der)
    assert len(out.strip()) == 64
    status, _, err = run("pki", "fingerprint", str(ca / "ca.key"))
    assert status == 1 and "not a PEM or DER certificate" in err


def test_issue_refuses_what_it_cannot_do(ca: Path, tmp_path: Path) -> None:
    status, _, err = run("pki", "issue", "--dir", str(tmp_path / "none"), "--server", "x")
    assert status == 1 and "pki init" in err
    status, _, err = run("pki", "issue", "--dir", str(ca), "--server", "x", "--ip", "not-an-ip")
    assert status == 1 and "not an IP address" in err
    status, _, err = run("pki", "issue", "--dir", str(ca))
    assert status == 2
    assert run("pki", "issue", "--dir", str(ca), "--server", "x")[0] == 0
    status, _, err = run("pki", "issue", "--dir", str(ca), "--server", "x")
    assert status == 1 and "exists already" in err

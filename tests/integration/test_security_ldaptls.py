"""TLS to the directory: a slapd of its own with a certificate from `stateless pki`, LDAPS and
StartTLS, verified against the CA, through the adapter and the real ldapsearch."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE, ROOT_DN, EmbeddedDirectory
from stateless.errors import DirectoryError
from stateless.security import pki
from stateless.security.ldaptls import client_tls, slapd_tls_ldif
from tests.ports import free_port


@attrs.frozen
class TlsSlapd:
    ldap_url: str
    ldaps_url: str
    misnamed_url: str  # the same server on an address its certificate does not name
    password: str
    password_file: Path
    ca: Path
    other_ca: Path


def _wait_listening(port: int, proc: subprocess.Popen[bytes], host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, "slapd exited at start"
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"slapd does not listen on {port}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def tls_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSlapd]:
    data = tmp_path_factory.mktemp("tls-slapd")
    ca_dir, other = data / "pki", data / "other"
    pki.init_ca(ca_dir)
    made = pki.issue(ca_dir, "localhost", ips=["127.0.0.1"])
    pki.init_ca(other)
    instance = EmbeddedDirectory(data / "ldap", port=free_port())
    instance.start()
    # Certificate into cn=config with the real ldapmodify, as an admin would; then restart
    # with an ldaps:// listener next to ldap:// (see docs/security.md).
    proc = subprocess.run(["ldapmodify", "-x", "-H", instance.url, "-D", ROOT_DN, "-y",
                           str(instance.password_file)], input=slapd_tls_ldif(
                               made.cert, made.key, ca_dir / "ca.crt"),
                          text=True, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    instance.stop()
    ldap_port, ldaps_port, misnamed_port = free_port(), free_port(), free_port()
    slapd = subprocess.Popen(
        ["/usr/sbin/slapd", "-F", str(data / "ldap" / "config"), "-h",
         f"ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/ "
         f"ldaps://127.0.0.2:{misnamed_port}/", "-d", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        _wait_listening(ldap_port, slapd)
        _wait_listening(ldaps_port, slapd)
        _wait_listening(misnamed_port, slapd, "127.0.0.2")
        yield TlsSlapd(f"ldap://127.0.0.1:{ldap_port}", f"ldaps://127.0.0.1:{ldaps_port}",
                       f"ldaps://127.0.0.2:{misnamed_port}",
                       instance.password_file.read_text(), instance.password_file,
                       ca_dir / "ca.crt", other / "ca.crt")
    finally:
        slapd.terminate()
        slapd.wait(timeout=20)


@pytest.mark.parametrize("which", ["ldap_url", "ldaps_url"])
def test_the_adapter_talks_tls_verified_against_the_ca(tls_slapd: TlsSlapd, which: str) -> None:
    url = getattr(tls_slapd, which)
    with Directory([url], ROOT_DN, tls_slapd.password, base=DEFAULT_BASE,
                   tls=client_tls(tls_slapd.ca)) as d:
        assert d.read(DEFAULT_BASE, attributes=["ou"]) == {"ou": ["stateless"]}
        conn = d._conn()  # the connection the operations used
        assert conn.tls_started or conn.server.ssl
    with Directory([url], ROOT_DN, tls_slapd.password, base=DEFAULT_BASE,
                   tls=client_tls(tls_slapd.other_ca)) as wrong, \
            pytest.raises(DirectoryError, match="cannot talk to the directory"):
        wrong.read(DEFAULT_BASE)


def test_the_host_name_is_checked(tls_slapd: TlsSlapd) -> None:
    # The certificate names localhost and 127.0.0.1; the same server at 127.0.0.2 is refused.
    with Directory([tls_slapd.misnamed_url], ROOT_DN, tls_slapd.password, base=DEFAULT_BASE,
                   tls=client_tls(tls_slapd.ca)) as d, \
            pytest.raises(DirectoryError, match=r"127\.0\.0\.2") as caught:
        d.read(DEFAULT_BASE)
    assert "doesn't match" in str(caught.value), caught.value


def test_ldapsearch_with_starttls_and_ldaps(tls_slapd: TlsSlapd) -> None:
    env = {**os.environ, "LDAPTLS_CACERT": str(tls_slapd.ca), "LDAPTLS_REQCERT": "demand"}
    for args in (["-ZZ", "-H", tls_slapd.ldap_url], ["-H", tls_slapd.ldaps_url]):
        proc = subprocess.run(["ldapsearch", "-x", "-LLL", *args, "-D", ROOT_DN, "-y",
                               str(tls_slapd.password_file), "-b", DEFAULT_BASE, "-s", "base",
                               "dn"], env=env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0 and DEFAULT_BASE in proc.stdout, proc.stderr
    env["LDAPTLS_CACERT"] = str(tls_slapd.other_ca)
    proc = subprocess.run(["ldapsearch", "-x", "-ZZ", "-H", tls_slapd.ldap_url, "-D", ROOT_DN,
                           "-y", str(tls_slapd.password_file), "-b", DEFAULT_BASE, "-s", "base"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0

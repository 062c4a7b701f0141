"""The agent signs its births and pins the API's CA, against real HTTP(S) servers on loopback.

Each server verifies births with `stateless.security.birthauth.authenticate`, the call the
daemon will make, over the bytes it received; HTTPS servers serve certificates made by
`stateless pki`.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs
import pytest

from stateless.agent.bundle import build_zipapp
from stateless.agent.cli import main
from stateless.agent.signing import Authorization, format_enrollment_key
from stateless.model.inventory import Site
from stateless.security import enroll, pki, seal
from stateless.security.birthauth import BirthAuthError, authenticate

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"


@attrs.define
class Verifier:
    """What a test server knows: the sites and key file, the nonces it has seen, its log."""

    sites: dict[str, Site]
    ring: seal.KeyRing
    fail_first: int = 0  # answer 503 to this many births before verifying
    nonces: set[str] = attrs.field(factory=set)
    accepted: list[Authorization] = attrs.field(factory=list)
    refused: list[str] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def seen(self, auth: Authorization) -> bool:
        with self.lock:
            known = auth.nonce in self.nonces
            self.nonces.add(auth.nonce)
            return known

    def answer(self, header: str | None, body: bytes) -> tuple[int, dict[str, str]]:
        if self.fail_first > 0:
            self.fail_first -= 1
            return 503, {"error": "busy elsewhere"}
        try:
            auth = authenticate(header, body, self.sites, self.ring, now=time.time(),
                                replay=self.seen)
        except BirthAuthError as exc:
            self.refused.append(exc.reason)
            return 401, {"error": exc.message}
        self.accepted.append(auth)
        return 202, {"host": json.loads(body)["uuid"], "status_url": f"/v1/hosts/{UUID}"}


def _handler(verifier: Verifier) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status, doc = verifier.answer(self.headers.get("authorization"), body)
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    return Handler


@contextmanager
def birth_server(verifier: Verifier, context: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(verifier))
    scheme = "http"
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@attrs.frozen
class Keys:
    verifier: Verifier
    current: str  # KEYID:BASE64 of the newest key
    previous: str
    identity: Path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    ring = seal.load_keyring(tmp_path / "secret.key", create=True)
    old = enroll.new_key("siteA", ring, datetime(2026, 1, 1, tzinfo=UTC))
    new = enroll.new_key("siteA", ring, datetime(2026, 2, 1, tzinfo=UTC))
    identity = tmp_path / "identity.json"
    identity.write_text(json.dumps({"uuid": UUID, "serial": "SN1"}))
    return Keys(Verifier({"siteA": Site("siteA", enroll_keys=(old.key, new.key))}, ring),
                format_enrollment_key(new.key.key_id, new.secret),
                format_enrollment_key(old.key.key_id, old.secret), identity)


def agent(keys: Keys, *argv: str) -> tuple[int, list[str]]:
    logs: list[str] = []
    status = main(["--identity", str(keys.identity), "--state", "", "--attempts", "1",
                   "--request-timeout", "10", *argv], sleep=lambda _: None, log=logs.append)
    return status, logs


def test_births_are_signed_with_the_current_or_previous_key(keys: Keys, tmp_path: Path) -> None:
    with birth_server(keys.verifier) as url:
        assert agent(keys, "--server", url, "--site", "siteA", "--enroll-key", keys.current)[0] == 0
        key_file = tmp_path / "enroll.key"
        key_file.write_text(keys.previous + "\n")
        assert agent(keys, "--server", url, "--site", "siteA", "--enroll-key-file",
                     str(key_file))[0] == 0
        assert agent(keys, "--server", url, "--cmdline",
                     f"BOOT_IMAGE=/b.b00 stateless.site=siteA stateless.enroll-key={keys.current}"
                     )[0] == 0
    assert [a.key_id for a in keys.verifier.accepted] == [
        keys.current.split(":")[0], keys.previous.split(":")[0], keys.current.split(":")[0]]
    assert len(keys.verifier.nonces) == 3 and not keys.verifier.refused


def test_unsigned_or_badly_signed_births_are_refused(keys: Keys) -> None:
    forged = keys.current.split(":")[0] + ":" + "A" * 43
    with birth_server(keys.verifier) as url:
        status, logs = agent(keys, "--server", url)
        assert status == 2 and "401" in logs[-1] and "no Authorization header" in logs[-1]
        status, logs = agent(keys, "--server", url, "--site", "siteA", "--enroll-key", forged)
        assert status == 2 and "bad signature" in logs[-1]
        status, logs = agent(keys, "--server", url, "--site", "siteB", "--enroll-key", keys.current)
        assert status == 2 and "unknown site siteB" in logs[-1]
    assert not keys.verifier.accepted


def test_every_try_is_signed_anew(keys: Keys) -> None:
    keys.verifier.fail_first = 1
    with birth_server(keys.verifier) as first, birth_server(keys.verifier) as second:
        status, _ = agent(keys, "--server", first, "--server", second, "--site", "siteA",
                          "--enroll-key", keys.current)
    assert status == 0 and len(keys.verifier.accepted) == 1


def test_the_agent_refuses_unusable_key_options(keys: Keys, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in [
        (["--enroll-key", keys.current], "belongs to a site"),
        (["--site", "siteA", "--enroll-key", "k1:AAAA"], "32 bytes"),
        (["--site", "siteA", "--enroll-key", keys.current, "--enroll-key-file", "x"], "not both"),
        (["--site", "siteA", "--enroll-key-file", str(tmp_path / "none")], "No such file"),
        (["--ca-fingerprint", "abcd"], "64 hex digits"),
    ]:
        assert agent(keys, "--server", "http://127.0.0.1:1", *argv)[0] == 2
        assert message in capsys.readouterr().err


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    """A CA that issued the API's certificate, and another CA."""
    ours, other = tmp_path / "pki", tmp_path / "other"
    pki.init_ca(ours)
    pki.issue(ours, "localhost", ips=["127.0.0.1"])
    pki.init_ca(other)
    pki.issue(other, "localhost")
    return ours, other


def _context(directory: Path, chain: Path | None = None) -> ssl.SSLContext:
    return pki.server_context(chain or directory / "localhost.crt", directory / "localhost.key")


def test_the_agent_pins_the_ca_by_fingerprint(keys: Keys, tls: tuple[Path, Path]) -> None:
    ours, other = tls
    pinned = pki.fingerprint(pki.load_certificates(ours / "ca.crt")[0])
    wrong = pki.fingerprint(pki.load_certificates(other / "ca.crt")[0])
    signed = ("--site", "siteA", "--enroll-key", keys.current)
    with birth_server(keys.verifier, _context(ours)) as url:
        assert agent(keys, "--server", url, "--ca-fingerprint", pinned, *signed)[0] == 0
        colons = ":".join(pinned[i:i + 2] for i in range(0, 64, 2)).upper()
        assert agent(keys, "--server", url, "--cmdline", f"stateless.ca={colons}", *signed)[0] == 0
        status, logs = agent(keys, "--server", url, "--ca-fingerprint", wrong, *signed)
        assert status == 1 and any("did not send the pinned CA" in line for line in logs)
        http_url = url.replace("https:", "http:")
        status, logs = agent(keys, "--server", http_url, "--ca-fingerprint", pinned, *signed)
        assert status == 1 and any("plain http refused" in line for line in logs)
    assert len(keys.verifier.accepted) == 2


def test_a_chain_with_the_pinned_ca_does_not_vouch_for_a_leaf_it_did_not_sign(
        keys: Keys, tls: tuple[Path, Path], tmp_path: Path) -> None:
    ours, other = tls
    # Another CA's certificate, served with our CA appended: the pin is found, the leaf fails.
    forged_chain = tmp_path / "forged.crt"
    forged_chain.write_bytes((other / "localhost.crt").read_bytes() + (ours / "ca.crt").read_bytes())
    pinned = pki.fingerprint(pki.load_certificates(ours / "ca.crt")[0])
    with birth_server(keys.verifier, _context(other, forged_chain)) as url:
        status, logs = agent(keys, "--server", url, "--ca-fingerprint", pinned,
                             "--site", "siteA", "--enroll-key", keys.current)
    assert status == 1 and any("CERTIFICATE_VERIFY_FAILED" in line for line in logs)
    assert not keys.verifier.accepted


def test_the_zipapp_signs_and_pins_on_a_bare_interpreter(keys: Keys, tls: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    ours, _ = tls
    pyz = tmp_path / "agent.pyz"
    build_zipapp(pyz, vendor_dnspython=True)
    pinned = pki.fingerprint(pki.load_certificates(ours / "ca.crt")[0])
    with birth_server(keys.verifier, _context(ours)) as url:
        # -S: no site-packages, only the standard library and what the archive carries.
        proc = subprocess.run(
            [sys.executable, "-S", str(pyz), "--identity", str(keys.identity), "--state", "",
             "--attempts", "1", "--server", url, "--cmdline",
             f"stateless.site=siteA stateless.enroll-key={keys.current} stateless.ca={pinned}"],
            capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [a.site for a in keys.verifier.accepted] == ["siteA"]

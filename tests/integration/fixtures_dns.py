"""A private BIND `named` on a free loopback port, with a zone open to TSIG-signed updates only."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

from stateless.dns.tsig import TsigKey
from tests.ports import free_port

NAMED = shutil.which("named") or "/usr/sbin/named"


@attrs.frozen
class Named:
    """Where the test name server listens and how to sign updates for its zone."""

    host: str
    port: int
    zone: str
    keyfile: Path
    keyname: str
    directory: Path

    @property
    def key(self) -> TsigKey:
        return TsigKey.from_file(self.keyfile)


def _zone_text(zone: str) -> str:
    return (f"$ORIGIN {zone}.\n$TTL 60\n"
            f"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n"
            f"@ IN NS ns.{zone}.\n"
            "ns IN A 127.0.0.1\n")


def _conf(directory: Path, port: int, zone: str, keyfile: Path, keyname: str) -> str:
    return f"""
options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    session-keyfile "{directory}/session.key";
    managed-keys-directory "{directory}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ 127.0.0.1; }};
    notify no;
}};
controls {{ }};
include "{keyfile}";
zone "{zone}" {{
    type primary;
    file "{directory}/{zone}.zone";
    allow-update {{ key "{keyname}"; }};
}};
"""


def _answers(port: int, zone: str) -> bool:
    query = dns.message.make_query(f"{zone}.", dns.rdatatype.SOA)
    try:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except (OSError, dns.exception.Timeout):
        return False
    return bool(response.answer)


def start_named(directory: Path, zone: str = "example.test",
                keyname: str = "stateless-update") -> tuple[Named, subprocess.Popen[bytes]]:
    """Start named in `directory` and wait until it answers for `zone`."""
    directory.mkdir(parents=True, exist_ok=True)
    keyfile = directory / "update.key"
    keyfile.write_text(TsigKey(keyname, base64.b64encode(os.urandom(32)).decode()).to_bind())
    (directory / f"{zone}.zone").write_text(_zone_text(zone))
    port = free_port()
    conf = directory / "named.conf"
    conf.write_text(_conf(directory, port, zone, keyfile, keyname))
    log = (directory / "named.log").open("wb")
    proc = subprocess.Popen([NAMED, "-g", "-n", "1", "-c", str(conf)], stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not _answers(port, zone):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("named did not start:\n" + (directory / "named.log").read_text())
        time.sleep(0.05)
    return Named("127.0.0.1", port, zone, keyfile, keyname, directory), proc


def stop_named(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Named]:
    """A running named serving example.test; updates need the TSIG key in `keyfile`."""
    server, proc = start_named(tmp_path_factory.mktemp("named"))
    try:
        yield server
    finally:
        stop_named(proc)

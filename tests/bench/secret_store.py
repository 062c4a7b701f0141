"""Secrets: opening one SNMP secret N times from a real slapd, key file read per open or kept.

    .venv/bin/python tests/bench/secret_store.py [N] [--keys 3] [--rounds 3]

One private slapd holding one sealed SNMP community, a key file of `--keys` keys (as after
that many rotations). Each round opens the secret N times in this process two ways: as
before, the key file read and parsed at every open (`read_secret` with `load_keyring`), and
as the applier does now (`SecretResolver`: one key ring, the file only looked at with
`os.stat`). Both do the same directory read and the same unseal, so the difference is the
key file. Printed per round and as the median of the rounds: CPU (process time) and wall
time per open of each, and the ratio before/after (higher is better; both include the LDAP
read, which costs most of an open); then the key ring alone, read per open or kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from stateless.directory.client import Directory  # noqa: E402
from stateless.directory.embedded import EmbeddedDirectory  # noqa: E402
from stateless.directory.secrets import (  # noqa: E402
    SecretKind,
    SecretResolver,
    read_secret,
    set_secret,
)
from stateless.security.seal import KeyFileRing, add_key, load_keyring  # noqa: E402
from tests.ports import free_port  # noqa: E402

BASE = "ou=stateless,dc=example,dc=com"
NAME = "snmp-ro"
VALUE = "bench-community-4f1a"


def timed(n: int, opens: Callable[[], str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per open over n opens; every open must give the value."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        if opens() != VALUE:
            raise SystemExit("an open gave another value")
    return (time.process_time() - cpu) / n, (time.perf_counter() - wall) / n


def ring_only(n: int, key: Path) -> tuple[float, float]:
    """CPU seconds per key ring obtained: read and parsed each time, or kept (stat only)."""
    kept = KeyFileRing(key)
    out = []
    for get in (lambda: load_keyring(key), kept):
        cpu = time.process_time()
        for _ in range(n):
            get()
        out.append((time.process_time() - cpu) / n)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.n <= 100_000 or not 1 <= args.keys <= 50:
        parser.error("N: 1..100000, --keys: 1..50")
    with tempfile.TemporaryDirectory(prefix="secrets-bench-") as tmp_text:
        tmp = Path(tmp_text)
        ldap = EmbeddedDirectory(tmp / "slapd", port=free_port())
        ldap.start()
        try:
            directory = Directory([ldap.url], ldap.bind_dn, ldap.password_file.read_text().strip(),
                                  base=BASE)
            directory.init()
            key = tmp / "secret.key"
            load_keyring(key, create=True)
            for _ in range(args.keys - 1):
                add_key(key)
            set_secret(directory, SecretKind.SNMP, NAME, VALUE, load_keyring(key))
            resolver = SecretResolver(directory, key)

            def before() -> str:
                kind, clear = read_secret(directory, NAME, load_keyring(key))
                assert kind is SecretKind.SNMP
                return clear

            def after() -> str:
                return resolver(NAME, "snmp.communities")

            timed(min(args.n, 100), before)  # warm up both paths
            timed(min(args.n, 100), after)
            rows = []
            for r in range(args.rounds):
                old, new = timed(args.n, before), timed(args.n, after)
                rows.append((old, new))
                print(f"round {r + 1}: key file per open {old[0] * 1e6:7.1f} us CPU "
                      f"{old[1] * 1e6:7.1f} us wall | kept {new[0] * 1e6:7.1f} us CPU "
                      f"{new[1] * 1e6:7.1f} us wall")
            old_cpu = statistics.median(o[0] for o, _ in rows)
            new_cpu = statistics.median(n[0] for _, n in rows)
            old_wall = statistics.median(o[1] for o, _ in rows)
            new_wall = statistics.median(n[1] for _, n in rows)
            print(f"{args.n} opens of one SNMP secret, {args.keys} key(s) in the key file, "
                  f"median of {args.rounds} rounds:")
            print(f"  before (key file read per open): {old_cpu * 1e6:7.1f} us CPU, "
                  f"{old_wall * 1e6:7.1f} us wall per open")
            print(f"  after  (key ring kept):          {new_cpu * 1e6:7.1f} us CPU, "
                  f"{new_wall * 1e6:7.1f} us wall per open")
            print(f"  ratio before/after: CPU {old_cpu / new_cpu:.2f}, wall {old_wall / new_wall:.2f}")
            read, kept = ring_only(args.n, key)
            print(f"  the key ring alone: read per open {read * 1e6:.1f} us CPU, kept "
                  f"{kept * 1e6:.1f} us CPU, ratio {read / kept:.1f}")
            directory.close()
        finally:
            ldap.stop()


if __name__ == "__main__":
    main()

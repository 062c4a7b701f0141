"""Replication latency per hop in a three-provider mesh with a consumer, and agreements per topology.

Run: .venv/bin/python tests/bench/replication.py [--samples N] [--entries N]

Starts three private slapd providers in a full mesh (server IDs 1-3) and a consumer of
provider 1 that chains writes to it, all on 127.0.0.1.  Each sample modifies one entry on a
writer and polls a reader with one-entry base searches until the new value shows, so every
figure includes the write and at most one search of polling granularity.  The baseline is
the same on one node (write, then read it back there); the ratio says what a hop adds.  Then
it times `directory check` (stateless.directory.replicas.check) of an N-entry subtree across
the four replicas against one read of that subtree, and prints the replication agreements
that full meshes and provider meshes with per-site consumers need.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ldap3

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from stateless.directory import replicas, topology
from stateless.directory.embedded import DEFAULT_BASE, ROOT_DN, EmbeddedDirectory
from tests.ports import free_port


def connect(url: str, password: str) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(url, get_info=ldap3.NONE), ROOT_DN, password,
                            auto_bind=True)


def value(conn: ldap3.Connection, dn: str) -> str | None:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["description"])
    return str(conn.entries[0].description) if conn.entries else None


def hop(writer: ldap3.Connection, reader: ldap3.Connection, dn: str, samples: int, tag: str,
        timeout: float = 10.0) -> list[float]:
    """Milliseconds from the start of a modify on `writer` until `reader` returns the value."""
    out = []
    for n in range(samples):
        marker = f"{tag}-{n}-{time.monotonic_ns()}"
        start = time.perf_counter()
        writer.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [marker])]})
        while value(reader, dn) != marker:
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"{tag}: value not replicated after {timeout} s")
        out.append((time.perf_counter() - start) * 1000)
    return out


def timed(action: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def start_mesh(root: Path) -> tuple[list[EmbeddedDirectory], str]:
    ports = [free_port() for _ in range(4)]
    urls = [f"ldap://127.0.0.1:{p}" for p in ports]
    first = root / "p1" / "admin.password"
    nodes = [EmbeddedDirectory(root / f"p{i}", port=ports[i - 1], server_id=i,
                               peers=tuple(topology.peer_map(dict(enumerate(urls[:3], 1)), i)),
                               admin_password_file=None if i == 1 else first) for i in (1, 2, 3)]
    nodes.append(EmbeddedDirectory(root / "c4", port=ports[3], server_id=4, role="consumer",
                                   provider=urls[0], admin_password_file=first))
    for node in nodes:
        node.start()
    return nodes, first.read_text()


def wait_for(conn: ldap3.Connection, dn: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while value(conn, dn) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"{dn}: not replicated to {conn.server} after {timeout} s")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--entries", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replication-") as tmp:
        nodes, password = start_mesh(Path(tmp))
        try:
            run(nodes, password, args.samples, args.entries)
        finally:
            for node in nodes:
                node.stop()
    print("\nreplication agreements per topology (each is one syncrepl session to keep up):")
    for n in (2, 3, 5, 10, 20, 50, 100):
        print(f"  full mesh of {n:3d} providers:                 {topology.agreements(n):6d}")
    for sites in (10, 100, 300):
        print(f"  3-provider mesh + {sites:3d} per-site consumers:    "
              f"{topology.agreements(3, consumers=sites):6d}")


def run(nodes: list[EmbeddedDirectory], password: str, samples: int, entries: int) -> None:
    p1, p2, p3, consumer = (connect(n.url, password) for n in nodes)
    dn = f"ou=bench,{DEFAULT_BASE}"
    p1.add(dn, ["organizationalUnit"], {"description": "start"})
    for conn in (p2, p3, consumer):
        wait_for(conn, dn)

    hops = [
        ("same node (baseline): write p1, read p1", p1, p1),
        ("provider -> provider: write p1, read p2", p1, p2),
        ("provider -> consumer: write p1, read c4", p1, consumer),
        ("two hops: write p2, read c4 (via p1)", p2, consumer),
        ("chained write comes back: write c4, read c4", consumer, consumer),
    ]
    print(f"replication latency, {samples} modifies each (ms: median, p90; ratio of medians "
          "to the baseline):")
    baseline = None
    for label, writer, reader in hops:
        hop(writer, reader, dn, 3, "warm")
        times = sorted(hop(writer, reader, dn, samples, label.split(":")[0]))
        median, p90 = statistics.median(times), times[int(len(times) * 0.9) - 1]
        baseline = baseline or median
        print(f"  {label:46s} {median:7.2f} {p90:7.2f}   x{median / baseline:5.1f}")

    sub = f"ou=check,{DEFAULT_BASE}"
    p1.add(sub, ["organizationalUnit"])
    for i in range(entries):
        p1.add(f"ou=e{i},{sub}", ["organizationalUnit"], {"description": f"entry {i}"})
    last = f"ou=e{entries - 1},{sub}"
    for conn in (p2, p3, consumer):
        wait_for(conn, last)
    urls = [n.url for n in nodes]
    read_one = timed(lambda: replicas.read_replica(urls[0], ROOT_DN, password, sub))
    check_all = timed(lambda: replicas.check(urls, ROOT_DN, password, sub, settle=0))
    report = replicas.check(urls, ROOT_DN, password, sub, settle=0)
    assert report.converged and report.checked == entries + 1, report.as_json()
    print(f"\ndirectory check of {entries + 1} entries on {len(urls)} replicas: {check_all:.0f} ms "
          f"(one replica's read: {read_one:.0f} ms, x{check_all / read_one:.1f})")


if __name__ == "__main__":
    main()

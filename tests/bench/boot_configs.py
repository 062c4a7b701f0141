"""Boot configs: 1,000 concurrent boot.cfg requests against one statelessd, against a static file.

    .venv/bin/python tests/bench/boot_configs.py [N] [--rounds 3]

One private slapd holding N known hosts (identity with a MAC, each placed by a deploy rule in
one of two clusters, one of which has an image assigned), one daemon with --image-root.
Each round opens N connections at once (asyncio, one request each, `Connection: close`):
first N requests for the hosts' own `/boot/{uuid}/boot.cfg` (rendered from the snapshot:
rules, container assignment, site servers), then N requests for a static file of the same
size served by the same Twisted process (`/boot/images/`, Twisted's static.File). Printed per
round and as the median of the rounds: requests/s and p99 latency of each, and the ratios
rendered/static (requests/s ratio >= 0.5 and p99 ratio <= 2 are the targets: rendering
must not cost more than serving a file does).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stateless.boot.bootcfg import parse_bootcfg  # noqa: E402
from stateless.directory.client import Directory  # noqa: E402
from stateless.directory.embedded import EmbeddedDirectory  # noqa: E402
from stateless.model.identity import HostIdentity  # noqa: E402
from stateless.model.inventory import ContainerKind, Image, Rule  # noqa: E402
from stateless.security.seal import load_keyring  # noqa: E402
from tests.integration.fixtures_daemon import start_daemon  # noqa: E402
from tests.integration.fixtures_slapd import Slapd  # noqa: E402
from tests.ports import free_port  # noqa: E402

BASE = "ou=stateless,dc=example,dc=com"
DATA = ROOT / "tests" / "unit" / "data" / "esxi8-boot.cfg"


def uuid_of(n: int) -> str:
    return f"4c4c4544-0000-4000-8000-{n:012x}"


def prepare(directory: Directory, n: int) -> None:
    directory.init()
    directory.add_container("/DC1", ContainerKind.DATACENTER)
    directory.add_container("/DC1/A", ContainerKind.CLUSTER)
    directory.add_container("/DC1/B", ContainerKind.CLUSTER)
    cfg = parse_bootcfg(DATA.read_text())
    for name in ("esx8", "esx8u1"):
        directory.add_image(Image(name, cfg.build or "", cfg.kernel.lstrip("/"),
                                  tuple(m.lstrip("/") for m in cfg.modules), cfg.kernelopt,
                                  f"http://images.example.com/{name}"))
    directory.add_rule(Rule("dell", 10, {"vendor": "Dell*"}, location="/DC1/A", image="esx8"))
    directory.add_rule(Rule("rest", 20, {}, location="/DC1/B", image="esx8"))
    from stateless.directory.images import assign_image

    assign_image(directory, "/DC1/B", "esx8u1")
    for i in range(n):
        directory.add_host(uuid_of(i), identity=HostIdentity(
            uuid_of(i), vendor="Dell Inc." if i % 2 else "HPE",
            macs=(f"00:50:56:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",)))


async def one(host: str, port: int, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return time.perf_counter() - started, status


async def burst(host: str, port: int, paths: list[str]) -> tuple[float, float]:
    """All requests at once: (requests per second, p99 seconds); every answer must be 200."""
    started = time.perf_counter()
    results = await asyncio.gather(*(one(host, port, p) for p in paths))
    elapsed = time.perf_counter() - started
    bad = [s for _, s in results if s != 200]
    if bad:
        raise SystemExit(f"{len(bad)} of {len(paths)} requests failed (status {bad[0]})")
    latencies = sorted(t for t, _ in results)
    return len(paths) / elapsed, latencies[int(0.99 * (len(latencies) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.n <= 2000:
        parser.error("N: 1..2000")
    with tempfile.TemporaryDirectory(prefix="boot-configs-") as tmp_text:
        tmp = Path(tmp_text)
        ldap = EmbeddedDirectory(tmp / "slapd", port=free_port())
        ldap.start()
        daemon = None
        try:
            slapd = Slapd(ldap.url, ldap.bind_dn, ldap.password_file, BASE, tmp / "slapd")
            directory = Directory([ldap.url], ldap.bind_dn, slapd.password, base=BASE)
            prepare(directory, args.n)
            key = tmp / "secret.key"
            load_keyring(key, create=True)
            images = tmp / "images"
            images.mkdir()
            daemon = start_daemon(tmp / "state", slapd, BASE, key, name="boot", site="default",
                                  extra=("--image-root", str(images)))
            sample = daemon.request("GET", f"/boot/{uuid_of(0)}/boot.cfg")[2]
            (images / "static.cfg").write_bytes(b"#" * len(sample))
            host, port = daemon.url.split("//")[1].rsplit(":", 1)
            rendered = [f"/boot/{uuid_of(i)}/boot.cfg" for i in range(args.n)]
            static = ["/boot/images/static.cfg"] * args.n
            asyncio.run(burst(host, int(port), rendered[:50] + static[:50]))  # warm up
            rows = []
            for r in range(args.rounds):
                dyn = asyncio.run(burst(host, int(port), rendered))
                sta = asyncio.run(burst(host, int(port), static))
                rows.append((dyn, sta))
                print(f"round {r + 1}: boot.cfg {dyn[0]:7.0f} req/s p99 {dyn[1] * 1000:6.1f} ms | "
                      f"static {sta[0]:7.0f} req/s p99 {sta[1] * 1000:6.1f} ms")
            dyn_rps = statistics.median(d[0] for d, _ in rows)
            dyn_p99 = statistics.median(d[1] for d, _ in rows)
            sta_rps = statistics.median(s[0] for _, s in rows)
            sta_p99 = statistics.median(s[1] for _, s in rows)
            print(f"{args.n} concurrent requests, {len(sample)}-byte answers, median of "
                  f"{args.rounds} rounds:")
            print(f"  boot.cfg (rendered): {dyn_rps:7.0f} req/s, p99 {dyn_p99 * 1000:.1f} ms")
            print(f"  static file:         {sta_rps:7.0f} req/s, p99 {sta_p99 * 1000:.1f} ms")
            print(f"  ratio rendered/static: req/s {dyn_rps / sta_rps:.2f} (target >= 0.5), "
                  f"p99 {dyn_p99 / sta_p99:.2f} (target <= 2)")
        finally:
            if daemon is not None:
                daemon.stop()
            ldap.stop()


if __name__ == "__main__":
    main()

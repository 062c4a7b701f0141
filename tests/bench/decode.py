"""Decoding one host's configuration answer: pyVmomi's element handlers vs `pyvmomi_shim`'s.

    .venv/bin/python tests/bench/decode.py [N] [--rounds 5]

One simulator (contrib/vcsim); the RetrievePropertiesEx answer of a HostSystem's
configuration (the properties a host's read asks for: network parts, options, time, services,
NIC types, storage) is recorded once, then decoded N times each way, alternating in rounds so
both see the same machine load.  Printed: the answer's size and values, CPU (process time) per
decode each way, and the ratio fast / stock (lower is better).  Both decodes give the same
values (checked once before timing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stateless.vcenter import pyvmomi_shim  # noqa: E402
from tests.integration.fixtures_vcsim import start_vcsim  # noqa: E402
from tests.soap_answers import (  # noqa: E402
    PC,
    Answer,
    assert_same,
    decode,
    first_host,
    host_config_spec,
    recording,
)


def record_host_config() -> Answer:
    sim = start_vcsim()
    try:
        si = sim.connect()
        host = first_host(si)
        collector = si.RetrieveContent().propertyCollector
        spec = host_config_spec(host)
        with recording() as answers:
            collector.RetrievePropertiesEx([spec], options=PC.RetrieveOptions())
        return answers[-1]
    finally:
        sim.stop()


def cpu_per_decode(answer: Answer, n: int, *, stock: bool) -> float:
    start = time.process_time()
    for _ in range(n):
        decode(answer, stock=stock)
    return (time.process_time() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pyvmomi_shim.fast_data_objects()  # as the daemon's session does: data objects built fast
    answer = record_host_config()
    values = assert_same(decode(answer, stock=True), decode(answer, stock=False))
    stock_times: list[float] = []
    fast_times: list[float] = []
    for _ in range(args.rounds):
        stock_times.append(cpu_per_decode(answer, args.n, stock=True))
        fast_times.append(cpu_per_decode(answer, args.n, stock=False))
    stock, fast = min(stock_times), min(fast_times)
    print(f"answer: {len(answer.data)} bytes, {values} values; {args.rounds} rounds of "
          f"{args.n} decodes each way")
    print(f"stock  CPU per decode: {stock * 1e3:.3f} ms (rounds: "
          f"{', '.join(f'{t * 1e3:.3f}' for t in stock_times)})")
    print(f"shim   CPU per decode: {fast * 1e3:.3f} ms (rounds: "
          f"{', '.join(f'{t * 1e3:.3f}' for t in fast_times)})")
    print(f"ratio shim/stock: {fast / stock:.2f}")


if __name__ == "__main__":
    main()

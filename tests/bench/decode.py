"""Decoding one host's configuration answer: pyVmomi's element handlers vs `pyvmomi_shim`'s.

    .venv/bin/python tests/bench/decode.py [N] [--rounds 5]

One simulator (contrib/vcsim); the RetrievePropertiesEx answer of a HostSystem's
configuration (the properties a host's read asks for: network parts, options, time, services,
NIC types, storage) is recorded once, then decoded N times each way, alternating in rounds so
all see the same machine load: pyVmomi as shipped, pyVmomi's handlers with the shim's data
objects (`fast_data_objects` before `fast_decoding`), and the shim's handlers.  Then a
watch's first answer, every simulator host entering with those properties, decoded with the
shim's handlers and with `baselines_skipped` (what the push-drift watch does), per host.  Printed: the
answer's size and values, CPU (process time) per decode each way (the best round, and every
round), and the ratio of the shim's handlers to pyVmomi's (lower is better).  All decodes
give the same values (checked once before timing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pyVmomi import vim  # noqa: E402

from stateless.vcenter import pyvmomi_shim  # noqa: E402
from tests.integration.fixtures_vcsim import start_vcsim  # noqa: E402
from tests.integration.test_vcsim import hosts_of  # noqa: E402
from tests.soap_answers import (  # noqa: E402
    HOST_PATHS,
    PC,
    Answer,
    assert_same,
    decode,
    first_host,
    host_config_spec,
    recording,
    shipped_data_objects,
)


def record_answers() -> tuple[Answer, Answer, int]:
    """One host's configuration answer; the first answer of a watch of every host on the same
    properties (each host entering with its values), and how many hosts entered."""
    sim = start_vcsim()
    try:
        si = sim.connect()
        collector = si.RetrieveContent().propertyCollector
        with recording() as answers:
            collector.RetrievePropertiesEx([host_config_spec(first_host(si))],
                                           options=PC.RetrieveOptions())
        hosts = hosts_of(si)
        watch = collector.CreatePropertyCollector()
        watch.CreateFilter(PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=h, skip=False) for h in hosts],
            propSet=[PC.PropertySpec(type=vim.HostSystem, pathSet=HOST_PATHS)]),
            partialUpdates=False)
        with recording() as entered:
            watch.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=0))
        return answers[-1], entered[-1], len(hosts)
    finally:
        sim.stop()


def cpu_per_skipping_decode(answer: Answer, n: int) -> float:
    with pyvmomi_shim.baselines_skipped():
        return cpu_per_decode(answer, n, stock=False)


def cpu_per_decode(answer: Answer, n: int, *, stock: bool) -> float:
    start = time.process_time()
    for _ in range(n):
        decode(answer, stock=stock)
    return (time.process_time() - start) / n


def shipped_cpu_per_decode(answer: Answer, n: int) -> float:
    with shipped_data_objects():
        return cpu_per_decode(answer, n, stock=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pyvmomi_shim.fast_data_objects()  # as the daemon's session does: data objects built fast
    answer, baseline, entering = record_answers()
    values = assert_same(decode(answer, stock=True), decode(answer, stock=False))
    with shipped_data_objects():
        assert_same(decode(answer, stock=True), decode(answer, stock=False))
    times: dict[str, list[float]] = {"shipped": [], "stock": [], "shim": []}
    for _ in range(args.rounds):
        times["shipped"].append(shipped_cpu_per_decode(answer, args.n))
        times["stock"].append(cpu_per_decode(answer, args.n, stock=True))
        times["shim"].append(cpu_per_decode(answer, args.n, stock=False))
    print(f"answer: {len(answer.data)} bytes, {values} values; {args.rounds} rounds of "
          f"{args.n} decodes each way; CPU per decode, best round (every round)")
    labels = {"shipped": "pyVmomi as shipped", "stock": "pyVmomi handlers, fast objects",
              "shim": "shim handlers, fast objects"}
    for key, label in labels.items():
        print(f"  {label:32} {min(times[key]) * 1e3:6.3f} ms  "
              f"({', '.join(f'{t * 1e3:.3f}' for t in times[key])})")
    best = {key: min(ts) for key, ts in times.items()}
    print(f"  ratio shim / pyVmomi handlers    {best['shim'] / best['stock']:.2f}")
    print(f"  ratio shim / pyVmomi as shipped  {best['shim'] / best['shipped']:.2f}")
    watch = {"decoded": [cpu_per_decode(baseline, args.n, stock=False) for _ in range(args.rounds)],
             "skipped": [cpu_per_skipping_decode(baseline, args.n) for _ in range(args.rounds)]}
    print(f"a watch's first answer: {len(baseline.data)} bytes, {entering} hosts entering; "
          "CPU per entering host, best round")
    print(f"  decoded (shim handlers)          {min(watch['decoded']) / entering * 1e3:6.3f} ms")
    print(f"  baselines skipped                {min(watch['skipped']) / entering * 1e3:6.3f} ms")
    print(f"  ratio skipped / decoded          {min(watch['skipped']) / min(watch['decoded']):.2f}")


if __name__ == "__main__":
    main()

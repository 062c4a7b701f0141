"""Resolution benchmark: 10,000 hosts, 1,000 clusters, 300 policies, built in memory.

Run: .venv/bin/python tests/bench/resolve.py [--seed N]

Prints cold resolution of every host, re-resolution after one policy edit (update + resolve
of the hosts it returns) for policies linked at different levels, and single-host resolve
latency from scratch and from the cache, each with its ratio to the target (< 1 is good).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable

import attrs

from stateless.model import (
    Allocation,
    Container,
    HostIdentity,
    HostRecord,
    IpPool,
    Link,
    Policy,
    Rule,
    Snapshot,
)
from stateless.model.settings import SettingValue
from stateless.policy import Resolver, resolve

DCS, FOLDERS, CLUSTERS, HOSTS_PER_CLUSTER = 10, 10, 10, 10
POLICIES = 300
TARGETS = {"cold": 1.0, "edit": 20.0, "p99": 1000.0}  # s, ms, µs


def settings_for(rng: random.Random, index: int) -> dict[str, SettingValue]:
    """10-20 settings drawn from a key space wide enough that policies overlap partly."""
    pool: list[tuple[str, SettingValue]] = []
    for pg in rng.sample(range(40), 4):
        pool.append((f"portgroup.PG{pg}.vlan", rng.randrange(1, 4000)))
        pool.append((f"portgroup.PG{pg}.vswitch", f"vSwitch{pg % 3}"))
    for opt in rng.sample(range(60), 6):
        pool.append((f"advanced.Net.Option{opt}", rng.randrange(1, 1000)))
    pool += [
        ("ntp.servers", (f"ntp{index % 7}.example.com", f"ntp{(index + 1) % 7}.example.com")),
        ("dns.servers", (f"10.0.{index % 250}.53",)),
        ("lockdown.mode", rng.choice(["disabled", "normal", "strict"])),
        (f"service.svc{index % 12}.policy", rng.choice(["on", "off", "automatic"])),
        (f"vswitch.vSwitch{index % 3}.mtu", rng.choice([1500, 9000])),
        ("syslog.targets", (f"udp://10.0.{index % 250}.5:514",)),
    ]
    chosen = dict(rng.sample(pool, rng.randrange(10, 21)))
    return chosen


def build(seed: int) -> tuple[Snapshot, dict[str, list[str]]]:
    """The estate, and for each link level the policies linked only there."""
    rng = random.Random(seed)
    names = [f"p{i:03d}" for i in range(POLICIES)]
    policies = {n: Policy(n, settings_for(rng, i), dn=f"cn={n},ou=policies") for i, n in enumerate(names)}
    # Policy bands: root 0-4, DC 5-44, folder 45-164, shared cluster 165-239, one cluster 240-279,
    # host and rule 280-299; two policies also use IP pools.
    policies["p000"] = attrs.evolve(policies["p000"], settings={
        **policies["p000"].settings, "vmknic.vMotion.ip": "pool:vmotion", "vmknic.vMotion.mtu": 9000,
        "vmknic.vMotion.services": ("vmotion",)})
    policies["p290"] = Policy("p290", {"vmknic.Storage.ip": "static", "vmknic.Storage.mtu": 9000},
                              removals={"portgroup.PG1"}, dn="cn=p290,ou=policies")
    level: dict[str, list[str]] = {"root": names[0:5], "dc": names[5:45], "folder": names[45:165],
                                   "cluster": names[165:240], "one cluster": names[240:280],
                                   "host": names[280:300]}
    containers = [Container("/", "root", links=[Link("p000", 1, enforced=True), Link("p001", 2),
                                                Link("p002", 3), Link("p003", 4, disabled=True)])]
    hosts: list[HostRecord] = []
    exclusive = iter(level["one cluster"])
    count = 0
    for d in range(DCS):
        dc = f"/DC{d}"
        containers.append(Container(dc, "datacenter", links=[
            Link(level["dc"][d * 4], 1, enforced=d % 3 == 0), Link(level["dc"][d * 4 + 1], 2)]))
        for f in range(FOLDERS):
            folder = f"{dc}/F{f}"
            links = [Link(rng.choice(level["folder"]), 1)]
            if f % 2:
                links.append(Link(rng.choice(level["folder"]), 2, enforced=f % 5 == 1))
            containers.append(Container(folder, "folder", links=links, block=f == 7))
            for c in range(CLUSTERS):
                path = f"{folder}/C{c}"
                links = [Link(rng.choice(level["cluster"]), 1), Link(rng.choice(level["cluster"]), 2)]
                if count % 25 == 0:
                    links.append(Link(next(exclusive), 3))
                containers.append(Container(path, "cluster", links=links, block=c == 9))
                count += 1
                for h in range(HOSTS_PER_CLUSTER):
                    n = len(hosts)
                    uuid = f"4c4c4544-0000-{d:04d}-{f:02d}{c:02d}-{n:012d}"
                    host_links = [Link(rng.choice(level["host"][:10]), 1)] if n % 20 == 0 else []
                    answers: dict[str, SettingValue] = {"dns.hostname": f"esx{n:05d}"}
                    if n % 50 == 0:
                        host_links.append(Link("p290", 2))
                        answers |= {"vmknic.Storage.address": f"10.50.{n // 250}.{n % 250 + 1}",
                                    "vmknic.Storage.netmask": "255.255.0.0"}
                    identity = HostIdentity(uuid, vendor=rng.choice(["Dell Inc.", "HPE", "Lenovo"]),
                                            model=f"Model-{n % 7}", serial=f"SN{n:06d}",
                                            macs=(f"00:50:56:{d:02x}:{f * 16 + c:02x}:{h:02x}",),
                                            ipv4=f"10.{d}.{f * 10 + c}.{h + 10}")
                    hosts.append(HostRecord(
                        uuid, location=path, links=host_links, answers=answers, identity=identity,
                        allocations=[Allocation("vmknic.vMotion", "vmotion",
                                                f"10.200.{n // 250}.{n % 250 + 2}")],
                        dn=f"statelessUuid={uuid},ou=hosts"))
    rules = [Rule(f"rule{i:02d}", order=i, match={"model": f"Model-{i % 7}", "vendor": "Dell*"},
                  policies=(level["host"][11 + i % 9],)) for i in range(20)]
    rules.append(Rule("by-net", order=50, match={"ipv4": "10.3.0.0/16"}, image="esxi-8"))
    pools = {"vmotion": IpPool("vmotion", "10.200.0.2", "10.200.255.254", "255.255.0.0", "10.200.0.1")}
    snap = Snapshot(containers={c.path: c for c in containers}, policies=policies,
                    hosts={h.uuid: h for h in hosts}, pools=pools, rules=rules)
    linked = {}
    for name, band in level.items():
        linked[name] = [n for n in band if any(lk.policy == n for c in containers for lk in c.links)]
    return snap, linked


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def edit(snap: Snapshot, name: str, version: int) -> Snapshot:
    policy = snap.policies[name]
    changed = attrs.evolve(policy, settings={**policy.settings, "advanced.Misc.Edit": version})
    return attrs.evolve(snap, policies={**snap.policies, name: changed})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    start = time.perf_counter()
    snap, linked = build(args.seed)
    print(f"estate: {len(snap.hosts)} hosts, {len(snap.containers)} containers, {len(snap.policies)} "
          f"policies, {sum(len(p.settings) for p in snap.policies.values())} settings, "
          f"{len(snap.rules)} rules (built in {time.perf_counter() - start:.2f} s)")

    resolver = Resolver(snap)
    cold = timed(lambda: [resolver.resolve(u) for u in snap.hosts])
    sample = resolver.resolve(next(iter(snap.hosts)))
    errors = sum(1 for u in snap.hosts if resolver.resolve(u).errors)
    print(f"cold resolution of all hosts: {cold:.3f} s   (target {TARGETS['cold']:.0f} s, "
          f"ratio {cold / TARGETS['cold']:.2f}); {len(sample.settings)} keys per host, "
          f"{errors} hosts with errors")

    other = Resolver(snap)  # how much of that is the cyclic garbage collector walking the heap
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for u in snap.hosts:
            other.resolve(u)
        paused = time.perf_counter() - start
    finally:
        gc.enable()
    del other
    print(f"  (the same with the garbage collector paused: {paused:.3f} s)")

    first = timed(lambda: resolver.update(edit(snap, linked["root"][1], 0)))
    for u in snap.hosts:
        resolver.resolve(u)
    print(f"first update (builds reverse indexes, root policy edit): {first * 1000:.1f} ms")

    version = 1
    current = resolver.snapshot
    results: dict[str, tuple[float, float, int]] = {}
    for label in ("one cluster", "cluster", "folder", "dc", "root"):
        times, counts = [], []
        for name in rng.sample(linked[label], min(5, len(linked[label]))):
            current = edit(current, name, version)
            version += 1
            gc.collect()
            t0 = time.perf_counter()
            affected = resolver.update(current)
            for u in affected:
                resolver.resolve(u)
            times.append((time.perf_counter() - t0) * 1000)
            counts.append(len(affected))
        results[label] = (statistics.median(times), max(times), round(statistics.median(counts)))
    for label, (median, worst, hosts) in results.items():
        note = ""
        if label in ("one cluster", "cluster"):
            note = f"   (target {TARGETS['edit']:.0f} ms, ratio {worst / TARGETS['edit']:.2f} worst)"
        print(f"edit of a policy linked at {label:<11}: median {median:7.1f} ms, worst {worst:7.1f} ms, "
              f"{hosts:5d} hosts re-resolved{note}")

    uuids = rng.sample(sorted(snap.hosts), 300)
    samples: dict[str, list[float]] = {"from scratch (resolve())": [], "warm resolver, host uncached": [],
                                       "cached": []}
    for u in uuids:
        t0 = time.perf_counter()
        resolve(current, u)
        samples["from scratch (resolve())"].append((time.perf_counter() - t0) * 1e6)
    warm = Resolver(current)
    for u in current.hosts:
        warm.resolve(u)
    for u in uuids:
        warm.forget(u)
        t0 = time.perf_counter()
        warm.resolve(u)
        samples["warm resolver, host uncached"].append((time.perf_counter() - t0) * 1e6)
    for u in uuids:
        t0 = time.perf_counter()
        warm.resolve(u)
        samples["cached"].append((time.perf_counter() - t0) * 1e6)
    for label, values in samples.items():
        p50, p99 = percentiles(values)
        print(f"single-host resolve, {label:<28}: p50 {p50:7.1f} µs, p99 {p99:7.1f} µs   "
              f"(target p99 {TARGETS['p99']:.0f} µs, ratio {p99 / TARGETS['p99']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

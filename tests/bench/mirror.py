"""Mirror snapshots during a boot storm: one host written at a time, 10,000 hosts.

Run: .venv/bin/python tests/bench/mirror.py [--hosts N] [--writes N] [--seed N]

Builds a mirror of N hosts (with containers, policies, pools and some host-level links), then
times W single-host writes (state, reason, digest, allocation), each followed by
`Mirror.snapshot(base)`, against full rebuilds of the same directory (`MirrorView.snapshot`,
which is `build_snapshot` of every entry, what each write cost before). Prints both and their
ratio, and checks that the last snapshot equals a full build.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

from stateless.directory.mirror import Mirror

BASE = "ou=stateless,dc=example,dc=com"
STATES = ("pending", "applying", "compliant", "drifted", "failed")
Entry = tuple[str, str, dict[str, list[bytes]]]


def raw(**values: list[str]) -> dict[str, list[bytes]]:
    return {name: [v.encode() for v in vs] for name, vs in values.items()}


def host_uuid(n: int) -> str:
    return f"4c4c4544-{n >> 16:04x}-{n & 0xffff:04x}-8052-{n:012x}"


def host_entry(n: int, clusters: int, state: str, digest: str) -> Entry:
    uuid = host_uuid(n)
    cluster = n % clusters
    return f"entry-host-{n}", f"statelessUuid={uuid},ou=hosts,{BASE}", raw(
        objectClass=["top", "statelessHost"], statelessUuid=[uuid],
        statelessLocation=[f"/DC{cluster % 10}/Cluster{cluster}"],
        statelessSerial=[f"SN{n:08d}"], statelessVendor=["Dell Inc."], statelessModel=["PowerEdge R650"],
        statelessMac=[f"00:50:56:{n >> 16 & 0xff:02x}:{n >> 8 & 0xff:02x}:{n & 0xff:02x}"],
        statelessIpv4=[f"10.{n >> 16 & 0xff}.{n >> 8 & 0xff}.{n & 0xff}"],
        statelessHostname=[f"esx{n:05d}"], statelessDomain=["example.com"],
        statelessAnswer=[f"dns.hostname=esx{n:05d}", "dns.domain=example.com"],
        statelessAllocation=[f"vmknic.vMotion; pool=vmotion; address=10.200.{n >> 8 & 0xff}.{n & 0xff}"],
        statelessState=[state], statelessStateReason=["booted"], statelessAppliedDigest=[digest],
        statelessOwner=["sd1"])


def directory(hosts: int, clusters: int, policies: int) -> list[Entry]:
    inv = f"ou=inventory,{BASE}"
    out: list[Entry] = [("entry-base", BASE, raw(objectClass=["organizationalUnit"]))]
    for ou in ("inventory", "policies", "pools", "hosts", "servers"):
        out.append((f"entry-{ou}", f"ou={ou},{BASE}", raw(objectClass=["organizationalUnit"])))
    for d in range(10):
        out.append((f"entry-dc{d}", f"cn=DC{d},{inv}", raw(
            objectClass=["statelessContainer"], cn=[f"DC{d}"], statelessKind=["datacenter"])))
    for c in range(clusters):
        parent = f"cn=DC{c % 10},{inv}"
        dn = f"cn=Cluster{c},{parent}"
        out.append((f"entry-cluster{c}", dn, raw(objectClass=["statelessContainer"], cn=[f"Cluster{c}"],
                                                 statelessKind=["cluster"])))
        out.append((f"entry-cluster{c}-link", f"statelessLinkPolicy=p{c % policies:03d},{dn}", raw(
            objectClass=["statelessPolicyLink"], statelessLinkPolicy=[f"p{c % policies:03d}"])))
    for p in range(policies):
        out.append((f"entry-policy{p}", f"cn=p{p:03d},ou=policies,{BASE}", raw(
            objectClass=["statelessPolicy"], cn=[f"p{p:03d}"],
            statelessNtp=[f"servers=ntp{p % 7}.example.com"],
            statelessPortGroup=[f"PG{p}; vswitch=vSwitch0; vlan={p + 10}"])))
    out.append(("entry-pool", f"cn=vmotion,ou=pools,{BASE}", raw(
        objectClass=["statelessIpPool"], cn=["vmotion"], statelessRangeStart=["10.200.0.1"],
        statelessRangeEnd=["10.200.255.254"], statelessNetmask=["255.255.0.0"])))
    for n in range(hosts):
        entry = host_entry(n, clusters, "compliant", f"{n:016x}")
        out.append(entry)
        if n % 50 == 0:
            out.append((f"entry-host-{n}-link", f"statelessLinkPolicy=p000,{entry[1]}", raw(
                objectClass=["statelessPolicyLink"], statelessLinkPolicy=["p000"], statelessOrder=["1"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--full", type=int, default=5, help="full rebuilds to time")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    clusters, policies = 100, 50

    entries = directory(args.hosts, clusters, policies)
    mirror = Mirror()
    started = time.perf_counter()
    mirror.load(entries)
    loaded = time.perf_counter() - started
    first = mirror.snapshot(BASE)
    print(f"{len(entries):,} entries ({args.hosts:,} hosts) loaded in {loaded:.2f} s; "
          f"{len(first.hosts):,} hosts, {len(first.policies)} policies, {len(first.containers)} containers")

    gc.collect()
    full: list[float] = []
    for _ in range(args.full):
        view = mirror.view()
        started = time.perf_counter()
        view.snapshot(BASE)
        full.append(time.perf_counter() - started)

    writes: list[float] = []
    for _ in range(args.writes):
        n = rng.randrange(args.hosts)
        entry_uuid, dn, values = host_entry(n, clusters, rng.choice(STATES), f"{rng.getrandbits(64):016x}")
        started = time.perf_counter()
        mirror.on_change("modify", entry_uuid, dn, values)
        mirror.snapshot(BASE)
        writes.append(time.perf_counter() - started)

    assert mirror.snapshot(BASE) == mirror.view().snapshot(BASE), "incremental snapshot differs"
    full_ms = statistics.median(full) * 1e3
    write_ms = statistics.median(writes) * 1e3
    p99 = sorted(writes)[int(len(writes) * 0.99) - 1] * 1e3
    print(f"full build_snapshot: median {full_ms:8.2f} ms  (of {len(full)}, min {min(full) * 1e3:.2f})")
    print(f"write + snapshot:    median {write_ms:8.2f} ms  (of {len(writes)}, mean "
          f"{statistics.mean(writes) * 1e3:.2f}, p99 {p99:.2f})")
    print(f"ratio full / incremental: {full_ms / write_ms:.0f}x")


if __name__ == "__main__":
    main()

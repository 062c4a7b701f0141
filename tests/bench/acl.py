"""What the directory ACLs cost a full snapshot read, per kind of account.

Run: .venv/bin/python tests/bench/acl.py [--hosts N] [--containers N] [--rounds N]

Starts a private slapd on 127.0.0.1 with schema/acl/openldap.ldif loaded, adds N hosts and a
few hundred containers, then times `Directory.snapshot()` (one paged subtree search, what the
CLI does for rsop and lists) as the rootDN (no ACL evaluated), a daemon (group rules) and a
site admin (OpenLDAP sets: the site admins are found by an internal search per entry), and
prints the medians and their ratios to the rootDN's, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE, ROOT_DN, EmbeddedDirectory, ssha
from stateless.model.identity import HostIdentity
from stateless.model.inventory import ContainerKind, Site
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
B = DEFAULT_BASE


def ldapmodify(url: str, password_file: Path, ldif: str) -> None:
    subprocess.run(["ldapmodify", "-x", "-c", "-H", url, "-D", ROOT_DN, "-y", str(password_file)],
                   input=ldif, text=True, capture_output=True, check=True, timeout=600)


def populate(d: Directory, url: str, password_file: Path, hosts: int, containers: int) -> None:
    d.add_site(Site("siteA", ("10.1.0.0/16",)))
    d.add_container("/DC1", ContainerKind.DATACENTER)
    for c in range(containers):
        d.add_container(f"/DC1/C{c}", ContainerKind.CLUSTER)
    for n in range(hosts):
        d.add_host(f"4c4c4544-0000-{n >> 16:04x}-8052-{n:012x}", "/DC1/C0",
                   identity=HostIdentity(f"4c4c4544-0000-{n >> 16:04x}-8052-{n:012x}",
                                         serial=f"SN{n}", vendor="Dell Inc."))
    ldapmodify(url, password_file, (ROOT / "schema" / "acl" / "openldap.ldif").read_text())
    accounts = "".join(f"""
dn: cn={name},ou=accounts,{B}
changetype: add
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: {name}
userPassword: {ssha(name)}
""" for name in ("sd-a1", "bob"))
    ldapmodify(url, password_file, accounts + f"""
dn: cn=daemons,ou=groups,{B}
changetype: add
objectClass: groupOfNames
cn: daemons
member: cn=sd-a1,ou=accounts,{B}

dn: cn=siteA,ou=sites,{B}
changetype: modify
add: statelessAdmin
statelessAdmin: cn=bob,ou=accounts,{B}

dn: cn=DC1,ou=inventory,{B}
changetype: modify
add: statelessSite
statelessSite: siteA
""")


def median_snapshot(url: str, dn: str, password: str, rounds: int) -> tuple[float, int]:
    times = []
    with Directory([url], dn, password, base=B) as d:
        size = len(d.snapshot().hosts)  # warm-up (and the connection)
        for _ in range(rounds):
            start = time.perf_counter()
            d.snapshot()
            times.append(time.perf_counter() - start)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stateless-bench-acl-") as tmp:
        instance = EmbeddedDirectory(Path(tmp) / "ldap", port=free_port())
        instance.start()
        try:
            password = instance.password_file.read_text()
            with Directory([instance.url], ROOT_DN, password, base=B) as d:
                populate(d, instance.url, instance.password_file, args.hosts, args.containers)
            results = {}
            for label, dn, pw in (("rootDN (no ACL)", ROOT_DN, password),
                                  ("daemon (group rules)", f"cn=sd-a1,ou=accounts,{B}", "sd-a1"),
                                  ("site admin (sets)", f"cn=bob,ou=accounts,{B}", "bob")):
                results[label] = median_snapshot(instance.url, dn, pw, args.rounds)
        finally:
            instance.stop()
    baseline = results["rootDN (no ACL)"][0]
    print(f"snapshot of {args.hosts} hosts and {args.containers + 1} containers, median of "
          f"{args.rounds}:")
    for label, (seconds, size) in results.items():
        print(f"  {label:22} {seconds * 1000:8.1f} ms  x{seconds / baseline:5.2f}  ({size} hosts seen)")


if __name__ == "__main__":
    main()

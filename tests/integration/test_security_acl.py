"""schema/acl/openldap.ldif in a slapd of its own: who may read and write what.

The slapd is a private one started for this module (the shared test slapd keeps its open
rules); the ACLs and the example accounts are loaded from the files admins use, with the real
ldapmodify, and the accounts then work through ldapmodify, the `stateless` CLI, the
directory adapter the daemon uses, and statelessd itself.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest

from stateless.agent.signing import parse_enrollment_key, sign
from stateless.cli import main
from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE, ROOT_DN, EmbeddedDirectory, ssha
from stateless.directory.nonces import NonceStore
from stateless.errors import DirectoryError
from stateless.model.identity import HostIdentity
from stateless.model.inventory import ContainerKind, HostState, IpPool, Policy, Server, Site, VCenter
from stateless.security import seal
from tests.integration.fixtures_daemon import start_daemon, wait_for
from tests.integration.fixtures_slapd import Slapd
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
B = DEFAULT_BASE
UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
ACCOUNTS = ("alice", "sd-a1", "bob", "carol", "sd-b1", "mallory")


@attrs.frozen
class AclWorld:
    url: str
    root: Slapd
    passwords: dict[str, Path]
    key_file: Path

    def dn(self, name: str) -> str:
        return f"cn={name},ou=accounts,{B}"

    def as_(self, name: str) -> Directory:
        return Directory([self.url], self.dn(name), self.passwords[name].read_text(), base=B)

    def slapd_as(self, name: str) -> Slapd:
        return attrs.evolve(self.root, bind_dn=self.dn(name), password_file=self.passwords[name])

    def ldapmodify(self, name: str | None, ldif: str) -> subprocess.CompletedProcess[str]:
        who = (["-D", self.dn(name), "-y", str(self.passwords[name])] if name
               else ["-D", ROOT_DN, "-y", str(self.root.password_file)])
        return subprocess.run(["ldapmodify", "-x", "-H", self.url, *who], input=ldif, text=True,
                              capture_output=True, timeout=30)

    def ldapsearch(self, name: str | None, *args: str) -> subprocess.CompletedProcess[str]:
        who = ["-D", self.dn(name), "-y", str(self.passwords[name])] if name else []
        return subprocess.run(["ldapsearch", "-x", "-LLL", "-H", self.url, *who, "-b", B, *args],
                              text=True, capture_output=True, timeout=30)

    def cli(self, name: str, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main(["--ldap", self.url, "--bind-dn", self.dn(name), "--password-file",
                       str(self.passwords[name]), *argv], out=out, err=err,
                      environ={"STATELESS_SECRET_KEY_FILE": str(self.key_file)})
        return status, out.getvalue(), err.getvalue()


def _populate(d: Directory, key_file: Path) -> None:
    for site, subnet in (("siteA", "10.1.0.0/16"), ("siteB", "10.2.0.0/16")):
        d.add_site(Site(site, (subnet,)))
    for path in ("/DC1", "/DC2"):
        d.add_container(path, ContainerKind.DATACENTER)
    d.add_container("/DC1/ClusterA", ContainerKind.CLUSTER)
    d.add_container("/DC2/ClusterB", ContainerKind.CLUSTER)
    d.create_policy(Policy("Baseline", {"ntp.servers": ("10.0.0.1",)}))
    d.create_policy(Policy("NetA", {"portgroup.vMotion.vlan": 20}))
    d.modify(d.policy_dn("NetA"), {"statelessSite": [("MODIFY_ADD", ["siteA"])]})
    d.add_pool(IpPool("vmotion-a", "10.1.20.10", "10.1.20.250", "255.255.255.0"))
    d.add_host(UUID, "/DC1/ClusterA")
    d.add_vcenter(VCenter("vc1", "https://vc1.example.com/sdk", "svc",
                          seal.load_keyring(key_file, create=True).seal("pw", "statelessPassword")))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclWorld]:
    data = tmp_path_factory.mktemp("acl-slapd")
    instance = EmbeddedDirectory(data / "ldap", port=free_port())
    instance.start()
    try:
        root = Slapd(instance.url, ROOT_DN, instance.password_file, B, data / "ldap")
        passwords = {}
        for name in ACCOUNTS:
            passwords[name] = data / f"{name}.password"
            passwords[name].write_text(f"{name}-pw-{len(name)}")
        world = AclWorld(instance.url, root, passwords, data / "secret.key")
        with Directory([instance.url], ROOT_DN, root.password, base=B) as d:
            _populate(d, world.key_file)
        proc = subprocess.run(["ldapmodify", "-x", "-H", instance.url, "-D", ROOT_DN, "-y",
                               str(instance.password_file), "-f",
                               str(ROOT / "schema" / "acl" / "openldap.ldif")],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        accounts = (ROOT / "schema" / "acl" / "accounts.ldif").read_text()
        for name in ("alice", "sd-a1", "bob"):
            accounts = accounts.replace(f"CHANGE-ME-{name}", ssha(passwords[name].read_text()))
        assert world.ldapmodify(None, accounts).returncode == 0
        more = "".join(f"""
dn: cn={name},ou=accounts,{B}
changetype: add
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: {name}
userPassword: {ssha(passwords[name].read_text())}
""" for name in ("carol", "sd-b1", "mallory"))
        more += f"""
dn: cn=daemons,ou=groups,{B}
changetype: modify
add: member
member: cn=sd-b1,ou=accounts,{B}

dn: cn=siteB,ou=sites,{B}
changetype: modify
add: statelessAdmin
statelessAdmin: cn=carol,ou=accounts,{B}

dn: cn=DC2,ou=inventory,{B}
changetype: modify
add: statelessSite
statelessSite: siteB
"""
        proc = world.ldapmodify(None, more)
        assert proc.returncode == 0, proc.stderr
        yield world
    finally:
        instance.stop()


def block(path: str) -> str:
    return f"""dn: {path},ou=inventory,{B}
changetype: modify
replace: statelessBlockInheritance
statelessBlockInheritance: TRUE
"""


def test_a_site_admin_edits_their_sites_cluster_and_not_anothers(world: AclWorld) -> None:
    own = world.ldapmodify("bob", block("cn=ClusterA,cn=DC1"))
    assert own.returncode == 0, own.stderr
    other = world.ldapmodify("bob", block("cn=ClusterB,cn=DC2"))
    assert other.returncode == 50 and "Insufficient access" in other.stderr
    assert world.ldapmodify("carol", block("cn=ClusterB,cn=DC2")).returncode == 0
    assert world.ldapmodify("carol", block("cn=ClusterA,cn=DC1")).returncode == 50


def test_a_site_admin_works_in_their_subtree_with_the_cli(world: AclWorld) -> None:
    status, _, err = world.cli("bob", "container", "add", "/DC1/Lab", "--kind", "folder")
    assert status == 0, err
    status, _, err = world.cli("bob", "container", "add", "/DC1/Lab/ClusterL", "--kind", "cluster")
    assert status == 0, err
    status, _, err = world.cli("bob", "policy", "link", "NetA", "/DC1/Lab/ClusterL")
    assert status == 0, err
    status, _, err = world.cli("bob", "container", "add", "/DC2/Lab", "--kind", "folder")
    assert status == 1 and "access denied" in err
    status, _, err = world.cli("bob", "container", "add", "/DC3", "--kind", "datacenter")
    assert status == 1 and "access denied" in err
    status, _, err = world.cli("bob", "policy", "link", "NetA", "/DC2/ClusterB")
    assert status == 1 and "access denied" in err
    # Site admins read the whole configuration (rsop, lists) but no secret.
    status, out, _ = world.cli("bob", "policy", "list", "--json")
    assert status == 0 and {p["name"] for p in json.loads(out)} == {"Baseline", "NetA"}
    status, out, _ = world.cli("bob", "rsop", UUID, "--json")
    assert status == 0 and "portgroup.vMotion.vlan" not in json.loads(out)["settings"]
    status, out, _ = world.cli("bob", "vcenter", "list", "--json")
    assert status == 0 and json.loads(out)[0]["password"] == "none"


def test_a_site_admin_edits_only_the_policies_their_site_owns(world: AclWorld) -> None:
    status, _, err = world.cli("bob", "policy", "set", "NetA", "portgroup.vMotion.vlan=21")
    assert status == 0, err
    status, _, err = world.cli("bob", "policy", "set", "Baseline", "ntp.servers=10.9.9.9")
    assert status == 1 and "access denied" in err
    assert world.cli("carol", "policy", "set", "NetA", "portgroup.vMotion.vlan=22")[0] == 1
    own = f"""dn: cn=NetA2,ou=policies,{B}
changetype: add
objectClass: statelessPolicy
cn: NetA2
statelessSite: siteA
statelessNtp: servers=10.1.0.1
"""
    assert world.ldapmodify("bob", own).returncode == 0
    theirs = own.replace("NetA2", "NetB2").replace("siteA", "siteB")
    assert world.ldapmodify("bob", theirs).returncode == 50
    unowned = own.replace("NetA2", "Loose").replace("statelessSite: siteA\n", "")
    assert world.ldapmodify("bob", unowned).returncode == 50
    # Nor may a site admin move a container to their site or give a policy away.
    take = f"""dn: cn=DC2,ou=inventory,{B}
changetype: modify
replace: statelessSite
statelessSite: siteA
"""
    assert world.ldapmodify("bob", take).returncode == 50


def test_the_daemon_account_writes_hosts_its_server_nonces_allocations_and_nothing_else(
        world: AclWorld) -> None:
    with world.as_("sd-a1") as d:
        snapshot = d.snapshot()  # reads everything
        assert {"siteA", "siteB"} <= set(snapshot.sites) and snapshot.vcenters["vc1"].password
        d.record_birth(HostIdentity(UUID, serial="SN1"), datetime.now(UTC), "sd-a1")
        d.set_host_state(UUID, HostState.FAILED, "no vCenter in this test")
        d.record_birth(HostIdentity("4c4c4544-0042-3510-8052-b4c04f4b4e99"), datetime.now(UTC),
                       "sd-a1", known=False)  # a new host entry
        d.put_server(Server("sd-a1", "siteA", "https://sd-a1.example.com:8443"))
        d.put_server(Server("sd-a1", "siteA", "https://sd-a1.example.com:9443"))
        assert d.allocate(UUID, "vmknic.vMotion", "vmotion-a").address == "10.1.20.10"
        assert NonceStore(d).record("siteA", "ab" * 16, datetime.now(UTC))
        refused = [
            lambda: d.put_server(Server("sd-b1", "siteB", "https://evil:1")),
            lambda: d.policy_set("Baseline", {"ntp.servers": "6.6.6.6"}),
            lambda: d.policy_set("NetA", {"portgroup.vMotion.vlan": 99}),
            lambda: d.set_block("/DC1/ClusterA", True),
            lambda: d.add_site(Site("siteZ")),
            lambda: d.modify(d.named_dn("vcenters", "vc1"), {
                "statelessUrl": [("MODIFY_REPLACE", ["https://evil/sdk"])]}),
            lambda: d.modify(d.named_dn("pools", "vmotion-a"), {
                "statelessRangeEnd": [("MODIFY_REPLACE", ["10.1.20.11"])]}),
        ]
        for attempt in refused:
            with pytest.raises(DirectoryError, match="access denied"):
                attempt()
    with world.as_("sd-b1") as other, pytest.raises(DirectoryError, match="access denied"):
        other.put_server(Server("sd-a1", "siteA", "https://sd-a1-hijacked:1"))
    host = world.as_("alice").snapshot().hosts[UUID]
    assert host.owner == "sd-a1" and host.state == HostState.FAILED


def _modify(dn: str, attribute: str, value: str) -> str:
    return f"dn: {dn}\nchangetype: modify\nreplace: {attribute}\n{attribute}: {value}\n"


def test_the_daemon_account_cannot_change_policies_with_ldapmodify(world: AclWorld) -> None:
    """The acceptance line, with the real ldapmodify: slapd says insufficientAccessRights (50)
    to every policy write of the service account, and takes its host and server writes."""
    with world.as_("sd-a1") as d:
        d.put_server(Server("sd-a1", "siteA", "https://sd-a1.example.com:8443"))
    policy = f"cn=Baseline,ou=policies,{B}"
    refused = {
        "modify": _modify(policy, "statelessNtp", "servers=6.6.6.6"),
        "modify an owned policy": _modify(f"cn=NetA,ou=policies,{B}", "description", "mine now"),
        "add": f"dn: cn=Evil,ou=policies,{B}\nchangetype: add\nobjectClass: top\n"
               "objectClass: statelessPolicy\ncn: Evil\nstatelessNtp: servers=6.6.6.6\n",
        "delete": f"dn: {policy}\nchangetype: delete\n",
        "link": f"dn: statelessLinkPolicy=Baseline,cn=ClusterA,cn=DC1,ou=inventory,{B}\n"
                "changetype: add\nobjectClass: top\nobjectClass: statelessPolicyLink\n"
                "statelessLinkPolicy: Baseline\nstatelessOrder: 9\nstatelessEnforced: TRUE\n",
    }
    for what, ldif in refused.items():
        proc = world.ldapmodify("sd-a1", ldif)
        assert proc.returncode == 50 and "Insufficient access" in proc.stderr, (what, proc.stderr)
    host = world.ldapmodify("sd-a1", _modify(f"statelessUuid={UUID},ou=hosts,{B}",
                                             "statelessStateReason", "written by its daemon"))
    assert host.returncode == 0, host.stderr
    server = world.ldapmodify("sd-a1", _modify(f"cn=sd-a1,ou=servers,{B}", "statelessUrl",
                                               "https://sd-a1.example.com:7443"))
    assert server.returncode == 0, server.stderr
    snapshot = world.as_("alice").snapshot()
    assert snapshot.policies["Baseline"].settings["ntp.servers"] == ("10.0.0.1",)
    assert "Evil" not in snapshot.policies and snapshot.servers["sd-a1"].url.endswith(":7443")
    assert snapshot.hosts[UUID].reason == "written by its daemon"


def test_everyone_else_reads_nothing(world: AclWorld) -> None:
    anonymous = world.ldapsearch(None, "(objectClass=*)", "dn")
    assert anonymous.stdout == "" and anonymous.returncode == 32  # no such object: not even the base
    outsider = world.ldapsearch("mallory", "(objectClass=*)", "dn")
    assert outsider.stdout == "" and outsider.returncode == 32
    assert world.ldapmodify("mallory", block("cn=ClusterA,cn=DC1")).returncode == 50
    # Nobody but admins reads a password hash; sealed values only the daemons.
    for name in ("bob", "sd-a1"):
        found = world.ldapsearch(name, "(cn=alice)", "userPassword")
        assert "userPassword" not in found.stdout
    sealed = world.ldapsearch("bob", "(objectClass=statelessVCenter)", "statelessPassword")
    assert "cn=vc1" in sealed.stdout and "statelessPassword" not in sealed.stdout
    assert "statelessPassword: aesgcm:" in world.ldapsearch(
        "sd-a1", "(objectClass=statelessVCenter)", "statelessPassword").stdout


def test_a_stateless_admin_may_do_everything(world: AclWorld) -> None:
    status, _, err = world.cli("alice", "site", "add", "siteC", "--subnet", "10.3.0.0/16")
    assert status == 0, err
    assert world.cli("alice", "policy", "set", "Baseline", "ntp.servers=10.0.0.2")[0] == 0
    assert world.ldapmodify("alice", block("cn=ClusterB,cn=DC2")).returncode == 0
    assert world.cli("alice", "enroll-key", "rotate", "siteA")[0] == 0
    assert "userPassword" in world.ldapsearch("alice", "(cn=bob)", "userPassword").stdout


def test_statelessd_runs_as_its_service_account(world: AclWorld, tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "sd-a1", world.slapd_as("sd-a1"), B, world.key_file,
                          name="sd-a1", site="siteA")
    try:
        assert world.as_("alice").snapshot().servers["sd-a1"].url == daemon.url.rstrip("/")
        # A signed birth in an open site: the account records the nonce, the host and its pin.
        assert world.cli("alice", "site", "admission", "siteA", "open")[0] == 0
        if world.cli("alice", "enroll-key", "show", "siteA", "--json")[1].count("key_id") == 0:
            assert world.cli("alice", "enroll-key", "rotate", "siteA")[0] == 0
        shown = json.loads(world.cli("alice", "enroll-key", "show", "siteA", "--reveal",
                                     "--json")[1])
        key = parse_enrollment_key(shown["keys"][0]["secret"])
        uuid = "4c4c4544-0042-3510-8052-b4c04f4b4e77"
        body = json.dumps({"uuid": uuid}).encode()
        request = urllib.request.Request(daemon.url.rstrip("/") + "/v1/birth", method="POST",
                                         data=body, headers={
                                             "Authorization": sign(body, "siteA", key,
                                                                   int(time.time()))})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 202
        host = wait_for(lambda: world.as_("alice").snapshot().hosts.get(uuid), what="host entry")
        assert host.owner == "sd-a1" and host.pinned is not None
    finally:
        daemon.stop()

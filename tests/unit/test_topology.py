"""cn=config of a node is a pure function of its parameters: exact lines per shape."""

from __future__ import annotations

import importlib.util
import itertools
import zlib
from pathlib import Path

import attrs
import pytest

from stateless.directory import topology
from stateless.directory.embedded import EmbeddedDirectory
from stateless.directory.topology import Credentials, Node, Tls
from stateless.errors import DirectoryError, ValidationError

ADMIN = "cn=admin,dc=example,dc=com"
SYSTEM = tuple(f"file:///etc/ldap/schema/{n}.ldif" for n in ("core", "cosine", "inetorgperson"))

# What `stateless directory start` wrote before topologies existed, byte for byte.
SINGLE = """\
dn: cn=config
objectClass: olcGlobal
cn: config
olcServerID: 1
olcPidFile: /srv/ldap/slapd.pid

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

include: file:///opt/schema/stateless.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: unlimited

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: cn=admin,dc=example,dc=com

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: dc=example,dc=com
olcRootDN: cn=admin,dc=example,dc=com
olcRootPW: {SSHA}HASH
olcDbDirectory: /srv/ldap/data
olcDbMaxSize: 1073741824
olcDbIndex: objectClass eq
olcDbIndex: entryCSN eq
olcDbIndex: entryUUID eq
olcDbIndex: statelessUuid eq
olcDbIndex: statelessLinkPolicy eq
olcDbIndex: statelessPolicyName eq
olcLimits: dn.exact="cn=admin,dc=example,dc=com" size=unlimited time=unlimited
olcAccess: to * by anonymous auth by * none

dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov
olcSpCheckpoint: 100 10
"""


def node(**changes: object) -> Node:
    base = Node(suffix="dc=example,dc=com", root_dn=ADMIN, root_password_hash="{SSHA}HASH",
                db_directory="/srv/ldap/data", pid_file="/srv/ldap/slapd.pid",
                schemas=(*SYSTEM, "file:///opt/schema/stateless.ldif"))
    return attrs.evolve(base, **changes)


def entry(ldif: str, dn: str) -> list[str]:
    """The lines of one entry (after its dn line), as written."""
    for block in ldif.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if lines and lines[0] == f"dn: {dn}":
            return lines[1:]
    raise AssertionError(f"no entry {dn}")


MDB = "olcDatabase={1}mdb,cn=config"
CHAIN = "olcOverlay={0}chain,olcDatabase={-1}frontend,cn=config"
REPLICATION = Credentials(ADMIN, "pw")


def test_a_node_without_peers_is_the_single_node_of_old() -> None:
    assert topology.config_ldif(node()) == SINGLE


def test_embedded_directory_keeps_its_single_node_config(tmp_path: Path) -> None:
    instance = EmbeddedDirectory(Path("/srv/ldap"))
    schema = tmp_path / "stateless.ldif"
    expected = SINGLE.replace("file:///opt/schema/stateless.ldif", f"file://{schema.resolve()}")
    assert instance.config_ldif("{SSHA}HASH", schema) == expected


def test_mesh_provider() -> None:
    ldif = topology.config_ldif(node(server_id=2, peers=("ldap://a:389", "ldap://c:389"),
                                     replication=REPLICATION))
    assert entry(ldif, "cn=config")[2] == "olcServerID: 2"
    mdb = entry(ldif, MDB)
    assert mdb[mdb.index('olcAccess: to * by anonymous auth by * none') + 1:] == [
        "olcSyncrepl: rid=122 provider=ldap://a:389",
        '  bindmethod=simple binddn="cn=admin,dc=example,dc=com"',
        '  credentials="pw"',
        '  searchbase="dc=example,dc=com"',
        '  type=refreshAndPersist retry="1 +" timeout=1',
        "olcSyncrepl: rid=511 provider=ldap://c:389",
        '  bindmethod=simple binddn="cn=admin,dc=example,dc=com"',
        '  credentials="pw"',
        '  searchbase="dc=example,dc=com"',
        '  type=refreshAndPersist retry="1 +" timeout=1',
        "olcMultiProvider: TRUE",
    ]
    assert "olcDbIndex: entryCSN eq" in mdb and "olcDbIndex: entryUUID eq" in mdb
    assert entry(ldif, "olcOverlay={0}syncprov," + MDB)[-1] == "olcSpCheckpoint: 100 10"
    assert CHAIN not in ldif and "back_ldap" not in ldif


def test_consumer_chains_writes_to_its_provider() -> None:
    ldif = topology.config_ldif(node(server_id=4, role="consumer", peers=("ldap://a:389",),
                                     replication=REPLICATION))
    assert entry(ldif, "cn=module{0},cn=config")[-3:] == [
        "olcModuleLoad: back_mdb", "olcModuleLoad: syncprov", "olcModuleLoad: back_ldap"]
    assert entry(ldif, CHAIN) == ["objectClass: olcOverlayConfig", "objectClass: olcChainConfig",
                                  "olcOverlay: {0}chain", "olcChainReturnError: TRUE"]
    assert entry(ldif, "olcDatabase={0}ldap," + CHAIN) == [
        "objectClass: olcLDAPConfig", "objectClass: olcChainDatabase", "olcDatabase: {0}ldap",
        'olcDbURI: "ldap://a:389"',
        'olcDbIDAssertBind: bindmethod=simple binddn="cn=admin,dc=example,dc=com"',
        '  credentials="pw" mode=self']
    mdb = entry(ldif, MDB)
    assert mdb[-6:] == [
        "olcSyncrepl: rid=122 provider=ldap://a:389",
        '  bindmethod=simple binddn="cn=admin,dc=example,dc=com"',
        '  credentials="pw"',
        '  searchbase="dc=example,dc=com"',
        '  type=refreshAndPersist retry="1 +" timeout=1',
        "olcUpdateRef: ldap://a:389"]
    assert "olcMultiProvider: TRUE" not in ldif
    # the chain overlay sits on the frontend, which comes before the databases
    assert ldif.index(CHAIN) < ldif.index("dn: olcDatabase={0}config")


def test_production_shape_tls_accounts_and_authz() -> None:
    tls = Tls("/tls/ldap1.crt", "/tls/ldap1.key", "/tls/ca.crt")
    replicator = Credentials("cn=replicator,dc=example,dc=com", "CHANGE-ME")
    provider = topology.config_ldif(node(
        peers=("ldap://ldap2:389", "ldaps://ldap3:636"), replication=replicator, tls=tls,
        writers=("cn=statelessd,dc=example,dc=com",), retry="5 12 60 +"))
    assert entry(provider, "cn=config")[4:] == [
        "olcTLSCACertificateFile: /tls/ca.crt", "olcTLSCertificateFile: /tls/ldap1.crt",
        "olcTLSCertificateKeyFile: /tls/ldap1.key", "olcAuthzPolicy: to"]
    mdb = entry(provider, MDB)
    assert [line for line in mdb if line.startswith(("olcLimits", "olcAccess"))] == [
        'olcLimits: dn.exact="cn=admin,dc=example,dc=com" size=unlimited time=unlimited',
        'olcLimits: dn.exact="cn=statelessd,dc=example,dc=com" size=unlimited time=unlimited',
        'olcLimits: dn.exact="cn=replicator,dc=example,dc=com" size=unlimited time=unlimited',
        'olcAccess: to * by dn.exact="cn=statelessd,dc=example,dc=com" write '
        'by dn.exact="cn=replicator,dc=example,dc=com" read by anonymous auth by * none']
    tls_lines = [line for line in mdb if "tls_cacert" in line]
    assert tls_lines == [  # StartTLS on ldap://, nothing more on ldaps://
        '  starttls=critical tls_cacert="/tls/ca.crt" tls_reqcert=demand',
        '  tls_cacert="/tls/ca.crt" tls_reqcert=demand']
    assert '  type=refreshAndPersist retry="5 12 60 +" timeout=1' in mdb

    consumer = topology.config_ldif(node(role="consumer", peers=("ldap://ldap1:389",),
                                         replication=replicator, tls=tls))
    assert entry(consumer, "olcDatabase={0}ldap," + CHAIN)[-3:] == [
        'olcDbIDAssertBind: bindmethod=simple binddn="cn=replicator,dc=example,dc=com"',
        '  credentials="CHANGE-ME" mode=self',
        '  starttls=critical tls_cacert="/tls/ca.crt"']
    assert "olcAuthzPolicy" not in consumer  # the providers check the assertion


def test_agreement_ids_are_stable_per_url() -> None:
    peers = ["ldap://a:389", "ldap://b:389", "ldap://c:389"]
    ids = topology.agreement_ids(peers)
    assert list(ids) == peers  # in the order given
    assert all(1 <= rid <= topology.MAX_RID for rid in ids.values())
    assert topology.agreement_ids(list(reversed(peers))) == ids
    assert topology.agreement_ids([*peers, "ldap://d:389"]).items() >= ids.items()


def test_agreement_ids_resolve_collisions() -> None:
    def crc(url: str) -> int:
        return zlib.crc32(url.encode()) % topology.MAX_RID + 1

    urls = (f"ldap://h{n}:389" for n in itertools.count())
    seen: dict[int, str] = {}
    for url in urls:
        if crc(url) in seen:
            first, second = seen[crc(url)], url
            break
        seen[crc(url)] = url
    ids = topology.agreement_ids([second, first])
    assert ids[min(first, second)] == crc(first)
    assert ids[max(first, second)] == crc(first) % topology.MAX_RID + 1


def test_agreement_values_for_partitions_keep_the_rids() -> None:
    provider = node(peers=("ldap://a:389", "ldap://b:389"), replication=REPLICATION)
    everything = topology.agreement_values(provider)
    assert everything[0] == ('rid=122 provider=ldap://a:389 bindmethod=simple '
                             'binddn="cn=admin,dc=example,dc=com" credentials="pw" '
                             'searchbase="dc=example,dc=com" type=refreshAndPersist '
                             'retry="1 +" timeout=1')
    assert topology.agreement_values(provider, ["ldap://b:389/"]) == everything[1:]
    assert topology.agreement_values(provider, []) == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"server_id": 4096}, "server ID 4096: must be 0..4095"),
    ({"role": "hub"}, "role 'hub'"),
    ({"role": "consumer"}, "exactly one provider, 0 given"),
    ({"role": "consumer", "peers": ("ldap://a", "ldap://b"), "replication": REPLICATION},
     "exactly one provider, 2 given"),
    ({"peers": ("ldap://a",)}, "needs the credentials"),
    ({"peers": ("ldap://a", "ldap://a/"), "replication": REPLICATION}, "one is given twice"),
    ({"peers": ("http://a",), "replication": REPLICATION}, "expected ldap://HOST:PORT"),
    ({"peers": ("ldap://a/dc=x",), "replication": REPLICATION}, "expected ldap://HOST:PORT"),
])
def test_invalid_nodes_say_what_to_fix(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        node(**changes)


def test_a_quote_cannot_go_into_a_credential() -> None:
    with pytest.raises(ValidationError, match="double quote"):
        topology.config_ldif(node(peers=("ldap://a",), replication=Credentials(ADMIN, 'p"w')))


def test_agreements_per_topology() -> None:
    assert [topology.agreements(n) for n in (1, 2, 3, 5, 10)] == [0, 2, 6, 20, 90]
    assert topology.agreements(3, consumers=100) == 106
    assert topology.agreements(3, consumers=100, providers_per_consumer=2) == 206
    assert topology.peer_map({1: "ldap://a", 2: "ldap://b", 3: "ldap://c"}, 2) == (
        "ldap://a", "ldap://c")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"role": "consumer"}, "give `provider`"),
    ({"role": "consumer", "provider": "ldap://a", "peers": ("ldap://b",)}, "give `provider`"),
    ({"provider": "ldap://a"}, "a provider has peers"),
    ({"role": "other"}, "must be provider or consumer"),
])
def test_embedded_directory_refuses_mixed_roles(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        EmbeddedDirectory(Path("/srv/x"), **kwargs)  # type: ignore[arg-type]


def test_embedded_nodes_share_the_admin_password_for_agreements(tmp_path: Path) -> None:
    mesh = EmbeddedDirectory(tmp_path, server_id=2, peers=("ldap://127.0.0.1:1",))
    assert not mesh.loads_base and EmbeddedDirectory(tmp_path).loads_base
    assert EmbeddedDirectory(tmp_path, peers=("ldap://127.0.0.1:1",)).loads_base  # server ID 1
    built = mesh.node("{SSHA}HASH", tmp_path / "s.ldif", "secret")
    assert built.replication == Credentials(ADMIN, "secret")
    with pytest.raises(DirectoryError, match="needs the password"):
        mesh.node("{SSHA}HASH", tmp_path / "s.ldif")


def _contrib_generator():  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parents[2] / "contrib" / "openldap" / "generate.py"
    spec = importlib.util.spec_from_file_location("contrib_openldap_generate", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path.parent


def test_contrib_examples_are_generated_and_up_to_date() -> None:
    generator, directory = _contrib_generator()
    files = generator.render()
    assert set(files) == {"mesh-provider-1.ldif", "mesh-provider-2.ldif", "mesh-provider-3.ldif",
                          "site-consumer.ldif", "accounts.ldif"}
    for name, text in files.items():
        assert (directory / name).read_text() == text, \
            f"contrib/openldap/{name} is stale: run python contrib/openldap/generate.py"
    assert "starttls=critical" in files["mesh-provider-1.ldif"]
    assert "olcChainReturnError: TRUE" in files["site-consumer.ldif"]

"""cn=config for one node of a replicated directory, as a pure function of the node's parameters.

Two shapes, as `docs/federation.md` explains:

* a **provider** with peers joins an N-way multi-provider mesh: its own `olcServerID`,
  `olcMultiProvider: TRUE`, one `olcSyncrepl` per peer (`type=refreshAndPersist retry="1 +"`),
  the syncprov overlay and `entryCSN`/`entryUUID` equality indexes;
* a **consumer** is a read-only replica of one provider: an `olcSyncrepl` from it,
  `olcUpdateRef` naming it, and the chain overlay (back_ldap) on the frontend, which follows the
  update referral itself (`olcChainReturnError: TRUE`, identity assertion `mode=self`) so a
  client's write lands on the provider and comes back through replication.  It keeps syncprov
  too, so a daemon's change feed (RFC 4533) can follow the consumer.

A provider with no peers is the single node that `stateless directory start` has always built.
The same function writes the embedded slapd's configuration and the OpenLDAP production
examples that ship with the source (TLS, placeholder credentials; see docs/federation.md), so
what is tested is what ships.

Agreement IDs (`rid`, 1..999) are derived from each peer's URL alone (CRC-32, then the next
free number on a collision, peers taken in sorted order), so adding a node to a mesh does not
renumber the agreements the others already have.
"""

from __future__ import annotations

import urllib.parse
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import attrs

from stateless.errors import ValidationError

Role = Literal["provider", "consumer"]
ROLES: tuple[Role, ...] = ("provider", "consumer")
MAX_RID = 999
MAX_SERVER_ID = 4095

# Equality indexes of the stateless attributes a daemon searches by, and of syncrepl's own.
INDEXES = ("objectClass eq", "entryCSN eq", "entryUUID eq", "statelessUuid eq",
           "statelessLinkPolicy eq", "statelessPolicyName eq")


def _url(value: str) -> str:
    url = value.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ldap", "ldaps") or not parts.netloc or parts.path:
        raise ValidationError(f"replica URL {value!r}: expected ldap://HOST:PORT or "
                              "ldaps://HOST:PORT")
    return url


def _urls(values: Iterable[str]) -> tuple[str, ...]:
    urls = tuple(_url(v) for v in values)
    if len(set(urls)) != len(urls):
        raise ValidationError(f"replica URLs {', '.join(urls)}: one is given twice; name each "
                              "peer once")
    return urls


@attrs.frozen
class Tls:
    """Server certificate for clients and peers, and the CA that agreements verify peers with."""

    certificate_file: str
    key_file: str
    ca_file: str


@attrs.frozen
class Credentials:
    """A simple bind one node makes to another: agreements pull with it, the chain asserts with it."""

    bind_dn: str
    password: str


@attrs.frozen
class Node:
    """Everything that makes one node's cn=config; no defaults that depend on the machine."""

    suffix: str
    root_dn: str
    root_password_hash: str
    db_directory: str
    pid_file: str
    schemas: tuple[str, ...]  # include: URLs, in load order
    server_id: int = attrs.field(default=1)
    role: Role = attrs.field(default="provider")
    peers: tuple[str, ...] = attrs.field(default=(), converter=_urls)
    replication: Credentials | None = None
    tls: Tls | None = None
    module_path: str = "/usr/lib/ldap"
    retry: str = "1 +"  # syncrepl retry schedule: every second, forever
    writers: tuple[str, ...] = ()  # accounts that may write (besides the root DN)

    @server_id.validator
    def _check_server_id(self, _attribute: object, value: int) -> None:
        if not 0 <= value <= MAX_SERVER_ID:
            raise ValidationError(f"server ID {value}: must be 0..{MAX_SERVER_ID} (olcServerID); "
                                  "give each provider of a mesh its own")

    @role.validator
    def _check_role(self, _attribute: object, value: str) -> None:
        if value not in ROLES:
            raise ValidationError(f"role {value!r}: must be provider or consumer")

    def __attrs_post_init__(self) -> None:
        if self.role == "consumer" and len(self.peers) != 1:
            # With two chain databases, slapd 2.5.13 chained writes for the second URI
            # anonymously (refused), so a consumer follows one provider.
            raise ValidationError(f"consumer: replicates from and chains writes to exactly one "
                                  f"provider, {len(self.peers)} given; name it with --consumer-of URL")
        if self.peers and self.replication is None:
            raise ValidationError("replicated node: needs the credentials its agreements bind "
                                  "with (a DN every peer accepts and its password)")


def agreement_ids(peers: Sequence[str]) -> dict[str, int]:
    """rid per peer URL: stable for a URL whatever the other peers are (see the module doc)."""
    if len(peers) > MAX_RID:
        raise ValidationError(f"{len(peers)} peers: a node takes at most {MAX_RID} agreements")
    taken: dict[str, int] = {}
    used: set[int] = set()
    for url in sorted(_urls(peers)):
        rid = zlib.crc32(url.encode()) % MAX_RID + 1
        while rid in used:
            rid = rid % MAX_RID + 1
        used.add(rid)
        taken[url] = rid
    return {url: taken[url] for url in _urls(peers)}


def agreements(providers: int, consumers: int = 0, providers_per_consumer: int = 1) -> int:
    """Replication agreements of a topology: n(n-1) in a full mesh, plus each consumer's."""
    return providers * (providers - 1) + consumers * min(providers_per_consumer, providers)


def _quote(value: str) -> str:
    if '"' in value or "\n" in value:
        raise ValidationError(f"value {value!r}: a double quote or a line break cannot go into "
                              "cn=config; choose another")
    return f'"{value}"'


def _syncrepl_words(rid: int, url: str, node: Node) -> list[str]:
    assert node.replication is not None
    words = [f"rid={rid:03d} provider={url}",
             f"bindmethod=simple binddn={_quote(node.replication.bind_dn)}",
             f"credentials={_quote(node.replication.password)}",
             f"searchbase={_quote(node.suffix)}",
             f"type=refreshAndPersist retry={_quote(node.retry)} timeout=1"]
    if node.tls is not None:
        tls = f"tls_cacert={_quote(node.tls.ca_file)} tls_reqcert=demand"
        words.append(tls if url.startswith("ldaps://") else "starttls=critical " + tls)
    return words


def syncrepl(rid: int, url: str, node: Node) -> list[str]:
    """One agreement as folded LDIF lines (the continuation lines start with a space)."""
    words = _syncrepl_words(rid, url, node)
    return ["olcSyncrepl: " + words[0], *("  " + w for w in words[1:])]


def agreement_values(node: Node, only: Iterable[str] | None = None) -> list[str]:
    """The node's `olcSyncrepl` values (all peers, or those in `only`), for an LDAP modify.

    Replacing the attribute with a subset stops the other agreements at once, which is how a
    partition is made and healed through cn=config; the rids stay those of the full peer list.
    """
    wanted = None if only is None else set(_urls(only))
    return [" ".join(_syncrepl_words(rid, url, node))
            for url, rid in agreement_ids(node.peers).items() if wanted is None or url in wanted]


def _entry(dn: str, *lines: str) -> str:
    return "\n".join((f"dn: {dn}", *lines)) + "\n"


def _global(node: Node) -> str:
    lines = ["objectClass: olcGlobal", "cn: config", f"olcServerID: {node.server_id}",
             f"olcPidFile: {node.pid_file}"]
    if node.tls is not None:
        lines += [f"olcTLSCACertificateFile: {node.tls.ca_file}",
                  f"olcTLSCertificateFile: {node.tls.certificate_file}",
                  f"olcTLSCertificateKeyFile: {node.tls.key_file}"]
    if node.role == "provider" and node.replication and node.replication.bind_dn != node.root_dn:
        lines.append("olcAuthzPolicy: to")  # lets the consumers' chain assert their clients
    return _entry("cn=config", *lines)


def _modules(node: Node) -> str:
    modules = ["back_mdb", "syncprov"] + (["back_ldap"] if node.role == "consumer" else [])
    return _entry("cn=module{0},cn=config", "objectClass: olcModuleList", "cn: module{0}",
                  f"olcModulePath: {node.module_path}", *(f"olcModuleLoad: {m}" for m in modules))


def _schema(node: Node) -> str:
    head = _entry("cn=schema,cn=config", "objectClass: olcSchemaConfig", "cn: schema")
    return head + "".join(f"\ninclude: {url}\n" for url in node.schemas)


def _frontend(node: Node) -> str:
    frontend = _entry("olcDatabase={-1}frontend,cn=config", "objectClass: olcDatabaseConfig",
                      "objectClass: olcFrontendConfig", "olcDatabase: {-1}frontend",
                      "olcSizeLimit: unlimited")
    if node.role != "consumer":
        return frontend
    assert node.replication is not None
    chain = "olcOverlay={0}chain,olcDatabase={-1}frontend,cn=config"
    parts = [frontend, _entry(chain, "objectClass: olcOverlayConfig", "objectClass: olcChainConfig",
                              "olcOverlay: {0}chain", "olcChainReturnError: TRUE")]
    url = node.peers[0]
    bind = [f"olcDbIDAssertBind: bindmethod=simple binddn={_quote(node.replication.bind_dn)}",
            f"  credentials={_quote(node.replication.password)} mode=self"]
    if node.tls is not None and url.startswith("ldap://"):
        bind.append(f"  starttls=critical tls_cacert={_quote(node.tls.ca_file)}")
    parts.append(_entry(f"olcDatabase={{0}}ldap,{chain}", "objectClass: olcLDAPConfig",
                        "objectClass: olcChainDatabase", "olcDatabase: {0}ldap",
                        f"olcDbURI: {_quote(url)}", *bind))
    return "\n".join(parts)


def _database(node: Node) -> str:
    lines = ["objectClass: olcDatabaseConfig", "objectClass: olcMdbConfig",
             "olcDatabase: {1}mdb", f"olcSuffix: {node.suffix}", f"olcRootDN: {node.root_dn}",
             f"olcRootPW: {node.root_password_hash}", f"olcDbDirectory: {node.db_directory}",
             "olcDbMaxSize: 1073741824", *(f"olcDbIndex: {i}" for i in INDEXES)]
    readers = [node.replication.bind_dn] if node.replication else []
    readers = [dn for dn in readers if dn != node.root_dn]
    limited = [node.root_dn, *node.writers, *readers]
    lines += [f"olcLimits: dn.exact={_quote(dn)} size=unlimited time=unlimited" for dn in limited]
    grants = [f"by dn.exact={_quote(dn)} write" for dn in node.writers]
    grants += [f"by dn.exact={_quote(dn)} read" for dn in readers]
    lines.append(f"olcAccess: to * {' '.join([*grants, 'by anonymous auth by * none'])}")
    for url, rid in agreement_ids(node.peers).items():
        lines += syncrepl(rid, url, node)
    if node.role == "consumer":
        lines += [f"olcUpdateRef: {url}" for url in node.peers]
    elif node.peers:
        lines.append("olcMultiProvider: TRUE")
    return _entry("olcDatabase={1}mdb,cn=config", *lines)


def config_ldif(node: Node) -> str:
    """The node's whole cn=config, for `slapadd -n0 -F DIR -l FILE`."""
    return "\n".join([
        _global(node), _modules(node), _schema(node), _frontend(node),
        _entry("olcDatabase={0}config,cn=config", "objectClass: olcDatabaseConfig",
               "olcDatabase: {0}config", f"olcRootDN: {node.root_dn}"),
        _database(node),
        _entry("olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config",
               "objectClass: olcOverlayConfig", "objectClass: olcSyncProvConfig",
               "olcOverlay: {0}syncprov", "olcSpCheckpoint: 100 10"),
    ])


def peer_map(urls: Mapping[int, str], server_id: int) -> tuple[str, ...]:
    """The peers of provider `server_id` in a mesh given as {server ID: URL}: all the others."""
    return tuple(url for sid, url in sorted(urls.items()) if sid != server_id)


__all__ = ["INDEXES", "ROLES", "Credentials", "Node", "Role", "Tls", "agreement_ids",
           "agreement_values", "agreements", "config_ldif", "peer_map", "syncrepl"]

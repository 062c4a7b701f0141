"""`Directory`: blocking ldap3 access to the `ou=stateless` subtree.

Every method validates with the model before sending and turns LDAP failures into
`stateless.errors` types that say what, where and how to fix.  One connection per thread, so
the daemon can call it from a thread pool.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import TYPE_CHECKING

import ldap3
from ldap3.core import exceptions as lx
from ldap3.utils.conv import escape_filter_chars

from stateless.directory import addresses, ldap3_shim, mapping, schemadef, syntax
from stateless.directory.connection import DEFAULT_BASE
from stateless.directory.mapping import escape_value, ldap_bool
from stateless.directory.poolalloc import PoolAllocations
from stateless.errors import (
    ConflictError,
    DirectoryError,
    HostEntryMissing,
    NotFoundError,
    StatelessError,
    ValidationError,
)
from stateless.model.identity import HostIdentity, normalize_uuid
from stateless.model.inventory import (
    ContainerKind,
    HostState,
    Image,
    IpPool,
    Link,
    Policy,
    Rule,
    Server,
    Site,
    SiteLink,
    Snapshot,
    VCenter,
    check_name,
    normalize_path,
    parent_path,
)
from stateless.model.settings import SettingValue, coerce, parse_item_ref
from stateless.policy.pools import in_pool

if TYPE_CHECKING:
    from stateless.model.birth import BirthMessage
    from stateless.model.security import PinnedIdentity
    from stateless.policy.pools import Allocator


_READS = frozenset({"read", "search", "snapshot", "list", "find"})


def _translate(exc: lx.LDAPException, what: str, dn: str) -> StatelessError:
    """An LDAP failure as a user-facing error: what, where, how to fix."""
    detail = getattr(exc, "message", "") or getattr(exc, "description", "") or str(exc)
    where = f"{what} ({dn})" if dn else what
    if isinstance(exc, lx.LDAPNoSuchObjectResult):
        return NotFoundError(f"{where}: no such entry; check the name (`stateless --help` lists "
                             "the list commands)")
    if isinstance(exc, lx.LDAPEntryAlreadyExistsResult):
        return ConflictError(f"{where}: already exists; choose another name or delete it first")
    if isinstance(exc, lx.LDAPAttributeOrValueExistsResult):
        return ConflictError(f"{where}: value already present ({detail})")
    if isinstance(exc, lx.LDAPNoSuchAttributeResult):
        return ConflictError(f"{where}: the value changed meanwhile ({detail}); read it again and retry")
    if isinstance(exc, lx.LDAPInvalidAttributeSyntaxResult | lx.LDAPConstraintViolationResult
                  | lx.LDAPObjectClassViolationResult | lx.LDAPUndefinedAttributeTypeResult):
        return ValidationError(f"{where}: the directory rejected it: {detail}; see docs/directory.md "
                               "for the attribute syntax")
    if isinstance(exc, lx.LDAPNotAllowedOnNotLeafResult):
        return ConflictError(f"{where}: has child entries; remove them first")
    if isinstance(exc, lx.LDAPInvalidCredentialsResult):
        return DirectoryError(f"{where}: bind refused (invalid credentials); check --bind-dn and "
                              "--password-file")
    if isinstance(exc, lx.LDAPInsufficientAccessRightsResult):
        verb = "read" if what.split(" ", 1)[0] in _READS else "write"
        return DirectoryError(f"{where}: access denied; bind (--bind-dn, --password-file) as an "
                              f"account allowed to {verb} {dn or 'it'}")
    if isinstance(exc, lx.LDAPOperationResult):
        return DirectoryError(f"{where}: the directory refused: {detail}")
    return DirectoryError(f"{where}: cannot talk to the directory: {detail}; is the server running "
                          "and the --ldap URL right?")


def _check_base(base: str) -> None:
    from ldap3.utils.dn import parse_dn

    try:
        parse_dn(base)
    except lx.LDAPException as exc:
        raise ValidationError(f"base {base!r}: not an LDAP DN ({exc}); expected e.g. "
                              f"{DEFAULT_BASE} (--base or STATELESS_BASE)") from None


class Directory(PoolAllocations):
    """The stateless subtree of one directory (several URLs: failover in the given order)."""

    def __init__(self, urls: Sequence[str] | str, bind_dn: str | None = None,
                 password: str | None = None, base: str = DEFAULT_BASE, *,
                 connect_timeout: float = 5.0, receive_timeout: float = 30.0,
                 tls: ldap3.Tls | None = None) -> None:
        """`tls` (stateless.security.ldaptls.client_tls): LDAPS for ldaps:// URLs, StartTLS
        before the bind for ldap:// ones."""
        if isinstance(urls, str):
            urls = urls.split(",")
        urls = [u.strip().rstrip("/") for u in urls if u.strip()]
        if not urls:
            raise ValidationError("no directory URL: give --ldap ldap://host:port or set "
                                  "STATELESS_LDAP")
        for url in urls:
            scheme = url.partition("://")[0].lower() if "://" in url else ""
            if scheme not in ("ldap", "ldaps", "ldapi"):
                raise ValidationError(f"directory URL {url}: not an LDAP URL (scheme "
                                      f"{scheme or 'missing'}); expected ldap://host:port or "
                                      "ldaps://host:port")
        _check_base(base)
        self.urls = tuple(urls)
        self.bind_dn = bind_dn
        self._password = password
        self.base = base
        self._base_key = mapping.dn_key(base)
        self._receive_timeout = receive_timeout
        self._tls = tls
        try:
            servers = [ldap3.Server(u, connect_timeout=connect_timeout, get_info=ldap3.NONE,
                                    tls=tls) for u in self.urls]
        except lx.LDAPException as exc:
            raise ValidationError(f"directory URL {','.join(self.urls)}: {exc}; expected "
                                  "ldap://host:port") from exc
        if len(servers) == 1:
            self._server: ldap3.Server | ldap3.ServerPool = servers[0]
        else:
            ldap3.set_config_parameter("POOLING_LOOP_TIMEOUT", 1)
            self._server = ldap3.ServerPool(servers, ldap3.FIRST, active=2, exhaust=30)
        self._local = threading.local()
        self._all: list[ldap3.Connection] = []
        self._lock = threading.Lock()
        # Bumped when the directory went away: every thread drops its connection before its
        # next operation instead of finding out, with a failed write, that it is dead.
        self._generation = 0
        # Pool name -> addresses known taken (read, added or lost to another writer).
        self._taken: dict[str, Allocator] = {}

    # --- connection ------------------------------------------------------------------------

    def _conn(self) -> ldap3.Connection:
        conn: ldap3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            if getattr(self._local, "generation", None) == self._generation:
                return conn
            self._discard(conn)
        self._local.conn = None
        self._local.generation = self._generation
        # ldap3 skips an address for 5 s after a failed connect: a directory that is back
        # would stay "unavailable" that long for every thread.
        for server in getattr(self._server, "servers", None) or [self._server]:
            with suppress(TypeError):  # nothing resolved yet: nothing to forget
                server.reset_availability()
        conn = ldap3.Connection(self._server, self.bind_dn, self._password,
                                receive_timeout=int(self._receive_timeout), raise_exceptions=True,
                                read_only=False, auto_referrals=False)
        try:
            if self._tls is not None:
                conn.open()
                if not conn.server.ssl:
                    conn.start_tls()
            conn.bind()
        except lx.LDAPException as exc:
            raise _translate(exc, f"bind as {self.bind_dn or 'anonymous'} to {','.join(self.urls)}",
                             "") from exc
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:  # some may be in use by threads still waiting on an answer
            with suppress(lx.LDAPException):
                ldap3_shim.close_now(conn)

    def reset(self) -> None:
        """The directory went away (the change feed saw it): every thread reconnects before
        its next operation rather than failing once on a dead connection."""
        with self._lock:
            self._generation += 1

    def _discard(self, conn: ldap3.Connection) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with suppress(Exception):  # it is dead or dying either way
            conn.unbind()

    @contextmanager
    def _op(self, what: str, dn: str = "") -> Iterator[ldap3.Connection]:
        try:
            yield self._conn()
        except lx.LDAPException as exc:
            if isinstance(exc, lx.LDAPCommunicationError | lx.LDAPSessionTerminatedByServerError):
                self._local.conn = None
                self.reset()  # the other threads' connections went the same way
            raise _translate(exc, what, dn) from exc

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- DNs -------------------------------------------------------------------------------

    def ou(self, name: str) -> str:
        return f"ou={name},{self.base}"

    def named_dn(self, ou: str, name: str) -> str:
        return f"cn={escape_value(name)},{self.ou(ou)}"

    def container_dn(self, path: str) -> str:
        parts = [p for p in normalize_path(path).split("/") if p]
        return ",".join([*(f"cn={escape_value(p)}" for p in reversed(parts)), self.ou("inventory")])

    def host_dn(self, uuid: str) -> str:
        return f"statelessUuid={normalize_uuid(uuid)},{self.ou('hosts')}"

    def target_dn(self, target: str) -> str:
        """A link target: an inventory path (/DC1/Prod) or host:UUID."""
        if target.startswith("host:"):
            return self.host_dn(target[5:])
        return self.container_dn(target)

    @staticmethod
    def link_dn(policy: str, owner_dn: str) -> str:
        return f"statelessLinkPolicy={escape_value(policy)},{owner_dn}"

    # --- generic operations ----------------------------------------------------------------

    def add_entry(self, dn: str, attributes: Mapping[str, Sequence[str]], what: str = "") -> None:
        with self._op(what or "add", dn) as conn:
            conn.add(dn, attributes={k: list(v) for k, v in attributes.items()})

    def modify(self, dn: str, changes: Mapping[str, list[tuple[str, list[str]]]], what: str = "") -> None:
        with self._op(what or "modify", dn) as conn:
            conn.modify(dn, dict(changes))

    def delete_entry(self, dn: str, what: str = "", *, subtree: bool = False) -> None:
        if subtree:
            for child in sorted(self._dns_below(dn), key=lambda d: -len(mapping.split_dn(d))):
                self.delete_entry(child, what)
        with self._op(what or "delete", dn) as conn:
            conn.delete(dn)

    def _dns_below(self, dn: str) -> list[str]:
        with self._op("list", dn) as conn:
            conn.search(dn, "(objectClass=*)", ldap3.LEVEL, attributes=[])
            children = [str(e["dn"]) for e in conn.response if e.get("type") == "searchResEntry"]
        out = []
        for child in children:
            out.append(child)
            out.extend(self._dns_below(child))
        return out

    def read(self, dn: str, what: str = "read", attributes: Sequence[str] | None = None) -> dict[
            str, list[str]] | None:
        """One entry's attributes, or None if it does not exist."""
        try:
            with self._op(what, dn) as conn:
                conn.search(dn, "(objectClass=*)", ldap3.BASE,
                            attributes=list(attributes or mapping.SEARCH_ATTRIBUTES))
                for entry in conn.response:
                    if entry.get("type") == "searchResEntry":
                        return mapping.canonical_attrs(entry["raw_attributes"])
        except NotFoundError:
            return None
        return None

    def search(self, base: str, filt: str, attributes: Sequence[str] = ("objectClass",),
               what: str = "search") -> list[tuple[str, dict[str, list[str]]]]:
        """Paged subtree search -> [(dn, attributes)]."""
        out: list[tuple[str, dict[str, list[str]]]] = []
        cookie: bytes | None = None
        with self._op(what, base) as conn:
            while True:
                conn.search(base, filt, ldap3.SUBTREE, attributes=list(attributes),
                            paged_size=500, paged_cookie=cookie,
                            dereference_aliases=ldap3.DEREF_NEVER)
                for entry in conn.response:
                    if entry.get("type") == "searchResEntry":
                        out.append((str(entry["dn"]),
                                    mapping.canonical_attrs(entry["raw_attributes"])))
                controls = conn.result.get("controls") or {}
                cookie = controls.get("1.2.840.113556.1.4.319", {}).get("value", {}).get("cookie")
                if not cookie:
                    return out

    # --- setup and snapshot ----------------------------------------------------------------

    def init(self) -> list[str]:
        """Create the base DIT (idempotent); returns the DNs created."""
        created = []
        for dn, entry in schemadef.base_entries(self.base):
            try:
                self.add_entry(dn, entry, "create base entry")
                created.append(dn)
            except ConflictError:
                continue
            except NotFoundError as exc:
                raise NotFoundError(f"create {dn}: its parent does not exist; create the suffix "
                                    f"entry first or choose --base under an existing entry") from exc
        return created

    def snapshot(self) -> Snapshot:
        """Everything under the base in one paged subtree search."""
        entries = self.search(self.base, "(objectClass=*)", mapping.SEARCH_ATTRIBUTES, "snapshot")
        return mapping.build_snapshot(self.base, entries)

    # --- containers ------------------------------------------------------------------------

    def add_container(self, path: str, kind: ContainerKind | str, description: str = "") -> str:
        path = normalize_path(path)
        kind = ContainerKind(kind) if kind in set(ContainerKind) else None  # type: ignore[assignment]
        if kind is None or kind == ContainerKind.ROOT:
            raise ValidationError(f"container {path}: kind must be datacenter, folder or cluster")
        if path == "/":
            raise ValidationError("container /: the root exists already (ou=inventory)")
        parent = parent_path(path) or "/"
        dn = self.container_dn(path)
        entry = {"objectClass": ["top", "statelessContainer"], "cn": [path.rsplit("/", 1)[1]],
                 "statelessKind": [str(kind)]}
        if description:
            entry["description"] = [description]
        try:
            self.add_entry(dn, entry, f"add container {path}")
        except NotFoundError:
            raise NotFoundError(f"add container {path}: parent {parent} does not exist; add it first "
                                f"with `stateless container add {parent} --kind datacenter|folder`") from None
        return dn

    def set_block(self, path: str, block: bool) -> None:
        path = normalize_path(path)
        if path == "/":
            raise ValidationError("container /: the root has nothing above it to block")
        self.modify(self.container_dn(path),
                    {"statelessBlockInheritance": [(ldap3.MODIFY_REPLACE, [ldap_bool(block)])]},
                    f"set block inheritance on {path}")

    # --- policies --------------------------------------------------------------------------

    def policy_dn(self, name: str) -> str:
        return self.named_dn("policies", check_name(name, "policy"))

    def create_policy(self, policy: Policy) -> str:
        attrs = mapping.policy_attrs(policy)
        self.add_entry(self.policy_dn(policy.name), attrs, f"create policy {policy.name}")
        return self.policy_dn(policy.name)

    def _policy_raw(self, name: str) -> dict[str, list[str]]:
        raw = self.read(self.policy_dn(name), f"read policy {name}")
        if raw is None:
            raise NotFoundError(f"policy {name}: not found under {self.ou('policies')}; "
                                "create it with `stateless policy create`")
        return raw

    def policy_set(self, name: str, values: Mapping[str, object]) -> None:
        """Set keys; each touched item is rewritten as one value (delete old, add new, atomic)."""
        canonical = {key: coerce(key, value) for key, value in values.items()}
        raw = self._policy_raw(name)
        changes: dict[str, list[tuple[str, list[str]]]] = {}
        for (attr, item), group in syntax.group_settings(canonical).items():
            old_values = [v for v in raw.get(attr, []) if syntax.item_name_of_value(attr, v) == item]
            merged: dict[str, SettingValue] = {}
            for old in old_values:
                with suppress(StatelessError):  # a bad old value is simply replaced
                    merged.update(syntax.parse_value(attr, old)[1])
            if attr == syntax.ADVANCED_ATTR:
                merged = {}
            merged.update(group)
            new = syntax.format_value_text(attr, item, merged)
            self._replace_values(changes, attr, old_values, [new])
        self.modify(self.policy_dn(name), changes, f"set {', '.join(values)} in policy {name}")

    def policy_unset(self, name: str, keys: Sequence[str]) -> None:
        """Remove keys (a key, or a whole item such as portgroup.vMotion) from the policy."""
        raw = self._policy_raw(name)
        changes: dict[str, list[tuple[str, list[str]]]] = {}
        for key in keys:
            ref = parse_item_ref(key)
            found = False
            for attr in syntax.SETTING_ATTRS:
                for old in raw.get(attr, []):
                    item = syntax.item_name_of_value(attr, old)
                    if item is None or not (ref == item or ref.startswith(item + ".")
                                            or (attr in syntax.GROUP_ATTRS and ref.startswith(item))):
                        continue
                    try:
                        current = syntax.parse_value(attr, old)[1]
                    except StatelessError:
                        current = {}
                    remaining = {} if ref == item else {k: v for k, v in current.items() if k != ref}
                    if ref != item and len(remaining) == len(current):
                        continue
                    found = True
                    new = ([syntax.format_value_text(attr, item, remaining)]
                           if remaining and attr != syntax.ADVANCED_ATTR else [])
                    self._replace_values(changes, attr, [old], new)
                    raw[attr] = [v for v in raw[attr] if v != old] + new
            if not found:
                raise NotFoundError(f"policy {name}: does not set {key}; see "
                                    f"`stateless policy show {name}`")
        self.modify(self.policy_dn(name), changes, f"unset {', '.join(keys)} in policy {name}")

    @staticmethod
    def _replace_values(changes: dict[str, list[tuple[str, list[str]]]], attr: str,
                        old: list[str], new: list[str]) -> None:
        ops = changes.setdefault(attr, [])
        if old:
            ops.append((ldap3.MODIFY_DELETE, old))
        if new:
            ops.append((ldap3.MODIFY_ADD, new))

    def policy_remove(self, name: str, refs: Sequence[str]) -> None:
        """Explicitly remove inherited items or keys (statelessRemove values)."""
        values = [parse_item_ref(r) for r in refs]
        self._policy_raw(name)
        self.modify(self.policy_dn(name),
                    {syntax.REMOVE_ATTR: [(ldap3.MODIFY_ADD, values)]},
                    f"add removal {', '.join(values)} to policy {name}")

    def policy_describe(self, name: str, description: str) -> None:
        self.modify(self.policy_dn(name), {"description": [(ldap3.MODIFY_REPLACE, [description])]},
                    f"describe policy {name}")

    def policy_links(self, name: str) -> list[str]:
        """DNs of the entries where the policy is linked (containers, hosts) or named by rules."""
        name = check_name(name, "policy")
        filt = (f"(|(&(objectClass=statelessPolicyLink)(statelessLinkPolicy={escape_filter_chars(name)}))"
                f"(&(objectClass=statelessRule)(statelessPolicyName={escape_filter_chars(name)})))")
        return [dn for dn, _ in self.search(self.base, filt, ("objectClass",), f"find links of {name}")]

    def describe(self, dn: str) -> str:
        """A DN as users name it: /DC1/Prod, host:UUID, rule NAME (the DN itself otherwise)."""
        rdns = mapping.relative(dn, self._base_key)
        if not rdns:
            return dn
        if rdns[0][0] == "statelesslinkpolicy":
            rdns = rdns[1:]
        branch = rdns[-1]
        if branch == ("ou", "inventory"):
            return "/" + "/".join(v for _, v in reversed(rdns[:-1]))
        if branch == ("ou", "hosts") and len(rdns) == 2:
            return f"host:{rdns[0][1]}"
        if branch == ("ou", "rules") and len(rdns) == 2:
            return f"rule {rdns[0][1]}"
        return dn

    def delete_policy(self, name: str, force: bool = False) -> list[str]:
        """Delete a policy; refuses while it is linked unless `force` (which unlinks it)."""
        dn = self.policy_dn(name)
        self._policy_raw(name)
        links = self.policy_links(name)
        if links and not force:
            where = "; ".join(self.describe(dn) for dn in links)
            raise ConflictError(f"policy {name}: still linked at {where}; unlink it first "
                                "(`stateless policy unlink`) or use --force")
        for link in links:
            if mapping.dn_key(link)[0][0] == "statelesslinkpolicy":
                self.delete_entry(link, f"unlink {name}")
            else:
                self.modify(link, {"statelessPolicyName": [(ldap3.MODIFY_DELETE, [name])]},
                            f"remove {name} from rule")
        self.delete_entry(dn, f"delete policy {name}")
        return links

    # --- links -----------------------------------------------------------------------------

    def link(self, policy: str, target: str, order: int = 1, enforced: bool = False,
             disabled: bool = False) -> str:
        link = Link(policy, order, enforced, disabled)
        self._policy_raw(policy)
        owner = self.target_dn(target)
        if self.read(owner, f"read {target}", ["objectClass"]) is None:
            raise NotFoundError(f"link {policy} at {target}: {target} does not exist; add it first "
                                "(`stateless container add` or `stateless host add`)")
        dn = self.link_dn(policy, owner)
        try:
            self.add_entry(dn, mapping.link_attrs(link), f"link {policy} at {target}")
        except ConflictError:
            raise ConflictError(f"link {policy} at {target}: already linked; unlink first to change "
                                "it, or edit the link entry") from None
        return dn

    def unlink(self, policy: str, target: str) -> None:
        try:
            self.delete_entry(self.link_dn(check_name(policy, "policy"), self.target_dn(target)),
                              f"unlink {policy} from {target}")
        except NotFoundError:
            raise NotFoundError(f"unlink {policy} from {target}: it is not linked there; see "
                                "`stateless container list`") from None

    # --- hosts -----------------------------------------------------------------------------

    def add_host(self, uuid: str, location: str | None = None,
                 answers: Mapping[str, object] | None = None,
                 identity: HostIdentity | None = None) -> str:
        uuid = normalize_uuid(uuid)
        entry: dict[str, list[str]] = {"objectClass": ["top", "statelessHost"], "statelessUuid": [uuid]}
        if location is not None:
            location = normalize_path(location)
            if self.read(self.container_dn(location), "read", ["objectClass"]) is None:
                raise NotFoundError(f"host {uuid}: location {location} does not exist; add it with "
                                    "`stateless container add`")
            entry["statelessLocation"] = [location]
        values = [syntax.format_answer(k, coerce(k, v, answer=True)) for k, v in (answers or {}).items()]
        if values:
            entry["statelessAnswer"] = values
        if identity is not None:
            if identity.uuid != uuid:
                raise ValidationError(f"host {uuid}: identity is for {identity.uuid}")
            entry.update(mapping.identity_attrs(identity))
        dn = self.host_dn(uuid)
        checked = {k: coerce(k, v, answer=True) for k, v in (answers or {}).items()}
        reserved = addresses.claim(self, uuid, addresses.answered_addresses(checked))
        try:
            self.add_entry(dn, entry, f"add host {uuid}")
        except StatelessError:
            addresses.release(self, reserved)
            raise
        return dn

    def set_answers(self, uuid: str, answers: Mapping[str, object]) -> None:
        raw = self.read(self.host_dn(uuid), f"read host {uuid}")
        if raw is None:
            raise HostEntryMissing(uuid)
        changes: dict[str, list[tuple[str, list[str]]]] = {}
        checked = {k: coerce(k, v, answer=True) for k, v in answers.items()}
        for key, value in checked.items():
            text = syntax.format_answer(key, value)
            old = [v for v in raw.get("statelessAnswer", []) if v.partition("=")[0].strip() == key]
            self._replace_values(changes, "statelessAnswer", old, [text])
        reserved = addresses.claim(self, uuid, addresses.answered_addresses(checked))
        try:
            self.modify(self.host_dn(uuid), changes, f"set answers of host {uuid}")
        except StatelessError:
            addresses.release(self, reserved)
            raise
        before = addresses.answers_of(raw)  # what the host no longer answers goes back
        gone = set(addresses.answered_addresses({k: before[k] for k in checked if k in before}))
        gone -= set(addresses.answered_addresses(checked))
        addresses.release(self, [(p.name, a) for p in addresses.pools(self) for a in gone
                                 if in_pool(p, a)])

    def set_location(self, uuid: str, location: str) -> None:
        location = normalize_path(location)
        if location != "/" and self.read(self.container_dn(location), "read", ["objectClass"]) is None:
            raise NotFoundError(f"host {uuid}: location {location} does not exist; add it with "
                                "`stateless container add`")
        self.modify(self.host_dn(uuid), {"statelessLocation": [(ldap3.MODIFY_REPLACE, [location])]},
                    f"set location of host {uuid}")

    def record_identity(self, identity: HostIdentity, when: datetime) -> None:
        """Store what a birth message said (creating the host entry if needed)."""
        dn = self.host_dn(identity.uuid)
        attrs = mapping.identity_attrs(identity)
        attrs["statelessLastBirth"] = [mapping.generalized_time(when)]
        if self.read(dn, "read host", ["objectClass"]) is None:
            self.add_host(identity.uuid, identity=identity)
        self.modify(dn, {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in attrs.items()},
                    f"record birth of {identity.uuid}")

    def record_birth(self, identity: HostIdentity, when: datetime, owner: str, *,
                     known: bool = True, thumbprint: str | None = None,
                     image: str | None = None, pin: PinnedIdentity | None = None) -> bool:
        """Persist a birth before it is answered: identity, time, owner, state pending, and
        the certificate thumbprint vCenter needs to add the host (also after a restart).

        One operation: a modify of a host the caller knows (`known`), else an add of the whole
        entry; the other one follows only when that guess was wrong.  A boot storm of new
        hosts thus costs the directory one write each.  `pin` (a first approval) goes into
        that add; True when it did, else the caller pins with `pin_identity`, whose add-only
        modify refuses a second pin.
        """
        dn = self.host_dn(identity.uuid)
        attrs = mapping.identity_attrs(identity)
        attrs["statelessLastBirth"] = [mapping.generalized_time(when)]
        attrs["statelessOwner"] = [check_name(owner, "server")]
        attrs["statelessState"] = [str(HostState.PENDING)]
        attrs["statelessStateReason"] = ["birth accepted"]
        attrs["statelessThumbprint"] = [thumbprint] if thumbprint else []  # the current one
        attrs["statelessBootImage"] = [image] if image else []  # what it booted, if it says
        changes = {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in attrs.items()}
        what = f"record birth of {identity.uuid}"
        if not known:
            from stateless.directory.pinning import pinned_attrs

            entry = {"objectClass": ["top", "statelessHost"], "statelessUuid": [identity.uuid],
                     **{k: v for k, v in attrs.items() if v},
                     **(pinned_attrs(pin) if pin is not None else {})}
            try:
                self.add_entry(dn, entry, what)
                return pin is not None
            except ConflictError:
                pass  # it exists after all (added meanwhile, or the caller's view is old)
        try:
            self.modify(dn, changes, what)
        except NotFoundError:
            self.add_host(identity.uuid, identity=identity)
            self.modify(dn, changes, what)
        return False

    def pin_identity(self, uuid: str, pinned: PinnedIdentity) -> bool:
        """Pin a host's identity at first approval (`pinning.pin`); False when pinned already."""
        from stateless.directory import pinning

        return pinning.pin(self, uuid, pinned)

    def record_quarantine(self, message: BirthMessage, when: datetime, owner: str, reason: str,
                          *, known: bool) -> None:
        """Record a quarantined birth (`quarantine.record`): a known host's identity stays."""
        from stateless.directory import quarantine

        quarantine.record(self, message, when, owner, reason, known=known)

    def put_server(self, server: Server) -> str:
        """Add or update a server's own entry (its URL changes when its port does)."""
        dn = self.named_dn("servers", server.name)
        if self.read(dn, "read server", ["objectClass"]) is None:
            return self.add_server(server)
        self.modify(dn, {"statelessSite": [(ldap3.MODIFY_REPLACE, [server.site])],
                         "statelessUrl": [(ldap3.MODIFY_REPLACE, [server.url])],
                         "statelessPriority": [(ldap3.MODIFY_REPLACE, [str(server.priority)])],
                         "statelessWeight": [(ldap3.MODIFY_REPLACE, [str(server.weight)])]},
                    f"update server {server.name}")
        return dn

    def set_host_state(self, uuid: str, state: HostState | str, reason: str = "", *,
                       applied_digest: str | None = None) -> None:
        """Record a host's state; with `applied_digest`, what was applied, in the same write."""
        state = HostState(state)
        changes = {"statelessState": [(ldap3.MODIFY_REPLACE, [str(state)])],
                   "statelessStateReason": [(ldap3.MODIFY_REPLACE, [reason] if reason else [])]}
        if applied_digest is not None:
            changes["statelessAppliedDigest"] = [
                (ldap3.MODIFY_REPLACE, [applied_digest] if applied_digest else [])]
        self.modify(self.host_dn(uuid), changes, f"set state of host {uuid}")

    def claim_owner(self, uuid: str, owner: str) -> str:
        """Make `owner` the host's owner if it has none; return the owner it has afterwards.

        One add of the single-valued statelessOwner: the directory refuses it when another
        server got there first, so two servers never both believe they own the host.
        """
        owner = check_name(owner, "server")
        dn = self.host_dn(uuid)
        try:
            self.modify(dn, {"statelessOwner": [(ldap3.MODIFY_ADD, [owner])]},
                        f"take ownership of host {uuid}")
            return owner
        except (ConflictError, ValidationError):  # already ours, or someone else's
            raw = self.read(dn, f"read host {uuid}", ["statelessOwner"])
            if raw is None:
                raise HostEntryMissing(uuid) from None
            return (raw.get("statelessOwner") or [""])[0]

    def take_over(self, uuid: str, old: str, new: str) -> str:
        """Move the host from owner `old` (whose lease ran out) to `new`; the owner afterwards.

        One modify that deletes the old value and adds the new one: the directory refuses it
        when the owner is no longer `old` (another server took the host first, or `old` is
        back and renewed), so two servers never both take it.
        """
        new = check_name(new, "server")
        dn = self.host_dn(uuid)
        try:
            self.modify(dn, {"statelessOwner": [(ldap3.MODIFY_DELETE, [old]), (ldap3.MODIFY_ADD, [new])]},
                        f"take over host {uuid} from server {old}")
            return new
        except (ConflictError, ValidationError):
            raw = self.read(dn, f"read host {uuid}", ["statelessOwner"])
            if raw is None:
                raise HostEntryMissing(uuid) from None
            return (raw.get("statelessOwner") or [""])[0]

    def renew_lease(self, server: str, expiry: datetime) -> None:
        """Record that `server` holds its lease until `expiry` (on its own entry)."""
        self.modify(self.named_dn("servers", check_name(server, "server")),
                    {"statelessLeaseExpiry": [(ldap3.MODIFY_REPLACE, [mapping.generalized_time(expiry)])]},
                    f"renew the lease of server {server}")

    def delete_host(self, uuid: str) -> None:
        self.delete_entry(self.host_dn(uuid), f"delete host {uuid}", subtree=True)

    # --- pools -----------------------------------------------------------------------------

    def add_pool(self, pool: IpPool) -> str:
        """Add a pool; its range may overlap no other, and addresses hosts answer are taken."""
        answered = addresses.check_pool(self, pool)
        dn = self.named_dn("pools", pool.name)
        entry = mapping.pool_attrs(pool)
        if answered:
            entry["statelessAllocated"] = answered
        self.add_entry(dn, entry, f"add pool {pool.name}")
        return dn

    # --- sites, servers, vCenters, rules, images --------------------------------------------

    def add_site(self, site: Site) -> str:
        entry = {"objectClass": ["top", "statelessSite"], "cn": [site.name]}
        if site.subnets:
            entry["statelessSubnet"] = list(site.subnets)
        if site.description:
            entry["description"] = [site.description]
        dn = self.named_dn("sites", site.name)
        self.add_entry(dn, entry, f"add site {site.name}")
        return dn

    def add_site_link(self, link: SiteLink) -> str:
        snapshot_sites = {dn for dn, _ in self.search(self.ou("sites"), "(objectClass=statelessSite)",
                                                      ("cn",), "list sites")}
        for name in (link.a, link.b):
            if not any(mapping.dn_key(d)[0] == ("cn", name.lower()) for d in snapshot_sites):
                raise NotFoundError(f"site link {link.a}-{link.b}: site {name} does not exist; add it "
                                    "with `stateless site add`")
        a, b = sorted((link.a, link.b))
        dn = self.named_dn("sitelinks", f"{a}-{b}")
        self.add_entry(dn, {"objectClass": ["top", "statelessSiteLink"], "cn": [f"{a}-{b}"],
                            "statelessSiteList": [a, b], "statelessCost": [str(link.cost)]},
                       f"link sites {a} and {b}")
        return dn

    def add_server(self, server: Server) -> str:
        entry = {"objectClass": ["top", "statelessServer"], "cn": [server.name],
                 "statelessSite": [server.site], "statelessUrl": [server.url],
                 "statelessPriority": [str(server.priority)], "statelessWeight": [str(server.weight)]}
        if server.vcenters:
            entry["statelessVCenterName"] = list(server.vcenters)
        dn = self.named_dn("servers", server.name)
        self.add_entry(dn, entry, f"add server {server.name}")
        return dn

    def add_vcenter(self, vcenter: VCenter) -> str:
        entry = {"objectClass": ["top", "statelessVCenter"], "cn": [vcenter.name],
                 "statelessUrl": [vcenter.url]}
        for attr, value in (("statelessUser", vcenter.user), ("statelessPassword", vcenter.password),
                            ("statelessThumbprint", vcenter.thumbprint)):
            if value:
                entry[attr] = [value]
        dn = self.named_dn("vcenters", vcenter.name)
        self.add_entry(dn, entry, f"add vCenter {vcenter.name}")
        return dn

    def add_rule(self, rule: Rule) -> str:
        dn = self.named_dn("rules", rule.name)
        self.add_entry(dn, mapping.rule_attrs(rule), f"add rule {rule.name}")
        return dn

    def delete_rule(self, name: str) -> None:
        self.delete_entry(self.named_dn("rules", check_name(name, "rule")), f"delete rule {name}")

    def add_image(self, image: Image) -> str:
        entry: dict[str, list[str]] = {"objectClass": ["top", "statelessImage"], "cn": [image.name]}
        for attr, value in (("statelessVersion", image.version), ("statelessKernel", image.kernel),
                            ("statelessOptions", image.options), ("statelessUrl", image.url)):
            if value:
                entry[attr] = [value]
        if image.modules:
            entry["statelessModule"] = list(image.modules)
        dn = self.named_dn("images", image.name)
        self.add_entry(dn, entry, f"add image {image.name}")
        return dn


__all__ = ["DEFAULT_BASE", "Directory"]

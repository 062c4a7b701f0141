"""Directory entries <-> model values (pure: works on (dn, {attribute: [text]}) pairs).

A bad entry never hides the rest: it becomes a `Problem` (dn, attribute, value, reason) on the
policy or host it belongs to, or on the snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from attrs import evolve

from stateless.directory import syntax
from stateless.directory.schemadef import ATTRIBUTE_NAMES
from stateless.errors import StatelessError, ValidationError
from stateless.model.identity import HostIdentity, normalize_uuid
from stateless.model.inventory import (
    Container,
    ContainerKind,
    HostRecord,
    HostState,
    Image,
    IpPool,
    Link,
    Policy,
    Problem,
    Rule,
    Server,
    Site,
    SiteLink,
    Snapshot,
    VCenter,
)
from stateless.model.settings import SettingValue

Attrs = Mapping[str, Sequence[str]]
RDN = tuple[str, str]

SEARCH_ATTRIBUTES = ("objectClass", "cn", "ou", "description", *ATTRIBUTE_NAMES)
# Attributes no model value is built from: a change to them alone changes no snapshot.
# statelessAllocated (every address a pool handed out) is the pool's lock, read only when
# allocating; a change feed that asked for it would carry the whole list on every allocation.
UNMODELLED = frozenset({"statelessAllocated"})
MODEL_ATTRIBUTES = tuple(a for a in SEARCH_ATTRIBUTES if a not in UNMODELLED)
_CANONICAL = {name.lower(): name for name in SEARCH_ATTRIBUTES}


def canonical_attrs(raw: Mapping[str, Sequence[bytes | str]]) -> dict[str, list[str]]:
    """Attribute names in schema spelling, values as text."""
    out: dict[str, list[str]] = {}
    for name, values in raw.items():
        key = _CANONICAL.get(name.lower(), name)
        out[key] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    return out


# --- DNs ----------------------------------------------------------------------------------

_HEX = re.compile(r"\\([0-9a-fA-F]{2})|\\(.)")
_SPECIAL = set(',+"\\<>;=')


def escape_value(value: str) -> str:
    """RFC 4514 escaping of an RDN value."""
    out = "".join("\\" + c if c in _SPECIAL else c for c in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def _unescape(value: str) -> str:
    raw = bytearray()
    pos = 0
    for match in _HEX.finditer(value):
        raw += value[pos:match.start()].encode()
        raw += bytes([int(match.group(1), 16)]) if match.group(1) else match.group(2).encode()
        pos = match.end()
    raw += value[pos:].encode()
    return raw.decode("utf-8", "replace")


def _trim(value: str) -> str:
    """Strip spaces around an RDN value, keeping an escaped trailing space."""
    value = value.lstrip()
    while value.endswith(" ") and not value.endswith("\\ "):
        value = value[:-1]
    return value


def split_dn(dn: str) -> list[RDN]:
    """[(attribute lower-case, unescaped value)], leaf first."""
    out: list[RDN] = []
    attr, buf, i, in_value = "", "", 0, False
    while i < len(dn):
        c = dn[i]
        if c == "\\" and i + 1 < len(dn):
            buf += dn[i:i + 2]
            i += 2
            continue
        if not in_value and c == "=":
            attr, buf, in_value = buf.strip(), "", True
        elif in_value and c in ",+":
            out.append((attr.lower(), _unescape(_trim(buf))))
            attr, buf, in_value = "", "", False
        else:
            buf += c
        i += 1
    if in_value:
        out.append((attr.lower(), _unescape(_trim(buf))))
    return out


def dn_key(dn: str) -> tuple[RDN, ...]:
    """Comparable form of a DN (attribute names and values case-folded)."""
    return tuple((a, v.lower()) for a, v in split_dn(dn))


def relative(dn: str, base: Sequence[RDN]) -> list[RDN] | None:
    """RDNs of `dn` below `base` (leaf first), or None if it is not below it."""
    rdns = split_dn(dn)
    n = len(base)
    if len(rdns) < n or tuple((a, v.lower()) for a, v in rdns[len(rdns) - n:]) != tuple(base):
        return None
    return rdns[: len(rdns) - n]


# --- scalar helpers -----------------------------------------------------------------------


def one(attrs: Attrs, name: str, default: str = "") -> str:
    values = attrs.get(name) or ()
    return values[0] if values else default


def ldap_bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def parse_bool(text: str) -> bool:
    if text.upper() not in ("TRUE", "FALSE"):
        raise ValidationError(f"{text!r}: expected TRUE or FALSE")
    return text.upper() == "TRUE"


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValidationError(f"{text!r}: expected an integer") from None


def generalized_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def parse_generalized_time(text: str) -> datetime:
    return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


# --- entries ------------------------------------------------------------------------------


class _Builder:
    """Accumulates one snapshot from a stream of entries."""

    def __init__(self, base: str) -> None:
        self.base = dn_key(base)
        self.containers: dict[str, tuple[ContainerKind, bool, str]] = {}
        self.links: dict[tuple[RDN, ...], list[Link]] = {}
        self.host_entries: list[tuple[str, Attrs]] = []
        self.policies: dict[str, Policy] = {}
        self.pools: dict[str, IpPool] = {}
        self.sites: dict[str, Site] = {}
        self.site_links: list[SiteLink] = []
        self.rules: list[Rule] = []
        self.images: dict[str, Image] = {}
        self.vcenters: dict[str, VCenter] = {}
        self.servers: dict[str, Server] = {}
        self.problems: list[Problem] = []
        self.link_problems: dict[tuple[RDN, ...], list[Problem]] = {}

    def problem(self, dn: str, attribute: str, value: str, reason: str) -> None:
        self.problems.append(Problem(dn, attribute, value, reason))

    def add(self, dn: str, attrs: Attrs) -> None:
        rel = relative(dn, self.base)
        if rel is None or not rel:
            return
        classes = {c.lower() for c in attrs.get("objectClass", ())}
        branch = rel[-1]
        try:
            self._add(dn, attrs, rel, classes, branch)
        except StatelessError as exc:
            attribute, value = _blame(str(exc), attrs)
            self.problem(dn, attribute, value, str(exc))

    def _add(self, dn: str, attrs: Attrs, rel: list[RDN], classes: set[str], branch: RDN) -> None:
        if "statelesspolicylink" in classes:
            parent = dn_key(dn)[1:]
            try:
                self.links.setdefault(parent, []).append(link_from(attrs))
            except StatelessError as exc:
                attribute, value = _blame(str(exc), attrs)
                self.link_problems.setdefault(parent, []).append(
                    Problem(dn, attribute, value, f"link ignored: {exc}"))
            return
        if branch == ("ou", "inventory"):
            if len(rel) == 1:
                self.containers["/"] = (ContainerKind.ROOT, False, dn)
            elif "statelesscontainer" in classes:
                path = "/" + "/".join(v for _, v in reversed(rel[:-1]))
                text = one(attrs, "statelessKind").lower()
                if text not in set(ContainerKind):
                    raise ValidationError(f"container kind {text!r}: expected datacenter, folder or "
                                          "cluster")
                kind = ContainerKind(text)
                if kind == ContainerKind.ROOT:
                    raise ValidationError("only ou=inventory is the root; use datacenter, folder "
                                          "or cluster")
                block = parse_bool(one(attrs, "statelessBlockInheritance", "FALSE"))
                self.containers[path] = (kind, block, dn)
            return
        if len(rel) != 2:
            return
        name = one(attrs, "cn")
        if "statelesspolicy" in classes:
            self.policies[name] = policy_from(dn, attrs)
        elif "statelesshost" in classes:
            self.host_entries.append((dn, attrs))
        elif "statelessippool" in classes:
            self.pools[name] = pool_from(dn, attrs)
        elif "statelesssite" in classes:
            self.sites[name] = Site(name, tuple(attrs.get("statelessSubnet", ())),
                                    one(attrs, "description"), dn=dn)
        elif "statelesssitelink" in classes:
            self.site_links.append(site_link_from(attrs))
        elif "statelessrule" in classes:
            self.rules.append(rule_from(dn, attrs))
        elif "statelessimage" in classes:
            self.images[name] = Image(
                name, one(attrs, "statelessVersion"), one(attrs, "statelessKernel", "mboot.c32"),
                tuple(attrs.get("statelessModule", ())), one(attrs, "statelessOptions"),
                one(attrs, "statelessUrl"), dn=dn)
        elif "statelessvcenter" in classes:
            self.vcenters[name] = VCenter(
                name, one(attrs, "statelessUrl"), one(attrs, "statelessUser"),
                one(attrs, "statelessPassword"), one(attrs, "statelessThumbprint") or None, dn=dn)
        elif "statelessserver" in classes:
            self.servers[name] = Server(
                name, one(attrs, "statelessSite"), one(attrs, "statelessUrl"),
                tuple(attrs.get("statelessVCenterName", ())),
                parse_int(one(attrs, "statelessPriority", "0")),
                parse_int(one(attrs, "statelessWeight", "100")), dn=dn)

    def _links_of(self, dn: str) -> tuple[Link, ...]:
        key = dn_key(dn)
        self.problems.extend(self.link_problems.pop(key, ()))
        return tuple(sorted(self.links.pop(key, ()), key=lambda link: link.order))

    def snapshot(self) -> Snapshot:
        containers: dict[str, Container] = {}
        for path, (kind, block, dn) in sorted(self.containers.items()):
            containers[path] = Container(path, kind, self._links_of(dn), block, dn)
        hosts: dict[str, HostRecord] = {}
        for dn, attrs in self.host_entries:
            try:
                host = host_from(dn, attrs, self._links_of(dn))
            except StatelessError as exc:
                attribute, value = _blame(str(exc), attrs)
                self.problem(dn, attribute, value, str(exc))
                continue
            hosts[host.uuid] = host
        for problems in self.link_problems.values():  # links whose owner did not load
            self.problems.extend(problems)
        rules: list[Rule] = sorted(self.rules, key=lambda r: (r.order, r.name))
        return Snapshot(containers=containers, policies=self.policies, hosts=hosts,
                        pools=self.pools, sites=self.sites, site_links=self.site_links,
                        rules=rules,
                        images=self.images, vcenters=self.vcenters, servers=self.servers,
                        problems=self.problems)


def _blame(message: str, attrs: Attrs) -> tuple[str, str]:
    """Best guess of the attribute and value a model error is about (for the Problem)."""
    candidates = [(n, v) for n, values in attrs.items() if n not in ("objectClass", "cn")
                  for v in values if v]
    tests: list[Callable[[str], bool]] = [
        lambda v: repr(v) in message,
        lambda v: re.search(rf"(?<![\w.]){re.escape(v)}(?![\w.])", message) is not None,
        lambda v: "=" in v and repr(v.split("=", 1)[0].strip()) in message,
    ]
    for test in tests:
        for name, value in candidates:
            if test(value):
                return name, value
    return "", ""


def build_snapshot(base: str, entries: Iterable[tuple[str, Attrs]]) -> Snapshot:
    builder = _Builder(base)
    for dn, attrs in entries:
        builder.add(dn, attrs)
    return builder.snapshot()


# --- incremental snapshots -----------------------------------------------------------------

# (dn, attributes when the snapshot was built or None for a new entry, attributes now)
HostChange = tuple[str, Attrs | None, Attrs]


def _classes(attrs: Attrs) -> set[str]:
    return {c.lower() for c in attrs.get("objectClass", ())}


def _is_host_entry(dn: str, attrs: Attrs, base: tuple[RDN, ...]) -> bool:
    """A host directly under ou=hosts, which `_Builder` turns into a host and nothing else."""
    rel = relative(dn, base)
    if rel is None or len(rel) != 2 or (rel[1][0], rel[1][1].lower()) != ("ou", "hosts"):
        return False
    classes = _classes(attrs)
    return "statelesshost" in classes and not classes & {"statelesspolicylink", "statelesspolicy"}


def link_parents(entries: Iterable[tuple[str, Attrs]]) -> frozenset[tuple[RDN, ...]]:
    """`dn_key`s of the entries that policy links hang below (existing or not).

    `update_hosts` needs them: a host added where links already wait would take them.
    """
    return frozenset(dn_key(dn)[1:] for dn, attrs in entries
                     if "statelesspolicylink" in _classes(attrs))


def _changed_host(snapshot: Snapshot, base: tuple[RDN, ...], failed: Collection[tuple[RDN, ...]],
                  dn: str, before: Attrs | None, after: Attrs) -> HostRecord | None:
    """The new record of one host entry, or None if it may not replace the old one as is."""
    key = dn_key(dn)
    if key in failed or not _is_host_entry(dn, after, base):
        return None
    links: tuple[Link, ...] = ()
    old_uuid = ""
    if before is not None:
        if not _is_host_entry(dn, before, base):
            return None
        try:
            old_uuid = normalize_uuid(one(before, "statelessUuid"))
        except StatelessError:
            return None
        old = snapshot.hosts.get(old_uuid)
        if old is None or dn_key(old.dn) != key:
            return None
        links = old.links
    try:
        record = host_from(dn, after, links)
    except StatelessError:
        return None
    return record if before is None or record.uuid == old_uuid else None




def _unmodelled_change(before: Attrs, after: Attrs) -> bool:
    def modelled(attrs: Attrs) -> dict[str, Sequence[str]]:
        return {k: v for k, v in attrs.items() if k not in UNMODELLED}

    return modelled(before) == modelled(after)


def update_hosts(snapshot: Snapshot, base: str, changes: Iterable[HostChange],
                 parents: Collection[tuple[RDN, ...]] = frozenset()) -> Snapshot | None:
    """`snapshot` (built by `build_snapshot` for `base`) with host entries added or modified
    since, or None when only a full build gets it right.

    A full build costs in proportion to the directory, and nearly every write during a boot
    storm is to one host entry; this costs in proportion to the change. The result equals what
    `build_snapshot` makes of all entries, and the hosts not changed are the very objects of
    `snapshot`, so `Resolver.update` skips them by identity. `parents` is `link_parents` of
    the entries `snapshot` was built from. A change only to UNMODELLED attributes (of any
    entry) is skipped. Anything else but a host entry directly under ou=hosts,
    one that fails to parse or had failed, one whose statelessUuid changed or collides with
    another host: None. A modified host keeps the links it had (links are entries of their
    own, so a changed link is not a host change); an added host has none. Hosts keep their
    place in the mapping and added ones come last (the order is not part of the value).
    """
    base_key = dn_key(base)
    failed = {dn_key(p.dn) for p in snapshot.problems}
    # A proxy's copy() is the underlying dict's, twenty times faster than dict(proxy).
    hosts = snapshot.hosts.copy() if isinstance(snapshot.hosts, MappingProxyType) else dict(snapshot.hosts)
    seen: set[str] = set()
    for dn, before, after in changes:
        if before is not None and _unmodelled_change(before, after):
            continue  # e.g. a pool entry's statelessAllocated: the lock of each allocation
        record = _changed_host(snapshot, base_key, failed, dn, before, after)
        if record is None or record.uuid in seen:
            return None
        if before is None and (record.uuid in hosts or dn_key(dn) in parents):
            return None
        seen.add(record.uuid)
        hosts[record.uuid] = record
    return evolve(snapshot, hosts=hosts)


def link_from(attrs: Attrs) -> Link:
    return Link(one(attrs, "statelessLinkPolicy"), parse_int(one(attrs, "statelessOrder", "1")),
                parse_bool(one(attrs, "statelessEnforced", "FALSE")),
                parse_bool(one(attrs, "statelessDisabled", "FALSE")))


def link_attrs(link: Link) -> dict[str, list[str]]:
    return {"objectClass": ["top", "statelessPolicyLink"], "statelessLinkPolicy": [link.policy],
            "statelessOrder": [str(link.order)], "statelessEnforced": [ldap_bool(link.enforced)],
            "statelessDisabled": [ldap_bool(link.disabled)]}


def policy_from(dn: str, attrs: Attrs) -> Policy:
    settings, removals, problems = syntax.decode_policy(attrs)
    # Passed through **: mypy's attrs support cannot see through `converter=frozenset`.
    extra: dict[str, Any] = {"removals": frozenset(removals)}
    return Policy(one(attrs, "cn"), settings, description=one(attrs, "description"),
                  problems=tuple(Problem(dn, a, v, r) for a, v, r in problems), dn=dn, **extra)


def policy_attrs(policy: Policy) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"objectClass": ["top", "statelessPolicy"], "cn": [policy.name]}
    if policy.description:
        out["description"] = [policy.description]
    out.update(syntax.encode_policy(policy.settings, policy.removals))
    return out


def pool_from(dn: str, attrs: Attrs) -> IpPool:
    return IpPool(one(attrs, "cn"), one(attrs, "statelessRangeStart"), one(attrs, "statelessRangeEnd"),
                  one(attrs, "statelessNetmask"), one(attrs, "statelessGateway") or None, dn=dn)


def pool_attrs(pool: IpPool) -> dict[str, list[str]]:
    out = {"objectClass": ["top", "statelessIpPool"], "cn": [pool.name],
           "statelessRangeStart": [pool.start], "statelessRangeEnd": [pool.end],
           "statelessNetmask": [pool.netmask]}
    if pool.gateway:
        out["statelessGateway"] = [pool.gateway]
    return out


def site_link_from(attrs: Attrs) -> SiteLink:
    sites = sorted(attrs.get("statelessSiteList", ()))
    if len(sites) != 2:
        raise ValidationError(f"site link {one(attrs, 'cn')!r}: needs exactly two statelessSiteList "
                              "values")
    return SiteLink(sites[0], sites[1], parse_int(one(attrs, "statelessCost", "100")))


def rule_from(dn: str, attrs: Attrs) -> Rule:
    match: dict[str, list[str]] = {}
    for text in attrs.get("statelessMatch", ()):
        field, pattern = syntax.parse_match(text)
        match.setdefault(field, []).append(pattern)
    return Rule(one(attrs, "cn"), parse_int(one(attrs, "statelessOrder", "100")),
                {k: tuple(v) for k, v in match.items()}, one(attrs, "statelessLocation") or None,
                one(attrs, "statelessImageName") or None, tuple(attrs.get("statelessPolicyName", ())),
                dn=dn)


def rule_attrs(rule: Rule) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"objectClass": ["top", "statelessRule"], "cn": [rule.name],
                                 "statelessOrder": [str(rule.order)]}
    matches = [f"{f}={p}" for f, patterns in rule.match.items() for p in patterns]
    if matches:
        out["statelessMatch"] = matches
    if rule.location:
        out["statelessLocation"] = [rule.location]
    if rule.image:
        out["statelessImageName"] = [rule.image]
    if rule.policies:
        out["statelessPolicyName"] = list(rule.policies)
    return out


_IDENTITY_ATTRS = {"serial": "statelessSerial", "vendor": "statelessVendor",
                   "model": "statelessModel", "asset": "statelessAsset",
                   "ipv4": "statelessIpv4", "hostname": "statelessHostname",
                   "domain": "statelessDomain", "boot_mac": "statelessBootMac"}


def identity_attrs(identity: HostIdentity) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for field, attr in _IDENTITY_ATTRS.items():
        value = getattr(identity, field)
        if value:
            out[attr] = [value]
    if identity.oem_strings:
        out["statelessOemString"] = list(identity.oem_strings)
    if identity.macs:
        out["statelessMac"] = list(identity.macs)
    return out


def host_from(dn: str, attrs: Attrs, links: tuple[Link, ...]) -> HostRecord:
    uuid = one(attrs, "statelessUuid")
    problems: list[Problem] = []
    answers: dict[str, SettingValue] = {}
    for text in attrs.get("statelessAnswer", ()):
        try:
            key, value = syntax.parse_answer(text)
            answers[key] = value
        except StatelessError as exc:
            problems.append(Problem(dn, "statelessAnswer", text, str(exc)))
    allocations = []
    for text in attrs.get("statelessAllocation", ()):
        try:
            allocations.append(syntax.parse_allocation(text))
        except StatelessError as exc:
            problems.append(Problem(dn, "statelessAllocation", text, str(exc)))
    identity = None
    try:
        fields = {f: one(attrs, a) for f, a in _IDENTITY_ATTRS.items() if one(attrs, a)}
        identity = HostIdentity(uuid, oem_strings=tuple(attrs.get("statelessOemString", ())),
                                macs=tuple(attrs.get("statelessMac", ())), **fields)
    except StatelessError as exc:
        attribute, value = _blame(str(exc), attrs)
        problems.append(Problem(dn, attribute, value, str(exc)))
    state = None
    if one(attrs, "statelessState"):
        try:
            state = HostState(one(attrs, "statelessState").lower())
        except ValueError:
            problems.append(Problem(dn, "statelessState", one(attrs, "statelessState"),
                                    f"expected one of {', '.join(s.value for s in HostState)}"))
    location = one(attrs, "statelessLocation") or None
    return HostRecord(uuid, location, links, answers, allocations, identity, state,
                      one(attrs, "statelessStateReason"), one(attrs, "statelessAppliedDigest"),
                      problems, dn, one(attrs, "statelessOwner"),
                      one(attrs, "statelessThumbprint") or None)

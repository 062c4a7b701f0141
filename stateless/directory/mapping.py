"""Directory entries <-> model values (pure: works on (dn, {attribute: [text]}) pairs).

A bad entry never hides the rest: it becomes a `Problem` (dn, attribute, value, reason) on the
policy or host it belongs to, or on the snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from sys import intern
from types import MappingProxyType
from typing import Any, TypeVar

from stateless.directory import syntax
from stateless.directory.schemadef import ATTRIBUTE_NAMES, SECURITY_OUS
from stateless.errors import StatelessError, ValidationError
from stateless.model.identity import RULE_FIELDS, HostIdentity
from stateless.model.inventory import (
    BlockKey,
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
    Scope,
    Server,
    Site,
    SiteLink,
    Snapshot,
    VCenter,
    check_name,
    cidr,
    ipv4_address,
    normalize_path,
)
from stateless.model.security import (
    AdmissionMode,
    EnrollKey,
    PinnedIdentity,
    admission_mode,
    parse_enroll_key,
    parse_time,
)
from stateless.model.settings import SettingValue, redact_fields

T = TypeVar("T")
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
_NEEDS_PARSER = re.compile(r'[\\+"]')  # escapes, multi-valued RDNs, quotes
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
    if not _NEEDS_PARSER.search(dn):  # nearly every DN: plain splits give the same pairs
        plain = [part.split("=", 1) for part in dn.split(",")]
        if all(len(pair) == 2 for pair in plain):
            return [(a.strip().lower(), _trim(v)) for a, v in plain]
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


_INTEGER = re.compile(r"-?[0-9]+")


def parse_int(text: str) -> int:
    """An LDAP INTEGER: ASCII digits with an optional minus (not Python's int() leniency)."""
    if not _INTEGER.fullmatch(text):
        raise ValidationError(f"{text!r}: expected an integer")
    return int(text)


def positive_int(text: str) -> int:
    value = parse_int(text)
    if value < 1:
        raise ValidationError(f"{text!r}: must be an integer >= 1")
    return value


class EntryValueError(ValidationError):
    """One attribute value of an entry cannot be turned into the model."""

    def __init__(self, attribute: str, value: str, reason: str) -> None:
        self.attribute = attribute
        self.value = value
        super().__init__(reason)


def field(attrs: Attrs, name: str, convert: Callable[[str], T], default: str = "") -> T:
    """The first value of `name` converted, or EntryValueError naming the attribute."""
    text = one(attrs, name, default)
    try:
        return convert(text)
    except StatelessError as exc:
        raise EntryValueError(name, text, str(exc)) from None


def fields(attrs: Attrs, name: str, convert: Callable[[str], T]) -> list[T]:
    """Every value of `name` converted, or EntryValueError naming the first bad one."""
    out = []
    for text in attrs.get(name, ()):
        try:
            out.append(convert(text))
        except StatelessError as exc:
            raise EntryValueError(name, text, str(exc)) from None
    return out


def generalized_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def parse_generalized_time(text: str) -> datetime:
    try:
        return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationError(f"{text!r}: expected a GeneralizedTime such as 20261128120000Z") \
            from None


# --- entries ------------------------------------------------------------------------------


# Branches of the base DIT, and the object class an entry directly below each must have.
BRANCHES: Mapping[str, str] = MappingProxyType({
    "policies": "statelesspolicy", "hosts": "statelesshost", "pools": "statelessippool",
    "sites": "statelesssite", "sitelinks": "statelesssitelink", "rules": "statelessrule",
    "images": "statelessimage", "vcenters": "statelessvcenter", "servers": "statelessserver",
    "inventory": "statelesscontainer"})
# What an unreadable entry of a branch blocks (see Scope); branches not listed block nothing
# a host resolves from (sites, servers, vCenters, images: they are problems all the same).
_BRANCH_SCOPE = {"policies": Scope.POLICY, "pools": Scope.POOL, "rules": Scope.RULES}


class _Builder:
    """Accumulates one snapshot from a stream of entries (parents before children)."""

    def __init__(self, base: str) -> None:
        self.base = dn_key(base)
        self.containers: dict[str, tuple[ContainerKind, bool, str, str | None, _Images]] = {}
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
        self.blocking: dict[BlockKey, list[Problem]] = {}

    def problem(self, dn: str, attribute: str, value: str, reason: str,
                blocks: BlockKey | None = None) -> None:
        problem = Problem(dn, attribute, value, reason)
        self.problems.append(problem)
        if blocks is not None:
            self.blocking.setdefault(blocks, []).append(problem)

    def add(self, dn: str, attrs: Attrs) -> None:
        rel = relative(dn, self.base)
        if rel is None or not rel:
            return
        classes = {c.lower() for c in attrs.get("objectClass", ())}
        try:
            self._add(dn, attrs, rel, classes)
        except StatelessError as exc:
            attribute, value = blame(exc, attrs)
            self.problem(dn, attribute, value, str(exc), _scope_of(rel, attrs))

    def _add(self, dn: str, attrs: Attrs, rel: list[RDN], classes: set[str]) -> None:
        branch = rel[-1][1].lower() if rel[-1][0] == "ou" else ""
        if branch in SECURITY_OUS:
            return  # nonces, sealed secrets, accounts, groups: no host configuration
        if branch not in BRANCHES:
            raise ValidationError(f"unexpected entry {rel[-1][0]}={rel[-1][1]} below the stateless "
                                  f"base: expected one of ou={', ou='.join(sorted(BRANCHES))}; "
                                  "move or delete it")
        if len(rel) == 1:
            if branch == "inventory":  # the root of the inventory, which links policies too
                self.containers["/"] = (ContainerKind.ROOT, False, dn, _vcenter_name(attrs),
                                        _images(attrs))
            return
        if "statelesspolicylink" in classes:
            self._add_link(dn, attrs, rel, branch)
            return
        if branch == "inventory":
            self._add_container(dn, attrs, rel, classes)
            return
        expected = BRANCHES[branch]
        if len(rel) != 2 or expected not in classes:
            where = "directly below" if len(rel) == 2 else "nested below an entry of"
            raise EntryValueError("objectClass", ", ".join(attrs.get("objectClass", ())),
                                  f"entry {where} ou={branch} is not a {_CLASS_NAMES[expected]}; "
                                  f"nothing else below ou={branch} is read: move or delete it")
        self._add_named(dn, attrs, classes)

    def _add_link(self, dn: str, attrs: Attrs, rel: list[RDN], branch: str) -> None:
        parent = dn_key(dn)[1:]
        if not (branch == "inventory" or (branch == "hosts" and len(rel) == 3)):
            raise ValidationError(f"policy link below ou={branch}: links hang below a container of "
                                  "ou=inventory or a host entry; move or delete it")
        try:
            self.links.setdefault(parent, []).append(link_from(attrs))
        except StatelessError as exc:
            attribute, value = blame(exc, attrs)
            problem = Problem(dn, attribute, value, f"link not read: {exc}")
            self.link_problems.setdefault(parent, []).append(problem)

    def _add_container(self, dn: str, attrs: Attrs, rel: list[RDN], classes: set[str]) -> None:
        path = _inventory_path(rel)
        if "statelesscontainer" not in classes:
            raise EntryValueError("objectClass", ", ".join(attrs.get("objectClass", ())),
                                  f"entry in ou=inventory is not a statelessContainer; the hosts "
                                  f"below {path} are blocked until it is fixed or removed")
        if any(a != "cn" for a, _ in rel[:-1]):
            raise ValidationError("container RDNs are cn=NAME; move or delete this entry")
        kind = field(attrs, "statelessKind", _container_kind)
        block = field(attrs, "statelessBlockInheritance", parse_bool, "FALSE")
        self.containers[path] = (kind, block, dn, _vcenter_name(attrs), _images(attrs))

    def _add_named(self, dn: str, attrs: Attrs, classes: set[str]) -> None:
        name = one(attrs, "cn")
        if "statelesspolicy" in classes:
            self.policies[name] = policy_from(dn, attrs)
        elif "statelesshost" in classes:
            self.host_entries.append((dn, attrs))
        elif "statelessippool" in classes:
            self.pools[name] = pool_from(dn, attrs)
        elif "statelesssite" in classes:
            site, problems = site_from(dn, attrs)
            self.sites[name] = site
            self.problems.extend(problems)
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
                field(attrs, "statelessPriority", parse_int, "0"),
                field(attrs, "statelessWeight", parse_int, "100"), dn=dn,
                lease_expiry=field(attrs, "statelessLeaseExpiry", parse_generalized_time)
                if one(attrs, "statelessLeaseExpiry") else None)

    def _links_of(self, dn: str) -> tuple[tuple[Link, ...], list[Problem]]:
        key = dn_key(dn)
        links = tuple(sorted(self.links.pop(key, ()), key=lambda link: link.order))
        return links, self.link_problems.pop(key, [])

    def snapshot(self) -> Snapshot:
        containers: dict[str, Container] = {}
        for path, (kind, block, dn, vcenter, images) in sorted(self.containers.items()):
            links, problems = self._links_of(dn)
            for problem in problems:  # a link that cannot be read blocks every host below
                self.problems.append(problem)
                self.blocking.setdefault((Scope.PATH, path), []).append(problem)
            containers[path] = Container(path, kind, links, block, dn, vcenter, *images)
        hosts: dict[str, HostRecord] = {}
        for dn, attrs in self.host_entries:
            links, problems = self._links_of(dn)
            try:
                host = host_from(dn, attrs, links, problems)
            except StatelessError as exc:
                attribute, value = blame(exc, attrs)
                self.problem(dn, attribute, value, str(exc))
                self.problems.extend(problems)
                continue
            hosts[host.uuid] = host
        self._orphan_links()
        rules: list[Rule] = sorted(self.rules, key=lambda r: (r.order, r.name))
        return Snapshot(containers=containers, policies=self.policies, hosts=hosts,
                        pools=self.pools, sites=self.sites, site_links=self.site_links,
                        rules=rules, images=self.images, vcenters=self.vcenters,
                        servers=self.servers, problems=self.problems, blocking=self.blocking)

    def _orphan_links(self) -> None:
        """Links (read or not) whose container or host did not load: problems of their own
        (the owner's own problem already blocks what depends on it)."""
        for problems in self.link_problems.values():
            self.problems.extend(problems)
        self.link_problems.clear()


_Images = tuple[str | None, str | None]


def _images(attrs: Attrs) -> _Images:
    """A container's boot image assignment and the one before it (see stateless.boot)."""
    def name(attribute: str) -> str | None:
        text = one(attrs, attribute)
        return field(attrs, attribute, lambda t: check_name(t, "image")) if text else None

    return name("statelessImageName"), name("statelessPreviousImage")


def _vcenter_name(attrs: Attrs) -> str | None:
    """The vCenter a container names (one at most: a container has one manager)."""
    names = attrs.get("statelessVCenterName") or ()
    if len(names) > 1:
        raise EntryValueError("statelessVCenterName", ", ".join(names),
                              "a container is managed by one vCenter; keep one value")
    return field(attrs, "statelessVCenterName", lambda t: check_name(t, "vcenter")) if names else None


def _container_kind(text: str) -> ContainerKind:
    if text.lower() not in set(ContainerKind) or text.lower() == ContainerKind.ROOT:
        raise ValidationError(f"container kind {text!r}: expected datacenter, folder or cluster "
                              "(only ou=inventory is the root)")
    return ContainerKind(text.lower())


_CLASS_NAMES = {c: n for n in ("statelessPolicy", "statelessHost", "statelessIpPool", "statelessSite",
                               "statelessSiteLink", "statelessRule", "statelessImage",
                               "statelessVCenter", "statelessServer", "statelessContainer")
                for c in (n.lower(),)}


def _inventory_path(rel: list[RDN]) -> str:
    """The inventory path of an entry below ou=inventory (rel is leaf first, branch last)."""
    return "/" + "/".join(v for _, v in reversed(rel[:-1]))


def _scope_of(rel: list[RDN], attrs: Attrs) -> BlockKey | None:
    """What an entry that could not be read blocks."""
    branch = rel[-1][1].lower() if rel[-1][0] == "ou" else ""
    if branch == "inventory":
        # The entry itself or, for a stray link, the container it hangs below.
        classes = {c.lower() for c in attrs.get("objectClass", ())}
        below = rel[1:] if "statelesspolicylink" in classes else rel
        return (Scope.PATH, _inventory_path(below) if len(below) > 1 else "/")
    scope = _BRANCH_SCOPE.get(branch)
    if scope is None or len(rel) != 2:
        return None
    return (scope, "" if scope == Scope.RULES else rel[0][1] if rel[0][0] == "cn" else one(attrs, "cn"))


def blame(exc: StatelessError, attrs: Attrs) -> tuple[str, str]:
    """The attribute and value a model error is about (for the Problem): named by the error,
    else the best guess from its message (checks across attributes, e.g. a reversed range)."""
    if isinstance(exc, EntryValueError):
        return exc.attribute, exc.value
    message = str(exc)
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


def link_from(attrs: Attrs) -> Link:
    return Link(field(attrs, "statelessLinkPolicy", lambda t: check_name(t, "policy")),
                field(attrs, "statelessOrder", positive_int, "1"),
                field(attrs, "statelessEnforced", parse_bool, "FALSE"),
                field(attrs, "statelessDisabled", parse_bool, "FALSE"))


def link_attrs(link: Link) -> dict[str, list[str]]:
    return {"objectClass": ["top", "statelessPolicyLink"], "statelessLinkPolicy": [link.policy],
            "statelessOrder": [str(link.order)], "statelessEnforced": [ldap_bool(link.enforced)],
            "statelessDisabled": [ldap_bool(link.disabled)]}


def redact_value(attribute: str, text: str) -> str:
    """A setting attribute's value as problems may show it: secret fields are `<secret>`."""
    if attribute in syntax.GROUP_ATTRS:
        return redact_fields(text, syntax.GROUP_ATTRS[attribute] + ".")
    if attribute in syntax.ITEM_ATTRS:
        return redact_fields(text, f"{syntax.ITEM_ATTRS[attribute]}.{text.split(';', 1)[0].strip()}.")
    if attribute == "statelessAnswer":
        return redact_fields(text, "")
    return text


def policy_from(dn: str, attrs: Attrs) -> Policy:
    settings, removals, problems = syntax.decode_policy(attrs)
    # Passed through **: mypy's attrs support cannot see through `converter=frozenset`.
    extra: dict[str, Any] = {"removals": frozenset(removals)}
    return Policy(one(attrs, "cn"), settings, description=one(attrs, "description"),
                  problems=tuple(Problem(dn, a, redact_value(a, v), r) for a, v, r in problems),
                  dn=dn, **extra)


def policy_attrs(policy: Policy) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"objectClass": ["top", "statelessPolicy"], "cn": [policy.name]}
    if policy.description:
        out["description"] = [policy.description]
    out.update(syntax.encode_policy(policy.settings, policy.removals))
    return out


def pool_from(dn: str, attrs: Attrs) -> IpPool:
    gateway = field(attrs, "statelessGateway", ipv4_address) if one(attrs, "statelessGateway") else None
    return IpPool(one(attrs, "cn"), field(attrs, "statelessRangeStart", ipv4_address),
                  field(attrs, "statelessRangeEnd", ipv4_address),
                  field(attrs, "statelessNetmask", ipv4_address), gateway, dn=dn)


def pool_attrs(pool: IpPool) -> dict[str, list[str]]:
    out = {"objectClass": ["top", "statelessIpPool"], "cn": [pool.name],
           "statelessRangeStart": [pool.start], "statelessRangeEnd": [pool.end],
           "statelessNetmask": [pool.netmask]}
    if pool.gateway:
        out["statelessGateway"] = [pool.gateway]
    return out


def site_from(dn: str, attrs: Attrs) -> tuple[Site, list[Problem]]:
    """A site, and the problems of its security values, which fail closed without hiding the
    site from discovery: a bad admission value means `approval` (the strictest), a bad
    enrollment key is left out (no birth is authenticated by it)."""
    problems: list[Problem] = []
    admission = AdmissionMode.RULES
    if one(attrs, "statelessAdmission"):
        try:
            admission = admission_mode(one(attrs, "statelessAdmission"))
        except StatelessError as exc:
            admission = AdmissionMode.APPROVAL
            problems.append(Problem(dn, "statelessAdmission", one(attrs, "statelessAdmission"),
                                    f"{exc}; the site admits by approval until it is fixed"))
    keys: list[EnrollKey] = []
    for text in attrs.get("statelessEnrollKey", ()):
        try:
            keys.append(parse_enroll_key(text))
        except StatelessError as exc:
            problems.append(Problem(dn, "statelessEnrollKey", _key_id_only(text),
                                    f"{exc}; births signed with this key are refused"))
    site = Site(one(attrs, "cn"), tuple(fields(attrs, "statelessSubnet", cidr)),
                one(attrs, "description"), dn=dn, admission=admission, enroll_keys=tuple(keys))
    return site, problems


def _key_id_only(text: str) -> str:
    """What a problem may show of an enrollment key value: its id, never the sealed secret."""
    return text.split(";", 1)[0].strip()[:40] + "; <secret>"


def pinned_from(attrs: Attrs) -> PinnedIdentity | None:
    """The identity pinned at approval, or None when the host was never approved."""
    if not attrs.get("statelessPinnedAt"):
        return None
    return PinnedIdentity(field(attrs, "statelessPinnedAt", parse_time),
                          one(attrs, "statelessPinnedThumbprint") or None,
                          one(attrs, "statelessPinnedSerial"),
                          tuple(attrs.get("statelessPinnedMac", ())),
                          one(attrs, "statelessPinnedName"))


def site_link_from(attrs: Attrs) -> SiteLink:
    sites = sorted(attrs.get("statelessSiteList", ()))
    if len(sites) != 2:
        raise ValidationError(f"site link {one(attrs, 'cn')!r}: needs exactly two statelessSiteList "
                              "values")
    return SiteLink(sites[0], sites[1], field(attrs, "statelessCost", positive_int, "100"))


def _match_pattern(text: str) -> tuple[str, str]:
    name, pattern = syntax.parse_match(text)
    if name not in RULE_FIELDS:
        raise ValidationError(f"rule field {name!r}: expected one of {', '.join(RULE_FIELDS)}")
    return name, pattern


def rule_from(dn: str, attrs: Attrs) -> Rule:
    match: dict[str, list[str]] = {}
    for name, pattern in fields(attrs, "statelessMatch", _match_pattern):
        match.setdefault(name, []).append(pattern)
    location = field(attrs, "statelessLocation", normalize_path) if one(attrs, "statelessLocation") else None
    policies = fields(attrs, "statelessPolicyName", lambda t: check_name(t, "policy"))
    image = field(attrs, "statelessImageName", lambda t: check_name(t, "image")) \
        if one(attrs, "statelessImageName") else None
    return Rule(one(attrs, "cn"), field(attrs, "statelessOrder", parse_int, "100"),
                {k: tuple(v) for k, v in match.items()}, location, image, tuple(policies), dn=dn)


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


_MULTI_IDENTITY = {"oem_strings": "statelessOemString", "macs": "statelessMac"}


def _identity(dn: str, uuid: str, attrs: Attrs) -> tuple[HostIdentity | None, list[Problem]]:
    """The identity a host entry records, or the problems of each value that is not valid."""
    given = {f: one(attrs, a) for f, a in _IDENTITY_ATTRS.items() if attrs.get(a)}
    multi: dict[str, Any] = {f: tuple(attrs.get(a, ())) for f, a in _MULTI_IDENTITY.items()}
    try:
        return HostIdentity(uuid, **given, **multi), []
    except StatelessError as exc:
        failure = exc
    problems = []
    for name, value in [*given.items(), *((f, v) for f, vs in multi.items() for v in vs)]:
        attr = _IDENTITY_ATTRS.get(name) or _MULTI_IDENTITY[name]
        one_field: dict[str, Any] = {name: (value,) if name in _MULTI_IDENTITY else value}
        try:  # one value at a time, to name the one at fault
            HostIdentity(uuid, **one_field)
        except StatelessError as exc:
            problems.append(Problem(dn, attr, value, str(exc)))
    if not problems:
        problems.append(Problem(dn, *blame(failure, attrs), str(failure)))
    return None, problems


def host_from(dn: str, attrs: Attrs, links: tuple[Link, ...],
              link_problems: Iterable[Problem] = ()) -> HostRecord:
    """A host record; `link_problems` (links below it that could not be read) block it."""
    uuid = one(attrs, "statelessUuid")
    problems: list[Problem] = list(link_problems)
    answers: dict[str, SettingValue] = {}
    for text in attrs.get("statelessAnswer", ()):
        try:
            key, value = syntax.parse_answer(text)
            answers[intern(key)] = value
        except StatelessError as exc:
            problems.append(Problem(dn, "statelessAnswer", redact_value("statelessAnswer", text),
                                    str(exc)))
    allocations = []
    for text in attrs.get("statelessAllocation", ()):
        try:
            allocations.append(syntax.parse_allocation(text))
        except StatelessError as exc:
            problems.append(Problem(dn, "statelessAllocation", text, str(exc)))
    identity, bad = _identity(dn, uuid, attrs)
    problems += bad
    location = None
    try:
        location = field(attrs, "statelessLocation", normalize_path) if one(attrs, "statelessLocation") \
            else None
    except EntryValueError as exc:
        problems.append(Problem(dn, exc.attribute, exc.value, str(exc)))
    pinned = None
    try:
        pinned = pinned_from(attrs)
    except StatelessError as exc:  # an unreadable pin blocks the host: it cannot be checked
        problems.append(Problem(dn, *blame(exc, attrs), f"pinned identity: {exc}"))
    state = None
    if attrs.get("statelessState"):
        try:
            state = HostState(one(attrs, "statelessState").lower())
        except ValueError:
            problems.append(Problem(dn, "statelessState", one(attrs, "statelessState"),
                                    f"expected one of {', '.join(s.value for s in HostState)}"))
    # Strings many hosts share (their cluster, owner, state reason, image) are stored once.
    boot_image = one(attrs, "statelessBootImage")
    return HostRecord(uuid, location and intern(location), links, answers, allocations, identity,
                      state, intern(one(attrs, "statelessStateReason")),
                      one(attrs, "statelessAppliedDigest"), problems, dn,
                      intern(one(attrs, "statelessOwner")),
                      one(attrs, "statelessThumbprint") or None, pinned,
                      intern(boot_image) if boot_image else None)

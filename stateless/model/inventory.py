"""Directory objects as values: policies and links, containers, hosts, pools, sites, rules.

`Snapshot` is one immutable view of the whole `ou=stateless` subtree; the pure core works on
snapshots only, so it can be tested without a directory.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from stateless.errors import ValidationError
from stateless.model.hostmap import host_map
from stateless.model.identity import RULE_FIELDS, HostIdentity, normalize_uuid
from stateless.model.security import DEFAULT_ADMISSION, AdmissionMode, EnrollKey, PinnedIdentity
from stateless.model.settings import SettingValue

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SEGMENT = re.compile(r"[^/\x00-\x1f]{1,80}")


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value)) if value else _EMPTY


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(f"{what} name {value!r}: use 1-64 letters, digits, '_', '.' or '-', "
                              "starting with a letter or digit")
    return value


def normalize_path(value: str) -> str:
    """Inventory paths look like /DC1/Prod/ClusterA; '/' is the root."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValidationError(f"path {value!r}: must start with '/', e.g. /DC1/Prod/ClusterA")
    parts = [p for p in value.split("/") if p]
    for part in parts:
        if not _SEGMENT.fullmatch(part) or part != part.strip():
            raise ValidationError(f"path {value!r}: bad segment {part!r}")
    return "/" + "/".join(parts)


def parent_path(path: str) -> str | None:
    if path == "/":
        return None
    head = path.rsplit("/", 1)[0]
    return head or "/"


def path_chain(path: str) -> list[str]:
    """['/', '/DC1', '/DC1/Prod', '/DC1/Prod/ClusterA'] for the last one."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


# Typed converters: mypy's attrs support cannot see through `converter=tuple`.
def str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def problem_tuple(values: Iterable[Problem]) -> tuple[Problem, ...]:
    return tuple(values)


def _links(values: Iterable[Link]) -> tuple[Link, ...]:
    return tuple(values)


def _allocations(values: Iterable[Allocation]) -> tuple[Allocation, ...]:
    return tuple(values)


def _site_links(values: Iterable[SiteLink]) -> tuple[SiteLink, ...]:
    return tuple(values)


def _rules(values: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(values)


@attrs.frozen
class Problem:
    """A bad value found in the directory: where it is and why it is bad."""

    dn: str
    attribute: str
    value: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return attrs.asdict(self)

    def __str__(self) -> str:
        return f"{self.dn}: {self.attribute}: {self.value!r}: {self.reason}"


@attrs.frozen
class Link:
    """A policy linked to a container (or host), like a GPO link."""

    policy: str = attrs.field(validator=lambda _s, _a, v: check_name(v, "policy"))
    order: int = attrs.field(default=1)
    enforced: bool = False
    disabled: bool = False

    @order.validator
    def _order(self, _: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"link order {value!r}: must be an integer >= 1")


class ContainerKind(enum.StrEnum):
    ROOT = "root"
    DATACENTER = "datacenter"
    FOLDER = "folder"
    CLUSTER = "cluster"


@attrs.frozen
class Container:
    path: str = attrs.field(converter=normalize_path)
    kind: ContainerKind = attrs.field(converter=ContainerKind)
    links: tuple[Link, ...] = attrs.field(default=(), converter=_links)
    block: bool = False
    dn: str = ""
    vcenter: str | None = None  # the vCenter that manages it and what is below (inherited)
    image: str | None = None  # boot image of the hosts below it (inherited; see stateless.boot)
    previous_image: str | None = None  # the assignment before, restored by a rollback

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1] or "/"


@attrs.frozen
class Policy:
    """A named bundle of settings; `problems` non-empty means it must not contribute at all."""

    name: str = attrs.field(validator=lambda _s, _a, v: check_name(v, "policy"))
    settings: Mapping[str, SettingValue] = attrs.field(factory=dict, converter=frozen_map)
    removals: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    description: str = ""
    problems: tuple[Problem, ...] = attrs.field(default=(), converter=problem_tuple)
    dn: str = ""


class HostState(enum.StrEnum):
    PENDING = "pending"
    APPLYING = "applying"
    COMPLIANT = "compliant"
    DRIFTED = "drifted"
    FAILED = "failed"
    QUARANTINED = "quarantined"


@attrs.frozen
class Allocation:
    """An address an IP pool gave one VMkernel NIC of one host."""

    item: str  # "vmknic.<portgroup>"
    pool: str
    address: str


@attrs.frozen
class HostRecord:
    uuid: str = attrs.field(converter=normalize_uuid)
    location: str | None = None
    links: tuple[Link, ...] = attrs.field(default=(), converter=_links)
    answers: Mapping[str, SettingValue] = attrs.field(factory=dict, converter=frozen_map)
    allocations: tuple[Allocation, ...] = attrs.field(default=(), converter=_allocations)
    identity: HostIdentity | None = None
    state: HostState | None = None
    reason: str = ""
    applied_digest: str = ""
    problems: tuple[Problem, ...] = attrs.field(default=(), converter=problem_tuple)
    dn: str = ""
    owner: str = ""  # the server that accepted its birth: the only writer of its state
    thumbprint: str | None = None  # of the host's TLS certificate, as its last birth said
    pinned: PinnedIdentity | None = None  # identity at first approval; None: not approved yet
    boot_image: str | None = None  # the image it reported at its last birth (what it runs)


def ipv4_address(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValidationError(f"{value!r}: not an IPv4 address") from None


@attrs.frozen
class IpPool:
    name: str = attrs.field(validator=lambda _s, _a, v: check_name(v, "pool"))
    start: str = attrs.field(converter=ipv4_address)
    end: str = attrs.field(converter=ipv4_address)
    netmask: str = attrs.field(converter=ipv4_address)
    gateway: str | None = None
    dn: str = ""

    def __attrs_post_init__(self) -> None:
        if ipaddress.IPv4Address(self.start) > ipaddress.IPv4Address(self.end):
            raise ValidationError(f"pool {self.name}: range {self.start}-{self.end} is reversed")
        try:
            ipaddress.IPv4Network(f"0.0.0.0/{self.netmask}")
        except ValueError:
            raise ValidationError(f"pool {self.name}: {self.netmask!r} is not a netmask") from None
        net = ipaddress.IPv4Network(f"{self.start}/{self.netmask}", strict=False)
        if ipaddress.IPv4Address(self.end) not in net:
            raise ValidationError(f"pool {self.name}: {self.start}-{self.end} spans more than one "
                                  f"{self.netmask} network")
        if self.gateway is not None and ipaddress.IPv4Address(ipv4_address(self.gateway)) not in net:
            raise ValidationError(f"pool {self.name}: gateway {self.gateway} is outside {net}")

    @property
    def size(self) -> int:
        return int(ipaddress.IPv4Address(self.end)) - int(ipaddress.IPv4Address(self.start)) + 1


def cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValidationError(f"subnet {value!r}: expected CIDR such as 10.1.0.0/16") from None


def _cidrs(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(cidr(value) for value in values)


def _enroll_keys(values: Iterable[EnrollKey]) -> tuple[EnrollKey, ...]:
    return tuple(values)


@attrs.frozen
class Site:
    name: str = attrs.field(validator=lambda _s, _a, v: check_name(v, "site"))
    subnets: tuple[str, ...] = attrs.field(default=(), converter=_cidrs)
    description: str = ""
    dn: str = ""
    admission: AdmissionMode = attrs.field(default=DEFAULT_ADMISSION, converter=AdmissionMode)
    enroll_keys: tuple[EnrollKey, ...] = attrs.field(default=(), converter=_enroll_keys)


@attrs.frozen
class SiteLink:
    """Two sites and the cost of the path between them (lower is closer)."""

    a: str
    b: str
    cost: int = 100

    def __attrs_post_init__(self) -> None:
        if self.a == self.b:
            raise ValidationError(f"site link {self.a}-{self.b}: a site cannot link to itself")
        if isinstance(self.cost, bool) or not isinstance(self.cost, int) or self.cost < 1:
            raise ValidationError(f"site link {self.a}-{self.b}: cost {self.cost!r} must be >= 1")


@attrs.frozen
class Server:
    name: str = attrs.field(validator=lambda _s, _a, v: check_name(v, "server"))
    site: str
    url: str
    vcenters: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    priority: int = 0
    weight: int = 100
    dn: str = ""
    # Until when the server holds its lease: it is alive, and owns its hosts, until then.
    # None: a server entry no daemon renews (written by hand for a hand-kept zone).
    lease_expiry: datetime | None = None


@attrs.frozen
class VCenter:
    name: str = attrs.field(validator=lambda _s, _a, v: check_name(v, "vcenter"))
    url: str
    user: str
    password: str = attrs.field(default="", repr=False)  # decrypted only inside the adapter
    thumbprint: str | None = None
    dn: str = ""


@attrs.frozen
class Image:
    name: str = attrs.field(validator=lambda _s, _a, v: check_name(v, "image"))
    version: str = ""
    kernel: str = "mboot.c32"
    modules: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    options: str = ""
    url: str = ""
    dn: str = ""


def _match(value: Mapping[str, Any]) -> Mapping[str, tuple[str, ...]]:
    out = {}
    for field, patterns in value.items():
        if field not in RULE_FIELDS:
            raise ValidationError(f"rule field {field!r}: expected one of {', '.join(RULE_FIELDS)}")
        if isinstance(patterns, str):
            patterns = (patterns,)
        if not patterns:
            raise ValidationError(f"rule field {field!r}: needs at least one pattern")
        out[field] = tuple(patterns)
    return MappingProxyType(out)


@attrs.frozen
class Rule:
    """Deploy rule: patterns over identity fields ▸ location, image, extra policy links.

    Several patterns of one field match if any matches; several fields must all match.
    A rule with no patterns matches every host (a default rule).
    """

    name: str = attrs.field(validator=lambda _s, _a, v: check_name(v, "rule"))
    order: int = 100
    match: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_match)
    location: str | None = attrs.field(default=None, converter=attrs.converters.optional(
        normalize_path))
    image: str | None = None
    policies: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    dn: str = ""


class Scope(enum.StrEnum):
    """What a directory problem can block: the hosts that depend on the unreadable entry."""

    PATH = "path"  # hosts at or below an inventory path (a container or one of its links)
    POLICY = "policy"  # hosts linking a policy whose entry could not be read
    POOL = "pool"  # hosts taking addresses from a pool whose entry could not be read
    RULES = "rules"  # every host deploy rules are evaluated for (a rule could not be read)


BlockKey = tuple[Scope, str]


def _problem_order(values: Iterable[Problem]) -> tuple[Problem, ...]:
    """A snapshot's problems in one order (by DN, then attribute, value, reason), whatever
    order the entries were read in: a snapshot assembled change by change equals a full build."""
    return tuple(sorted(values, key=lambda p: (p.dn.lower(), p.attribute, p.value, p.reason)))


def _blocking(value: Mapping[BlockKey, Iterable[Problem]] | None) -> Mapping[BlockKey, tuple[Problem, ...]]:
    return MappingProxyType({k: tuple(v) for k, v in (value or {}).items() if v})


@attrs.frozen
class Snapshot:
    """Everything under `ou=stateless` at one moment.

    `problems` lists every entry or value that could not be turned into the model and is not
    carried by a policy or host of its own; `blocking` files the same problems under what they
    may affect, so resolution fails closed for exactly those hosts (an unreadable enforced link
    must never loosen a host's configuration).
    """

    containers: Mapping[str, Container] = attrs.field(factory=dict, converter=frozen_map)
    policies: Mapping[str, Policy] = attrs.field(factory=dict, converter=frozen_map)
    hosts: Mapping[str, HostRecord] = attrs.field(factory=dict, converter=host_map)
    pools: Mapping[str, IpPool] = attrs.field(factory=dict, converter=frozen_map)
    sites: Mapping[str, Site] = attrs.field(factory=dict, converter=frozen_map)
    site_links: tuple[SiteLink, ...] = attrs.field(default=(), converter=_site_links)
    rules: tuple[Rule, ...] = attrs.field(default=(), converter=_rules)
    images: Mapping[str, Image] = attrs.field(factory=dict, converter=frozen_map)
    vcenters: Mapping[str, VCenter] = attrs.field(factory=dict, converter=frozen_map)
    servers: Mapping[str, Server] = attrs.field(factory=dict, converter=frozen_map)
    problems: tuple[Problem, ...] = attrs.field(default=(), converter=_problem_order)
    blocking: Mapping[BlockKey, tuple[Problem, ...]] = attrs.field(factory=dict, converter=_blocking)

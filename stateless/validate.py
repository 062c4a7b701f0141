"""Checks a write must pass against the rest of the directory (pure: over a `Snapshot`).

The model checks one entry alone; these check what it names: a rule's location, image and
policies, a server's site, the pools a policy's VMkernel NICs draw from, where a container may
sit, whether a site's subnets collide with another site's. Each returns messages (empty: fine)
so a command can refuse with all of them at once. Raw `ldapmodify` can still write anything;
what then does not resolve is a directory problem that blocks the hosts it affects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from stateless.model.inventory import ContainerKind, Rule, Server, Snapshot, normalize_path, parent_path
from stateless.model.settings import pool_name

# Which kinds a container of each kind may sit in (the vSphere inventory's own shape).
PARENTS: Mapping[ContainerKind, frozenset[ContainerKind]] = {
    ContainerKind.DATACENTER: frozenset({ContainerKind.ROOT}),
    ContainerKind.FOLDER: frozenset({ContainerKind.DATACENTER, ContainerKind.FOLDER}),
    ContainerKind.CLUSTER: frozenset({ContainerKind.DATACENTER, ContainerKind.FOLDER}),
}


def _names(values: Iterable[str]) -> str:
    return ", ".join(sorted(values)) or "(none)"


def url(value: str, what: str, schemes: tuple[str, ...] = ("http", "https")) -> list[str]:
    """A URL hosts or servers will be sent to: one of `schemes`, a host name, a valid port."""
    example = f"{schemes[-1]}://host.example.com:8443"
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        return [f"{what} url {value!r}: {exc}; expected e.g. {example}"]
    if parts.scheme.lower() not in schemes or not parts.hostname:
        return [f"{what} url {value!r}: not a {'/'.join(schemes)} URL with a host; expected e.g. "
                f"{example}"]
    if port == 0:
        return [f"{what} url {value!r}: port 0 is not a port"]
    return []


def rule_references(snapshot: Snapshot, rule: Rule) -> list[str]:
    """The location, image and policies a rule names exist."""
    out = []
    if rule.location is not None and rule.location != "/" and rule.location not in snapshot.containers:
        out.append(f"rule {rule.name}: location {rule.location} does not exist; add it with "
                   f"`stateless container add {rule.location} --kind cluster`")
    if rule.image is not None and rule.image not in snapshot.images:
        out.append(f"rule {rule.name}: image {rule.image} does not exist (images: "
                   f"{_names(snapshot.images)}); add it with `stateless image add {rule.image}`")
    for name in rule.policies:
        if name not in snapshot.policies:
            out.append(f"rule {rule.name}: policy {name} does not exist; create it with "
                       f"`stateless policy create {name}`")
    return out


def server(snapshot: Snapshot, srv: Server) -> list[str]:
    """A server's site and vCenters exist and its URL is one an agent can call."""
    out = url(srv.url, f"server {srv.name}")
    if srv.site not in snapshot.sites:
        out.append(f"server {srv.name}: site {srv.site} does not exist (sites: "
                   f"{_names(snapshot.sites)}); add it with `stateless site add {srv.site} "
                   "--subnet CIDR`")
    for name in srv.vcenters:
        if name not in snapshot.vcenters:
            out.append(f"server {srv.name}: vCenter {name} is not registered; add it with "
                       f"`stateless vcenter add {name} --url URL --user USER --password-file FILE`")
    return out


def vcenter_url(name: str, value: str) -> list[str]:
    return url(value, f"vCenter {name}")


def pools(snapshot: Snapshot, owner: str, settings: Mapping[str, object]) -> list[str]:
    """Every `vmknic.<pg>.ip=pool:NAME` names a pool that exists."""
    out = []
    for key, value in sorted(settings.items()):
        name = pool_name(value)
        if name is not None and name not in snapshot.pools:
            out.append(f"{owner}: {key}=pool:{name}: pool {name} does not exist (pools: "
                       f"{_names(snapshot.pools)}); add it with `stateless pool add {name} "
                       "--range FIRST-LAST --netmask MASK`")
    return out


def site_subnets(snapshot: Snapshot, name: str, subnets: Iterable[str]) -> list[str]:
    """No subnet of one site equals or partly overlaps another site's.

    A subnet strictly inside another site's is allowed (as in Active Directory): the longest
    prefix wins, so a branch's /24 can sit inside the headquarters' /16.
    """
    out = []
    for text in subnets:
        mine = ipaddress.ip_network(text, strict=False)
        for other in sorted(snapshot.sites.values(), key=lambda s: s.name):
            if other.name == name:
                continue
            for theirs_text in other.subnets:
                theirs = ipaddress.ip_network(theirs_text, strict=False)
                if mine.version != theirs.version:
                    continue
                if mine == theirs:
                    out.append(f"site {name}: subnet {text} is already site {other.name}'s; a "
                               "subnet belongs to one site (a more specific one inside it is "
                               "allowed)")
    return out


def container(snapshot: Snapshot, path: str, kind: ContainerKind | str) -> list[str]:
    """Datacenters under the root, folders under a datacenter or folder, clusters likewise."""
    path = normalize_path(path)
    kind = ContainerKind(kind)
    parent = parent_path(path) or "/"
    found = snapshot.containers.get(parent)
    parent_kind = ContainerKind.ROOT if parent == "/" else (found.kind if found else None)
    if parent_kind is None:
        return [f"container {path}: parent {parent} does not exist; add it first with "
                f"`stateless container add {parent} --kind folder`"]
    allowed = PARENTS.get(kind, frozenset())
    if parent_kind not in allowed:
        where = "the root" if parent_kind == ContainerKind.ROOT else f"a {parent_kind}"
        return [f"container {path}: a {kind} cannot sit in {where} ({parent}); a datacenter sits "
                "at the root, folders and clusters in a datacenter or folder"]
    return []


def vcenter_reference(snapshot: Snapshot, what: str, name: str) -> list[str]:
    if name not in snapshot.vcenters:
        return [f"{what}: vCenter {name} is not registered (vCenters: {_names(snapshot.vcenters)}); "
                f"add it with `stateless vcenter add {name} --url URL --user USER --password-file "
                "FILE`"]
    return []


__all__ = ["PARENTS", "container", "pools", "rule_references", "server", "site_subnets", "url",
           "vcenter_reference", "vcenter_url"]

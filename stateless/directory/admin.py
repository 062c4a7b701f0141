"""Administrative changes and removals: sites, site links, pools, servers, vCenters, containers,
host answers and host entries.

Every change reads a snapshot first and refuses what `stateless.validate` finds wrong, or what
would leave another entry naming something gone (a server's site, a policy's pool, a container's
vCenter), so the CLI's writes keep the directory consistent. Removals give a host's pool
addresses back before its entry goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ldap3

from stateless import validate
from stateless.directory import addresses
from stateless.directory.mapping import ldap_bool
from stateless.errors import ConflictError, NotFoundError, ValidationError
from stateless.model.identity import normalize_uuid
from stateless.model.inventory import (
    HostRecord,
    Rule,
    Server,
    Site,
    SiteLink,
    Snapshot,
    check_name,
    normalize_path,
)
from stateless.model.settings import pool_name
from stateless.policy.pools import in_pool

if TYPE_CHECKING:
    from stateless.directory.client import Directory

Changes = dict[str, list[tuple[str, list[str]]]]


def refuse(problems: Sequence[str]) -> None:
    if problems:
        raise ValidationError("; ".join(problems))


def _replace(value: str | None) -> list[tuple[str, list[str]]]:
    return [(ldap3.MODIFY_REPLACE, [value] if value else [])]


# --- sites and site links ------------------------------------------------------------------


def add_site(d: Directory, site: Site) -> str:
    refuse(validate.site_subnets(d.snapshot(), site.name, site.subnets))
    return d.add_site(site)


def _site(snapshot: Snapshot, name: str) -> Site:
    site = snapshot.sites.get(check_name(name, "site"))
    if site is None:
        raise NotFoundError(f"site {name}: not in the directory (sites: "
                            f"{', '.join(sorted(snapshot.sites)) or '(none)'}); see `stateless site list`")
    return site


def set_site(d: Directory, name: str, subnets: Sequence[str] | None, description: str | None) -> None:
    snapshot = d.snapshot()
    _site(snapshot, name)
    changes: Changes = {}
    if subnets is not None:
        checked = Site(name, tuple(subnets)).subnets
        refuse(validate.site_subnets(snapshot, name, checked))
        changes["statelessSubnet"] = [(ldap3.MODIFY_REPLACE, list(checked))]
    if description is not None:
        changes["description"] = _replace(description)
    d.modify(d.named_dn("sites", name), changes, f"change site {name}")


def delete_site(d: Directory, name: str) -> list[str]:
    """Delete a site and its site links; refused while a server belongs to it."""
    snapshot = d.snapshot()
    _site(snapshot, name)
    servers = sorted(s.name for s in snapshot.servers.values() if s.site == name)
    if servers:
        raise ConflictError(f"site {name}: servers {', '.join(servers)} belong to it; move them with "
                            f"`stateless server set NAME --site OTHER` or remove them with "
                            "`stateless server delete NAME` first")
    links = [link for link in snapshot.site_links if name in (link.a, link.b)]
    for link in links:
        delete_site_link(d, link.a, link.b)
    d.delete_entry(d.named_dn("sites", name), f"delete site {name}", subtree=True)
    return [f"{link.a}-{link.b}" for link in links]


def site_link_dn(d: Directory, a: str, b: str) -> str:
    first, second = sorted((check_name(a, "site"), check_name(b, "site")))
    return d.named_dn("sitelinks", f"{first}-{second}")


def set_site_link(d: Directory, link: SiteLink) -> bool:
    """Link two sites, or change the cost of their link; True when it was new."""
    dn = site_link_dn(d, link.a, link.b)
    if d.read(dn, "read site link", ["objectClass"]) is None:
        d.add_site_link(link)
        return True
    d.modify(dn, {"statelessCost": [(ldap3.MODIFY_REPLACE, [str(link.cost)])]},
             f"change the cost of site link {link.a}-{link.b}")
    return False


def delete_site_link(d: Directory, a: str, b: str) -> None:
    try:
        d.delete_entry(site_link_dn(d, a, b), f"unlink sites {a} and {b}")
    except NotFoundError:
        raise NotFoundError(f"site link {a}-{b}: the sites are not linked; see "
                            "`stateless site list`") from None


# --- pools ---------------------------------------------------------------------------------


def pool_holders(snapshot: Snapshot, name: str) -> dict[str, tuple[str, str]]:
    """address -> (host uuid, how) for the pool's addresses that hosts hold."""
    pool = snapshot.pools[name]
    out: dict[str, tuple[str, str]] = {}
    for host in snapshot.hosts.values():
        for allocation in host.allocations:
            if allocation.pool == name:
                out[allocation.address] = (host.uuid, f"allocated to {allocation.item}")
        for key, value in host.answers.items():
            if key.startswith("vmknic.") and key.endswith(".address") and isinstance(value, str) \
                    and in_pool(pool, value):
                out.setdefault(value, (host.uuid, f"answer {key}"))
    return out


def pool_users(snapshot: Snapshot, name: str) -> list[str]:
    """Policies and host answers that draw from the pool (`vmknic.<pg>.ip=pool:NAME`)."""
    out = [f"policy {p.name} ({key})" for p in snapshot.policies.values()
           for key, value in sorted(p.settings.items()) if pool_name(value) == name]
    out += [f"host {h.uuid} ({key})" for h in snapshot.hosts.values()
            for key, value in sorted(h.answers.items()) if pool_name(value) == name]
    return out


def delete_pool(d: Directory, name: str) -> None:
    snapshot = d.snapshot()
    if check_name(name, "pool") not in snapshot.pools:
        raise NotFoundError(f"pool {name}: not in the directory; see `stateless pool list`")
    users = pool_users(snapshot, name)
    if users:
        raise ConflictError(f"pool {name}: still used by {'; '.join(users)}; change those first "
                            "(`stateless policy set NAME vmknic.PG.ip=pool:OTHER`)")
    _, used = d.pool_used(name)
    if used:
        holders = pool_holders(snapshot, name)
        who = ", ".join(f"{a} ({holders[a][0]})" if a in holders else a for a in sorted(used))
        raise ConflictError(f"pool {name}: addresses are still allocated: {who}; free them with "
                            "`stateless host decommission UUID --keep-entry` first")
    d.delete_entry(d.named_dn("pools", name), f"delete pool {name}")


# --- servers and vCenters ------------------------------------------------------------------


def add_server(d: Directory, server: Server) -> str:
    refuse(validate.server(d.snapshot(), server))
    return d.add_server(server)


def set_server(d: Directory, name: str, fields: Mapping[str, Any]) -> Server:
    import attrs

    snapshot = d.snapshot()
    current = snapshot.servers.get(check_name(name, "server"))
    if current is None:
        raise NotFoundError(f"server {name}: not in the directory; see `stateless server list`")
    server = attrs.evolve(current, **{k: v for k, v in fields.items() if v is not None})
    refuse(validate.server(snapshot, server))
    d.modify(d.named_dn("servers", name), {
        "statelessSite": [(ldap3.MODIFY_REPLACE, [server.site])],
        "statelessUrl": [(ldap3.MODIFY_REPLACE, [server.url])],
        "statelessPriority": [(ldap3.MODIFY_REPLACE, [str(server.priority)])],
        "statelessWeight": [(ldap3.MODIFY_REPLACE, [str(server.weight)])],
        "statelessVCenterName": [(ldap3.MODIFY_REPLACE, list(server.vcenters))]},
        f"change server {name}")
    return server


def delete_server(d: Directory, name: str) -> None:
    try:
        d.delete_entry(d.named_dn("servers", check_name(name, "server")), f"delete server {name}",
                       subtree=True)
    except NotFoundError:
        raise NotFoundError(f"server {name}: not in the directory; see `stateless server list`") \
            from None


def vcenter_users(snapshot: Snapshot, name: str) -> list[str]:
    return ([f"server {s.name}" for s in snapshot.servers.values() if name in s.vcenters]
            + [f"container {c.path}" for c in snapshot.containers.values() if c.vcenter == name])


def set_vcenter(d: Directory, name: str, url: str | None, user: str | None,
                thumbprint: str | None) -> None:
    if d.read(d.named_dn("vcenters", check_name(name, "vcenter")), "read vCenter",
              ["objectClass"]) is None:
        raise NotFoundError(f"vCenter {name}: not registered; see `stateless vcenter list`")
    changes: Changes = {}
    if url is not None:
        refuse(validate.vcenter_url(name, url))
        changes["statelessUrl"] = _replace(url)
    if user is not None:
        changes["statelessUser"] = _replace(user)
    if thumbprint is not None:
        changes["statelessThumbprint"] = _replace(thumbprint)
    d.modify(d.named_dn("vcenters", name), changes, f"change vCenter {name}")


def delete_vcenter(d: Directory, name: str) -> None:
    snapshot = d.snapshot()
    if check_name(name, "vcenter") not in snapshot.vcenters:
        raise NotFoundError(f"vCenter {name}: not registered; see `stateless vcenter list`")
    users = vcenter_users(snapshot, name)
    if users:
        raise ConflictError(f"vCenter {name}: still named by {', '.join(users)}; change those first "
                            "(`stateless server set NAME --vcenter OTHER`, `stateless container set "
                            "PATH --vcenter OTHER`)")
    d.delete_entry(d.named_dn("vcenters", name), f"delete vCenter {name}")


# --- containers ----------------------------------------------------------------------------


def add_container(d: Directory, path: str, kind: str, description: str = "") -> str:
    refuse(validate.container(d.snapshot(), path, kind))
    return d.add_container(path, kind, description)


def set_container(d: Directory, path: str, *, vcenter: str | None = None, clear_vcenter: bool = False,
                  block: bool | None = None, description: str | None = None) -> None:
    path = normalize_path(path)
    snapshot = d.snapshot()
    if path not in snapshot.containers:
        raise NotFoundError(f"container {path}: not in the directory; see `stateless container list`")
    changes: Changes = {}
    if vcenter is not None:
        refuse(validate.vcenter_reference(snapshot, f"container {path}", vcenter))
        changes["statelessVCenterName"] = _replace(vcenter)
    elif clear_vcenter:
        changes["statelessVCenterName"] = _replace(None)
    if block is not None:
        if path == "/":
            raise ValidationError("container /: the root has nothing above it to block")
        changes["statelessBlockInheritance"] = [(ldap3.MODIFY_REPLACE, [ldap_bool(block)])]
    if description is not None:
        if path == "/":
            raise ValidationError("container /: the root (ou=inventory) takes no description here")
        changes["description"] = _replace(description)
    if not changes:
        raise ValidationError(f"container set {path}: nothing to change; give --vcenter NAME, "
                              "--no-vcenter, --block-inheritance, --no-block-inheritance or "
                              "--description TEXT")
    d.modify(d.container_dn(path), changes, f"change container {path}")


def _below(path: str, other: str) -> bool:
    return other == path or other.startswith(path.rstrip("/") + "/")


def delete_container(d: Directory, path: str, recursive: bool) -> list[str]:
    """Delete a container (with `recursive`, what is below it); refused while hosts are placed
    in it or rules place hosts there. Returns the containers deleted, deepest first."""
    path = normalize_path(path)
    if path == "/":
        raise ValidationError("container /: the root cannot be deleted")
    snapshot = d.snapshot()
    if path not in snapshot.containers:
        raise NotFoundError(f"container {path}: not in the directory; see `stateless container list`")
    inner = sorted((p for p in snapshot.containers if _below(path, p) and p != path),
                   key=lambda p: -p.count("/"))
    if inner and not recursive:
        raise ConflictError(f"container {path}: not empty (contains {', '.join(sorted(inner))}); "
                            f"delete those first or use `stateless container delete {path} "
                            "--recursive`")
    hosts = sorted(h.uuid for h in snapshot.hosts.values() if h.location and _below(path, h.location))
    if hosts:
        raise ConflictError(f"container {path}: hosts {', '.join(hosts)} are placed in it; move them "
                            "with `stateless host move UUID --path PATH` or remove them with "
                            "`stateless host decommission UUID` first")
    rules = sorted(r.name for r in snapshot.rules if r.location and _below(path, r.location))
    if rules:
        raise ConflictError(f"container {path}: rules {', '.join(rules)} place hosts in it; delete "
                            "them with `stateless rules delete NAME` first")
    d.delete_entry(d.container_dn(path), f"delete container {path}", subtree=True)
    return [*inner, path]


# --- rules -------------------------------------------------------------------------------


def set_rule(d: Directory, name: str, fields: Mapping[str, Any], clear: Sequence[str] = ()) -> Rule:
    """Change a rule's fields (None: unchanged; `clear`: fields to empty); checked as
    `rules add` checks a new one."""
    import attrs

    from stateless.directory import mapping
    from stateless.rules import check_rule

    snapshot = d.snapshot()
    current = next((r for r in snapshot.rules if r.name == check_name(name, "rule")), None)
    if current is None:
        raise NotFoundError(f"rule {name}: not in the directory; see `stateless rules list`")
    changed: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    changed.update(dict.fromkeys(clear))
    rule = attrs.evolve(current, **changed)
    refuse(check_rule(rule))
    refuse(validate.rule_references(snapshot, rule))
    wanted = mapping.rule_attrs(rule)
    changes: Changes = {attr: [(ldap3.MODIFY_REPLACE, wanted.get(attr, []))] for attr in (
        "statelessOrder", "statelessMatch", "statelessLocation", "statelessImageName",
        "statelessPolicyName")}
    d.modify(d.named_dn("rules", name), changes, f"change rule {name}")
    return rule


# --- hosts ---------------------------------------------------------------------------------


def _host(snapshot: Snapshot, uuid: str) -> HostRecord:
    uuid = normalize_uuid(uuid)
    host = snapshot.hosts.get(uuid)
    if host is None:
        raise NotFoundError(f"host {uuid}: not in the directory; see `stateless host list`")
    return host


def unset_answers(d: Directory, uuid: str, keys: Sequence[str]) -> list[str]:
    """Remove answers; the pool addresses they held go back. Returns the addresses freed."""
    uuid = normalize_uuid(uuid)
    raw = d.read(d.host_dn(uuid), f"read host {uuid}")
    if raw is None:
        raise NotFoundError(f"host {uuid}: not in the directory; see `stateless host list`")
    current = {v.partition("=")[0].strip(): v for v in raw.get("statelessAnswer", [])}
    missing = [k for k in keys if k not in current]
    if missing:
        raise NotFoundError(f"host {uuid}: no answer {', '.join(missing)} (answers: "
                            f"{', '.join(sorted(current)) or '(none)'})")
    d.modify(d.host_dn(uuid), {"statelessAnswer": [(ldap3.MODIFY_DELETE, [current[k] for k in keys])]},
             f"unset answers of host {uuid}")
    before = addresses.answers_of(raw)
    gone = addresses.answered_addresses({k: before[k] for k in keys if k in before})
    freed = [(p.name, a) for p in addresses.pools(d) for a in gone if in_pool(p, a)]
    addresses.release(d, freed)
    return [a for _, a in freed]


def free_addresses(d: Directory, host: HostRecord) -> list[str]:
    """Give back every pool address the host holds (allocated, or answered inside a pool)."""
    freed = []
    for allocation in host.allocations:
        try:
            d.release(host.uuid, allocation)
        except (ConflictError, NotFoundError):
            addresses.release(d, [(allocation.pool, allocation.address)])
        freed.append(allocation.address)
    answered = addresses.answered_addresses(host.answers)
    reserved = [(p.name, a) for p in addresses.pools(d) for a in answered if in_pool(p, a)]
    addresses.release(d, reserved)
    return freed + [a for _, a in reserved]


def retire(d: Directory, uuid: str) -> None:
    """Forget a kept host's owner, state and applied digest: no server re-applies (re-adds) it
    until its next birth."""
    d.modify(d.host_dn(uuid), {attr: [(ldap3.MODIFY_REPLACE, [])] for attr in (
        "statelessOwner", "statelessState", "statelessStateReason", "statelessAppliedDigest")},
        f"retire host {uuid}")


def delete_host(d: Directory, uuid: str) -> list[str]:
    """Delete a host entry after freeing its pool addresses; returns the addresses freed."""
    host = _host(d.snapshot(), uuid)
    freed = free_addresses(d, host)
    d.delete_host(host.uuid)
    return freed


__all__ = [
    "add_container",
    "add_server",
    "add_site",
    "delete_container",
    "delete_host",
    "delete_pool",
    "delete_server",
    "delete_site",
    "delete_site_link",
    "delete_vcenter",
    "free_addresses",
    "pool_holders",
    "pool_users",
    "retire",
    "set_container",
    "set_rule",
    "set_server",
    "set_site",
    "set_site_link",
    "set_vcenter",
    "unset_answers",
    "vcenter_users",
]

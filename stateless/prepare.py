"""From a host's effective configuration to what vCenter is asked for: one pure step.

The daemon and the CLI apply a host the same way: resolve, allocate the pool addresses the
configuration still lacks (the only step with I/O, left to the caller), then `prepare`, which
refuses an invalid configuration and says where the host goes, under which name, with which
desired configuration and digest.  Nothing here reads the directory or talks to vCenter.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from stateless.errors import NameClashError, ValidationError
from stateless.model.config import HostConfig
from stateless.model.effective import EffectiveConfig
from stateless.model.hostmap import host_map
from stateless.model.inventory import Allocation, ContainerKind, HostRecord, HostState, IpPool, Snapshot
from stateless.model.names import HostNames, short_name


def digest(values: Mapping[str, Any]) -> str:
    """A stable fingerprint of an effective configuration (what was applied)."""
    text = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in values.items()},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def effective_digest(effective: EffectiveConfig) -> str:
    """Like `digest`, but an invalid configuration has its own (it never matches an applied one)."""
    if effective.errors:
        return "invalid:" + digest({str(i): str(e) for i, e in enumerate(effective.errors)})
    return effective.derived("digest", lambda: digest(effective.values()))


def vcenter_name(host: HostRecord, effective: EffectiveConfig | None = None,
                 host_domain: str = "") -> str:
    """The name vCenter knows the host by: its FQDN when known, else its address.

    The host name and domain it is configured with (`dns.hostname`, `dns.domain`: answers or
    policy) win over what its birth reported, so a pre-staged host is added under the name it
    will carry; a born host that reported no domain gets the configured one, else the server's
    `--host-domain`.
    """
    values = dict(host.answers) if effective is None else effective.values()
    ident = host.identity
    hostname = str(values.get("dns.hostname") or (ident.hostname if ident else "") or "")
    domain = str(values.get("dns.domain") or (ident.domain if ident else "") or host_domain)
    if hostname and domain:
        return f"{hostname}.{domain}"
    return (ident.ipv4 if ident else None) or hostname or host.uuid


def name_clash(snapshot: Snapshot, host: HostRecord, name: str, host_domain: str = "",
               names: HostNames | None = None) -> str | None:
    """Another host that would get the same vCenter name (from its answers and birth), or None.

    Two hosts never share a name: vCenter would take the second for the first. A quarantined
    host is never applied, so what it claims takes no name (the admission decides on it).
    `names` (kept by the daemon) narrows the search to the hosts that could be called that.
    """
    lowered = name.lower()
    first, _, domain = lowered.partition(".")
    others = snapshot.hosts.values() if names is None else [
        snapshot.hosts[u] for u in names.candidates(name) if u in snapshot.hosts]
    for other in others:  # the cheap test first: without `names` it runs for every host
        if other.state == HostState.QUARANTINED:
            continue
        short = short_name(other)
        if short is None or not short.lower().startswith(first):
            continue
        if other.uuid != host.uuid and vcenter_name(other, None, host_domain or domain).lower() \
                == lowered:
            return other.uuid
    return None


# Desired configurations by what they are made of (the effective digest and the removals),
# the most recently used last: a host's resolution is made again after each write to its
# entry (its state, its addresses), with the same values, and parsing them is the costly part.
DESIRED_KEPT = 512
_desired: dict[tuple[str, tuple[str, ...]], HostConfig] = {}
_desired_lock = threading.Lock()


def desired_config(effective: EffectiveConfig) -> HostConfig:
    return effective.derived("desired", lambda: _desired_config(effective))


def _desired_config(effective: EffectiveConfig) -> HostConfig:
    removed = tuple(r.target for r in effective.removed)
    key = (effective_digest(effective), removed)
    with _desired_lock:
        found = _desired.pop(key, None)
    if found is None:
        found = HostConfig.from_settings(effective.values(), list(removed))
    with _desired_lock:
        _desired[key] = found
        while len(_desired) > DESIRED_KEPT:
            del _desired[next(iter(_desired))]
    return found


def missing_allocations(effective: EffectiveConfig, host: HostRecord,
                        pools: Mapping[str, IpPool] | None = None) -> list[tuple[str, str]]:
    """(item, pool) pairs the host still needs an address for.

    With `pools`, a pool that does not exist is left out: resolution already reports it as a
    problem of the policy that names it, which says more than a failed allocation would.
    """
    missing = effective.missing_allocations((a.item, a.pool) for a in host.allocations)
    return [(item, pool) for item, pool in missing if pools is None or pool in pools]


def with_allocations(snapshot: Snapshot, host: HostRecord,
                     made: Sequence[Allocation]) -> tuple[Snapshot, HostRecord]:
    """The snapshot and host record as they are once `made` is recorded on the host."""
    have = set(host.allocations)
    host = attrs.evolve(host, allocations=(*host.allocations, *(a for a in made if a not in have)))
    # Snapshot.hosts is persistent: the new view shares the rest of the map with the old one.
    return attrs.evolve(snapshot, hosts=host_map(snapshot.hosts).set(host.uuid, host)), host


def inputs_digest(effective: EffectiveConfig, pools: Mapping[str, IpPool], vcenter: str) -> str:
    """What an apply depends on: the effective configuration, the pools it draws addresses
    from and the vCenter it goes through.  A host that failed for a reason of its own is
    tried again when this changes."""
    used = sorted({pool for _, pool in effective.pools})
    return digest({"effective": effective_digest(effective), "vcenter": vcenter,
                   "pools": [repr(pools.get(name)) for name in used]})


def serving_vcenter(snapshot: Snapshot, server: str) -> str:
    """The vCenter a server applies through: the one its entry names, or the only one."""
    me = snapshot.servers.get(server)
    names = [n for n in (me.vcenters if me else ()) if n in snapshot.vcenters]
    if not names and len(snapshot.vcenters) == 1:
        names = list(snapshot.vcenters)
    if not names:
        if not snapshot.vcenters:
            raise ValidationError("no vCenter is registered: add one with `stateless vcenter "
                                  "add NAME --url URL --user U --password-file F`")
        raise ValidationError(f"server {server} serves no registered vCenter: list one in its "
                              "server entry (several are registered)")
    return names[0]


@attrs.frozen
class Target:
    """A host ready for vCenter: where it goes, its name there and what it should look like."""

    host: HostRecord
    effective: EffectiveConfig
    desired: HostConfig
    digest: str  # of the effective values: recorded as the applied digest
    name: str  # the name vCenter knows it by
    location: str
    leaf: str  # "cluster" or "folder": the kind of container at `location`


def prepare(snapshot: Snapshot, host: HostRecord, effective: EffectiveConfig,
            host_domain: str = "", names: HostNames | None = None) -> Target:
    """The host's target, or ValidationError when its configuration must not reach it.

    Invalid policy never reaches a host: it keeps its last good configuration.
    """
    uuid = host.uuid
    if effective.errors:
        raise ValidationError(f"host {uuid}: the effective configuration has "
                              f"{len(effective.errors)} error(s), nothing applied: "
                              + "; ".join(str(e) for e in effective.errors)
                              + f" (see `stateless rsop {uuid}`)")
    location = effective.location
    if location is None or location not in snapshot.containers:
        raise ValidationError(f"host {uuid}: no location; add a deploy rule or "
                              f"`stateless host move {uuid} --path PATH`")
    kind = snapshot.containers[location].kind
    leaf = "cluster" if kind == ContainerKind.CLUSTER else "folder"
    name = vcenter_name(host, effective, host_domain)
    if host.pinned is not None:
        # vCenter adds a pinned host under the pinned name with the pinned thumbprint,
        # whatever a later birth or policy says (`security.admission`).
        name = host.pinned.name or name
        host = attrs.evolve(host, thumbprint=host.pinned.thumbprint)
    other = name_clash(snapshot, host, name, host_domain, names)
    if other is not None:
        raise NameClashError(f"hosts {uuid} and {other} would both be named {name} in vCenter, "
                              "nothing applied: give one another name with `stateless host set "
                              "UUID --answer dns.hostname=NAME`")
    return Target(host, effective, desired_config(effective), effective_digest(effective),
                  name, location, leaf)


__all__ = ["Target", "desired_config", "digest", "effective_digest", "inputs_digest",
           "missing_allocations", "name_clash", "prepare", "serving_vcenter", "vcenter_name",
           "with_allocations"]

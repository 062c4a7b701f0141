"""Group Policy style inheritance: from a snapshot to one host's effective configuration.

The precedence list of a host (highest first) is::

    enforced links, root-most first  ▸  host links  ▸  deploy-rule links  ▸
    non-enforced container links, nearest first, cut above a container that blocks inheritance

and settings merge per key down that list (see docs/policy.md).  Merging is associative, so
the merged result of every container chain is computed once and shared by all hosts in that
container; a host adds only its own links, answers and pool allocations on top.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from itertools import islice
from typing import NamedTuple

from stateless.errors import NotFoundError, SettingError
from stateless.model.effective import ANSWER, POOL, EffectiveConfig, EffectiveSetting, Overridden, Removal
from stateless.model.identity import normalize_uuid
from stateless.model.inventory import (
    HostRecord,
    IpPool,
    Link,
    Policy,
    Problem,
    Scope,
    Snapshot,
    parent_path,
    path_chain,
)
from stateless.model.settings import SettingValue, parse_item_ref, parse_key, pool_name, render_value
from stateless.policy.addresses import AddressIndex
from stateless.policy.pools import Span, span
from stateless.rules import CompiledRules, RuleError, RuleResult, compile_rules

NO_RULES = RuleResult()


class _Layer(NamedTuple):
    """The merge of a run of links in precedence order (highest first)."""

    settings: dict[str, EffectiveSetting]
    removals: tuple[Removal, ...] = ()
    targets: frozenset[str] = frozenset()
    errors: tuple[Problem, ...] = ()
    ips: tuple[str, ...] = ()  # vmknic.<pg>.ip keys, for pool and static-address checks

    @property
    def empty(self) -> bool:
        return not (self.settings or self.removals or self.errors)


EMPTY = _Layer({})


class _Chain(NamedTuple):
    """Names of the policies a container chain links (to find what an edit touches)."""

    enforced: frozenset[str]  # enforced links of the container and every ancestor
    normal: frozenset[str]  # other links of the container and ancestors up to a block
    names: frozenset[str]


def _sorted_links(links: Iterable[Link]) -> list[Link]:
    return sorted((lk for lk in links if not lk.disabled), key=lambda lk: (lk.order, lk.policy))


def _dedupe(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    return tuple(dict.fromkeys(problems))


def _merge(win: EffectiveSetting, lost: EffectiveSetting) -> EffectiveSetting:
    """One key set at two precedences: `win` stays, `lost` and what it beat are overridden."""
    overridden = (*win.overridden, Overridden(lost.policy, lost.linked_at, lost.value), *lost.overridden)
    return EffectiveSetting(win.key, win.value, win.policy, win.linked_at, win.enforced,
                            overridden)


def _missing(name: str, linked_at: str, dn: str) -> Problem:
    return Problem(dn=dn, attribute="statelessPolicyLink", value=name,
                   reason=f"links policy {name!r} at {linked_at}, but no such policy exists: create it "
                          "under ou=policies or remove the link")


def _vmknic_of_ip_key(key: str) -> str | None:
    if key.startswith("vmknic.") and key.endswith(".ip"):
        return key[len("vmknic."):-len(".ip")]
    return None


class Resolver:
    """Resolves hosts of one snapshot, caching per container chain and per policy link.

    `update` swaps in a newer snapshot and returns the hosts whose effective configuration
    may have changed; only their cached results and the chains they depend on are dropped.
    Unchanged objects should be reused between snapshots (the diff checks identity first).
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self._reset(snapshot)

    def _reset(self, snapshot: Snapshot) -> None:
        self._snap = snapshot
        self._items: dict[str, tuple[str, bool]] = {}
        self._checked: dict[str, tuple[Problem, ...]] = {}  # policy name -> its problems
        self._links: dict[str, dict[tuple[str, bool, str], _Layer]] = {}  # policy -> per link
        self._chains: dict[str, _Chain] = {}
        self._enforced: dict[str, _Layer] = {}
        self._normal: dict[str, _Layer] = {}
        self._full: dict[str, _Layer] = {}
        self._spans: dict[tuple[str, str], tuple[IpPool, Span, tuple[EffectiveSetting, ...]]] = {}
        self._rule_layers: dict[tuple[str, tuple[str, ...]], _Layer] = {}  # (rule, policies)
        self._ruled: dict[str, dict[tuple[str, tuple[str, ...]], _Layer]] = {}  # path -> rule key
        self._users: dict[str, set[str]] | None = None  # policy -> paths whose chain links it
        self._known: set[str] = set()  # paths in _users
        self._hosts: dict[str, EffectiveConfig] = {}
        self._compiled: CompiledRules | None = None
        self._rule_error: RuleError | None = None
        self._rule_results: dict[str, RuleResult] = {}
        self._rule_shared: dict[tuple[object, ...], RuleResult] = {}  # equal results, one object
        # Reverse indexes, built by `index_some` in slices or by the first update that needs
        # them (a one-shot resolve never does).
        self._indexed = False
        self._placed: dict[str, tuple[str, RuleResult, tuple[Problem, ...]]] = {}  # uuid -> chain
        self._at: dict[str, set[str]] = {}  # chain path -> uuids
        self._host_names: dict[str, frozenset[str]] = {}  # uuid -> policies of host/rule links
        self._linking: dict[str, set[str]] = {}  # policy -> uuids linking it at host level
        self._addresses: AddressIndex | None = None
        self._indexing: Iterator[HostRecord] | None = None  # the hosts `index_some` goes through

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    # --- policies --------------------------------------------------------------------------

    def _key(self, key: str) -> tuple[str, bool]:
        """(item, host-specific) of a setting key; SettingError when it is not a key."""
        known = self._items.get(key)
        if known is None:
            parsed, spec = parse_key(key)
            known = self._items[key] = (parsed.item, spec.host_specific)
        return known

    def _item(self, key: str) -> str:
        return self._key(key)[0]

    def policy_problems(self, policy: Policy) -> tuple[Problem, ...]:
        """Why `policy` must not contribute at all (empty when it is good)."""
        return self._problems(policy)

    def _problems(self, policy: Policy) -> tuple[Problem, ...]:
        """Why `policy` must not contribute at all (empty when it is good)."""
        cached = self._checked.get(policy.name)
        if cached is not None:
            return cached
        problems = list(policy.problems)
        # Values were coerced when the policy was read (bad ones are in policy.problems); keys
        # are checked again because a host-specific key must never come from a policy.
        for key, value in policy.settings.items():
            try:
                if self._key(key)[1]:
                    raise SettingError(key, value, "host-specific: give it as a host answer, not in "
                                                   "a policy")
            except SettingError as exc:
                problems.append(Problem(dn=policy.dn, attribute="statelessSetting",
                                        value=f"{key}={render_value(key, value)}", reason=exc.reason))
        for target in sorted(policy.removals):
            try:
                parse_item_ref(target)
            except SettingError as exc:
                problems.append(Problem(dn=policy.dn, attribute="statelessRemove", value=target,
                                        reason=exc.reason))
        result = self._checked[policy.name] = _dedupe(problems)
        return result

    def _link_layer(self, name: str, linked_at: str, enforced: bool, dn: str) -> _Layer:
        """One policy as linked at one place; cached per policy so an edit drops only its links."""
        per_policy = self._links.setdefault(name, {})
        cache_key = (linked_at, enforced, dn)
        cached = per_policy.get(cache_key)
        if cached is not None:
            return cached
        policy = self._snap.policies.get(name)
        if policy is None:
            unread = self._snap.blocking.get((Scope.POLICY, name))
            layer = _Layer({}, errors=unread or (_missing(name, linked_at, dn),))
        elif problems := self._problems(policy):
            layer = _Layer({}, errors=problems)
        else:
            settings = {k: EffectiveSetting(k, v, name, linked_at, enforced)
                        for k, v in policy.settings.items()}
            removals = tuple(Removal(t, name, linked_at) for t in sorted(policy.removals))
            ips = tuple(k for k in settings if _vmknic_of_ip_key(k) is not None)
            layer = _Layer(settings, removals, frozenset(policy.removals), (), ips)
        per_policy[cache_key] = layer
        return layer

    def _combine(self, high: _Layer, low: _Layer) -> _Layer:
        """`high` above `low`: per-key winner, overridden lists, removals cutting `low`."""
        if low.empty:
            return high
        if high.empty:
            return low
        if high.targets:
            targets = high.targets
            item = self._item
            settings = {k: s for k, s in low.settings.items()
                        if k not in targets and item(k) not in targets}
        else:
            settings = low.settings.copy()
        for key, win in high.settings.items():
            lost = settings.get(key)
            settings[key] = win if lost is None else _merge(win, lost)
        if low.removals:
            seen = {r.target for r in high.removals}
            removals = high.removals + tuple(r for r in low.removals if r.target not in seen)
        else:
            removals = high.removals
        errors = _dedupe(high.errors + low.errors) if low.errors else high.errors
        ips = tuple(k for k in dict.fromkeys(high.ips + low.ips) if k in settings)
        return _Layer(settings, removals, high.targets | low.targets, errors, ips)

    def _fold(self, links: Iterable[tuple[Link, str, str]]) -> _Layer:
        """Merge (link, linked_at, dn of the linking entry) given highest precedence first."""
        layer = EMPTY
        stack = [self._link_layer(lk.policy, at, lk.enforced, dn)
                 for lk, at, dn in links]
        for part in reversed(stack):
            layer = self._combine(part, layer)
        return layer

    # --- container chains ------------------------------------------------------------------

    def _chain(self, path: str) -> _Chain:
        cached = self._chains.get(path)
        if cached is not None:
            return cached
        container = self._snap.containers.get(path)
        links = _sorted_links(container.links) if container else []
        enforced = frozenset(lk.policy for lk in links if lk.enforced)
        normal = frozenset(lk.policy for lk in links if not lk.enforced)
        parent = parent_path(path)
        if parent is not None:
            above = self._chain(parent)
            enforced |= above.enforced
            if not (container and container.block):
                normal |= above.normal
        chain = self._chains[path] = _Chain(enforced, normal, enforced | normal)
        return chain

    def _local(self, path: str, enforced: bool) -> _Layer:
        container = self._snap.containers.get(path)
        if container is None:
            return EMPTY
        return self._fold((lk, path, container.dn) for lk in _sorted_links(container.links)
                          if lk.enforced == enforced)

    def _enforced_layer(self, path: str) -> _Layer:
        cached = self._enforced.get(path)
        if cached is None:
            parent = parent_path(path)
            base = self._enforced_layer(parent) if parent is not None else EMPTY
            cached = self._enforced[path] = self._combine(base, self._local(path, True))
        return cached

    def _normal_layer(self, path: str) -> _Layer:
        cached = self._normal.get(path)
        if cached is None:
            parent = parent_path(path)
            container = self._snap.containers.get(path)
            if parent is None or (container is not None and container.block):
                above = EMPTY
            else:
                above = self._normal_layer(parent)
            cached = self._normal[path] = self._combine(self._local(path, False), above)
        return cached

    def _full_layer(self, path: str) -> _Layer:
        cached = self._full.get(path)
        if cached is None:
            cached = self._full[path] = self._combine(self._enforced_layer(path), self._normal_layer(path))
        return cached

    # --- rules -----------------------------------------------------------------------------

    def _rules(self, host: HostRecord) -> tuple[RuleResult, Problem | None]:
        if host.identity is None:
            return NO_RULES, None
        unread = self._snap.blocking.get((Scope.RULES, ""))
        if unread:
            # A rule that cannot be read might have matched first: no rule applies until then.
            first = unread[0]
            return NO_RULES, Problem(first.dn, first.attribute, first.value,
                                     f"{first.reason}; no deploy rule applies until it is fixed")
        if self._compiled is None and self._rule_error is None:
            try:
                self._compiled = compile_rules(self._snap.rules)
            except RuleError as exc:
                self._rule_error = exc
        if self._rule_error is not None:
            err = self._rule_error
            return NO_RULES, Problem(dn=err.rule.dn, attribute="statelessMatch",
                                     value=f"{err.field}={err.pattern}",
                                     reason=f"{err.reason}; no deploy rule applies until it is fixed")
        result = self._rule_results.get(host.uuid)
        if result is None:
            assert self._compiled is not None
            result = self._compiled.evaluate(host.identity)
            # Most hosts get what many others get: one object for all (tens of MB at 50,000).
            key = (result.location, result.image, result.policies, tuple(result.matched.items()))
            result = self._rule_results[host.uuid] = self._rule_shared.setdefault(key, result)
        return result, None

    def rule_result(self, uuid: str) -> RuleResult:
        """What the deploy rules give the host (nothing when they cannot be read)."""
        host = self._snap.hosts.get(uuid)
        return self._rules(host)[0] if host is not None else NO_RULES

    def _rule_dn(self, name: str) -> str:
        return next((r.dn for r in self._snap.rules if r.name == name), "")

    # --- hosts -----------------------------------------------------------------------------

    def _host(self, uuid: str) -> HostRecord:
        hosts = self._snap.hosts
        host = hosts.get(uuid)
        if host is None:
            host = hosts.get(normalize_uuid(uuid))
        if host is None:
            raise NotFoundError(f"host {uuid}: not in ou=hosts; add it with `stateless host add {uuid}` "
                                "or let it boot so that its birth registers it")
        return host

    def _placement(self, host: HostRecord) -> tuple[str | None, RuleResult, list[Problem]]:
        rules, problem = self._rules(host)
        problems = [problem] if problem else []
        location = host.location or rules.location
        if location is None:
            why = ("the host has no identity yet, so deploy rules cannot place it" if host.identity is None
                   else "no deploy rule gives it a location")
            problems.append(Problem(
                dn=host.dn, attribute="statelessLocation", value="",
                reason=f"host has no location ({why}): only policies linked at the root and at the "
                       "host apply; set one with `stateless host move UUID --path /DC/Cluster` or "
                       "add a deploy rule with a location"))
        elif location != "/" and location not in self._snap.containers:
            where = "host entry" if host.location else f"deploy rule {rules.matched.get('location')}"
            problems.append(Problem(
                dn=host.dn if host.location else self._rule_dn(rules.matched.get("location", "")),
                attribute="statelessLocation", value=location,
                reason=f"location from the {where} is not in ou=inventory: create the container or "
                       "fix the location"))
        return location, rules, problems

    def resolve(self, uuid: str) -> EffectiveConfig:
        """Effective configuration of one host; NotFoundError when the snapshot lacks it."""
        cached = self._hosts.get(uuid)
        if cached is not None:
            return cached
        host = self._host(uuid)
        cached = self._hosts.get(host.uuid)
        if cached is None:
            cached = self._hosts[host.uuid] = self._resolve(host)
        return cached

    def _direct(self, host: HostRecord, path: str, rules: RuleResult) -> _Layer:
        """One host's merge in a single pass over its precedence list, caching nothing.

        The same result as the cached chain merges (the tests hold them to it), cheaper when
        only one host of a snapshot is wanted.
        """
        containers = self._snap.containers
        chain = [containers[p] for p in path_chain(path) if p in containers]
        here = f"host:{host.uuid}"
        links = _sorted_links(host.links)
        order = [(lk, c.path, c.dn) for c in chain for lk in _sorted_links(c.links) if lk.enforced]
        order += [(lk, here, host.dn) for lk in links if lk.enforced]
        order += [(lk, here, host.dn) for lk in links if not lk.enforced]
        if rules.policies:
            rule = rules.matched["policies"]
            rule_dn = self._rule_dn(rule)
            order += [(Link(name, order=i + 1), f"rule:{rule}", rule_dn)
                      for i, name in enumerate(rules.policies)]
        for container in reversed(chain):
            order += [(lk, container.path, container.dn) for lk in _sorted_links(container.links)
                      if not lk.enforced]
            if container.block:
                break
        entries: dict[str, list[tuple[SettingValue, str, str, bool]]] = {}
        removed: set[str] = set()
        removals: list[Removal] = []
        errors: list[Problem] = []
        item = self._item
        for lk, at, dn in order:
            policy = self._snap.policies.get(lk.policy)
            if policy is None:
                errors += self._snap.blocking.get((Scope.POLICY, lk.policy)) or (
                    _missing(lk.policy, at, dn),)
                continue
            if problems := self._problems(policy):
                errors += problems
                continue
            for key, value in policy.settings.items():
                if removed and (key in removed or item(key) in removed):
                    continue
                entries.setdefault(key, []).append((value, policy.name, at, lk.enforced))
            for target in sorted(policy.removals - removed):
                removals.append(Removal(target, policy.name, at))
            removed |= policy.removals
        settings = {key: EffectiveSetting(key, value, name, at, enforced,
                                          tuple(Overridden(n, a, v) for v, n, a, _ in rest))
                    for key, ((value, name, at, enforced), *rest) in entries.items()}
        ips = tuple(k for k in settings if _vmknic_of_ip_key(k) is not None)
        return _Layer(settings, tuple(removals), frozenset(removed), _dedupe(errors), ips)

    def resolve_record(self, host: HostRecord) -> EffectiveConfig:
        """`host` as it is about to be (say, with the addresses just allocated to it) against
        this view, sharing its cached merges and address index; nothing is cached for it.

        What a from-scratch `resolve` of a view holding that record gives, without the cost of
        indexing every host of the view again.
        """
        return self._resolve(host)

    def forget(self, uuid: str) -> None:
        """Drop one host's cached result (the shared chain merges stay)."""
        self._hosts.pop(uuid, None)

    def _resolve(self, host: HostRecord, once: bool = False) -> EffectiveConfig:
        location, rules, problems = self._placement(host)
        path = location or "/"
        if self._snap.blocking:  # an unreadable container or link above the host
            for at in path_chain(path):
                problems += self._snap.blocking.get((Scope.PATH, at), ())
        problems += self._duplicates(host)
        here = f"host:{host.uuid}"
        links = _sorted_links(host.links) if host.links else []
        rule_key = (rules.matched["policies"], rules.policies) if rules.policies else None
        if once:
            layer = self._direct(host, path, rules)
        elif links:
            middle = self._combine(self._fold((lk, here, host.dn) for lk in links if lk.enforced),
                                   self._fold((lk, here, host.dn) for lk in links if not lk.enforced))
            if rule_key:
                middle = self._combine(middle, self._rule_layer(*rule_key))
            layer = self._with_middle(path, middle)
        elif rule_key:
            per_path = self._ruled.setdefault(path, {})
            ruled = per_path.get(rule_key)
            if ruled is None:
                ruled = per_path[rule_key] = self._with_middle(path, self._rule_layer(*rule_key))
            layer = ruled
        else:
            layer = self._full_layer(path)
        settings = layer.settings.copy()
        pooled: list[tuple[str, str]] = []
        problems += self._pools_and_answers(host, layer, settings, pooled)
        errors = _dedupe((*layer.errors, *host.problems, *problems)) if problems or host.problems \
            else layer.errors
        return EffectiveConfig(host=host.uuid, location=location, settings=settings,
                               errors=errors, removed=layer.removals, pools=pooled)

    def _duplicates(self, host: HostRecord) -> list[Problem]:
        if self._addresses is None:  # built on first use: a one-shot resolve needs it too
            self._addresses = AddressIndex(self._snap.hosts.values())
        return self._addresses.duplicates(host)

    def _rule_layer(self, rule: str, policies: tuple[str, ...]) -> _Layer:
        """The links one deploy rule adds at host level (shared by every host it matches)."""
        key = (rule, policies)
        cached = self._rule_layers.get(key)
        if cached is None:
            rule_dn = self._rule_dn(rule)
            cached = self._rule_layers[key] = self._fold(
                (Link(name, order=i + 1), f"rule:{rule}", rule_dn) for i, name in enumerate(policies))
        return cached

    def _with_middle(self, path: str, middle: _Layer) -> _Layer:
        """The chain of `path` with host-level links between its enforced and other links.

        Equal to combine(enforced, combine(middle, normal)), but starts from the chain's cached
        merge and recomputes only the keys `middle` sets.
        """
        if middle.empty:
            return self._full_layer(path)
        enforced, normal = self._enforced_layer(path), self._normal_layer(path)
        if middle.targets:
            return self._combine(enforced, self._combine(middle, normal))
        full = self._full_layer(path)
        settings = full.settings.copy()
        targets, item = enforced.targets, self._item
        for key, mid in middle.settings.items():
            if targets and (key in targets or item(key) in targets):
                continue
            low = normal.settings.get(key)
            if low is not None:
                mid = _merge(mid, low)
            high = enforced.settings.get(key)
            settings[key] = mid if high is None else _merge(high, mid)
        ips = tuple(k for k in dict.fromkeys(enforced.ips + middle.ips + normal.ips) if k in settings)
        errors = _dedupe(enforced.errors + middle.errors + normal.errors) if middle.errors else full.errors
        return _Layer(settings, full.removals, full.targets, errors, ips)

    def _pools_and_answers(self, host: HostRecord, layer: _Layer,
                           settings: dict[str, EffectiveSetting],
                           pooled: list[tuple[str, str]]) -> list[Problem]:
        """Add host-specific keys: pool allocations, then host answers (which win).

        `pooled` receives the (vmknic.PG, pool) pairs whose address comes from a pool; a
        VMkernel NIC whose address the host answers takes nothing from its pool (the pool still
        gives the netmask and gateway the answers do not).
        """
        problems: list[Problem] = []
        here = f"host:{host.uuid}"
        for ip_key in layer.ips:
            source = settings[ip_key]
            pg = _vmknic_of_ip_key(ip_key) or ""
            value = str(source.value)
            if value == "static":
                missing = [f"vmknic.{pg}.{f}" for f in ("address", "netmask")
                           if f"vmknic.{pg}.{f}" not in host.answers]
                if missing:
                    args = " --answer ".join(f"{k}=VALUE" for k in missing)
                    problems.append(Problem(
                        dn=host.dn, attribute="statelessAnswer", value=", ".join(missing),
                        reason=f"{ip_key} is static (policy {source.policy} linked at "
                               f"{source.linked_at}) but the host has no answer for "
                               f"{' and '.join(missing)}: set them with "
                               f"`stateless host set {host.uuid} --answer {args}`"))
            elif (pool := pool_name(value)) is not None:
                answered = f"vmknic.{pg}.address" in host.answers
                if not answered:
                    pooled.append((f"vmknic.{pg}", pool))
                problems += self._pool_values(host, pg, pool, source, settings, answered)
        for key, answer in host.answers.items():  # values were validated when the host was read
            try:
                if not self._key(key)[1]:
                    raise SettingError(key, answer, "only host-specific keys (addresses, host name, "
                                       "domain) are host answers; put this setting in a policy "
                                       "linked at the host")
            except SettingError as exc:
                problems.append(Problem(dn=host.dn, attribute="statelessAnswer",
                                        value=f"{key}={render_value(key, answer)}", reason=exc.reason))
                continue
            below = settings.get(key)
            overridden = (Overridden(below.policy, below.linked_at, below.value),) if below else ()
            settings[key] = EffectiveSetting(key, answer, ANSWER, here, False,
                                             overridden)
        return problems

    def _pool_values(self, host: HostRecord, pg: str, name: str, source: EffectiveSetting,
                     settings: dict[str, EffectiveSetting], answered: bool) -> list[Problem]:
        pool = self._snap.pools.get(name)
        item = f"vmknic.{pg}"
        if pool is None and (unread := self._snap.blocking.get((Scope.POOL, name))):
            return list(unread)
        if pool is None:
            policy = self._snap.policies.get(source.policy)
            return [Problem(dn=policy.dn if policy else "", attribute="statelessSetting",
                            value=f"{item}.ip=pool:{name}",
                            reason=f"IP pool {name} does not exist (used by policy {source.policy} "
                                   f"linked at {source.linked_at}): create it or fix the policy")]
        allocation = next((a for a in host.allocations if a.item == item and a.pool == name), None)
        if allocation is None and not answered:
            return [Problem(dn=host.dn, attribute="statelessAllocation", value=item,
                            reason=f"no address from pool {name} is allocated to {item} yet; the "
                                   "server allocates one when it registers the host, or run "
                                   f"`stateless host allocate {host.uuid}`")]
        cached = self._spans.get((name, item))
        if cached is None or cached[0] is not pool:
            bounds = span(pool)
            shared = [("netmask", pool.netmask)] + ([("gateway", bounds.gateway)] if bounds.gateway else [])
            cached = self._spans[(name, item)] = (pool, bounds, tuple(
                EffectiveSetting(f"{item}.{field}", value, POOL.format(name), f"pool:{name}")
                for field, value in shared))
        _, bounds, common = cached
        if allocation is None:  # the host answers the address: the pool gives the rest
            settings.update((setting.key, setting) for setting in common)
            return []
        if allocation.address not in bounds:
            return [Problem(dn=host.dn, attribute="statelessAllocation", value=item,
                            reason=f"allocated address {allocation.address} is outside pool {name} "
                                   f"({pool.start}-{pool.end}); release it so a new one is allocated")]
        key = f"{item}.address"
        settings[key] = EffectiveSetting(key, allocation.address, POOL.format(name), f"pool:{name}")
        for setting in common:
            settings[setting.key] = setting
        return []

    # --- incremental updates ---------------------------------------------------------------

    def _index_add(self, host: HostRecord) -> None:
        location, rules, problems = self._placement(host)
        path = location or "/"
        self._placed[host.uuid] = (path, rules, tuple(problems))
        self._at.setdefault(path, set()).add(host.uuid)
        self._learn(path)
        names = frozenset(lk.policy for lk in host.links if not lk.disabled) | frozenset(rules.policies)
        self._host_names[host.uuid] = names or _NO_NAMES  # one empty set for most of 50,000 hosts
        for name in names:
            self._linking.setdefault(name, set()).add(host.uuid)

    def index_some(self, limit: int) -> bool:
        """Index up to `limit` more hosts of the snapshot; whether some are left. A caller
        with time to spare builds the indexes in slices; `update` finishes them first."""
        if self._indexed:
            return False
        if self._indexing is None:
            self._indexing = iter(self._snap.hosts.values())
        done = 0
        for host in islice(self._indexing, limit):
            self._index_add(host)
            done += 1
        if done < limit:
            self._indexed, self._indexing = True, None
        return not self._indexed

    def _index_remove(self, uuid: str) -> None:
        placed = self._placed.pop(uuid, None)
        if placed is not None:
            self._at[placed[0]].discard(uuid)
        for name in self._host_names.pop(uuid, frozenset()):
            self._linking[name].discard(uuid)

    def _learn(self, path: str | None) -> None:
        """Add `path` and its ancestors to the policy -> paths index."""
        users = self._users
        while users is not None and path is not None and path not in self._known:
            self._known.add(path)
            for name in self._chain(path).names:
                users.setdefault(name, set()).add(path)
            path = parent_path(path)

    def _paths_using(self, policies: set[str]) -> set[str]:
        """Every path (containers, host locations, their ancestors) whose chain links `policies`."""
        if self._users is None:
            self._users, self._known = {}, set()
            for path in (*self._snap.containers, *self._at):
                self._learn(path)
        paths: set[str] = set()
        for name in policies:
            paths |= self._users.get(name, set())
        return paths

    def _hosts_affected(self, policies: set[str], containers: set[str]) -> set[str]:
        """Hosts whose chain links one of `policies` or lies under one of `containers`."""
        affected: set[str] = set()
        for path in self._paths_using(policies) if policies else ():
            affected |= self._at.get(path, set())
        if containers:
            for path, uuids in self._at.items():
                if any(_under(path, c) for c in containers):
                    affected |= uuids
        for name in policies:
            affected |= self._linking.get(name, set())
        return affected

    def update(self, snapshot: Snapshot, hosts: Collection[str] | None = None) -> set[str]:
        """Swap in `snapshot`; return the uuids (of hosts in it) whose config may have changed.

        The first call builds reverse indexes (policy and container to hosts) in one pass over
        the hosts; later calls cost in proportion to what changed. `hosts`, when given, names
        every host whose record differs from the current snapshot's (the mirror knows), which
        spares comparing tens of thousands of records that did not change.
        """
        old = self._snap
        if snapshot is old:
            return set()
        if not self._indexed and self._indexing is None and not old.hosts:
            # The first view of a directory (nothing to compare with): every host is new, and
            # the indexes wait for `index_some` or the next change that needs them.
            self._reset(snapshot)
            return set(snapshot.hosts.keys())
        policies = _changed(old.policies, snapshot.policies)
        containers = _changed(old.containers, snapshot.containers)
        hosts = set(hosts) if hosts is not None else _changed(old.hosts, snapshot.hosts)
        pools = _changed(old.pools, snapshot.pools)
        rules_changed = old.rules != snapshot.rules
        if not (policies or containers or hosts or pools or rules_changed) \
                and old.blocking == snapshot.blocking:
            self._snap = snapshot  # servers, vCenters, sites, images: no input of a resolution
            return set()
        while self.index_some(len(old.hosts) + 1):
            pass
        if old.blocking != snapshot.blocking:  # unreadable entries came, went or changed
            for scope, name in old.blocking.keys() ^ snapshot.blocking.keys() | {
                    k for k, v in snapshot.blocking.items() if old.blocking.get(k, v) != v}:
                if scope == Scope.PATH:
                    containers.add(name)
                elif scope == Scope.POLICY:
                    policies.add(name)
                elif scope == Scope.POOL:
                    pools.add(name)
                else:
                    rules_changed = True
        touched = set(policies)
        pooled: set[str] = set()
        if pools:  # policies naming a changed pool, and hosts holding its addresses
            touched |= {p.name for s in (old, snapshot) for p in s.policies.values()
                        if any(pool_name(v) in pools for v in p.settings.values())}
            pooled = {h.uuid for s in (old, snapshot) for h in s.hosts.values()
                      if any(a.pool in pools for a in h.allocations)}

        affected = self._hosts_affected(touched, containers) | pooled  # as linked before

        self._snap = snapshot
        for name in policies:
            self._checked.pop(name, None)
            self._links.pop(name, None)
        if containers:
            for cache in (self._chains, self._enforced, self._normal, self._full, self._ruled):
                for path in [p for p in cache if any(_under(p, c) for c in containers)]:
                    del cache[path]
            self._users = None  # chains changed; rebuilt on the next use
        if policies:
            for path in self._paths_using(policies):
                for cache in (self._enforced, self._normal, self._full, self._ruled):
                    cache.pop(path, None)
        if rules_changed:
            self._rule_layers.clear()
            self._ruled.clear()
        elif policies:
            stale = [k for k in self._rule_layers if not policies.isdisjoint(k[1])]
            for rule_key in stale:
                del self._rule_layers[rule_key]
            if stale:
                for per_path in self._ruled.values():
                    for rule_key in [k for k in per_path if not policies.isdisjoint(k[1])]:
                        del per_path[rule_key]
        moved = set(hosts)
        if rules_changed:
            self._compiled = None
            self._rule_error = None
            self._rule_results.clear()
            self._rule_shared.clear()
            moved |= {u for u, h in snapshot.hosts.items() if h.identity is not None}
        for uuid in moved:
            record, previous = snapshot.hosts.get(uuid), old.hosts.get(uuid)
            if record is not None and previous is not None and _inputs(record) == _inputs(previous) \
                    and record.identity == previous.identity and not rules_changed:
                continue  # state, digest, owner: bookkeeping that resolution never reads
            self._rule_results.pop(uuid, None)
            if self._addresses is not None:
                affected |= self._addresses.move(uuid, previous, record)
            before = self._placed.get(uuid)
            self._index_remove(uuid)
            if record is not None:
                self._index_add(record)
                if previous is None or _inputs(record) != _inputs(previous) or before != self._placed[uuid]:
                    affected.add(uuid)

        if touched:
            affected |= self._hosts_affected(touched, set())  # as linked after
        affected &= snapshot.hosts.keys()
        for uuid in affected:
            self._hosts.pop(uuid, None)
        for uuid in hosts - snapshot.hosts.keys():
            self._hosts.pop(uuid, None)
        return affected


_NO_NAMES: frozenset[str] = frozenset()


def _inputs(host: HostRecord) -> tuple[object, ...]:
    """The parts of a host record its effective configuration depends on (identity aside)."""
    return (host.location, host.links, host.answers, host.allocations, host.problems, host.dn)


def _under(path: str, container: str) -> bool:
    return container == "/" or path == container or path.startswith(container + "/")


def _changed(old: Mapping[str, object], new: Mapping[str, object]) -> set[str]:
    """Keys added, removed or changed; identity first, so reused objects cost nothing."""
    if old == new:
        return set()
    out = set(old.keys() ^ new.keys())
    for key, value in new.items():
        before = old.get(key)
        if before is not None and before is not value and before != value:
            out.add(key)
    return out


def resolve(snapshot: Snapshot, uuid: str) -> EffectiveConfig:
    """Effective configuration of one host, computed from scratch."""
    resolver = Resolver(snapshot)
    return resolver._resolve(resolver._host(uuid), once=True)


__all__ = ["Resolver", "resolve"]

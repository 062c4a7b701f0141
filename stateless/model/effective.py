"""The resolved configuration of one host, with provenance for every key (like gpresult /v)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs

from stateless.model.inventory import Problem, frozen_map, problem_tuple
from stateless.model.settings import SettingValue, render_json

T = TypeVar("T")

# Provenance names for values that do not come from a policy.
ANSWER = "(host answer)"
POOL = "(ip pool {})"


def json_value(value: SettingValue) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _overridden(values: Iterable[Overridden]) -> tuple[Overridden, ...]:
    return tuple(values)


def _pairs(values: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(values)


def _removals(values: Iterable[Removal]) -> tuple[Removal, ...]:
    return tuple(values)


@attrs.frozen
class Overridden:
    policy: str
    linked_at: str
    value: SettingValue

    def to_json(self, key: str = "", *, reveal: bool = False) -> dict[str, Any]:
        """With the setting's `key`, a secret-bearing value is `<secret>` unless `reveal`."""
        return {"policy": self.policy, "linked_at": self.linked_at,
                "value": render_json(key, self.value, reveal=reveal) if key
                else json_value(self.value)}


@attrs.frozen
class EffectiveSetting:
    key: str
    value: SettingValue
    policy: str
    linked_at: str
    enforced: bool = False
    overridden: tuple[Overridden, ...] = attrs.field(default=(), converter=_overridden)

    def to_json(self, *, reveal: bool = False) -> dict[str, Any]:
        """Secret-bearing values are `<secret>` (model.settings.render_json) unless `reveal`."""
        return {"value": render_json(self.key, self.value, reveal=reveal), "policy": self.policy,
                "linked_at": self.linked_at, "enforced": self.enforced,
                "overridden": [o.to_json(self.key, reveal=reveal) for o in self.overridden]}


@attrs.frozen
class Removal:
    """An inherited item or key that a higher-precedence policy removed."""

    target: str
    policy: str
    linked_at: str


@attrs.frozen
class EffectiveConfig:
    host: str
    location: str | None
    settings: Mapping[str, EffectiveSetting] = attrs.field(factory=dict, converter=frozen_map)
    errors: tuple[Problem, ...] = attrs.field(default=(), converter=problem_tuple)
    removed: tuple[Removal, ...] = attrs.field(default=(), converter=_removals)
    # (vmknic.<pg>, pool) of every VMkernel NIC whose address comes from a pool allocation.
    pools: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    # What is worked out from the settings (desired configuration, digest), kept with them:
    # one resolution is prepared several times while its host is applied and watched.
    _derived: dict[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    def derived(self, key: str, make: Callable[[], T]) -> T:
        """`make()`, computed once per configuration (it must depend on nothing else)."""
        try:
            return cast(T, self._derived[key])
        except KeyError:
            value = self._derived[key] = make()
            return value

    def missing_allocations(self, held: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The (item, pool) pairs the host still needs an address for, given what it holds."""
        have = set(held)
        return [want for want in self.pools if want not in have]

    def values(self) -> dict[str, SettingValue]:
        return {k: s.value for k, s in self.settings.items()}

    def to_json(self, *, reveal: bool = False) -> dict[str, Any]:
        """The `stateless rsop --json` and `GET /v1/hosts/{uuid}/effective` document; values of
        secret-bearing keys are `<secret>` unless `reveal`."""
        return {
            "host": self.host,
            "location": self.location,
            "settings": {k: self.settings[k].to_json(reveal=reveal) for k in sorted(self.settings)},
            "errors": [e.to_json() for e in self.errors],
            "removed": [attrs.asdict(r) for r in self.removed],
        }

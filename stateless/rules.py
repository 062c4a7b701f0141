"""Deploy rules: which location, image and extra policies a host gets from its identity.

Pure and deterministic (matchbox style): rules are tried in (order, name) order and the first
matching rule wins for each item type independently, so a specific rule placed before a
catch-all rule can give a host its location while the catch-all still gives it the image.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence

import attrs

from stateless.errors import ValidationError
from stateless.model.identity import HostIdentity
from stateless.model.inventory import Rule, frozen_map, str_tuple

ITEM_TYPES = ("location", "image", "policies")

_MAC_PATTERN = re.compile(r"[0-9a-f:*?]*")
_BRACKETS = re.compile(r"\[[^\]]*\]")


class RuleError(ValidationError):
    """A deploy rule has a pattern that cannot be matched.

    Carries the rule, field and pattern so the directory layer can point at the entry.
    """

    def __init__(self, rule: Rule, field: str, pattern: str, reason: str) -> None:
        self.rule = rule
        self.field = field
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"rule {rule.name}: {field}={pattern!r}: {reason}")


@attrs.frozen
class RuleResult:
    """What the rules give one host; `matched` names the winning rule per item type."""

    location: str | None = None
    image: str | None = None
    policies: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    matched: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_map)


Matcher = Callable[[HostIdentity], bool]


def _ipv4_range(rule: Rule, pattern: str) -> tuple[int, int]:
    """CIDR, a-b range, one address or * (any), as an inclusive integer range."""
    text = pattern.strip()
    low_text, dash, high_text = text.partition("-")
    try:
        if text == "*":
            return 0, 2**32 - 1
        if "/" in text:
            net = ipaddress.IPv4Network(text, strict=False)
            return int(net.network_address), int(net.broadcast_address)
        low = int(ipaddress.IPv4Address(low_text.strip()))
        high = int(ipaddress.IPv4Address(high_text.strip())) if dash else low
    except ValueError:
        raise RuleError(rule, "ipv4", pattern, "expected a CIDR (10.1.0.0/16), a range "
                        "(10.1.0.10-10.1.0.50) or an address (10.1.0.7)") from None
    if low > high:
        raise RuleError(rule, "ipv4", pattern, "range is reversed; put the lower address first")
    return low, high


def _field_matcher(rule: Rule, field: str, patterns: tuple[str, ...]) -> Matcher:
    if field == "ipv4":
        ranges = [_ipv4_range(rule, p) for p in patterns]

        def match_ipv4(identity: HostIdentity) -> bool:
            if not identity.ipv4:
                return False
            a, b, c, d = identity.ipv4.split(".")  # canonical dotted quad (HostIdentity converts)
            number = (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
            return any(low <= number <= high for low, high in ranges)

        return match_ipv4
    globs = []
    for pattern in patterns:
        if not pattern.strip():
            raise RuleError(rule, field, pattern, "empty pattern; use * to match any value")
        glob = pattern.strip().lower()
        if field == "mac" and not _MAC_PATTERN.fullmatch(_BRACKETS.sub("", glob)):
            raise RuleError(rule, field, pattern, "MAC patterns are globs over the aa:bb:cc:dd:ee:ff "
                            "form, e.g. 00:50:56:*")
        globs.append(fnmatch.translate(glob))
    regex = re.compile("|".join(f"(?:{g})" for g in globs), re.IGNORECASE)

    def match_text(identity: HostIdentity) -> bool:
        return any(regex.match(v) for v in identity.field_values(field))

    return match_text


@attrs.frozen
class CompiledRules:
    """Rules sorted and with their patterns parsed once, for matching many hosts.

    Rules often repeat a condition (vendor=Dell* in every Dell rule); each distinct
    (field, patterns) condition is tested at most once per host.
    """

    conditions: tuple[Matcher, ...]
    rules: tuple[tuple[Rule, tuple[int, ...], tuple[str, ...]], ...]  # rule, conditions, item types

    def evaluate(self, identity: HostIdentity) -> RuleResult:
        location: str | None = None
        image: str | None = None
        policies: tuple[str, ...] = ()
        matched: dict[str, str] = {}
        known: dict[int, bool] = {}
        conditions = self.conditions
        for rule, needs, gives in self.rules:
            wanted = [t for t in gives if t not in matched] if matched else gives
            if not wanted:
                continue
            for index in needs:
                result = known.get(index)
                if result is None:
                    result = known[index] = conditions[index](identity)
                if not result:
                    break
            else:
                for item in wanted:
                    matched[item] = rule.name
                if "location" in wanted:
                    location = rule.location
                if "image" in wanted:
                    image = rule.image
                if "policies" in wanted:
                    policies = rule.policies
                if len(matched) == len(ITEM_TYPES):
                    break
        return RuleResult(location=location, image=image, policies=policies, matched=matched)


def sort_rules(rules: Sequence[Rule]) -> list[Rule]:
    return sorted(rules, key=lambda r: (r.order, r.name))


def compile_rules(rules: Sequence[Rule]) -> CompiledRules:
    """Parse every pattern; raise RuleError for the first bad one (in rule order)."""
    index: dict[tuple[str, tuple[str, ...]], int] = {}
    conditions: list[Matcher] = []
    compiled = []
    for rule in sort_rules(rules):
        needs = []
        for field, patterns in sorted(rule.match.items()):
            key = (field, tuple(patterns))
            if key not in index:
                index[key] = len(conditions)
                conditions.append(_field_matcher(rule, field, patterns))
            needs.append(index[key])
        compiled.append((rule, tuple(needs), tuple(t for t in ITEM_TYPES if getattr(rule, t))))
    return CompiledRules(tuple(conditions), tuple(compiled))


def evaluate(rules: Sequence[Rule], identity: HostIdentity) -> RuleResult:
    """Location, image and extra policies for one host; first matching rule wins per item."""
    return compile_rules(rules).evaluate(identity)


def rule_matches(rule: Rule, identity: HostIdentity) -> bool:
    """True when every field of `rule` has a pattern matching one of the host's values."""
    return all(_field_matcher(rule, f, p)(identity) for f, p in rule.match.items())


def check_rule(rule: Rule) -> list[str]:
    """Every problem with one rule, as messages, for the CLI and directory to check before writing."""
    problems = []
    for field, patterns in sorted(rule.match.items()):
        for pattern in patterns:
            try:
                _field_matcher(rule, field, (pattern,))
            except RuleError as exc:
                problems.append(exc.message)
    if not (rule.location or rule.image or rule.policies):
        problems.append(f"rule {rule.name}: gives no location, image or policies, so it never has "
                        "an effect; set at least one")
    return problems

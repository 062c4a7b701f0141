"""Deploy rules: pattern kinds, AND/OR, default rules, first match per item type, bad patterns."""

from __future__ import annotations

import pytest

from stateless.errors import ValidationError
from stateless.model import HostIdentity, Rule
from stateless.rules import RuleError, RuleResult, check_rule, evaluate, rule_matches

U1 = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
HOST = HostIdentity(U1, serial="CZJ1234ABC", vendor="Dell Inc.", model="PowerEdge R650", asset="A-17",
                    oem_strings=("Dell System", "5[0000]"), macs=("00:50:56:AA:BB:01", "00-50-56-aa-bb-02"),
                    boot_mac="ec:f4:bb:00:00:01", ipv4="10.1.2.30", hostname="esx30",
                    domain="lab.example.com")

MATCHES = [
    ({}, True),
    ({"vendor": "dell*"}, True),
    ({"vendor": "DELL INC."}, True),
    ({"vendor": "HPE"}, False),
    ({"vendor": ("HPE", "Dell*")}, True),
    ({"vendor": "Dell*", "model": "PowerEdge R6?0"}, True),
    ({"vendor": "Dell*", "model": "PowerEdge R7*"}, False),
    ({"serial": "CZJ[0-9]*"}, True),
    ({"serial": "CZJ[!0-9]*"}, False),
    ({"uuid": "4C4C4544-*"}, True),
    ({"uuid": U1}, True),
    ({"asset": "A-1?"}, True),
    ({"oemstring": "dell system"}, True),
    ({"oemstring": "5[[]0000]"}, True),
    ({"oemstring": "*Lenovo*"}, False),
    ({"mac": "00:50:56:aa:bb:02"}, True),
    ({"mac": "00:50:56:*"}, True),
    ({"mac": "EC:F4:BB:*"}, True),
    ({"mac": "00:0c:29:*"}, False),
    ({"ipv4": "10.1.0.0/16"}, True),
    ({"ipv4": "10.1.2.30/32"}, True),
    ({"ipv4": "10.2.0.0/16"}, False),
    ({"ipv4": "10.1.2.10-10.1.2.30"}, True),
    ({"ipv4": "10.1.2.31-10.1.2.50"}, False),
    ({"ipv4": "10.1.2.30"}, True),
    ({"ipv4": "10.1.2.3"}, False),
    ({"ipv4": ("10.9.0.0/16", "10.1.2.0/24")}, True),
    ({"hostname": "esx*", "domain": "*.example.com"}, True),
    ({"hostname": "esx*", "domain": "*.example.org"}, False),
]


@pytest.mark.parametrize(("match", "expected"), MATCHES, ids=[str(m) for m, _ in MATCHES])
def test_rule_matches(match: dict[str, object], expected: bool) -> None:
    assert rule_matches(Rule("r", match=match, location="/DC"), HOST) is expected


@pytest.mark.parametrize("field", ["ipv4", "serial", "mac", "hostname"])
def test_missing_value_never_matches(field: str) -> None:
    assert not rule_matches(Rule("r", match={field: "*"}, location="/DC"), HostIdentity(U1))


FIRST_WINS = [
    ("first match wins for all items",
     [Rule("a", order=1, location="/A", image="img-a", policies=("pa",)),
      Rule("b", order=2, location="/B", image="img-b", policies=("pb",))],
     RuleResult("/A", "img-a", ("pa",), {"location": "a", "image": "a", "policies": "a"})),
    ("order before name",
     [Rule("a", order=5, location="/A"), Rule("b", order=1, location="/B")],
     RuleResult("/B", None, (), {"location": "b"})),
    ("name breaks order ties",
     [Rule("b", order=1, location="/B"), Rule("a", order=1, location="/A")],
     RuleResult("/A", None, (), {"location": "a"})),
    ("each item type independently",
     [Rule("specific", order=1, match={"vendor": "Dell*"}, location="/Dell"),
      Rule("other", order=2, match={"vendor": "HPE"}, image="hpe"),
      Rule("default", order=9, location="/Default", image="base", policies=("common",))],
     RuleResult("/Dell", "base", ("common",), {"location": "specific", "image": "default",
                                                "policies": "default"})),
    ("non-matching rules are skipped",
     [Rule("hpe", order=1, match={"vendor": "HPE"}, location="/HPE"),
      Rule("lab", order=2, match={"ipv4": "10.1.0.0/16"}, location="/Lab")],
     RuleResult("/Lab", None, (), {"location": "lab"})),
    ("no rules", [], RuleResult()),
    ("nothing matches",
     [Rule("hpe", match={"vendor": "HPE"}, location="/HPE")], RuleResult()),
]


@pytest.mark.parametrize(("rules", "expected"), [c[1:] for c in FIRST_WINS], ids=[c[0] for c in FIRST_WINS])
def test_evaluate(rules: list[Rule], expected: RuleResult) -> None:
    assert evaluate(rules, HOST) == expected


BAD = [
    ("ipv4", "10.1.0.0/33", "CIDR"),
    ("ipv4", "10.1.0.300", "CIDR"),
    ("ipv4", "10.1.0.50-10.1.0.10", "reversed"),
    ("ipv4", "10.1.0.1-", "CIDR"),
    ("ipv4", "lab-net", "CIDR"),
    ("mac", "00-50-56-*", "aa:bb:cc:dd:ee:ff"),
    ("vendor", " ", "empty pattern"),
]


@pytest.mark.parametrize(("field", "pattern", "reason"), BAD)
def test_bad_patterns_raise_naming_rule_field_pattern(field: str, pattern: str, reason: str) -> None:
    rule = Rule("broken", match={field: pattern}, location="/DC")
    with pytest.raises(ValidationError, match=reason) as info:
        evaluate([Rule("fine", order=1, location="/A"), rule], HOST)
    assert isinstance(info.value, RuleError)
    assert (info.value.rule, info.value.field, info.value.pattern) == (rule, field, pattern)
    assert "broken" in info.value.message and pattern in info.value.message
    assert check_rule(rule) == [info.value.message]


def test_check_rule_accepts_good_rules_and_flags_useless_ones() -> None:
    assert check_rule(Rule("ok", match={"ipv4": ("10.0.0.0/8", "10.1.0.1-10.1.0.9")}, image="x")) == []
    assert check_rule(Rule("noop", match={"vendor": "Dell*"})) == [
        "rule noop: gives no location, image or policies, so it never has an effect; set at least one"]

"""Security values in the model and the directory mapping: admission, keys, pins, redaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stateless.directory.mapping import build_snapshot, redact_value
from stateless.errors import SettingError, ValidationError
from stateless.model.effective import EffectiveConfig, EffectiveSetting, Overridden
from stateless.model.security import (
    AdmissionMode,
    EnrollKey,
    PinnedIdentity,
    normalize_thumbprint,
    parse_enroll_key,
)
from stateless.model.settings import coerce, is_secret, redact_fields, render_json, render_value

B = "ou=stateless,dc=example,dc=com"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SEALED = "aesgcm:k1:AAAAAAAAAAAAAAAA:BBBB"
UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
SHA1 = ":".join(["ab"] * 20)


def test_enroll_key_text_round_trip() -> None:
    key = EnrollKey("k1", WHEN, SEALED)
    assert key.to_text() == f"k1; created=20260102030405Z; secret={SEALED}"
    assert parse_enroll_key(key.to_text()) == key
    assert SEALED not in repr(key)


@pytest.mark.parametrize("text", ["k1", "k1; created=20260102030405Z", "k 1; created=x; secret=y",
                                  "k1; created=nope; secret=y", "k1; created=20260102030405Z; secret=",
                                  "k1; created=20260102030405Z; secret=a; secret=b",
                                  "k1; created=20260102030405Z; secret=a; color=red"])
def test_bad_enroll_key_texts(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_enroll_key(text)


def test_thumbprints_normalize() -> None:
    assert normalize_thumbprint(SHA1) == SHA1.upper()
    assert normalize_thumbprint("ab" * 32) == ":".join(["AB"] * 32)
    with pytest.raises(ValidationError):
        normalize_thumbprint("ab:cd")


def _site(**extra: list[str]) -> list[tuple[str, dict[str, list[str]]]]:
    return [(B, {"objectClass": ["organizationalUnit"]}),
            (f"ou=sites,{B}", {"objectClass": ["organizationalUnit"]}),
            (f"cn=siteA,ou=sites,{B}", {"objectClass": ["statelessSite"], "cn": ["siteA"],
                                        "statelessSubnet": ["10.1.0.0/16"], **extra})]


def test_site_maps_admission_and_keys() -> None:
    snap = build_snapshot(B, _site(statelessAdmission=["Approval"],
                                   statelessEnrollKey=[EnrollKey("k1", WHEN, SEALED).to_text()]))
    site = snap.sites["siteA"]
    assert site.admission == AdmissionMode.APPROVAL and site.enroll_keys[0].key_id == "k1"
    assert not snap.problems
    assert build_snapshot(B, _site()).sites["siteA"].admission == AdmissionMode.RULES


def test_bad_site_security_values_fail_closed_without_hiding_the_site() -> None:
    snap = build_snapshot(B, _site(statelessAdmission=["everyone"],
                                   statelessEnrollKey=["k1; created=x; secret=" + SEALED,
                                                       EnrollKey("k2", WHEN, SEALED).to_text()]))
    site = snap.sites["siteA"]
    assert site.admission == AdmissionMode.APPROVAL  # the strictest
    assert [k.key_id for k in site.enroll_keys] == ["k2"]  # the bad one authenticates nothing
    assert {p.attribute for p in snap.problems} == {"statelessAdmission", "statelessEnrollKey"}
    assert all(SEALED not in p.value for p in snap.problems)


def _host(**extra: list[str]) -> list[tuple[str, dict[str, list[str]]]]:
    return [(B, {"objectClass": ["organizationalUnit"]}),
            (f"ou=hosts,{B}", {"objectClass": ["organizationalUnit"]}),
            (f"statelessUuid={UUID},ou=hosts,{B}", {"objectClass": ["statelessHost"],
                                                    "statelessUuid": [UUID], **extra})]


def test_host_maps_its_pinned_identity() -> None:
    snap = build_snapshot(B, _host(statelessPinnedAt=["20260102030405Z"],
                                   statelessPinnedThumbprint=[SHA1],
                                   statelessPinnedSerial=["SN1"],
                                   statelessPinnedMac=["00:50:56:AA:BB:02", "00:50:56:aa:bb:01"],
                                   statelessPinnedName=["esx01.example.com"]))
    assert snap.hosts[UUID].pinned == PinnedIdentity(
        WHEN, SHA1.upper(), "SN1", ("00:50:56:aa:bb:01", "00:50:56:aa:bb:02"), "esx01.example.com")
    assert build_snapshot(B, _host()).hosts[UUID].pinned is None


def test_an_unreadable_pin_blocks_the_host() -> None:
    host = build_snapshot(B, _host(statelessPinnedAt=["20260102030405Z"],
                                   statelessPinnedThumbprint=["nope"])).hosts[UUID]
    assert host.pinned is None and host.problems
    assert "pinned identity" in host.problems[0].reason


def test_security_branches_are_not_read_as_configuration() -> None:
    entries = [(B, {"objectClass": ["organizationalUnit"]})]
    for ou in ("nonces", "secrets", "groups", "accounts"):
        entries.append((f"ou={ou},{B}", {"objectClass": ["organizationalUnit"]}))
        entries.append((f"cn=x,ou={ou},{B}", {"objectClass": ["groupOfNames"]}))
    assert build_snapshot(B, entries).problems == ()


def test_secret_keys_are_marked_and_rendered() -> None:
    assert is_secret("snmp.communities") and is_secret("iscsi.chap.secret")
    assert is_secret("snmp.targets") and not is_secret("ntp.servers") and not is_secret("bogus")
    assert render_value("snmp.communities", ("public",)) == "<secret>"
    assert render_value("snmp.communities", ("public",), reveal=True) == "public"
    assert render_value("ntp.servers", ("a", "b")) == "a,b"
    assert render_json("snmp.targets", ("h:162/c",)) == "<secret>"
    assert render_json("ntp.servers", ("a",)) == ["a"]


def test_errors_never_carry_a_secret_value() -> None:
    with pytest.raises(SettingError) as caught:
        coerce("snmp.communities", "has,space in it, and more than sixty-four characters" * 3)
    assert "space" not in str(caught.value) and "<secret>" in str(caught.value)


def test_problem_values_are_redacted() -> None:
    assert redact_fields("enabled=true; communities=s3cret; targets=h/s3cret", "snmp.") == \
        "enabled=true; communities=<secret>; targets=<secret>"
    assert redact_value("statelessSnmp", "communities=s3cret") == "communities=<secret>"
    assert redact_value("statelessAnswer", "snmp.communities=s3cret") == "snmp.communities=<secret>"
    assert redact_value("statelessNtp", "servers=a") == "servers=a"
    entries = [(B, {"objectClass": ["organizationalUnit"]}),
               (f"ou=policies,{B}", {"objectClass": ["organizationalUnit"]}),
               (f"cn=P,ou=policies,{B}", {"objectClass": ["statelessPolicy"], "cn": ["P"],
                                          "statelessSnmp": ["communities=s3cret; bogus=1"]})]
    policy = build_snapshot(B, entries).policies["P"]
    assert policy.problems and all("s3cret" not in str(p) for p in policy.problems)


def test_effective_json_hides_secret_values_unless_revealed() -> None:
    config = EffectiveConfig(UUID, "/DC1", {
        "snmp.communities": EffectiveSetting("snmp.communities", ("c1",), "P", "/", False,
                                             (Overridden("Q", "/DC1", ("c0",)),)),
        "ntp.servers": EffectiveSetting("ntp.servers", ("a",), "P", "/")})
    doc = config.to_json()
    assert doc["settings"]["snmp.communities"]["value"] == "<secret>"
    assert doc["settings"]["snmp.communities"]["overridden"][0]["value"] == "<secret>"
    assert doc["settings"]["ntp.servers"]["value"] == ["a"]
    assert config.to_json(reveal=True)["settings"]["snmp.communities"]["value"] == ["c1"]

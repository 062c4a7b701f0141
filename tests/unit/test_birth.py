"""Birth messages from untrusted hosts: strict parsing, one error per bad field, never a crash."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateless.model.birth import MAX_BODY, BirthError, parse_birth

GOOD = {
    "uuid": "4C4C4544-0042-3510-8052-B4C04F4B4E31",
    "serial": "CN7475154G0123",
    "vendor": "Dell Inc.",
    "model": "PowerEdge R650",
    "asset": "A-1001",
    "oem_strings": ["Dell System", "5[0000]"],
    "macs": ["00:50:56:AA:BB:01", "00-50-56-aa-bb-02"],
    "boot_mac": "00:50:56:aa:bb:01",
    "ipv4": "10.1.0.21",
    "hostname": "esx01",
    "thumbprint": ":".join(["AB"] * 20),
    "image": "esxi-8.0u3",
}


def test_good_message_is_normalised() -> None:
    msg = parse_birth(json.dumps(GOOD).encode())
    assert msg.identity.uuid == "4c4c4544-0042-3510-8052-b4c04f4b4e31"
    assert msg.identity.macs == ("00:50:56:aa:bb:01", "00:50:56:aa:bb:02")
    assert msg.image == "esxi-8.0u3"
    assert parse_birth(json.dumps(msg.to_json() | {"domain": ""}).encode()) == msg


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"uuid": None}, "uuid"),
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"uuid": 42}, "uuid"),
        ({"macs": "00:50:56:aa:bb:01"}, "macs"),
        ({"macs": ["zz:zz"]}, "macs"),
        ({"ipv4": "10.1.0.300"}, "ipv4"),
        ({"ipv4": 10}, "ipv4"),
        ({"serial": "x" * 500}, "serial"),
        ({"thumbprint": "AB:CD"}, "thumbprint"),
        ({"colour": "blue"}, "colour"),
        ({"hostname": "bad\x00name"}, "hostname"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, object], field: str) -> None:
    doc = {**GOOD, **change}
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(BirthError) as info:
        parse_birth(json.dumps(doc).encode())
    assert field in info.value.errors


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"null", b"{", b"\xff\xfe{}", b"[" * 100000, b" " * (MAX_BODY + 1)],
)
def test_garbage_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(BirthError):
        parse_birth(body)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=512),
    st.dictionaries(st.text(max_size=12), st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
        max_leaves=10), max_size=8).map(lambda d: json.dumps(d).encode()),
))
def test_hostile_input_only_raises_birth_error(body: bytes) -> None:
    with contextlib.suppress(BirthError):
        parse_birth(body)

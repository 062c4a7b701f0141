"""Bounded fuzzing in CI: the birth parser, the signature header parser and the directory
entry parser take anything and only ever raise their own clear errors."""

from __future__ import annotations

import json
from contextlib import suppress

from hypothesis import given, settings
from hypothesis import strategies as st

from stateless.agent import signing
from stateless.agent.signing import Authorization, SignatureError
from stateless.directory.mapping import SEARCH_ATTRIBUTES, build_snapshot
from stateless.errors import StatelessError
from stateless.model.birth import BirthError, parse_birth
from stateless.security.birthauth import BirthAuthError, parse_header

KEYS = {"new2": bytes(range(32))}

_HEADERISH = st.one_of(
    st.text(max_size=700),
    st.builds(lambda parts: "Stateless-HMAC-SHA256 " + ", ".join(parts),
              st.lists(st.builds(lambda k, v: f"{k}={v}",
                                 st.sampled_from(["site", "key", "ts", "nonce", "sig", "x"]),
                                 st.text(alphabet="0123456789abcdefAB-_ .=\n\x00é", max_size=70)),
                       max_size=7)),
)


@settings(max_examples=400, deadline=None)
@given(_HEADERISH, st.binary(max_size=64))
def test_fuzz_header_parser_only_raises_its_own_errors(value: str, body: bytes) -> None:
    try:
        auth = parse_header(value)
    except BirthAuthError:
        return
    assert isinstance(auth, Authorization)
    with suppress(SignatureError):  # anything else escaping fails the test
        signing.verify(value, body, KEYS, now=auth.ts)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=6),
    max_leaves=20)
_FIELDS = st.sampled_from(["uuid", "serial", "vendor", "model", "asset", "oem_strings", "macs",
                           "boot_mac", "ipv4", "hostname", "domain", "thumbprint", "image", "x"])
_BIRTHISH = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(_FIELDS, _JSONISH, max_size=8)),
    st.builds(lambda d: json.dumps(d).encode()[:-1], st.dictionaries(_FIELDS, _JSONISH, max_size=4)),
)


@settings(max_examples=400, deadline=None)
@given(_BIRTHISH)
def test_fuzz_birth_parser_only_raises_clear_errors(body: bytes) -> None:
    try:
        parse_birth(body)
    except BirthError as exc:
        assert isinstance(exc, StatelessError) and exc.errors
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in exc.errors.items())


B = "ou=stateless,dc=example,dc=com"
_BRANCH = st.sampled_from(["policies", "hosts", "pools", "sites", "sitelinks", "rules", "images",
                           "vcenters", "servers", "inventory", "nonces", "secrets", "other"])
_CLASSES = st.lists(st.sampled_from(["statelessPolicy", "statelessHost", "statelessIpPool",
                                     "statelessSite", "statelessSiteLink", "statelessRule",
                                     "statelessImage", "statelessVCenter", "statelessServer",
                                     "statelessContainer", "statelessPolicyLink", "top"]),
                    min_size=1, max_size=3)
_VALUE = st.text(alphabet="abcAB019 ;=,./:*-_\"\\é\x00\n", max_size=40)
_ATTRS = st.dictionaries(st.sampled_from([a for a in SEARCH_ATTRIBUTES if a != "objectClass"]),
                         st.lists(_VALUE, min_size=1, max_size=3), max_size=8)
_RDN = st.builds(lambda a, v: f"{a}={v}", st.sampled_from(["cn", "statelessUuid",
                                                           "statelessLinkPolicy", "ou"]),
                 st.text(alphabet="abcAB019-_. ", min_size=1, max_size=12))
_ENTRY = st.builds(lambda rdns, branch, classes, attrs: (
    ",".join([*rdns, f"ou={branch}", B]), {"objectClass": classes, **attrs}),
    st.lists(_RDN, min_size=0, max_size=3), _BRANCH, _CLASSES, _ATTRS)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ENTRY, max_size=12))
def test_fuzz_directory_entries_become_problems_never_crashes(entries: list) -> None:  # type: ignore[type-arg]
    try:
        snapshot = build_snapshot(B, [(B, {"objectClass": ["organizationalUnit"]}), *entries])
    except StatelessError as exc:  # pragma: no cover - the parser turns errors into problems
        raise AssertionError(f"a directory entry escaped as an exception: {exc}") from exc
    for problem in snapshot.problems:
        assert problem.dn and problem.reason

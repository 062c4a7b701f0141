"""The SRV record set, zone-file text and TSIG key files: pure values, no name server."""

from __future__ import annotations

import pytest

from stateless.dns.errors import DiscoveryError
from stateless.dns.records import endpoint, fqdn, records_text, server_records, site_srv_name
from stateless.dns.tsig import TsigKey
from stateless.model.inventory import Server

SECRET = "4rR2f8Bm//4WhCLwU3JgHzlOU5rHNrKIX7/6O3zkXLo="


@pytest.mark.parametrize(
    ("url", "target", "port", "address"),
    [
        ("http://s1.example.com:8080/", "s1.example.com.", 8080, None),
        ("https://S1.Example.com", "s1.example.com.", 443, None),
        ("http://s1.example.com", "s1.example.com.", 80, None),
        ("http://10.0.0.5:8080", "s1.example.com.", 8080, "10.0.0.5"),
    ],
)
def test_endpoint(url: str, target: str, port: int, address: str | None) -> None:
    ep = endpoint(Server("s1", "paris", url), "example.com")
    assert (ep.target, ep.port, ep.address) == (target, port, address)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://s1.example.com", "must be http"),
        ("s1.example.com:8080", "must be http"),
        ("http://s1.example.com:99999", "bad port"),
        ("http://[::1]:8080", "only IPv4"),
    ],
)
def test_endpoint_rejects(url: str, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message):
        endpoint(Server("s1", "paris", url), "example.com")


@pytest.mark.parametrize(
    ("field", "value"), [("priority", -1), ("weight", 65536), ("priority", True)])
def test_bad_priority_or_weight(field: str, value: int) -> None:
    server = Server("s1", "paris", "http://s1.example.com", **{field: value})  # type: ignore[arg-type]
    with pytest.raises(DiscoveryError, match=field):
        server_records(server, "example.com")


@pytest.mark.parametrize(("name", "expected"), [("Example.COM", "example.com."),
                                                ("example.com.", "example.com.")])
def test_fqdn(name: str, expected: str) -> None:
    assert fqdn(name) == expected


@pytest.mark.parametrize("name", ["", "a..b", "x" * 64 + ".com"])
def test_fqdn_rejects(name: str) -> None:
    with pytest.raises(DiscoveryError):
        fqdn(name)


def test_site_name_mirrors_the_dc_locator() -> None:
    assert site_srv_name("Paris", "example.com") == "_stateless._tcp.paris._sites.example.com."


def test_records_text_for_a_hand_kept_zone() -> None:
    servers = [Server("s1", "paris", "http://10.0.0.5:8080/", priority=0, weight=60),
               Server("s2", "lyon", "https://s2.example.com", priority=10),
               Server("s3", "lyon", "https://s3.example.com")]
    text = records_text(servers, "example.com", ttl=600, a_records=True,
                        addresses={"s3.example.com": "10.0.0.7"})
    assert text.splitlines() == [
        "; stateless servers for example.com. (SRV priority weight port target)",
        "s1.example.com. 600 IN A 10.0.0.5",
        "s3.example.com. 600 IN A 10.0.0.7",
        "_stateless._tcp.example.com. 600 IN SRV 0 100 443 s3.example.com.",
        "_stateless._tcp.example.com. 600 IN SRV 0 60 8080 s1.example.com.",
        "_stateless._tcp.example.com. 600 IN SRV 10 100 443 s2.example.com.",
        "_stateless._tcp.lyon._sites.example.com. 600 IN SRV 0 100 443 s3.example.com.",
        "_stateless._tcp.lyon._sites.example.com. 600 IN SRV 10 100 443 s2.example.com.",
        "_stateless._tcp.paris._sites.example.com. 600 IN SRV 0 60 8080 s1.example.com.",
    ]


def test_records_text_without_addresses_has_only_srv() -> None:
    text = records_text([Server("s1", "paris", "http://10.0.0.5:8080/")], "example.com")
    assert " A " not in text and text.count(" SRV ") == 2


@pytest.mark.parametrize(
    "text",
    [
        f'key "upd" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n',
        f'key upd {{ algorithm "HMAC-SHA256"; secret "{SECRET[:20]}\n {SECRET[20:]}"; }};',
        f'# other\nkey "other" {{ algorithm hmac-sha256; secret "{SECRET}"; }};\n'
        f'key "upd." {{ algorithm hmac-sha256; secret "{SECRET}"; }};',
    ],
)
def test_key_file_formats(text: str) -> None:
    key = TsigKey.from_text(text, name="upd")
    assert (key.name, key.algorithm, key.secret) == ("upd", "hmac-sha256", SECRET)
    assert TsigKey.from_text(key.to_bind()) == key
    assert SECRET not in repr(key)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "found 0"),
        ('key "a" { algorithm hmac-sha256; };', "needs both"),
        ('key "a" { algorithm hmac-md5; secret "' + SECRET + '"; };', "not supported"),
        ('key "a" { algorithm hmac-sha256; secret "not base64!"; };', "needs both"),
        ('key "a" { algorithm hmac-sha256; secret "abc"; };', "not base64"),
    ],
)
def test_key_file_errors(text: str, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message):
        TsigKey.from_text(text)


def test_missing_key_file_says_where() -> None:
    with pytest.raises(DiscoveryError, match=r"TSIG key file /nonexistent/k\.key"):
        TsigKey.from_file("/nonexistent/k.key")

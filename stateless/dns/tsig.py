"""TSIG keys read from BIND key files, the format `tsig-keygen` writes and named includes.

One file serves both sides: named.conf `include`s it, the registrar reads it, so the secret
is never copied into a second place.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

import attrs
import dns.name
import dns.tsig
import dns.tsigkeyring

from stateless.dns.errors import DiscoveryError

_KEY = re.compile(
    r'key\s+"?(?P<name>[A-Za-z0-9._-]+)"?\s*\{(?P<body>[^}]*)\}\s*;', re.DOTALL)
_ALGORITHM = re.compile(r'algorithm\s+"?(?P<value>[A-Za-z0-9.-]+)"?\s*;')
_SECRET = re.compile(r'secret\s+"(?P<value>[A-Za-z0-9+/=\s]+)"\s*;')
_ALGORITHMS = {"hmac-sha256": dns.tsig.HMAC_SHA256, "hmac-sha384": dns.tsig.HMAC_SHA384,
               "hmac-sha512": dns.tsig.HMAC_SHA512}


def _secret(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DiscoveryError("TSIG secret is not base64; generate one with "
                             "`tsig-keygen -a hmac-sha256 NAME`") from None
    return value


@attrs.frozen
class TsigKey:
    """A named shared secret that signs updates (RFC 8945)."""

    name: str
    secret: str = attrs.field(repr=False, converter=_secret)
    algorithm: str = "hmac-sha256"

    def __attrs_post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS:
            raise DiscoveryError(f"TSIG key {self.name}: algorithm {self.algorithm!r} is not "
                                 f"supported; use one of {', '.join(_ALGORITHMS)}")

    @property
    def keyname(self) -> dns.name.Name:
        return dns.name.from_text(self.name)

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        key = dns.tsig.Key(self.keyname, self.secret, _ALGORITHMS[self.algorithm])
        return {self.keyname: key}

    def to_bind(self) -> str:
        """The key as a BIND `key` statement, for named.conf `include`."""
        return (f'key "{self.name}" {{\n\talgorithm {self.algorithm};\n'
                f'\tsecret "{self.secret}";\n}};\n')

    @classmethod
    def from_text(cls, text: str, where: str = "key file", name: str | None = None) -> TsigKey:
        """The key called `name` (or the only one) from BIND key-file text."""
        found = []
        for match in _KEY.finditer(text):
            body = match.group("body")
            algorithm = _ALGORITHM.search(body)
            secret = _SECRET.search(body)
            if not algorithm or not secret:
                raise DiscoveryError(f"{where}: key {match.group('name')!r} needs both "
                                     "'algorithm' and 'secret \"...\"' lines")
            found.append(cls(match.group("name").rstrip("."),
                             "".join(secret.group("value").split()),
                             algorithm.group("value").lower()))
        if name is not None:
            found = [k for k in found if k.name == name.rstrip(".")]
        if len(found) != 1:
            what = f"key {name!r}" if name else "exactly one key"
            raise DiscoveryError(f"{where}: expected {what} in BIND format "
                                 '(key "NAME" { algorithm hmac-sha256; secret "..."; };), '
                                 f"found {len(found)}; write one with `tsig-keygen -a hmac-sha256 NAME`")
        return found[0]

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> TsigKey:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DiscoveryError(f"TSIG key file {path}: {exc.strerror}; check the path and that "
                                 "this service may read it") from exc
        return cls.from_text(text, where=f"TSIG key file {path}", name=name)

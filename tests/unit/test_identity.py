"""Host identity values: canonical forms kept as given, other spellings normalized."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("value", ["10.0.0.1", "255.255.255.255", "0.0.0.0", "01.2.3.4", "1.2.3.256",
                                   "1.2.3", " 1.2.3.4", "1.2.3.4 "])
def test_canonical_addresses_are_kept_as_given_others_normalized(value: str) -> None:
    """The fast path for values already in canonical form agrees with ipaddress."""
    import ipaddress

    from stateless.errors import ValidationError
    from stateless.model.identity import _ipv4

    try:
        expected: str | None = str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValidationError):
            _ipv4(value)
    else:
        assert _ipv4(value) == expected


@pytest.mark.parametrize("value", ["00:50:56:aa:bb:cc", "00:50:56:AA:BB:CC", "0050.56aa.bbcc",
                                   "00-50-56-aa-bb-cc", "005056aabbcc"])
def test_macs_normalize_whatever_their_spelling(value: str) -> None:
    from stateless.errors import ValidationError
    from stateless.model.identity import normalize_mac

    if "." in value:
        with pytest.raises(ValidationError):
            normalize_mac(value)
    else:
        assert normalize_mac(value) == "00:50:56:aa:bb:cc"

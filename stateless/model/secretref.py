"""`secret:NAME`: how a setting names a sealed secret instead of holding it.

SNMP communities and the hosts' root password are written in policies only as references to
named secrets (sealed by `stateless secret set snmp NAME` or `stateless secret set
root-password NAME`); the directory never holds them in clear.
"""

from __future__ import annotations

import re

SECRET_PREFIX = "secret:"
_REF = re.compile(re.escape(SECRET_PREFIX) + r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def secret_ref(text: str) -> str | None:
    """The secret a `secret:NAME` value names, or None when the value is not a reference."""
    return text[len(SECRET_PREFIX):] if _REF.fullmatch(text) else None


def reference(value: object, what: str, seal: str) -> str:
    """`value` when it is a reference; ValueError saying how to seal it (`seal`) otherwise.

    The error never repeats the value: it may be the secret itself, written in clear.
    """
    if isinstance(value, str) and _REF.fullmatch(value.strip()):
        return value.strip()
    raise ValueError(f"expected {SECRET_PREFIX}NAME: seal the {what} with {seal} and give "
                     f"{SECRET_PREFIX}NAME here; the directory never holds the {what} in clear")

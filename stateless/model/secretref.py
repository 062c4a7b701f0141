"""`secret:NAME`: how a setting names a sealed secret instead of holding it.

SNMP communities and the hosts' root password are written in policies only as references to
named secrets (sealed by `stateless secret set snmp NAME` or `stateless secret set
root-password NAME`); the directory never holds them in clear. Each setting that names a
secret needs one kind (`NEEDS`): a secret stored as another kind is never opened for it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

SECRET_PREFIX = "secret:"
_REF = re.compile(re.escape(SECRET_PREFIX) + r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SecretKind(enum.StrEnum):
    VCENTER = "vcenter"  # the password of a registered vCenter (on its entry)
    CHAP = "chap"  # an iSCSI CHAP secret, named by iscsi.chap.secret
    SNMP = "snmp"  # an SNMP community
    ROOT_PASSWORD = "root-password"  # the hosts' root password


# The kind of secret each secret-naming setting needs; every use opens only that kind.
NEEDS: dict[str, SecretKind] = {
    "iscsi.chap.secret": SecretKind.CHAP,  # a bare NAME
    "snmp.communities": SecretKind.SNMP,  # secret:NAME, ...
    "snmp.targets": SecretKind.SNMP,  # host[:port]/secret:NAME, ...
    "account.root.password": SecretKind.ROOT_PASSWORD,  # secret:NAME
}


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


def named_secrets(key: str, value: object) -> list[str]:
    """The secrets a (coerced) setting value names, in order; none for other keys."""
    if key not in NEEDS or value is None:
        return []
    if key == "iscsi.chap.secret":
        return [str(value)]
    items: Iterable[object] = value if isinstance(value, tuple | list) else (value,)
    texts = [str(i).partition("/")[2] if key == "snmp.targets" else str(i) for i in items]
    return [name for name in map(secret_ref, texts) if name is not None]

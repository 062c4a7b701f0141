"""One exception root, so callers can catch everything the project raises in one place.

Every error a user can cause says what went wrong, where, and how to fix it; the
docstring of each class is its default message.
"""

from __future__ import annotations


class StatelessError(Exception):
    """stateless failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ValidationError(StatelessError, ValueError):
    """A value is not valid."""


class NameClashError(ValidationError):
    """Two hosts would get one name in vCenter: resolved by a change to either host."""


class SettingError(ValidationError):
    """A setting value is not valid.

    Carries the setting key and the offending value so that the directory layer can add
    the entry DN and attribute it came from.
    """

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        super().__init__(f"{key}={value!r}: {reason}")


class SettingKeyError(SettingError):
    """A setting key is not valid (whatever its value)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, key, reason)
        self.args = (f"setting {key}: {reason}",)


class SecretKindError(ValidationError):
    """A named secret is used as another kind than it was stored as: it is never opened.

    Permanent (a ValidationError): the host that needs it is blocked until the secret is
    stored as the kind its setting needs, or the setting names a secret of that kind.
    """

    def __init__(self, key: str, name: str, stored: str, needed: str) -> None:
        self.key, self.name, self.stored, self.needed = key, name, stored, needed
        fix = " ".join(("stateless", "secret", "set", needed, name))  # KIND is one of the choices
        super().__init__(
            f"{key}: secret {name} is stored as a {stored} secret, but {key} needs a {needed} "
            f"secret; store it as one with `{fix}`, or name a {needed} secret in {key}")


class NotFoundError(StatelessError, LookupError):
    """An object was not found."""


class HostEntryMissing(NotFoundError):
    """The directory server asked has no entry for the host.

    For a host the daemon's view holds, that server is a replica behind the view (a failover
    to another provider, replication lag): the entry arrives, so it is worth trying again.
    """

    def __init__(self, uuid: str) -> None:
        super().__init__(f"host {uuid}: not found; add it with `stateless host add`")


class ConflictError(StatelessError):
    """An object already exists or was changed concurrently."""


class DirectoryError(StatelessError):
    """The directory could not be reached or refused an operation."""


class VCenterError(StatelessError):
    """vCenter refused or failed an operation."""


class TransientVCenterError(VCenterError):
    """vCenter failed in a way that a retry may fix (timeout, busy, session expired)."""

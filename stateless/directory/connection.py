"""Where the directory is and how to bind: one resolver for `stateless` and statelessd.

Each setting comes from the command line, else its `STATELESS_*` variable, else (statelessd)
the configuration file, else the default.  The environment is passed in, so callers and tests
decide what it is.  Passwords only ever come from files, read by `read_secret`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from stateless.errors import ValidationError

DEFAULT_BASE = "ou=stateless,dc=example,dc=com"

# Setting -> the variable that supplies it when no option does.
ENVIRONMENT = {"ldap_urls": "STATELESS_LDAP", "bind_dn": "STATELESS_BIND_DN",
               "password_file": "STATELESS_PASSWORD_FILE", "base": "STATELESS_BASE",
               "write_server": "STATELESS_WRITE_SERVER"}


@attrs.frozen
class ConnectionSettings:
    ldap_urls: tuple[str, ...] = ()  # empty: none given
    bind_dn: str = ""  # empty: anonymous
    password_file: Path | None = None
    base: str = DEFAULT_BASE
    # The policy write server: policy edits go there (as Group Policy edits go to one domain
    # controller), so near-simultaneous edits of one policy never race on two providers.
    write_server: tuple[str, ...] = ()  # empty: the edits go where reads go

    @property
    def write_urls(self) -> tuple[str, ...]:
        """Where policy edits go: the write server when one is set, else the usual URLs."""
        return self.write_server or self.ldap_urls

    def password(self) -> str | None:
        """The bind password, read from its file now (never kept in the settings)."""
        if self.password_file is None:
            return None
        return read_secret(self.password_file, "password file")


def split_urls(value: str | Iterable[str]) -> tuple[str, ...]:
    """URLs from one string or several, each possibly comma-separated (failover, in order)."""
    items = [value] if isinstance(value, str) else list(value)
    return tuple(url.strip() for item in items for url in str(item).split(",") if url.strip())


def resolve_connection(options: Mapping[str, Any], env: Mapping[str, str],
                       fallback: Mapping[str, Any] | None = None) -> ConnectionSettings:
    """Merge by setting: the first non-empty of options, environment, fallback, default.

    `options` and `fallback` are keyed by the names of ConnectionSettings' fields.
    """
    chosen: dict[str, Any] = {}
    for name, variable in ENVIRONMENT.items():
        for value in (options.get(name), env.get(variable), (fallback or {}).get(name)):
            if value:
                chosen[name] = value
                break
    return ConnectionSettings(
        ldap_urls=split_urls(chosen.get("ldap_urls", ())),
        bind_dn=str(chosen.get("bind_dn", "")),
        password_file=Path(chosen["password_file"]) if "password_file" in chosen else None,
        base=str(chosen.get("base", DEFAULT_BASE)),
        write_server=split_urls(chosen.get("write_server", ())))


def read_secret(path: Path | str, what: str) -> str:
    """The secret in `path`: its text without line endings (a password may end in spaces)."""
    try:
        return Path(path).read_text().strip("\r\n")
    except OSError as exc:
        raise ValidationError(f"{what} {path}: {exc.strerror}; give a readable file that holds "
                              "the secret (mode 0600)") from exc


__all__ = ["DEFAULT_BASE", "ENVIRONMENT", "ConnectionSettings", "read_secret",
           "resolve_connection", "split_urls"]

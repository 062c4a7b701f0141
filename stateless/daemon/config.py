"""statelessd's configuration: one frozen value, validated before anything starts.

Sources, later ones winning: built-in defaults, a TOML file (`--config`), `STATELESS_*`
environment variables, command-line options.  Secrets never appear in any of them directly:
only the names of files that hold them.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from stateless.directory.connection import DEFAULT_BASE, ENVIRONMENT, resolve_connection
from stateless.errors import ValidationError
from stateless.model.inventory import check_name


def _endpoint(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValidationError(f"{what} {value!r}: expected ADDRESS:PORT such as 127.0.0.1:8480")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValidationError(f"{what} {value!r}: {host!r} is not an IP address") from None
    return host.strip("[]"), int(port)


def _positive(what: str) -> Any:
    def check(_inst: object, _attr: object, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValidationError(f"{what} {value!r}: must be a positive number")

    return check


@attrs.frozen
class DaemonConfig:
    state_dir: Path = attrs.field(converter=Path)
    name: str = attrs.field(default="statelessd", validator=lambda _s, _a, v: check_name(v, "server"))
    site: str = attrs.field(default="default", validator=lambda _s, _a, v: check_name(v, "site"))
    listen: str = "127.0.0.1:8480"
    public_url: str = ""  # advertised API URL; derived from `listen` when empty
    ldap_urls: tuple[str, ...] = attrs.field(default=(), converter=tuple)  # empty: embedded slapd
    bind_dn: str = ""
    password_file: Path | None = attrs.field(default=None,
                                             converter=attrs.converters.optional(Path))
    base: str = DEFAULT_BASE
    domain: str = "stateless.test"
    dns: str = "none"  # none | serve | update
    dns_listen: str = "127.0.0.1:8553"  # for dns=serve
    dns_server: str = ""  # for dns=update: the primary accepting RFC 2136 updates
    tsig_key_file: Path | None = attrs.field(default=None,
                                             converter=attrs.converters.optional(Path))
    dns_refresh: float = attrs.field(default=300.0, validator=_positive("dns refresh"))
    mode: str = "enforce"  # enforce | report
    scan_interval: float = attrs.field(default=600.0, validator=_positive("scan interval"))
    max_pending: int = attrs.field(default=2000, validator=_positive("max pending"))
    # Transient apply failures are retried forever, with full-jitter exponential backoff
    # whose ceiling stops growing here.
    retry_cap: float = attrs.field(default=300.0, validator=_positive("retry cap"))
    vcenter_concurrency: int = attrs.field(default=8, validator=_positive("vcenter concurrency"))
    threads: int = attrs.field(default=16, validator=_positive("threads"))
    # Python's thread switch interval.  The threads mostly wait on the network; what they do
    # in between (decoding a vCenter answer, a few ms) is better finished than interrupted:
    # Python's default 5 ms cost a 200-host boot storm about a quarter more CPU.
    switch_interval: float = attrs.field(default=0.05, validator=_positive("switch interval"))
    secret_key_file: Path | None = attrs.field(default=None,
                                               converter=attrs.converters.optional(Path))
    host_password_file: Path | None = attrs.field(default=None,
                                                  converter=attrs.converters.optional(Path))
    # HTTPS and the admin API (see docs/security.md)
    tls_cert: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    tls_key: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    client_ca: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    admin_token_file: Path | None = attrs.field(default=None,
                                                converter=attrs.converters.optional(Path))
    public_read: bool = False  # host details readable without credentials
    insecure_admin: bool = False  # admin writes open to anyone: only for a lab
    # Signed births: "required", "optional", or "" (required once the site has an enrollment key)
    birth_auth: str = ""

    def __attrs_post_init__(self) -> None:
        _endpoint(self.listen, "listen")
        if self.dns not in ("none", "serve", "update"):
            raise ValidationError(f"dns {self.dns!r}: expected none, serve or update")
        if self.dns == "serve":
            _endpoint(self.dns_listen, "dns listen")
        if self.dns == "update":
            _endpoint(self.dns_server, "dns server")
            if self.tsig_key_file is None:
                raise ValidationError("dns update needs a TSIG key file (--tsig-key-file); "
                                      "unsigned updates are refused by any sane primary")
        if self.mode not in ("enforce", "report"):
            raise ValidationError(f"mode {self.mode!r}: expected enforce or report")
        for url in self.ldap_urls:
            if urlsplit(url).scheme not in ("ldap", "ldaps", "ldapi"):
                raise ValidationError(f"ldap url {url!r}: expected ldap://HOST[:PORT]")
        if self.ldap_urls and (not self.bind_dn or self.password_file is None):
            raise ValidationError("an external directory needs --bind-dn and --password-file")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValidationError("HTTPS needs both --tls-cert and --tls-key")
        if self.client_ca is not None and self.tls_cert is None:
            raise ValidationError("--client-ca asks for client certificates, which need HTTPS "
                                  "(--tls-cert and --tls-key)")
        if self.birth_auth not in ("", "required", "optional"):
            raise ValidationError(f"birth auth {self.birth_auth!r}: expected required or optional")
        if self.public_url and urlsplit(self.public_url).scheme not in ("http", "https"):
            raise ValidationError(f"public url {self.public_url!r}: expected http(s)://HOST:PORT")

    @property
    def secret_key(self) -> Path:
        """Fernet key that decrypts vCenter passwords (shared with the CLI)."""
        return self.secret_key_file or self.state_dir / "secret.key"

    @property
    def embedded(self) -> bool:
        return not self.ldap_urls

    @property
    def listen_endpoint(self) -> tuple[str, int]:
        return _endpoint(self.listen, "listen")

    @property
    def dns_listen_endpoint(self) -> tuple[str, int]:
        return _endpoint(self.dns_listen, "dns listen")

    def api_url(self, port: int | None = None) -> str:
        """The URL advertised in SRV targets and referrals."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host, configured = self.listen_endpoint
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{port or configured}"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


_FIELDS = {f.name: f for f in attrs.fields(DaemonConfig)}
ENV_PREFIX = "STATELESS_"


def _coerce(name: str, value: Any) -> Any:
    if name == "ldap_urls" and isinstance(value, str):
        return tuple(u.strip() for u in value.split(",") if u.strip())
    if name in ("max_pending", "vcenter_concurrency", "threads"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} {value!r}: expected an integer") from None
    if name in ("dns_refresh", "scan_interval", "switch_interval", "retry_cap"):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} {value!r}: expected a number of seconds") from None
    if name in ("public_read", "insecure_admin"):
        return _flag(name, value)
    return value


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool | int):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValidationError(f"{name} {value!r}: expected true or false")


def load_config(file: Path | None, env: Mapping[str, str], options: Mapping[str, Any]) -> DaemonConfig:
    """Merge the sources; raise ValidationError with the offending source and value."""
    values: dict[str, Any] = {}
    if file is not None:
        try:
            doc = tomllib.loads(Path(file).read_text())
        except OSError as exc:
            raise ValidationError(f"config file {file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError(f"config file {file}: {exc}") from None
        for key, value in doc.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ValidationError(f"config file {file}: unknown setting {key!r}")
            values[name] = _coerce(name, value)
    for key, value in env.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].lower()
            if name in _FIELDS and name not in ENVIRONMENT:
                values[name] = _coerce(name, value)
    for name, value in options.items():
        if value is not None and name not in ENVIRONMENT:
            values[name] = _coerce(name, value)
    # The directory connection: resolved as the `stateless` command resolves it.
    values.update(attrs.asdict(resolve_connection(options, env, values), recurse=False))
    if "state_dir" not in values:
        values["state_dir"] = Path(env.get("STATELESS_STATE_DIR", "/var/lib/stateless"))
    try:
        return DaemonConfig(**values)
    except TypeError as exc:
        raise ValidationError(f"configuration: {exc}") from None

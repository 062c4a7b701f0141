"""statelessd's configuration: one frozen value, validated before anything starts.

Sources, later ones winning: built-in defaults, a TOML file (`--config`), `STATELESS_*`
environment variables, command-line options.  Secrets never appear in any of them directly:
only the names of files that hold them.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from stateless.directory.connection import DEFAULT_BASE, ENVIRONMENT, resolve_connection
from stateless.errors import ValidationError
from stateless.model.inventory import check_name

ENDPOINT_TYPES = ("tcp", "tcp6", "ssl", "unix")  # endpoint strings `--listen` takes as they are
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _endpoint(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValidationError(f"{what} {value!r}: expected ADDRESS:PORT such as 127.0.0.1:8480")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValidationError(f"{what} {value!r}: {host!r} is not an IP address") from None
    return host.strip("[]"), int(port)


def _not_negative(what: str) -> Any:
    def check(_inst: object, _attr: object, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValidationError(f"{what} {value!r}: must be a number of seconds, 0 or more")

    return check


def listen_description(value: str) -> str:
    """The Twisted endpoint string of `--listen`: given as one (`tcp:8480:interface=...`,
    `ssl:...`, `unix:...`), or made from the ADDRESS:PORT shorthand."""
    kind = value.partition(":")[0]
    if kind in ENDPOINT_TYPES:
        return value
    host, port = _endpoint(value, "listen")
    if ipaddress.ip_address(host).version == 6:
        return f"tcp6:{port}:interface={host.replace(':', chr(92) + ':')}"
    return f"tcp:{port}:interface={host}"


def _check_listen(value: str) -> None:
    """The endpoint string parses (ssl: also reads its certificate and key here)."""
    from twisted.internet.endpoints import serverFromString

    description = listen_description(value)
    try:
        serverFromString(object(), description)  # the reactor is only used when listening
    except Exception as exc:  # a bad description raises whatever its parser raises
        raise ValidationError(f"listen {value!r}: {exc or type(exc).__name__}; expected "
                              "ADDRESS:PORT or an endpoint such as tcp:8480:interface=127.0.0.1, "
                              "ssl:8443:privateKey=KEY:certKey=CERT or unix:/run/statelessd.sock"
                              ) from None


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
    listen: str = "127.0.0.1:8480"  # ADDRESS:PORT, or a Twisted endpoint string
    public_url: str = ""  # advertised API URL; derived from the bound address when empty
    ldap_urls: tuple[str, ...] = attrs.field(default=(), converter=tuple)  # empty: embedded slapd
    bind_dn: str = ""
    password_file: Path | None = attrs.field(default=None,
                                             converter=attrs.converters.optional(Path))
    base: str = DEFAULT_BASE
    domain: str = "stateless.test"
    host_domain: str = ""  # the domain of hosts whose birth and configuration give none
    dns: str = "none"  # none | serve | update
    dns_listen: str = "127.0.0.1:8553"  # for dns=serve
    dns_server: str = ""  # for dns=update: the primary accepting RFC 2136 updates
    tsig_key_file: Path | None = attrs.field(default=None,
                                             converter=attrs.converters.optional(Path))
    dns_refresh: float = attrs.field(default=300.0, validator=_positive("dns refresh"))
    mode: str = "enforce"  # enforce | report
    # Seconds between divergence checks of the directory replicas (the --ldap URLs, when
    # there are two or more); 0: never.
    replica_check: float = attrs.field(default=300.0, validator=_not_negative("replica check"))
    scan_interval: float = attrs.field(default=600.0, validator=_positive("scan interval"))
    # vCenter pushes changes of the owned hosts (WaitForUpdatesEx); off: only the scan finds drift
    vcenter_watch: bool = True
    max_pending: int = attrs.field(default=2000, validator=_positive("max pending"))
    # Hosts that may wait in quarantine at once: past it a new quarantined birth gets 503, so a
    # flood of births (a leaked enrollment key) can't fill the directory with claims.
    max_quarantined: int = attrs.field(default=1000, validator=_positive("max quarantined"))
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
    host_events: int = attrs.field(default=50, validator=_positive("host events"))
    # Boot (docs/boot.md): a TFTP root kept in step with the directory, image files served
    # under /boot/images/, the CA fingerprint and agent module URL put on boot lines.
    tftp_root: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    image_root: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    boot_ca_fingerprint: str = ""
    boot_module: str = ""  # URL of stateless.tgz; default: beside the image's files
    # Seconds this server's lease runs (renewed every third of it); a server that cannot renew
    # in time stops applying, and after expiry a server of the same vCenter takes its hosts.
    lease: float = attrs.field(default=30.0, validator=_positive("lease"))
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
        _check_listen(self.listen)
        if listen_description(self.listen).startswith("unix:") and not self.public_url:
            raise ValidationError(f"listen {self.listen!r}: a unix socket has no URL hosts can "
                                  "reach; give the advertised one with --public-url")
        if self.dns not in ("none", "serve", "update"):
            raise ValidationError(f"dns {self.dns!r}: expected none, serve or update")
        if self.dns == "serve":
            _endpoint(self.dns_listen, "dns listen")
        if self.dns == "update":
            _endpoint(self.dns_server, "dns server")
            if self.tsig_key_file is None:
                raise ValidationError("dns update needs a TSIG key file (--tsig-key-file); "
                                      "unsigned updates are refused by any sane primary")
        if not isinstance(self.vcenter_watch, bool):
            raise ValidationError(f"vcenter watch {self.vcenter_watch!r}: expected on or off")
        if self.mode not in ("enforce", "report"):
            raise ValidationError(f"mode {self.mode!r}: expected enforce or report")
        for url in self.ldap_urls:
            if urlsplit(url).scheme not in ("ldap", "ldaps", "ldapi"):
                raise ValidationError(f"ldap url {url!r}: expected ldap://HOST[:PORT]")
        if self.ldap_urls and (not self.bind_dn or self.password_file is None):
            raise ValidationError("an external directory needs --bind-dn and --password-file")
        if self.boot_ca_fingerprint and not _SHA256.fullmatch(self.boot_ca_fingerprint.lower()):
            raise ValidationError(f"boot ca fingerprint {self.boot_ca_fingerprint!r}: expected "
                                  "64 hex digits (SHA-256 of the CA certificate's DER)")
        if self.image_root is not None and not self.image_root.is_dir():
            raise ValidationError(f"image root {self.image_root}: not a directory")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValidationError("HTTPS needs both --tls-cert and --tls-key")
        if self.client_ca is not None and self.tls_cert is None:
            raise ValidationError("--client-ca asks for client certificates, which need HTTPS "
                                  "(--tls-cert and --tls-key)")
        if self.tls_cert is not None and self.listen.partition(":")[0] in ENDPOINT_TYPES:
            raise ValidationError(f"--tls-cert serves HTTPS on --listen ADDRESS:PORT, not on the "
                                  f"endpoint {self.listen!r} (an ssl: endpoint carries its own "
                                  "certificate and key; --client-ca needs ADDRESS:PORT)")
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
    def listen_description(self) -> str:
        return listen_description(self.listen)

    @property
    def listen_address(self) -> tuple[str, int]:
        """ADDRESS and PORT of a `--listen ADDRESS:PORT` (what --tls-cert serves HTTPS on)."""
        return _endpoint(self.listen, "listen")

    @property
    def dns_listen_endpoint(self) -> tuple[str, int]:
        return _endpoint(self.dns_listen, "dns listen")

    @property
    def tls(self) -> bool:
        """The API answers HTTPS: an `ssl:` endpoint, or --tls-cert/--tls-key."""
        return self.tls_cert is not None or self.listen_description.startswith("ssl:")

    def api_url(self, host: str, port: int) -> str:
        """The URL advertised in SRV targets and referrals: --public-url, or the address the
        API port is bound to."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


_FIELDS = {f.name: f for f in attrs.fields(DaemonConfig)}
ENV_PREFIX = "STATELESS_"


SWITCH = {"on": True, "true": True, "yes": True, "1": True,
          "off": False, "false": False, "no": False, "0": False}


def _coerce(name: str, value: Any) -> Any:
    if name == "vcenter_watch" and isinstance(value, str):
        if value.strip().lower() not in SWITCH:
            raise ValidationError(f"{name} {value!r}: expected on or off")
        return SWITCH[value.strip().lower()]
    if name == "ldap_urls" and isinstance(value, str):
        return tuple(u.strip() for u in value.split(",") if u.strip())
    if name in ("max_pending", "max_quarantined", "vcenter_concurrency", "threads",
                "host_events"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} {value!r}: expected an integer") from None
    if name in ("dns_refresh", "scan_interval", "replica_check", "switch_interval", "retry_cap",
                "lease"):
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
    connection = attrs.asdict(resolve_connection(options, env, values), recurse=False)
    connection.pop("write_server", None)  # the CLI's policy edits only: a daemon writes locally
    values.update(connection)
    if "state_dir" not in values:
        values["state_dir"] = Path(env.get("STATELESS_STATE_DIR", "/var/lib/stateless"))
    try:
        return DaemonConfig(**values)
    except TypeError as exc:
        raise ValidationError(f"configuration: {exc}") from None

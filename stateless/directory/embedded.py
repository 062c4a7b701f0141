"""A private slapd for development, tests and `make run`.

It builds its own cn=config (back_mdb + syncprov with entryCSN/entryUUID indexes and server ID
1, so RFC 4533 consumers and further providers can join later), listens on 127.0.0.1 only, and
keeps its state in one directory: `config/`, `data/`, `admin.password` (0600), `url`, `pid`.

Given a server ID and peers it is one provider of an N-way multi-provider mesh; given the role
`consumer` and a provider it is a read-only replica that chains writes to that provider (the
configuration comes from `stateless.directory.topology`).  The nodes of one topology share one
admin password (`admin_password_file`, taken from the first node), which their agreements bind
with.  Only a provider without peers, or with server ID 1, loads the base entries; the others
receive them through replication.  The topology is fixed when `data_dir` is created; later
changes go through cn=config.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.resources
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import ldap3

from stateless.directory import schemadef, topology
from stateless.directory.connection import DEFAULT_BASE, read_secret, split_urls
from stateless.errors import DirectoryError

SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
SYSTEM_SCHEMAS = ("core", "cosine", "inetorgperson")


@contextlib.contextmanager
def schema_file(name: str = "stateless.ldif") -> Iterator[Path]:
    """A schema file as a real path: from $STATELESS_SCHEMA_DIR, else the package's own copy."""
    env = os.environ.get("STATELESS_SCHEMA_DIR")
    if env:
        yield Path(env) / name
        return
    with importlib.resources.as_file(importlib.resources.files(__package__) / "schema" / name) as path:
        yield path


def ssha(password: str) -> str:
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


@attrs.define
class EmbeddedDirectory:
    """One slapd instance rooted at `data_dir`."""

    data_dir: Path = attrs.field(converter=Path)
    port: int | None = None
    server_id: int = 1
    peers: tuple[str, ...] = attrs.field(default=(), converter=split_urls)
    role: topology.Role = "provider"
    provider: str | None = None
    admin_password_file: Path | None = None
    replication: topology.Credentials | None = None  # default: the admin DN and password
    tls: topology.Tls | None = None
    writers: tuple[str, ...] = ()  # accounts besides the admin that may write
    slapd: str = "/usr/sbin/slapd"
    slapadd: str = "/usr/sbin/slapadd"
    module_path: str = "/usr/lib/ldap"
    _process: subprocess.Popen[bytes] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.role not in topology.ROLES:
            raise DirectoryError(f"role {self.role!r}: must be provider or consumer")
        if self.role == "consumer" and (self.peers or not self.provider):
            raise DirectoryError("a consumer replicates from its provider: give `provider`, "
                                 "not `peers`")
        if self.role == "provider" and self.provider:
            raise DirectoryError("a provider has peers, not a provider: give `peers`, or make "
                                 "this node a consumer")

    @property
    def upstream(self) -> tuple[str, ...]:
        """The nodes this one replicates from: its peers, or its provider(s)."""
        if self.role == "consumer":
            return (self.provider,) if self.provider else ()
        return self.peers

    @property
    def loads_base(self) -> bool:
        """Whether a fresh instance adds the base entries itself (once per topology)."""
        return self.role == "provider" and (not self.peers or self.server_id == 1)

    # --- state files -----------------------------------------------------------------------

    @property
    def password_file(self) -> Path:
        return self.data_dir / "admin.password"

    @property
    def url(self) -> str:
        return (self.data_dir / "url").read_text().strip()

    @property
    def bind_dn(self) -> str:
        return ROOT_DN

    @property
    def base(self) -> str:
        return DEFAULT_BASE

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "pid").read_text())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and _pid_alive(pid)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Start (creating on first use) and return a message saying what happened.

        An instance already running in `data_dir` is left alone; a stopped one is restarted
        with its data.
        """
        if self.running():
            return f"already running at {self.url} (pid {self.pid()})"
        fresh = not (self.data_dir / "config").exists()
        if fresh:
            self._create()
        port = self.port or self._previous_port() or _free_port()
        url = f"ldap://127.0.0.1:{port}"
        self._launch(port)
        (self.data_dir / "url").write_text(url + "\n")
        if fresh:
            if self.loads_base:
                self._load_base()
                return f"created and started at {url}"
            return f"created and started at {url}; replicating from {', '.join(self.upstream)}"
        return f"restarted at {url} with existing data"

    def _previous_port(self) -> int | None:
        try:
            port = int(self.url.rstrip("/").rsplit(":", 1)[1])
        except (OSError, ValueError, IndexError):
            return None
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as slapd does
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return None
        return port

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the instance; True if one was running."""
        pid = self.pid()
        if pid is None or not _pid_alive(pid):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if self._process is not None and self._process.pid == pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=0.05)
            else:
                time.sleep(0.05)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline += timeout
        self._process = None
        (self.data_dir / "pid").unlink(missing_ok=True)
        return True

    # --- internals -------------------------------------------------------------------------

    def _create(self) -> None:
        with schema_file() as schema:
            if not schema.exists():
                raise DirectoryError(f"schema file {schema} not found: set STATELESS_SCHEMA_DIR to "
                                     "a directory holding stateless.ldif, or reinstall stateless")
            self._create_with(schema)

    def _create_with(self, schema: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.admin_password_file is not None:
            password = read_secret(self.admin_password_file, "admin password file")
        else:
            password = secrets.token_urlsafe(24)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)  # no newline: `ldapmodify -y FILE` uses every byte
        (self.data_dir / "data").mkdir(exist_ok=True)
        (self.data_dir / "config").mkdir()
        ldif = self.data_dir / "config.ldif"
        fd = os.open(ldif, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # agreement credentials
        with os.fdopen(fd, "w") as f:
            f.write(self.config_ldif(ssha(password), schema, password))
        result = subprocess.run([self.slapadd, "-n0", "-F", str(self.data_dir / "config"), "-l",
                                 str(ldif)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DirectoryError(f"slapadd of {ldif} failed: {result.stderr.strip()[-500:]}")

    def config_ldif(self, password_hash: str, schema: Path, password: str | None = None) -> str:
        """This node's cn=config; `password` (clear) is what its agreements bind with."""
        return topology.config_ldif(self.node(password_hash, schema, password))

    def node(self, password_hash: str = "", schema: Path | None = None,
             password: str | None = None) -> topology.Node:
        """This node's parameters (see `stateless.directory.topology.Node`)."""
        replication = self.replication
        if self.upstream and replication is None:
            if password is None:
                raise DirectoryError(f"{self.data_dir}: a replicated node needs the password "
                                     "its agreements bind with")
            replication = topology.Credentials(ROOT_DN, password)
        return topology.Node(
            suffix=SUFFIX, root_dn=ROOT_DN, root_password_hash=password_hash,
            db_directory=str(self.data_dir / "data"), pid_file=str(self.data_dir / "slapd.pid"),
            schemas=() if schema is None else (
                *(f"file:///etc/ldap/schema/{name}.ldif" for name in SYSTEM_SCHEMAS),
                f"file://{schema.resolve()}"),
            server_id=self.server_id, role=self.role, peers=self.upstream,
            replication=replication if self.upstream else None, tls=self.tls,
            writers=self.writers, module_path=self.module_path)

    def replicate_from(self, urls: Sequence[str] | None = None) -> None:
        """Run only the agreements with `urls` (None: all of them again), through cn=config.

        A running node keeps its data; agreements that are dropped stop at once and resume from
        their cookie when put back, which is how tests partition a mesh and heal it.
        """
        password = read_secret(self.password_file, "directory password file")
        values = topology.agreement_values(self.node(password=password), urls)
        conn = ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE), ROOT_DN, password,
                                auto_bind=True)
        try:
            changes = {"olcSyncrepl": [(ldap3.MODIFY_REPLACE, values)]}
            if not conn.modify("olcDatabase={1}mdb,cn=config", changes):
                raise DirectoryError(f"{self.url}: cn=config refused the agreements: "
                                     f"{conn.result.get('message') or conn.result['description']}")
        finally:
            conn.unbind()

    def _launch(self, port: int) -> None:
        log = open(self.data_dir / "slapd.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._process = subprocess.Popen(
                [self.slapd, "-F", str(self.data_dir / "config"), "-h",
                 f"ldap://127.0.0.1:{port}/", "-d", "0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        (self.data_dir / "pid").write_text(f"{self._process.pid}\n")
        deadline = time.monotonic() + 20
        while True:
            if self._process.poll() is not None:
                raise DirectoryError(f"slapd exited with {self._process.returncode} at start; run "
                                     f"`slapd -F {self.data_dir / 'config'} -d 1` to see why")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise DirectoryError(f"slapd did not listen on 127.0.0.1:{port} in 20 s") from None
                time.sleep(0.02)

    def _load_base(self) -> None:
        # Imported here: the adapter imports this module's constants.
        from stateless.directory.client import Directory

        password = read_secret(self.password_file, "directory password file")
        directory = Directory([self.url], ROOT_DN, password, base=DEFAULT_BASE)
        try:
            directory.add_entry(SUFFIX, {"objectClass": ["top", "dcObject", "organization"],
                                         "dc": ["example"], "o": ["example"]})
            directory.init()
        finally:
            directory.close()


__all__ = ["DEFAULT_BASE", "ROOT_DN", "SUFFIX", "EmbeddedDirectory", "schema_file",
           "schemadef"]

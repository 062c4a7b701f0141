"""A private slapd for development, tests and `make run`.

It builds its own cn=config (back_mdb + syncprov with entryCSN/entryUUID indexes and server ID
1, so RFC 4533 consumers and further providers can join later), listens on 127.0.0.1 only, and
keeps its state in one directory: `config/`, `data/`, `admin.password` (0600), `url`, `pid`.
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
from collections.abc import Iterator
from pathlib import Path

import attrs

from stateless.directory import schemadef
from stateless.directory.connection import DEFAULT_BASE, read_secret
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
    slapd: str = "/usr/sbin/slapd"
    slapadd: str = "/usr/sbin/slapadd"
    module_path: str = "/usr/lib/ldap"
    _process: subprocess.Popen[bytes] | None = attrs.field(default=None, init=False)

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
            self._load_base()
            return f"created and started at {url}"
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
        password = secrets.token_urlsafe(24)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)  # no newline: `ldapmodify -y FILE` uses every byte
        (self.data_dir / "data").mkdir(exist_ok=True)
        (self.data_dir / "config").mkdir()
        ldif = self.data_dir / "config.ldif"
        ldif.write_text(self.config_ldif(ssha(password), schema))
        result = subprocess.run([self.slapadd, "-n0", "-F", str(self.data_dir / "config"), "-l",
                                 str(ldif)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DirectoryError(f"slapadd of {ldif} failed: {result.stderr.strip()[-500:]}")

    def config_ldif(self, password_hash: str, schema: Path) -> str:
        includes = "".join(f"include: file:///etc/ldap/schema/{name}.ldif\n\n"
                           for name in SYSTEM_SCHEMAS)
        data = self.data_dir / "data"
        return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcServerID: 1
olcPidFile: {self.data_dir / "slapd.pid"}

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {self.module_path}
olcModuleLoad: back_mdb
olcModuleLoad: syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}include: file://{schema.resolve()}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: unlimited

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcRootDN: {ROOT_DN}

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ROOT_DN}
olcRootPW: {password_hash}
olcDbDirectory: {data}
olcDbMaxSize: 1073741824
olcDbIndex: objectClass eq
olcDbIndex: entryCSN eq
olcDbIndex: entryUUID eq
olcDbIndex: statelessUuid eq
olcDbIndex: statelessLinkPolicy eq
olcDbIndex: statelessPolicyName eq
olcLimits: dn.exact="{ROOT_DN}" size=unlimited time=unlimited
olcAccess: to * by anonymous auth by * none

dn: olcOverlay={{0}}syncprov,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {{0}}syncprov
olcSpCheckpoint: 100 10
"""

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

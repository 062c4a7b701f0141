"""Fixtures for the real slapd: one private instance per session, one empty subtree per test;
and a replicated topology (`slapd_mesh`: three providers in a full mesh and a consumer that
chains writes to the first) for federation tests."""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import ldap3
import pytest

from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE, ROOT_DN, EmbeddedDirectory
from tests.ports import free_port


@attrs.frozen
class Slapd:
    url: str
    bind_dn: str
    password_file: Path
    base: str
    data_dir: Path

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    if shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists():
        pytest.fail("slapd is not installed: run `make apt` (Debian package slapd)")
    data = tmp_path_factory.mktemp("slapd")
    instance = EmbeddedDirectory(data, port=free_port())
    instance.start()
    try:
        yield Slapd(instance.url, instance.bind_dn, instance.password_file, DEFAULT_BASE, data)
    finally:
        instance.stop()


_bases = itertools.count(1)


@pytest.fixture
def base(slapd: Slapd) -> str:
    """A distinct, not yet created base per test, so tests never see each other's entries."""
    return f"ou=t{next(_bases)},dc=example,dc=com"


@pytest.fixture
def directory(slapd: Slapd, base: str) -> Iterator[Directory]:
    d = Directory([slapd.url], slapd.bind_dn, slapd.password, base=base)
    d.init()
    try:
        yield d
    finally:
        d.close()


# --- a replicated topology ----------------------------------------------------------------------

REPLICATION_WAIT = 30.0  # seconds a condition on replication may take before a test fails


@attrs.frozen
class Mesh:
    """Providers 1..3 (server IDs 1..3, each replicating from the other two) and a consumer of
    provider 1 that chains writes to it.  All share one admin password."""

    providers: tuple[EmbeddedDirectory, ...]
    consumer: EmbeddedDirectory
    password: str
    bind_dn: str = ROOT_DN

    @property
    def urls(self) -> tuple[str, ...]:
        """Every replica: the providers in server-ID order, then the consumer."""
        return (*(p.url for p in self.providers), self.consumer.url)

    def connect(self, url: str, bind_dn: str | None = None, password: str | None = None) -> ldap3.Connection:
        server = ldap3.Server(url, get_info=ldap3.NONE, connect_timeout=5)
        return ldap3.Connection(server, bind_dn or self.bind_dn, password or self.password,
                                auto_bind=True, raise_exceptions=False)

    def partition(self, *sides: set[int]) -> None:
        """Stop every agreement between providers (1-based) on different sides."""
        side_of = {i: n for n, side in enumerate(sides) for i in side}
        _each(lambda i, provider: provider.replicate_from(
            [p.url for j, p in enumerate(self.providers, 1)
             if j != i and side_of.get(j) == side_of.get(i)]), self.providers)

    def heal(self) -> None:
        _each(lambda _i, provider: provider.replicate_from(None), self.providers)

    def read(self, url: str, dn: str, attribute: str = "description") -> list[str] | None:
        """`attribute`'s values of `dn` on one replica; None when the entry is not there."""
        conn = self.connect(url)
        try:
            if not conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[attribute]):
                return None
            return sorted(str(v) for v in conn.entries[0].entry_attributes_as_dict.get(attribute, []))
        finally:
            conn.unbind()

    def wait_everywhere(self, what: str, condition: Callable[[str], bool],
                        urls: tuple[str, ...] | None = None) -> None:
        """Wait until `condition(url)` holds on every replica (or those given)."""
        deadline = time.monotonic() + REPLICATION_WAIT
        pending = list(urls or self.urls)
        while pending:
            pending = [url for url in pending if not condition(url)]
            if pending and time.monotonic() > deadline:
                pytest.fail(f"{what}: not on {', '.join(pending)} after {REPLICATION_WAIT:.0f} s")
            if pending:
                time.sleep(0.02)


def _each(action: Callable[[int, EmbeddedDirectory], object],
          nodes: Sequence[EmbeddedDirectory]) -> None:
    """Run `action(1-based index, node)` on every node at once: slapd takes about a second to
    stop a running agreement or a process, and these add up."""
    with ThreadPoolExecutor(max_workers=len(nodes) or 1) as pool:
        for future in [pool.submit(action, i, node) for i, node in enumerate(nodes, 1)]:
            future.result()


def stop_all(nodes: Sequence[EmbeddedDirectory]) -> None:
    _each(lambda _i, node: node.stop(), nodes)


@pytest.fixture(scope="session")
def slapd_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mesh")
    ports = [free_port() for _ in range(4)]
    urls = [f"ldap://127.0.0.1:{port}" for port in ports[:3]]
    first = root / "p1" / "admin.password"
    providers = tuple(
        EmbeddedDirectory(root / f"p{i}", port=ports[i - 1], server_id=i,
                          peers=tuple(u for j, u in enumerate(urls, 1) if j != i),
                          admin_password_file=None if i == 1 else first)
        for i in (1, 2, 3))
    consumer = EmbeddedDirectory(root / "c4", port=ports[3], server_id=4, role="consumer",
                                 provider=urls[0], admin_password_file=first)
    started: list[EmbeddedDirectory] = []
    try:
        for node in (*providers, consumer):
            node.start()
            started.append(node)
        mesh = Mesh(providers, consumer, first.read_text())
        mesh.wait_everywhere("the base entries", lambda url: mesh.read(url, DEFAULT_BASE) is not None)
        yield mesh
    finally:
        stop_all(started)

"""Two slapd providers of the test's own, replicating both ways (server IDs 1 and 2): for
federation tests that stop a provider, partition the pair or hang a consumer below it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from stateless.directory.client import Directory
from stateless.directory.embedded import EmbeddedDirectory
from tests.integration.fixtures_slapd import Slapd, stop_all
from tests.ports import free_port

PAIR_BASE = "ou=federation,dc=example,dc=com"


@attrs.frozen
class Pair:
    local: EmbeddedDirectory  # server ID 1, loads the base entries
    remote: EmbeddedDirectory  # server ID 2

    @property
    def password(self) -> str:
        return self.local.password_file.read_text().strip()

    def slapd(self, node: EmbeddedDirectory, url: str | None = None) -> Slapd:
        """What the daemon fixtures take; `url` may list several, comma-separated."""
        return Slapd(url or node.url, node.bind_dn, self.local.password_file, PAIR_BASE,
                     node.data_dir)

    def directory(self, node: EmbeddedDirectory) -> Directory:
        return Directory([node.url], node.bind_dn, self.password, base=PAIR_BASE)

    def partition(self) -> None:
        """Stop both agreements (through cn=config): each side keeps its writes to itself."""
        for node in (self.local, self.remote):
            node.replicate_from([])

    def heal(self) -> None:
        for node in (self.local, self.remote):
            node.replicate_from(None)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    ports = [free_port(), free_port()]
    urls = [f"ldap://127.0.0.1:{p}" for p in ports]
    first = tmp_path / "p1" / "admin.password"
    nodes = [EmbeddedDirectory(tmp_path / f"p{i}", port=ports[i - 1], server_id=i,
                               peers=(urls[2 - i],), admin_password_file=None if i == 1 else first)
             for i in (1, 2)]
    started: list[EmbeddedDirectory] = []
    try:
        for node in nodes:
            node.start()
            started.append(node)
        yield Pair(*nodes)
    finally:
        stop_all(started)

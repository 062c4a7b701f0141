"""Fixtures for the real slapd: one private instance per session, one empty subtree per test."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE, EmbeddedDirectory
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

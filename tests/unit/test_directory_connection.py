"""One resolver for the directory connection, shared by `stateless` and statelessd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stateless.daemon.config import load_config
from stateless.directory.connection import (
    DEFAULT_BASE,
    ConnectionSettings,
    read_secret,
    resolve_connection,
)
from stateless.errors import ValidationError

ENV = {"STATELESS_LDAP": "ldap://env:389", "STATELESS_BIND_DN": "cn=env",
       "STATELESS_PASSWORD_FILE": "/env/pw", "STATELESS_BASE": "ou=env"}
FILE = {"ldap_urls": ("ldap://file:389",), "bind_dn": "cn=file", "password_file": "/file/pw",
        "base": "ou=file"}


@pytest.mark.parametrize(("options", "env", "fallback", "expected"), [
    ({}, {}, {}, ConnectionSettings((), "", None, DEFAULT_BASE)),
    ({}, {}, FILE, ConnectionSettings(("ldap://file:389",), "cn=file", Path("/file/pw"), "ou=file")),
    ({}, ENV, FILE, ConnectionSettings(("ldap://env:389",), "cn=env", Path("/env/pw"), "ou=env")),
    ({"ldap_urls": ["ldap://a:1,ldap://b:2", " ldap://c:3 "], "bind_dn": "cn=opt"}, ENV, FILE,
     ConnectionSettings(("ldap://a:1", "ldap://b:2", "ldap://c:3"), "cn=opt", Path("/env/pw"), "ou=env")),
    # Empty values give way, as an unset option does.
    ({"ldap_urls": None, "base": ""}, {"STATELESS_BIND_DN": ""}, FILE,
     ConnectionSettings(("ldap://file:389",), "cn=file", Path("/file/pw"), "ou=file")),
], ids=["defaults", "file", "environment-over-file", "options-over-environment", "empty-gives-way"])
def test_each_setting_from_the_first_source_that_has_it(
        options: dict[str, Any], env: dict[str, str], fallback: dict[str, Any],
        expected: ConnectionSettings) -> None:
    assert resolve_connection(options, env, fallback) == expected


@pytest.mark.parametrize(("options", "env"), [
    ({}, ENV),
    ({"ldap_urls": "ldap://x:1,ldap://y:2", "password_file": "/opt/pw"}, ENV),
    ({"base": "ou=opt"}, {**ENV, "STATELESS_LDAP": "ldap://one:1, ldap://two:2"}),
])
def test_the_daemon_resolves_like_the_command(tmp_path: Path, options: dict[str, str],
                                              env: dict[str, str]) -> None:
    config = load_config(None, env, {"state_dir": str(tmp_path), **options})
    settings = resolve_connection(options, env)
    assert (config.ldap_urls, config.bind_dn, config.password_file, config.base) == (
        settings.ldap_urls, settings.bind_dn, settings.password_file, settings.base)


def test_daemon_environment_over_its_file(tmp_path: Path) -> None:
    file = tmp_path / "statelessd.toml"
    file.write_text('ldap-urls = ["ldap://file:389"]\nbind-dn = "cn=file"\npassword-file = "/f"\n'
                    'base = "ou=file"\n')
    config = load_config(file, {"STATELESS_BASE": "ou=env"}, {"state_dir": str(tmp_path)})
    assert config.ldap_urls == ("ldap://file:389",) and config.base == "ou=env"


def test_daemon_reads_only_the_environment_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATELESS_STATE_DIR", "/from/process")
    monkeypatch.setenv("STATELESS_LDAP", "ldap://from-process:389")
    config = load_config(None, {}, {})
    assert config.state_dir == Path("/var/lib/stateless") and config.embedded
    given = load_config(None, {"STATELESS_STATE_DIR": "/given"}, {})
    assert given.state_dir == Path("/given")


@pytest.mark.parametrize(("content", "secret"), [
    ("s3cret", "s3cret"),
    ("s3cret\n", "s3cret"),
    ("s3cret\r\n", "s3cret"),
    ("ends in spaces  \n", "ends in spaces  "),
    ("  starts with spaces", "  starts with spaces"),
])
def test_read_secret_keeps_everything_but_line_endings(tmp_path: Path, content: str,
                                                       secret: str) -> None:
    path = tmp_path / "pw"
    path.write_bytes(content.encode())
    assert read_secret(path, "password file") == secret


def test_read_secret_says_which_file_and_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"^host password file .*/missing: No such file or "
                       r"directory; give a readable file that holds the secret \(mode 0600\)$"):
        read_secret(tmp_path / "missing", "host password file")


def test_settings_read_the_password_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("pw \n")
    assert ConnectionSettings(password_file=path).password() == "pw "
    assert ConnectionSettings().password() is None


def test_the_policy_write_server_resolves_like_the_rest() -> None:
    env = {"STATELESS_LDAP": "ldap://local:389", "STATELESS_WRITE_SERVER": "ldap://env-w:389"}
    settings = resolve_connection({}, env)
    assert settings.write_urls == ("ldap://env-w:389",) and settings.ldap_urls == ("ldap://local:389",)
    settings = resolve_connection({"write_server": "ldap://opt-w:389,ldap://opt-w2:389"}, env)
    assert settings.write_urls == ("ldap://opt-w:389", "ldap://opt-w2:389")
    assert resolve_connection({}, {"STATELESS_LDAP": "ldap://local:389"}).write_urls == \
        ("ldap://local:389",)

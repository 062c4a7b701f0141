"""statelessd's configuration: file, environment and options merged into one validated value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stateless.daemon.config import DaemonConfig, load_config
from stateless.errors import ValidationError
from stateless.tap import Options


def test_options_win_over_environment_over_file(tmp_path: Path) -> None:
    file = tmp_path / "statelessd.toml"
    file.write_text('name = "from-file"\nsite = "paris"\nvcenter-concurrency = 4\n'
                    'switch-interval = 0.01\n')
    env = {"STATELESS_NAME": "from-env", "STATELESS_VCENTER_CONCURRENCY": "6",
           "STATELESS_STATE_DIR": str(tmp_path), "OTHER": "x"}
    config = load_config(file, env, {"name": "from-option"})
    assert config.name == "from-option" and config.site == "paris"
    assert config.vcenter_concurrency == 6 and config.switch_interval == 0.01
    assert config.state_dir == tmp_path


def test_defaults(tmp_path: Path) -> None:
    config = DaemonConfig(tmp_path)
    assert config.embedded and config.mode == "enforce" and config.switch_interval == 0.05
    assert config.api_url("127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert config.replica_check == 300.0
    assert load_config(None, {"STATELESS_REPLICA_CHECK": "0"},
                       {"state_dir": str(tmp_path)}).replica_check == 0.0
    assert config.listen_description == "tcp:8480:interface=127.0.0.1"
    assert config.host_events == 50
    assert config.lease == 30.0


@pytest.mark.parametrize(("listen", "description"), [
    ("127.0.0.1:0", "tcp:0:interface=127.0.0.1"),
    ("[::1]:8480", "tcp6:8480:interface=\\:\\:1"),
    ("tcp:8080:interface=127.0.0.1", "tcp:8080:interface=127.0.0.1"),
])
def test_listen_takes_the_shorthand_or_an_endpoint_string(tmp_path: Path, listen: str,
                                                          description: str) -> None:
    assert DaemonConfig(tmp_path, listen=listen).listen_description == description


def test_a_unix_socket_needs_a_public_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--public-url"):
        DaemonConfig(tmp_path, listen=f"unix:{tmp_path}/api.sock")
    config = DaemonConfig(tmp_path, listen=f"unix:{tmp_path}/api.sock",
                          public_url="https://sd1.example.net")
    assert config.api_url("", 0) == "https://sd1.example.net"


@pytest.mark.parametrize("listen", ["localhost:8480", "tcp:port", "ssl:8443:privateKey=/nonexistent"])
def test_bad_listen_values_are_refused_with_the_value(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ValidationError, match="listen"):
        DaemonConfig(tmp_path, listen=listen)



def test_the_lease_and_a_write_server_in_the_environment(tmp_path: Path) -> None:
    """STATELESS_LEASE sets the lease; STATELESS_WRITE_SERVER is the CLI's and ignored here."""
    config = load_config(None, {"STATELESS_LEASE": "4.5", "STATELESS_WRITE_SERVER": "ldap://w"},
                         {"state_dir": str(tmp_path)})
    assert config.lease == 4.5


@pytest.mark.parametrize(("options", "message"), [
    ({"switch_interval": "0"}, "switch interval"),
    ({"switch_interval": "soon"}, "switch_interval 'soon'"),
    ({"threads": "many"}, "threads 'many'"),
    ({"host_events": "many"}, "host_events 'many'"),
    ({"host_events": "0"}, "host events"),
    ({"mode": "fix"}, "mode 'fix'"),
    ({"replica_check": "-1"}, "replica check -1"),
    ({"replica_check": "often"}, "replica_check 'often'"),
    ({"vcenter_watch": "maybe"}, "vcenter_watch 'maybe'"),
    ({"dns": "update", "dns_server": "127.0.0.1:53"}, "TSIG"),
    ({"ldap_urls": "ldap://127.0.0.1:389"}, "bind-dn"),
    ({"lease": "0"}, "lease 0.0: must be a positive number"),
    ({"lease": "long"}, "lease 'long': expected a number of seconds"),
])
def test_bad_values_name_the_setting(tmp_path: Path, options: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_config(None, {}, {"state_dir": str(tmp_path), **options})


def test_unknown_file_setting(tmp_path: Path) -> None:
    file = tmp_path / "statelessd.toml"
    file.write_text("vcenter-concurency = 4\n")
    with pytest.raises(ValidationError, match="unknown setting 'vcenter-concurency'"):
        load_config(file, {}, {})


def test_command_line(tmp_path: Path) -> None:
    options = Options()
    options.parseOptions(["--state-dir", str(tmp_path), "--switch-interval", "0.02",
                          "--ldap", "ldap://127.0.0.1:389,ldap://127.0.0.2:389",
                          "--bind-dn", "cn=admin", "--password-file", str(tmp_path / "pw")])
    assert options.config.switch_interval == 0.02
    assert options.config.ldap_urls == ("ldap://127.0.0.1:389", "ldap://127.0.0.2:389")


def test_the_script_hands_log_options_to_twist_and_defaults_to_text() -> None:
    from twisted.python.usage import UsageError

    from stateless.tap import twist_arguments

    assert twist_arguments(["--name", "sd1"]) == (["--log-format=text"], ["--name", "sd1"])
    assert twist_arguments(["--log-format=json", "--name", "sd1", "--log-level", "warn"]) == (
        ["--log-format=json", "--log-level=warn"], ["--name", "sd1"])
    for bad in (["--log-level", "loud"], ["--log-format"]):
        with pytest.raises(UsageError, match="expected"):
            twist_arguments(bad)


@pytest.mark.parametrize(("source", "expected"), [
    ({}, True), ({"options": {"vcenter_watch": "off"}}, False),
    ({"env": {"STATELESS_VCENTER_WATCH": "no"}}, False), ({"file": "vcenter-watch = false\n"}, False),
    ({"file": "vcenter-watch = false\n", "options": {"vcenter_watch": "on"}}, True),
])
def test_the_vcenter_watch_switch(tmp_path: Path, source: dict[str, Any], expected: bool) -> None:
    file = None
    if "file" in source:
        file = tmp_path / "statelessd.toml"
        file.write_text(source["file"])
    config = load_config(file, source.get("env", {}),
                         {"state_dir": str(tmp_path), **source.get("options", {})})
    assert config.vcenter_watch is expected


def test_a_file_value_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "statelessd.toml"
    file.write_text("vcenter-watch = 3\n")
    with pytest.raises(ValidationError, match="vcenter watch 3"):
        load_config(file, {}, {"state_dir": str(tmp_path)})

"""statelessd's configuration: file, environment and options merged into one validated value."""

from __future__ import annotations

from pathlib import Path

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
    assert config.api_url(8123) == "http://127.0.0.1:8123"
    assert config.lease == 30.0


def test_the_lease_and_a_write_server_in_the_environment(tmp_path: Path) -> None:
    """STATELESS_LEASE sets the lease; STATELESS_WRITE_SERVER is the CLI's and ignored here."""
    config = load_config(None, {"STATELESS_LEASE": "4.5", "STATELESS_WRITE_SERVER": "ldap://w"},
                         {"state_dir": str(tmp_path)})
    assert config.lease == 4.5


@pytest.mark.parametrize(("options", "message"), [
    ({"switch_interval": "0"}, "switch interval"),
    ({"switch_interval": "soon"}, "switch_interval 'soon'"),
    ({"threads": "many"}, "threads 'many'"),
    ({"mode": "fix"}, "mode 'fix'"),
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

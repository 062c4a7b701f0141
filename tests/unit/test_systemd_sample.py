"""The sample configuration in contrib/systemd names every option, and loads as it is."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import attrs

from stateless.daemon.config import DaemonConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "contrib" / "systemd" / "statelessd.toml"
SETTING = re.compile(r"^#? ?([a-z][a-z0-9-]*) = (.+)$")


def settings() -> dict[str, str]:
    """Every `key = value` line of the sample, commented out or not: key -> the line."""
    found = {}
    for line in SAMPLE.read_text().splitlines():
        match = SETTING.match(line)
        if match:
            found[match.group(1).replace("-", "_")] = line.lstrip("# ")
    return found


def test_the_sample_names_every_option_and_nothing_else() -> None:
    options = {f.name for f in attrs.fields(DaemonConfig)}
    assert set(settings()) == options


def test_every_example_value_is_valid_toml_of_the_right_kind() -> None:
    for line in settings().values():
        (value,) = tomllib.loads(line).values()
        assert isinstance(value, str | int | float | list), line


def test_the_sample_loads_as_it_is(tmp_path: Path) -> None:
    config = load_config(SAMPLE, {}, {"state_dir": str(tmp_path)})
    assert config.ldap_urls and config.password_file is not None
    assert config.name == "statelessd-1"


def test_the_unit_reads_the_sample_from_etc() -> None:
    unit = (ROOT / "contrib" / "systemd" / "statelessd.service").read_text()
    assert "--config /etc/stateless/statelessd.toml" in unit
    assert re.search(r"^User=stateless$", unit, re.M)
    assert re.search(r"^StateDirectory=stateless$", unit, re.M)
    assert re.search(r"^Restart=on-failure$", unit, re.M)

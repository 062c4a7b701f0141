"""--retry-cap: from the command line, the environment or the TOML file; validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateless.daemon.config import DaemonConfig, load_config
from stateless.errors import ValidationError
from stateless.tap import Options


def test_retry_cap_defaults_to_five_minutes(tmp_path: Path) -> None:
    assert DaemonConfig(tmp_path).retry_cap == 300.0


def test_retry_cap_from_every_source(tmp_path: Path) -> None:
    file = tmp_path / "statelessd.toml"
    file.write_text("retry-cap = 60\n")
    assert load_config(file, {}, {"state_dir": str(tmp_path)}).retry_cap == 60.0
    env = {"STATELESS_RETRY_CAP": "30", "STATELESS_STATE_DIR": str(tmp_path)}
    assert load_config(file, env, {}).retry_cap == 30.0
    options = Options()
    options.parseOptions(["--state-dir", str(tmp_path), "--retry-cap", "2.5"])
    assert options.config.retry_cap == 2.5


@pytest.mark.parametrize(("value", "message"), [("0", "retry cap"), ("-1", "retry cap"),
                                                ("soon", "retry_cap 'soon'")])
def test_bad_retry_cap(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_config(None, {}, {"state_dir": str(tmp_path), "retry_cap": value})

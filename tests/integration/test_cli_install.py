"""The installed commands: the Twisted plugin, both console scripts' --version, no checkout paths.

These run the venv's own scripts (an editable install); `make wheel-check` runs the same
commands from a wheel installed into a venv of its own.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = importlib.metadata.version("stateless")


def run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A console script of the venv, from a directory outside the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_twist_finds_the_plugin(tmp_path: Path) -> None:
    done = run(tmp_path, "twist", "statelessd", "--help")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "statelessd [options]" in done.stdout and "--password-file" in done.stdout


@pytest.mark.parametrize("script", ["statelessd", "stateless"])
def test_version(tmp_path: Path, script: str) -> None:
    done = run(tmp_path, script, "--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{script} {VERSION}\n", "")


def test_plugin_is_the_checkouts_not_a_link_in_twisted() -> None:
    import twisted.plugins

    installed = Path(twisted.plugins.__file__).parent
    assert not (installed / "statelessd_plugin.py").exists()
    from twisted.plugins import statelessd_plugin

    assert Path(statelessd_plugin.__file__) == ROOT / "twisted" / "plugins" / "statelessd_plugin.py"


def test_the_package_needs_no_checkout() -> None:
    """Nothing under stateless/ reaches into contrib/ or above the package."""
    offenders = [f"{path.relative_to(ROOT)}: {line.strip()}"
                 for path in sorted((ROOT / "stateless").rglob("*.py"))
                 for line in path.read_text().splitlines()
                 if "contrib/" in line or ".parents[" in line]
    assert offenders == []

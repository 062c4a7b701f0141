"""Build the agent as one zipapp file that the host's Python runs: `python agent.pyz ...`.

The archive holds the agent package, a bare `stateless/__init__.py` (the real one may grow
imports the host lacks) and, by default, a copy of the installed dnspython, which is pure
Python, so the host needs nothing but its own interpreter.
"""

from __future__ import annotations

import shutil
import tempfile
import zipapp
from pathlib import Path

import dns

import stateless.agent

INTERPRETER = "/usr/bin/env python3"
_MAIN = "import sys\n\nfrom stateless.agent.cli import main\n\nsys.exit(main())\n"
_PACKAGE_INIT = '"""stateless: only the boot agent is in this archive."""\n'


def _copy_package(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))


def build_zipapp(path: str | Path, *, vendor_dnspython: bool = True,
                 interpreter: str | None = INTERPRETER) -> None:
    """Write the agent zipapp to `path` (compressed; executable when `interpreter` is set)."""
    with tempfile.TemporaryDirectory(prefix="stateless-agent-") as tmp:
        root = Path(tmp)
        (root / "stateless").mkdir()
        (root / "stateless" / "__init__.py").write_text(_PACKAGE_INIT)
        _copy_package(Path(stateless.agent.__file__).parent, root / "stateless" / "agent")
        if vendor_dnspython:
            _copy_package(Path(dns.__file__).parent, root / "dns")
        (root / "__main__.py").write_text(_MAIN)
        zipapp.create_archive(root, target=str(path), interpreter=interpreter, compressed=True)

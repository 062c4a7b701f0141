"""Build the agent as one zipapp file that the host's Python runs: `python agent.pyz ...`,
and the ESXi boot module that carries it (`stateless.tgz`).

The archive holds the agent package, a bare `stateless/__init__.py` (the real one may grow
imports the host lacks) and, by default, a copy of the installed dnspython, which is pure
Python, so the host needs nothing but its own interpreter.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import tempfile
import zipapp
from pathlib import Path

import dns

import stateless.agent

INTERPRETER = "/usr/bin/env python3"
_MAIN = "import sys\n\nfrom stateless.agent.cli import main\n\nsys.exit(main())\n"
_PACKAGE_INIT = '"""stateless: only the boot agent is in this archive."""\n'


def _copy_package(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.sh"))


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


# The boot module: files ESXi unpacks over its root file system at boot (docs/boot.md).
HOOK = Path(__file__).with_name("stateless-boot.sh")
MODULE_AGENT = "opt/stateless/agent.pyz"
MODULE_HOOK = "opt/stateless/stateless-boot.sh"
MODULE_STARTER = "etc/rc.local.d/999.stateless.sh"
_STARTER = ("#!/bin/sh\n# stateless: run the boot agent once the host is up (in the background,\n"
            "# so the end of boot is not held up); see /opt/stateless/stateless-boot.sh.\n"
            f"/bin/sh /{MODULE_HOOK} >/dev/null 2>&1 &\n")


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0  # the same bytes for the same agent
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def build_module(path: str | Path, *, vendor_dnspython: bool = True) -> list[str]:
    """Write the ESXi boot module (gzipped tar): the agent zipapp, its start-up hook and the
    rc.local.d entry that starts it. Returns the member names."""
    with tempfile.TemporaryDirectory(prefix="stateless-module-") as tmp:
        agent = Path(tmp) / "agent.pyz"
        build_zipapp(agent, vendor_dnspython=vendor_dnspython, interpreter=None)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for directory in ("etc", "etc/rc.local.d", "opt", "opt/stateless"):
                info = tarfile.TarInfo(directory)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                tar.addfile(info)
            _add(tar, MODULE_AGENT, agent.read_bytes(), 0o644)
            _add(tar, MODULE_HOOK, HOOK.read_bytes(), 0o755)
            _add(tar, MODULE_STARTER, _STARTER.encode(), 0o755)
        with open(path, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
            gz.write(raw.getvalue())
    return [MODULE_AGENT, MODULE_HOOK, MODULE_STARTER]

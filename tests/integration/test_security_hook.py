"""The ESXi boot hook passes the boot line to the agent but never logs the enrollment key."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "k1:Zm9vYmFyLXNlY3JldC1rZXktbWF0ZXJpYWwtMzJieXRlcyE"


def test_the_hook_hands_the_key_to_the_agent_and_logs_it_as_secret(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log, seen = tmp_path / "syslog", tmp_path / "agent-args"
    cmdline = f"BOOTIF=01-00-50-56-aa-bb-cc stateless.site=siteA stateless.enroll-key={SECRET}"
    (bin_dir / "bootOption").write_text(f"#!/bin/sh\necho '{cmdline}'\n")
    (bin_dir / "logger").write_text(f'#!/bin/sh\nshift 2\necho "$*" >> {log}\n')
    for tool in ("bootOption", "logger"):
        (bin_dir / tool).chmod(0o755)
    agent = tmp_path / "agent.py"  # stands in for agent.pyz: records its arguments, says nothing
    agent.write_text(f"import sys\nopen({str(seen)!r}, 'w').write(repr(sys.argv[1:]))\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STATELESS_AGENT": str(agent),
           "STATELESS_PYTHON": "python3", "STATELESS_IDENTITY": str(tmp_path / "identity.json")}
    subprocess.run(["sh", str(ROOT / "contrib" / "esxi" / "stateless-boot.sh")], env=env,
                   check=True, timeout=60, capture_output=True)
    assert SECRET in seen.read_text()  # the agent got the boot line as it is
    text = log.read_text()
    assert "stateless.enroll-key=<secret>" in text and SECRET.split(":")[1] not in text

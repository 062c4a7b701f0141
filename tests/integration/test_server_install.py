"""Installing on a server: the systemd unit as systemd reads it, the 389-DS schema in a real
389 Directory Server.

389-DS is created with its own installer (`dscreate from-file`), which starts and stops the
instance through `systemctl`.  Where systemd is not PID 1 (containers, CI), a `systemctl` of
the test's own, first on the installer's PATH, runs `ns-slapd` directly instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from stateless.directory import Directory
from stateless.directory.schemadef import base_entries
from stateless.model.inventory import ContainerKind
from tests.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "statelessd.service"
SCHEMA_389 = ROOT / "stateless" / "directory" / "schema" / "389ds" / "99stateless.ldif"
SUFFIX = "dc=example,dc=com"
BASE = f"ou=stateless,{SUFFIX}"

SYSTEMCTL = r"""#!/bin/bash
# dscreate/dsctl call `systemctl VERB dirsrv@NAME`; run ns-slapd directly instead.
verb=$1; unit=${!#}; inst=${unit#dirsrv@}; inst=${inst%.service}
pid=/run/dirsrv/slapd-$inst.pid
running() { [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; }
case $verb in
  start)
    running && exit 0
    /usr/sbin/ns-slapd -D "/etc/dirsrv/slapd-$inst" -i "$pid" || exit 1
    for _ in $(seq 300); do  # until the LDAPI socket accepts connections
      python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' \
        "/run/slapd-$inst.socket" 2>/dev/null && exit 0
      sleep 0.1
    done
    exit 1 ;;
  stop)
    running || exit 0
    p=$(cat "$pid"); kill "$p"
    while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
    rm -f "/run/slapd-$inst.socket" ;;
  restart) "$0" stop "$unit" && "$0" start "$unit" ;;
  is-active) running ;;
  *) exit 0 ;;
esac
"""


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # verify checks that ExecStart exists: point it at this environment's statelessd.
    statelessd = Path(sys.executable).parent / "statelessd"
    text = UNIT.read_text().replace("/opt/stateless/bin/statelessd", str(statelessd))
    assert str(statelessd) in text
    unit = tmp_path / "statelessd.service"
    unit.write_text(text)
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "statelessd.service" not in done.stdout + done.stderr, done.stdout + done.stderr


@attrs.frozen
class Instance:
    """A running 389-DS instance and how to drive it."""

    name: str
    url: str
    password: str
    env: dict[str, str]

    @property
    def schema_dir(self) -> Path:
        return Path(f"/etc/dirsrv/slapd-{self.name}/schema")

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=300,
                              check=False)


@pytest.fixture
def ds389(tmp_path: Path) -> Iterator[Instance]:
    """A new 389-DS instance on a free loopback port, removed afterwards."""
    if shutil.which("dscreate") is None or not Path("/usr/sbin/ns-slapd").exists():
        pytest.skip("389 Directory Server is not installed (Debian package 389-ds-base)")
    if os.geteuid() != 0:
        pytest.skip("dscreate creates instances under /etc/dirsrv and /var/lib/dirsrv: needs root")
    env = dict(os.environ)
    if not Path("/run/systemd/system").is_dir():  # systemd is not the init system here
        shim = tmp_path / "bin"
        shim.mkdir()
        (shim / "systemctl").write_text(SYSTEMCTL)
        (shim / "systemctl").chmod(0o755)
        env["PATH"] = f"{shim}:{env['PATH']}"
        Path("/run/dirsrv").mkdir(exist_ok=True)
        shutil.chown("/run/dirsrv", "dirsrv", "dirsrv")
    port = free_port()
    ds = Instance("st" + secrets.token_hex(4), f"ldap://127.0.0.1:{port}",
                  secrets.token_urlsafe(12), env)
    inf = tmp_path / "instance.inf"
    inf.write_text(f"[general]\nfull_machine_name = localhost\nselinux = False\nstart = True\n"
                   f"[slapd]\ninstance_name = {ds.name}\nport = {port}\n"
                   f"secure_port = {free_port()}\nroot_password = {ds.password}\n"
                   f"self_sign_cert = False\n"
                   f"[backend-userroot]\nsuffix = {SUFFIX}\ncreate_suffix_entry = True\n")
    try:
        created = ds.run("dscreate", "from-file", str(inf))
        if created.returncode != 0:
            said = (created.stdout + created.stderr).replace("\n", " | ")
            pytest.skip(f"389-DS cannot start here: dscreate: {said}")
        wait_for_port(port)
        yield ds
    finally:
        ds.run("dsctl", ds.name, "stop")
        ds.run("dsctl", ds.name, "remove", "--do-it")


def test_the_389ds_schema_loads_into_389_directory_server(ds389: Instance) -> None:
    installed = ds389.schema_dir / SCHEMA_389.name
    shutil.copyfile(SCHEMA_389, installed)  # the documented install: copy, then restart
    shutil.chown(installed, "dirsrv", "dirsrv")
    restarted = ds389.run("dsctl", ds389.name, "restart")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    directory = Directory((ds389.url,), "cn=Directory Manager", ds389.password, BASE)
    try:
        created = directory.init()
        assert created == [dn for dn, _ in base_entries(BASE)]
        directory.add_container("/DC1", ContainerKind.DATACENTER)
        directory.add_container("/DC1/ClusterA", ContainerKind.CLUSTER)
        snapshot = directory.snapshot()
        assert {"/DC1", "/DC1/ClusterA"} <= set(snapshot.containers)
        assert not snapshot.problems
    finally:
        directory.close()

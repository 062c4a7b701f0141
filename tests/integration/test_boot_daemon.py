"""Boot files from a real statelessd: /boot endpoints, the TFTP root, dnsmasq, rollbacks."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stateless.boot.bootcfg import parse_bootcfg
from stateless.cli import main
from tests.integration.fixtures_daemon import (
    Daemon,
    Estate,
    cluster_of,
    identity,
    one_host,
    placed_hosts,
    vlan,
    wait_for,
    wait_states,
)
from tests.integration.fixtures_vcsim import Vcsim

H1 = "4c4c4544-0042-3510-8052-b4c04f4b4e31"  # the estate's host in /DC1/Prod/ClusterA
H2 = "4c4c4544-0042-3510-8052-b4c04f4b4e32"  # and in /DC1/Lab/ClusterB
DATA = Path(__file__).resolve().parents[1] / "unit" / "data"
TFTP_ADDRESS = "127.0.0.69"  # dnsmasq's TFTP port is 69 whatever we say: an address of its own


def cli(estate: Estate, *argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    conn = ["--ldap", estate.slapd.url, "--bind-dn", estate.slapd.bind_dn, "--password-file",
            str(estate.slapd.password_file), "--base", estate.base]
    assert main([*conn, *argv], out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


def boot_daemon(estate: Estate, daemons: Callable[..., Daemon], tmp_path: Path,
                *extra: str) -> Daemon:
    return daemons(tmp_path / "d", estate.slapd, estate.base, estate.key_file, name="sd1",
                   site="siteA", extra=("--tftp-root", str(tmp_path / "tftp"), *extra))


def text(d: Daemon, path: str) -> str:
    status, _, body = d.request("GET", path)
    assert status == 200, (path, status, body[:300])
    return body.decode()


def bootcfg_prefix(d: Daemon, uuid: str) -> str:
    status, _, body = d.request("GET", f"/boot/{uuid}/boot.cfg")
    return parse_bootcfg(body.decode()).prefix or "" if status == 200 else f"{status}"


def test_boot_endpoints_serve_per_host_files(estate: Estate, tmp_path: Path,
                                             daemons: Callable[..., Daemon]) -> None:
    d = boot_daemon(estate, daemons, tmp_path)
    bootstrap = text(d, "/boot/ipxe")
    assert bootstrap.startswith("#!ipxe\n")
    assert f"chain {d.url}/boot/ipxe?uuid=${{uuid}}&mac=${{net0/mac}}" in bootstrap

    # H1's rule needs a Dell in 10.1/16: the identity iPXE sends carries no address, so its
    # location (ClusterA, from its entry) gives no image until one is assigned.
    script = text(d, f"/boot/ipxe?uuid={H1}&mac=52:54:00:12:34:56")
    assert "no image for this host" in script and script.rstrip().endswith("reboot")
    cli(estate, "image", "import", "esx8", "--boot-cfg", str(DATA / "esxi8-boot.cfg"), "--url",
        "http://10.1.0.80/images/esx8")
    cli(estate, "image", "assign", "/DC1", "esx8")
    wait_for(lambda: "image esx8" in text(d, f"/boot/ipxe?uuid={H1}"), what="esx8 for H1")
    script = text(d, f"/boot/ipxe?uuid={H1}&mac=52%3A54%3A00%3A12%3A34%3A56&manufacturer=QEMU")
    assert f"servers {d.url}" in script
    assert f"kernel http://10.1.0.80/images/esx8/mboot.c32 -c {d.url}/boot/{H1}/boot.cfg" in script

    cfg = parse_bootcfg(text(d, f"/boot/{H1}/boot.cfg"))
    assert cfg.prefix == "http://10.1.0.80/images/esx8/"
    assert cfg.kernel == "b.b00" and cfg.modules[-1] == "stateless.tgz"
    assert cfg.modules[0] == "jumpstrt.gz" and len(cfg.modules) == 45
    assert cfg.kernelopt.split() == ["runweasel", "cdromBoot", "stateless.site=siteA",
                                     "stateless.image=esx8", f"stateless.server={d.url}",
                                     "stateless.domain=stateless.test"]

    for path, code in [("/boot/ipxe?uuid=not-a-uuid", 400), ("/boot/ipxe?mac=zz:00", 400),
                       ("/boot/ipxe?uuid=" + H1 + "&mac=00:11:22:33:44:zz", 400),
                       ("/boot/xyz/boot.cfg", 400), ("/boot/00:11:22:33:44:55/boot.cfg", 404),
                       ("/boot/%ff%fe/boot.cfg", 400), ("/boot/nothing", 404)]:
        status, headers, body = d.request("GET", path)
        assert status == code, (path, status, body)
        assert {k.lower(): v for k, v in headers.items()}["content-type"] == "application/json"
        assert "error" in json.loads(body) and b"Traceback" not in body
    status, _, body = d.request("POST", f"/boot/{H1}/boot.cfg", b"")
    assert status == 405 and "error" in json.loads(body)
    assert d.get("/healthz")["ok"]  # the API still answers beside /boot


def test_rollback_changes_the_next_boot_cfg_of_exactly_its_hosts(
        estate: Estate, tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    for name in ("esx7", "esx8"):
        cli(estate, "image", "import", name, "--boot-cfg", str(DATA / f"esxi{name[3]}-boot.cfg"),
            "--url", f"http://images/{name}")
    cli(estate, "image", "assign", "/DC1", "esx8")
    cli(estate, "image", "assign", "/DC1/Prod/ClusterA", "esx7")
    cli(estate, "image", "assign", "/DC1/Prod/ClusterA", "esx8")
    d = boot_daemon(estate, daemons, tmp_path)
    tftp = tmp_path / "tftp"
    h2_file = tftp / "stateless" / H2 / "boot.cfg"
    # The first files are written before this server's own entry is in the directory: wait
    # until they name it, so what follows sees only the rollback's writes.
    wait_for(lambda: h2_file.exists() and f"stateless.server={d.url}" in h2_file.read_text(),
             what="TFTP root written with this server on the boot lines")
    assert bootcfg_prefix(d, H1) == bootcfg_prefix(d, H2) == "http://images/esx8/"
    h2_before = h2_file.stat()

    cli(estate, "image", "rollback", "/DC1/Prod/ClusterA")
    wait_for(lambda: bootcfg_prefix(d, H1) == "http://images/esx7/", what="H1 rolled back")
    assert bootcfg_prefix(d, H2) == "http://images/esx8/"  # another cluster: untouched
    wait_for(lambda: "images/esx7" in (tftp / "stateless" / H1 / "boot.cfg").read_text(),
             what="H1's TFTP boot.cfg rolled back")
    assert "images/esx7" in (tftp / "pxelinux.cfg" / H1).read_text()
    after = h2_file.stat()  # not rewritten: only files that change are written
    assert (after.st_ino, after.st_mtime_ns) == (h2_before.st_ino, h2_before.st_mtime_ns)


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(root: Path) -> subprocess.Popen[bytes]:
        exe = shutil.which("dnsmasq")
        if exe is None:
            pytest.skip("dnsmasq is not installed (Debian dnsmasq-base; `make deps`)")
        log = tmp_path / "dnsmasq.log"
        proc = subprocess.Popen([exe, "--keep-in-foreground", "--port=0", "--enable-tftp",
                                 f"--tftp-root={root}", f"--listen-address={TFTP_ADDRESS}",
                                 "--bind-interfaces", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
                                 "--log-facility=-", "--user=root" if os.geteuid() == 0 else
                                 "--log-queries"],
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        started.append(proc)
        wait_for(lambda: "TFTP root is" in log.read_text() or proc.poll() is not None,
                 what="dnsmasq ready")
        assert proc.poll() is None, log.read_text()
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def test_dnsmasq_serves_the_generated_configs(estate: Estate, tmp_path: Path,
                                              daemons: Callable[..., Daemon],
                                              dnsmasq: Callable[[Path], object]) -> None:
    cli(estate, "image", "import", "esx8", "--boot-cfg", str(DATA / "esxi8-boot.cfg"), "--url",
        "http://images/esx8")
    cli(estate, "image", "assign", "/DC1/Prod", "esx8")
    estate.ldapmodify(f"dn: statelessUuid={H1},ou=hosts,{estate.base}\nchangetype: modify\n"
                      "add: statelessMac\nstatelessMac: 52:54:00:12:34:56\n")
    boot_daemon(estate, daemons, tmp_path)
    root = tmp_path / "tftp"
    wanted = root / "pxelinux.cfg" / "01-52-54-00-12-34-56"
    wait_for(wanted.exists, what="the per-MAC pxelinux config")
    dnsmasq(root)
    got = subprocess.run(["curl", "-sS", "--max-time", "10",
                          f"tftp://{TFTP_ADDRESS}/pxelinux.cfg/01-52-54-00-12-34-56"],
                         capture_output=True, timeout=30)
    assert got.returncode == 0, got.stderr.decode()
    assert got.stdout == wanted.read_bytes()
    assert f"SAY stateless: host {H1} image esx8" in got.stdout.decode()
    assert f"APPEND -c stateless/{H1}/boot.cfg" in got.stdout.decode()
    cfg = subprocess.run(["curl", "-sS", "--max-time", "10",
                          f"tftp://{TFTP_ADDRESS}/stateless/{H1}/boot.cfg"],
                         capture_output=True, timeout=30)
    assert parse_bootcfg(cfg.stdout.decode()).prefix == "http://images/esx8/"


def test_the_boot_module_brings_a_host_up_from_its_rendered_boot_line(
        estate: Estate, tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    """The module's hook, given the kernelopt the daemon rendered, runs the module's agent,
    which is born and waits until the daemon has configured the host in the simulator."""
    cli(estate, "image", "import", "esx8", "--boot-cfg", str(DATA / "esxi8-boot.cfg"), "--url",
        "http://images/esx8")
    cli(estate, "image", "assign", "/", "esx8")
    module = tmp_path / "stateless.tgz"
    assert "boot module" in cli(estate, "agent", "bundle", "--module", "-o", str(module))
    root = tmp_path / "host-root"
    with tarfile.open(module) as tar:
        names = tar.getnames()
        tar.extractall(root, filter="data")
    assert {"opt/stateless/agent.pyz", "opt/stateless/stateless-boot.sh",
            "etc/rc.local.d/999.stateless.sh"} <= set(names)
    assert "/opt/stateless/stateless-boot.sh" in (root / "etc/rc.local.d/999.stateless.sh").read_text()

    d = boot_daemon(estate, daemons, tmp_path)
    ident = identity(7, "siteA")
    cfg = parse_bootcfg(text(d, f"/boot/{ident['uuid']}/boot.cfg"))
    assert cfg.modules[-1] == "stateless.tgz"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bootOption").write_text(f"#!/bin/sh\necho 'BOOTIF=01-{ident['macs'][0].replace(':', '-')} "
                                        f"{cfg.kernelopt}'\n")
    (bin_dir / "logger").write_text(f'#!/bin/sh\nshift 2\necho "$*" >> {tmp_path / "syslog"}\n')
    for tool in ("bootOption", "logger"):
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "identity.json").write_text(json.dumps(ident))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "STATELESS_AGENT": str(root / "opt/stateless/agent.pyz"),
           "STATELESS_PYTHON": sys.executable, "STATELESS_TIMEOUT": "90",
           "STATELESS_IDENTITY": str(tmp_path / "identity.json"),
           "STATELESS_STATE": str(tmp_path / "agent-state.json")}
    done = subprocess.run(["sh", str(root / "opt/stateless/stateless-boot.sh")], env=env,
                          timeout=120, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert d.host(ident["uuid"])["state"] == "compliant", (tmp_path / "syslog").read_text()


def test_a_rule_change_moves_one_host_and_flags_another_for_reboot(
        estate: Estate, sim: Vcsim, tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    cli(estate, "image", "import", "esx7", "--boot-cfg", str(DATA / "esxi7-boot.cfg"), "--url",
        "http://images/esx7")
    d = boot_daemon(estate, daemons, tmp_path)
    a, b = identity(1, "siteA"), identity(11, "siteB")
    for ident in (a, b):
        ident["image"] = "esxi-8.0u2"  # what the boot line named, as the agent reports it
        assert d.birth(ident)[0] == 202
    wait_states(d, [a["uuid"], b["uuid"]])
    si = sim.connect()
    assert (cluster_of(one_host(si, a)), cluster_of(one_host(si, b))) == ("ClusterA", "ClusterB")
    assert not d.host(a["uuid"])["reboot_required"] and not d.host(b["uuid"])["reboot_required"]

    estate.ldapmodify(f"dn: cn=prod-dell,ou=rules,{estate.base}\nchangetype: modify\n"
                      "replace: statelessLocation\nstatelessLocation: /DC1/Lab/ClusterB\n\n"
                      f"dn: cn=lab-any,ou=rules,{estate.base}\nchangetype: modify\n"
                      "replace: statelessImageName\nstatelessImageName: esx7\n")
    wait_for(lambda: d.host(b["uuid"])["reboot_required"], what="host b flagged reboot-required")
    def moved() -> list[tuple[Any, str]]:
        return placed_hosts(si, f"{a['hostname']}.example.com")

    wait_for(lambda: [cluster for _, cluster in moved()] == ["ClusterB"], timeout=60,
             what="host a moved to ClusterB in the simulator (only there)")
    wait_states(d, [a["uuid"]])
    assert vlan(moved()[0][0], "vMotion") == 21  # re-applied with ClusterB's policy
    doc = d.host(b["uuid"])
    assert (doc["boot_image"], doc["image"]) == ("esxi-8.0u2", "esx7")
    assert not d.host(a["uuid"])["reboot_required"]  # moved, same image
    assert d.host(a["uuid"])["location"] == "/DC1/Lab/ClusterB"
    assert d.metrics()["stateless_hosts_reboot_required"] == 1
    shown = json.loads(cli(estate, "host", "show", b["uuid"], "--json"))
    assert shown["reboot_required"] is True and shown["image"] == "esx7"
    assert "reboot-required" in cli(estate, "host", "list")


def test_the_contrib_dnsmasq_configuration_is_valid() -> None:
    exe = shutil.which("dnsmasq")
    if exe is None:
        pytest.skip("dnsmasq is not installed (Debian dnsmasq-base; `make deps`)")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([exe, "--test", f"--conf-file={root / 'contrib/dnsmasq/dnsmasq.conf'}"],
                          capture_output=True, timeout=30)
    assert done.returncode == 0 and b"syntax check OK" in done.stderr + done.stdout, done.stderr


def test_the_boot_line_carries_the_sites_newest_enrollment_key_and_the_ca(
        estate: Estate, tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    cli(estate, "image", "import", "esx8", "--boot-cfg", str(DATA / "esxi8-boot.cfg"), "--url",
        "http://images/esx8")
    cli(estate, "image", "assign", "/", "esx8")
    key = ["--secret-key-file", str(estate.key_file)]
    cli(estate, "enroll-key", "rotate", "siteA", *key)
    cli(estate, "enroll-key", "rotate", "siteA", *key)
    keys = json.loads(cli(estate, "enroll-key", "show", "siteA", "--reveal", "--json", *key))["keys"]
    ca = "ab" * 32
    d = boot_daemon(estate, daemons, tmp_path, "--boot-ca-fingerprint", ca.upper())
    words = parse_bootcfg(text(d, f"/boot/{H1}/boot.cfg")).kernelopt.split()
    assert keys[0]["boot_option"] in words and keys[1]["boot_option"] not in words  # the newest
    assert f"stateless.ca={ca}" in words
    # A host of site B (no keys there) gets no key at all.
    ident = identity(12, "siteB")
    estate.ldapmodify(f"dn: statelessUuid={ident['uuid']},ou=hosts,{estate.base}\n"
                      f"changetype: add\nobjectClass: statelessHost\nstatelessUuid: {ident['uuid']}\n"
                      f"statelessIpv4: {ident['ipv4']}\n")
    wait_for(lambda: d.request("GET", f"/boot/{ident['uuid']}/boot.cfg")[0] == 200
             and "stateless.site=siteB" in text(d, f"/boot/{ident['uuid']}/boot.cfg"),
             what="the site B host's boot.cfg")
    assert "stateless.enroll-key" not in text(d, f"/boot/{ident['uuid']}/boot.cfg")

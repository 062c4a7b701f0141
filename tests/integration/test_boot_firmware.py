"""Real network-boot firmware under QEMU (TCG, user-mode networking) against a real statelessd.

QEMU's user network gives the guest DHCP and TFTP and reaches the host's loopback as
10.0.2.2, so nothing leaves the machine. The e1000 option ROM is iPXE; pxelinux comes from
Debian's package and reads the configs the daemon wrote into its TFTP root.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.fixtures_daemon import Daemon, Estate, wait_for
from tests.integration.test_boot_daemon import (
    DATA,
    H1,
    boot_daemon,
    cli,
)

QEMU = "qemu-system-x86_64"
PXELINUX = Path("/usr/lib/PXELINUX/pxelinux.0")
LDLINUX = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
GUEST_MAC = "52:54:00:12:34:56"
UNKNOWN_UUID = "11111111-2222-3333-4444-555555555555"
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # ANSI CSI sequences (cursor moves, colours)
BOOT_TIMEOUT = 180.0  # a boot reaches its request in about 6 s here; emulated, it can take
# many times that when the machine is busy with other test runs


class Guest:
    def __init__(self, proc: subprocess.Popen[bytes], console: Path) -> None:
        self.proc = proc
        self.console = console

    def output(self) -> str:
        """The serial console's text without terminal control sequences: pxelinux moves the
        cursor (`ESC[25;17H`) in the middle of a line once the screen has scrolled."""
        return CONTROL.sub("", self.console.read_text(errors="replace"))


@pytest.fixture
def qemu(tmp_path: Path) -> Iterator[Callable[..., Guest]]:
    """start(netdev options, smbios uuid) -> Guest; stopped by PID at the end."""
    guests: list[Guest] = []

    def start(netdev: str, uuid: str) -> Guest:
        if shutil.which(QEMU) is None:
            pytest.skip(f"{QEMU} is not installed (Debian qemu-system-x86; `make deps`)")
        console = tmp_path / f"console-{len(guests)}.log"
        proc = subprocess.Popen([QEMU, "-accel", "tcg", "-m", "128", "-nographic", "-no-reboot",
                                 "-boot", "n", "-netdev", f"user,id=n0,{netdev}",
                                 "-device", f"e1000,netdev=n0,mac={GUEST_MAC}",
                                 "-smbios", f"type=1,uuid={uuid}"],
                                stdin=subprocess.DEVNULL, stdout=console.open("wb"),
                                stderr=subprocess.STDOUT)
        guest = Guest(proc, console)
        guests.append(guest)
        return guest

    yield start
    for guest in guests:
        if guest.proc.poll() is None:
            guest.proc.send_signal(signal.SIGTERM)
            try:
                guest.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                guest.proc.kill()
                guest.proc.wait(timeout=10)


def wait_guest(guest: Guest, seen: Callable[[], object], what: str) -> object:
    """Wait for `seen`; a QEMU that exits first is a skip (it cannot run here), not a failure."""
    def check() -> object:
        found = seen()
        if found:
            return found
        if guest.proc.poll() is not None:
            pytest.skip(f"QEMU cannot start here (exit {guest.proc.returncode}): "
                        f"{guest.output()[-500:]}")
        return None

    try:
        return wait_for(check, timeout=BOOT_TIMEOUT, interval=0.1, what=what)
    except AssertionError as exc:  # what the firmware got to is the diagnosis
        raise AssertionError(f"{exc}; the console ends with: {guest.output()[-1500:]!r}") from exc


def port_of(d: Daemon) -> int:
    return int(d.url.rsplit(":", 1)[1])


def test_ipxe_fetches_its_per_host_script(estate: Estate, tmp_path: Path,
                                          daemons: Callable[..., Daemon],
                                          qemu: Callable[..., Guest]) -> None:
    cli(estate, "image", "import", "esx8", "--boot-cfg", str(DATA / "esxi8-boot.cfg"), "--url",
        "http://10.1.0.80/images/esx8")
    cli(estate, "image", "assign", "/DC1/Prod/ClusterA", "esx8")
    d = boot_daemon(estate, daemons, tmp_path)
    guest = qemu(f"bootfile=http://10.0.2.2:{port_of(d)}/boot/ipxe", H1)
    line = re.compile(rf"boot: host {H1}: iPXE script for image esx8 \(from container "
                      r"/DC1/Prod/ClusterA\) at (\S+)")
    found = wait_guest(guest, lambda: line.search(d.log.read_text(errors="replace")),
                       "iPXE asking for its per-host script")
    uri = found.group(1)  # type: ignore[attr-defined]
    assert f"mac={GUEST_MAC.replace(':', '%3A')}" in uri  # what the firmware itself sent
    status, _, body = d.request("GET", uri)
    script = body.decode()
    assert status == 200 and script.startswith("#!ipxe")
    assert f"host {H1} image esx8 8.0.1-0.0.21495797" in script
    assert f"servers {d.url}" in script
    assert f"-c {d.url}/boot/{H1}/boot.cfg" in script


def test_pxelinux_loads_the_per_mac_config(estate: Estate, tmp_path: Path,
                                           daemons: Callable[..., Daemon],
                                           qemu: Callable[..., Guest]) -> None:
    if not (PXELINUX.exists() and LDLINUX.exists()):
        pytest.skip("pxelinux is not installed (Debian pxelinux and syslinux-common; `make deps`)")
    cli(estate, "image", "import", "esx8", "--boot-cfg", str(DATA / "esxi8-boot.cfg"), "--url",
        "http://10.1.0.80/images/esx8")
    cli(estate, "image", "assign", "/DC1", "esx8")
    estate.ldapmodify(f"dn: statelessUuid={H1},ou=hosts,{estate.base}\nchangetype: modify\n"
                      f"add: statelessMac\nstatelessMac: {GUEST_MAC}\n")
    boot_daemon(estate, daemons, tmp_path)
    root = tmp_path / "tftp"
    per_mac = root / "pxelinux.cfg" / ("01-" + GUEST_MAC.replace(":", "-"))
    wait_for(per_mac.exists, what="the per-MAC config in the TFTP root")
    shutil.copy(PXELINUX, root)
    shutil.copy(LDLINUX, root)
    # The firmware's UUID is unknown here, so pxelinux finds no file by UUID and takes the MAC's.
    guest = qemu(f"tftp={root},bootfile=pxelinux.0", UNKNOWN_UUID)
    wait_guest(guest, lambda: f"stateless: host {H1} image esx8" in guest.output(),
               "pxelinux showing the per-MAC config on the serial console")

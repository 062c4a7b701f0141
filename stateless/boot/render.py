"""Per-host boot files: iPXE scripts, ESXi boot.cfg, pxelinux configs (pure).

A host boots its image's own files plus one module, `stateless.tgz` (the agent and its
start-up hook, `stateless agent bundle --module`), with a boot line that tells the agent its
site, the configuration servers of that site (and of the site covering it), and what it needs
to authenticate (`stateless.enroll-key=`, `stateless.ca=`): the names
`stateless.agent.cli` reads.
"""

from __future__ import annotations

import attrs

from stateless.boot.bootcfg import BootCfg, relative
from stateless.boot.select import BootChoice
from stateless.model.identity import normalize_mac
from stateless.model.inventory import Image

AGENT_MODULE = "stateless.tgz"
LOADER = "mboot.c32"  # ESXi's BIOS loader, shipped with every image
NO_IMAGE_DELAY = 300  # seconds before a host with no image reboots and asks again
PXELINUX_MARK = "# written by statelessd from the directory: edits are overwritten"
# What iPXE sends about itself: the query of the per-host script's URL.
IPXE_QUERY = ("uuid=${uuid}&mac=${net0/mac}&manufacturer=${manufacturer:uristring}"
              "&product=${product:uristring}&serial=${serial:uristring}")


@attrs.frozen
class BootSettings:
    """What every boot line carries besides the host's own site and servers."""

    domain: str = ""
    enroll_key: str = ""  # the whole `stateless.enroll-key=...` word, or ""
    ca_fingerprint: str = ""
    agent_module: str = AGENT_MODULE  # relative to the image's files, or an absolute URL
    no_image_delay: int = NO_IMAGE_DELAY


def boot_line(choice: BootChoice, image: Image, settings: BootSettings) -> str:
    """`kernelopt`: the image's own options, then what the agent reads."""
    words = [image.options] if image.options else []
    words.append(f"stateless.site={choice.site}")
    words.append(f"stateless.image={image.name}")  # the agent reports it in its birth
    if choice.servers:
        words.append("stateless.server=" + ",".join(choice.servers))
    if settings.domain:
        words.append(f"stateless.domain={settings.domain}")
    if settings.enroll_key:
        words.append(settings.enroll_key)
    if settings.ca_fingerprint:
        words.append(f"stateless.ca={settings.ca_fingerprint}")
    return " ".join(words)


def _prefix(image: Image) -> str:
    return image.url.rstrip("/") + "/" if image.url else ""


def host_bootcfg(choice: BootChoice, settings: BootSettings) -> str:
    """The host's boot.cfg: its image's files under `prefix=`, plus the agent module."""
    image = choice.image
    assert image is not None, "no image: render no_image_ipxe instead"
    modules = (*tuple(relative(m) for m in image.modules), settings.agent_module)
    cfg = BootCfg(kernel=relative(image.kernel), modules=modules,
                  kernelopt=boot_line(choice, image, settings), bootstate=0,
                  title=f"Loading ESXi {image.version or image.name} (stateless image "
                        f"{image.name}, host {choice.uuid})",
                  timeout=5, prefix=_prefix(image), build=image.version or None, updated=0)
    return cfg.render()


def _say(text: str) -> str:
    return " ".join(text.split())  # one line, whatever the directory holds


def bootstrap_ipxe(base_url: str) -> str:
    """The script DHCP points iPXE at: ask again, with what the firmware knows about itself."""
    return f"#!ipxe\nchain {base_url}/boot/ipxe?{IPXE_QUERY}\n"


def host_ipxe(choice: BootChoice, base_url: str) -> str:
    """Load the image's mboot with the host's own boot.cfg from this server."""
    image = choice.image
    assert image is not None, "no image: render no_image_ipxe instead"
    lines = ["#!ipxe",
             f"echo stateless: host {choice.uuid} image {image.name} "
             f"{_say(image.version)} from {choice.image_from}",
             f"echo stateless: site {choice.site} servers {','.join(choice.servers) or '(none)'}",
             f"kernel {_prefix(image)}{LOADER} -c {base_url}/boot/{choice.uuid}/boot.cfg",
             "boot", ""]
    return "\n".join(lines)


def no_image_ipxe(choice: BootChoice, settings: BootSettings) -> str:
    """Auto Deploy's answer to a host it has nothing for: say so, wait, reboot, ask again."""
    return "\n".join(["#!ipxe",
                      f"echo stateless: no image for this host ({choice.uuid}): "
                      f"{_say(choice.reason)}",
                      f"echo stateless: rebooting in {settings.no_image_delay} seconds",
                      f"sleep {settings.no_image_delay}", "reboot", ""])


def pxelinux_names(uuid: str, macs: tuple[str, ...]) -> list[str]:
    """The files pxelinux asks for, under pxelinux.cfg/: by UUID, then `01-` and the MAC."""
    return [uuid] + ["01-" + normalize_mac(m).replace(":", "-") for m in macs]


def host_pxelinux(choice: BootChoice, bootcfg_path: str) -> str:
    """Chain the image's mboot.c32 with the host's boot.cfg (`bootcfg_path`, TFTP-relative)."""
    image = choice.image
    assert image is not None
    return "\n".join([
        PXELINUX_MARK,
        "SERIAL 0 115200",
        f"SAY stateless: host {choice.uuid} image {image.name} {_say(image.version)} "
        f"from {choice.image_from}",
        "DEFAULT esxi",
        "LABEL esxi",
        f"  KERNEL {_prefix(image)}{LOADER}",
        f"  APPEND -c {bootcfg_path}",
        "  IPAPPEND 2",  # BOOTIF=01-<mac>: the agent's boot NIC
        ""])


def no_image_pxelinux(reason: str, delay: int = NO_IMAGE_DELAY) -> str:
    """`pxelinux.cfg/default` when unknown hosts get no image: say so, reboot after `delay`."""
    return "\n".join([
        PXELINUX_MARK,
        "SERIAL 0 115200",
        f"SAY stateless: no image for this host: {_say(reason)}",
        "DEFAULT reboot",
        "PROMPT 0",
        f"TIMEOUT {delay * 10}",
        "LABEL reboot",
        "  COM32 reboot.c32",
        ""])


__all__ = [
    "AGENT_MODULE",
    "IPXE_QUERY",
    "LOADER",
    "NO_IMAGE_DELAY",
    "PXELINUX_MARK",
    "BootSettings",
    "boot_line",
    "bootstrap_ipxe",
    "host_bootcfg",
    "host_ipxe",
    "host_pxelinux",
    "no_image_ipxe",
    "no_image_pxelinux",
    "pxelinux_names",
]

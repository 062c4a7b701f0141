"""The agent's pure pieces: the birth document, Retry-After, backoff ceilings, boot options."""

from __future__ import annotations

import email.utils
import json
import random
from pathlib import Path
from typing import Any

import pytest

from stateless.agent import cli
from stateless.agent.birth import Agent, Fatal, Settings, birth_document, retry_after
from stateless.agent.identity import bootif_mac, parse_cmdline, parse_colon_fields, smbios_uuid
from stateless.model.birth import FIELDS

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"


def test_birth_document_keeps_known_nonempty_fields() -> None:
    doc = birth_document({"uuid": UUID, "serial": "", "macs": [], "vendor": "Dell", "extra": 1,
                          "image": None, "thumbprint": "AB:CD"})
    assert doc == {"uuid": UUID, "vendor": "Dell", "thumbprint": "AB:CD"}


def test_agent_fields_are_the_servers_fields() -> None:
    from stateless.agent.birth import FIELDS as AGENT_FIELDS

    assert set(AGENT_FIELDS) == set(FIELDS)


@pytest.mark.parametrize("identity", [{}, {"uuid": ""}, {"uuid": 5}])
def test_birth_document_needs_a_uuid(identity: dict[str, object]) -> None:
    with pytest.raises(Fatal, match="uuid"):
        birth_document(identity)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("7", 7.0), (" 120 ", 120.0), ("soon", None),
     (email.utils.formatdate(1_000_030, usegmt=True), 30.0),
     (email.utils.formatdate(999_000, usegmt=True), 0.0)],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry_after(header, now=1_000_000) == seconds


@pytest.mark.parametrize(("base", "cap", "ceilings"),
                         [(1.0, 60.0, [1, 2, 4, 8, 16, 32, 60, 60]),
                          (0.5, 3.0, [0.5, 1, 2, 3, 3, 3, 3, 3])])
def test_backoff_is_full_jitter_under_a_doubling_ceiling(base: float, cap: float,
                                                         ceilings: list[float]) -> None:
    agent = Agent({"uuid": UUID}, Settings(backoff_base=base, backoff_cap=cap),
                  rng=random.Random(3))
    replay = random.Random(3)
    for attempt, ceiling in enumerate(ceilings):
        delay = agent.backoff(attempt)
        assert 0 <= delay <= ceiling
        assert delay == replay.uniform(0, ceiling)


def test_cmdline_and_bootif() -> None:
    opts = parse_cmdline('BOOTIF=01-00-50-56-AA-BB-CC stateless.site=paris '
                         'stateless.server="http://10.0.0.5:8080" quiet')
    assert opts == {"BOOTIF": "01-00-50-56-AA-BB-CC", "stateless.site": "paris",
                    "stateless.server": "http://10.0.0.5:8080"}
    assert bootif_mac(opts["BOOTIF"]) == "00:50:56:aa:bb:cc"


@pytest.mark.parametrize("value", [None, "", "01-00-50", "zz"])
def test_bootif_rejects(value: str | None) -> None:
    assert bootif_mac(value) is None


ESXCLI_PLATFORM = """Platform Information
   UUID: 0x44 0x45 0x4c 0x4c 0x42 0x00 0x10 0x35 0x80 0x52 0xb4 0xc0 0x4f 0x4b 0x4e 0x31
   Product Name: PowerEdge R640
   Vendor Name: Dell Inc.
   Serial Number: CZ1234
   BIOS Asset Tag:
"""


def test_esxcli_platform_text() -> None:
    fields = parse_colon_fields(ESXCLI_PLATFORM)
    assert fields["Product Name"] == "PowerEdge R640" and fields["BIOS Asset Tag"] == ""
    assert smbios_uuid(fields["UUID"]) == "44454c4c-4200-1035-8052-b4c04f4b4e31"
    assert smbios_uuid(UUID.upper()) == UUID
    assert smbios_uuid("0x44 0x45") is None


def test_identity_from_esxi_commands() -> None:
    from stateless.agent.identity import from_esxi

    outputs = {
        "hardware": ESXCLI_PLATFORM,
        "nic": "Name    PCI Device    Driver  Link  MAC Address\n"
               "vmnic0  0000:01:00.0  ntg3    Up    00:50:56:AA:BB:CC\n"
               "vmnic1  0000:01:00.1  ntg3    Down  00:50:56:aa:bb:cd\n",
        "ipv4": "Name  IPv4 Address  IPv4 Netmask\nvmk0  10.0.0.21     255.255.255.0\n",
        "system": "   Domain Name: example.com\n   Fully Qualified Domain Name: esx01.example.com\n"
                  "   Host Name: esx01\n",
        "openssl": "SHA1 Fingerprint=" + ":".join(["ab"] * 20) + "\n",
    }

    def run(argv: list[str]) -> str:
        key = "ipv4" if "ipv4" in argv else "nic" if "nic" in argv else argv[1] if argv[0] == "esxcli" \
            else argv[0]
        return outputs[key]

    ident = from_esxi(run, cmdline="BOOTIF=01-00-50-56-aa-bb-cc")
    assert ident == {"uuid": "44454c4c-4200-1035-8052-b4c04f4b4e31", "serial": "CZ1234",
                     "vendor": "Dell Inc.", "model": "PowerEdge R640",
                     "macs": ["00:50:56:aa:bb:cc", "00:50:56:aa:bb:cd"], "ipv4": "10.0.0.21",
                     "hostname": "esx01", "domain": "example.com",
                     "thumbprint": ":".join(["AB"] * 20), "boot_mac": "00:50:56:aa:bb:cc"}


@pytest.mark.parametrize(("argv", "expected"), [
    ([], 2.0),
    (["--dns-timeout", "0.5"], 0.5),
    (["--cmdline", "stateless.dns-timeout=1.5"], 1.5),
    (["--cmdline", "stateless.dns-timeout=1.5", "--dns-timeout", "3"], 3.0),  # the option wins
])
def test_dns_timeout_from_option_or_boot_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              argv: list[str], expected: float) -> None:
    seen: list[Settings] = []
    monkeypatch.setattr(cli, "run", lambda identity, settings, **kw: seen.append(settings) or 0)
    ident = tmp_path / "id.json"
    ident.write_text(json.dumps({"uuid": UUID}))
    assert cli.main(["--identity", str(ident), "--server", "http://127.0.0.1:1", *argv]) == 0
    assert [s.dns_timeout for s in seen] == [expected]


@pytest.mark.parametrize("argv", [["--dns-timeout", "0"], ["--dns-timeout", "nan"],
                                  ["--cmdline", "stateless.dns-timeout=soon"],
                                  ["--cmdline", "stateless.dns-timeout=-1"]])
def test_bad_dns_timeout_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    argv: list[str]) -> None:
    ident = tmp_path / "id.json"
    ident.write_text(json.dumps({"uuid": UUID}))
    try:
        code = cli.main(["--identity", str(ident), "--server", "http://127.0.0.1:1", *argv])
    except SystemExit as exc:  # argparse exits itself
        code = int(exc.code or 0)
    assert code == 2
    assert "dns-timeout" in capsys.readouterr().err


def test_the_next_closest_sites_come_from_the_answers_and_the_state_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Own site, then the `sites` order an answer gave (kept across boots), then the domain."""
    from stateless.agent import birth as birth_module

    asked: list[tuple[str | None, list[str]]] = []

    def locate(_lookups: object, _domain: str, site: str | None, **kw: object) -> list[object]:
        others: Any = kw["others"]
        asked.append((site, list(others)))
        return []

    monkeypatch.setattr(birth_module, "locate", locate)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"site": "paris", "sites": ["paris", "lyon", "bad name!", 3]}))
    agent = Agent({"uuid": UUID}, Settings(domain="example.test", nameservers=("127.0.0.1:9",),
                                            state_file=str(state)), log=lambda _t: None)
    agent.targets()
    assert asked == [("paris", ["lyon"])]
    agent._learn({"site": "nice", "closest": False, "sites": ["nice", "paris", "lyon"]})
    agent.targets()
    assert asked[-1] == ("nice", ["paris", "lyon"])

"""boot.cfg: real ESXi 7/8 files read and rendered back, malformed files refused by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateless.boot.bootcfg import BootCfgError, parse_bootcfg

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name,build,count,nobootif", [
    ("esxi7-boot.cfg", "7.0.3-0.0.19193900", 40, 0),
    ("esxi8-boot.cfg", "8.0.1-0.0.21495797", 44, None),
])
def test_real_files_round_trip(name: str, build: str, count: int, nobootif: int | None) -> None:
    text = (DATA / name).read_text()
    cfg = parse_bootcfg(text, name)
    assert cfg.kernel == "/b.b00"
    assert cfg.build == build
    assert len(cfg.modules) == count
    assert cfg.modules[0] == "/jumpstrt.gz"
    assert cfg.bootstate == 0 and cfg.timeout == 5 and cfg.updated == 0
    assert cfg.prefix == ""
    assert cfg.nobootif == nobootif
    assert cfg.render() == text  # byte for byte: the key order of ESXi's own files
    assert parse_bootcfg(cfg.render()) == cfg


def test_unknown_keys_and_comments_kept_in_order() -> None:
    cfg = parse_bootcfg("# vendor\nkernel=b.b00\nmodules=a.gz\nruntimewd=FALSE\ncrypto=x\n")
    assert cfg.extra == (("runtimewd", "FALSE"), ("crypto", "x"))
    assert cfg.render().endswith("runtimewd=FALSE\ncrypto=x\n")


@pytest.mark.parametrize("text,line,reason", [
    ("kernel=b.b00\nmodules=a.gz\ntimeout=five\n", 3, "timeout='five': expected a whole number"),
    ("kernel=b.b00\nmodules=a.gz --- --- b.gz\n", 2, "module 2 is empty"),
    ("kernel=b.b00\nmodules=a.gz b.gz\n", 2, "has a space"),
    ("kernel=b.b00\njust words\nmodules=a.gz\n", 2, "expected key=value"),
    ("kernel=b.b00\nmodules=a.gz\nkernel=c.b00\n", 3, "kernel given again (first on line 1)"),
    ("modules=a.gz\n", 1, "no kernel= line"),
    ("kernel=b.b00\ntitle=x\n", 2, "no modules= line"),
    ("kernel=b.b00\n=x\nmodules=a\n", 2, "not a key name"),
])
def test_malformed_files_name_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(BootCfgError) as info:
        parse_bootcfg(text, "f.cfg")
    assert info.value.line == line
    assert reason in info.value.reason
    assert str(info.value).startswith(f"f.cfg: line {line}: ")

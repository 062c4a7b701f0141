"""The one decoder of files handed to the CLI: encodings and wrong shapes."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from stateless.errors import ValidationError
from stateless.inputs import decode, identity_from, read_identity, read_text

UUID = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
TEXT = 'é {"uuid": "x"}\n'


@pytest.mark.parametrize("data", [
    TEXT.encode("utf-8"),
    codecs.BOM_UTF8 + TEXT.encode("utf-8"),
    codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
    codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
], ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom"])
def test_every_accepted_encoding_decodes_to_the_same_text(data: bytes) -> None:
    assert decode(data, "f") == TEXT


def test_undecodable_bytes_are_one_line_naming_the_file() -> None:
    with pytest.raises(ValidationError, match=r"^f: not UTF-8 or UTF-16 text \(byte 1\)"):
        decode(b"a\xff\xfe", "f")


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"password file .*nope: No such file"):
        read_text(tmp_path / "nope", "password file")


@pytest.mark.parametrize("encoding,bom", [("utf-16-le", codecs.BOM_UTF16_LE),
                                          ("utf-8", codecs.BOM_UTF8), ("utf-8", b"")])
def test_identity_file_in_each_encoding(tmp_path: Path, encoding: str, bom: bytes) -> None:
    path = tmp_path / "id.json"
    path.write_bytes(bom + json.dumps({"uuid": UUID, "macs": ["00:50:56:AA:BB:CC"],
                                       "vendor": "Dell"}).encode(encoding))
    identity = read_identity(path)
    assert (identity.uuid, identity.macs, identity.vendor) == (UUID, ("00:50:56:aa:bb:cc",), "Dell")


@pytest.mark.parametrize("data,message", [
    ([], "expected a JSON object"),
    ({"vendor": "Dell"}, "field uuid is missing"),
    ({"uuid": UUID, "macs": "00:50:56:aa:bb:cc"}, "field macs must be a list of strings"),
    ({"uuid": UUID, "macs": [1]}, "field macs must be a list of strings"),
    ({"uuid": UUID, "oem_strings": "x"}, "field oem_strings must be a list of strings"),
    ({"uuid": UUID, "vendor": 3}, "field vendor must be a string"),
    ({"uuid": "nope"}, "field uuid: uuid 'nope': not a UUID"),
    ({"uuid": UUID, "macs": ["zz"]}, "field macs: mac 'zz'"),
    ({"uuid": UUID, "ipv4": "1.2.3"}, "field ipv4: "),
    ({"uuid": UUID, "colour": "red"}, "unknown field"),
])
def test_wrong_shapes_name_the_field(data: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        identity_from(data, "identity file x.json")
    assert info.value.message.startswith("identity file x.json: ")
    assert "\n" not in info.value.message


def test_not_json_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "id.json"
    path.write_bytes(codecs.BOM_UTF16_LE + "{nope".encode("utf-16-le"))
    with pytest.raises(ValidationError, match=r"identity file .*: not JSON"):
        read_identity(path)


def test_password_file_in_utf16_loses_bom_and_line_ending(tmp_path: Path) -> None:
    from stateless.directory.connection import read_secret

    path = tmp_path / "pw"
    path.write_bytes(codecs.BOM_UTF16_LE + "s3cret \r\n".encode("utf-16-le"))
    assert read_secret(path, "password file") == "s3cret "

"""The schema files are generated from one definition and stay consistent."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import re
from pathlib import Path

import pytest
from ldap3.protocol.rfc4512 import AttributeTypeInfo, ObjectClassInfo

from stateless.directory import schemadef

SCHEMA = Path(__file__).resolve().parents[2] / "schema"  # the generator and links for admins
# The files themselves: package data, what the embedded slapd loads and a wheel ships.
PACKAGED = importlib.resources.files("stateless.directory") / "schema"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("schema_generate", SCHEMA / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_ldif(text: str) -> list[list[tuple[str, str]]]:
    """Minimal RFC 2849 reader: unfold, skip comments, split records and attribute lines."""
    records: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    lines: list[str] = []
    for raw in text.splitlines():
        if raw.startswith(" ") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    for line in lines:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                records.append(current)
                current = []
            continue
        name, sep, value = line.partition(":")
        assert sep, f"not an LDIF line: {line!r}"
        assert not value.startswith(":"), "base64 values are not expected here"
        current.append((name, value.strip()))
    if current:
        records.append(current)
    return records


def test_checked_in_files_are_up_to_date() -> None:
    generator = _generator()
    for rel, text in generator.render().items():
        assert PACKAGED.joinpath(rel).read_text() == text, \
            f"stateless/directory/schema/{rel} is stale: run python schema/generate.py"
        link = SCHEMA / rel
        assert link.is_symlink() and os.readlink(link) == generator.link_target(rel), \
            f"schema/{rel} should be a relative link to the package's file: run python schema/generate.py"
        assert link.read_text() == text
    assert generator.main(["--check"]) == 0


def test_389ds_file_parses_and_has_every_definition() -> None:
    records = parse_ldif((PACKAGED / "389ds" / "99stateless.ldif").read_text())
    assert len(records) == 1
    (first, dn), *rest = records[0]
    assert (first, dn) == ("dn", "cn=schema")
    types = [v for n, v in rest if n == "attributeTypes"]
    classes = [v for n, v in rest if n == "objectClasses"]
    assert len(types) == len(schemadef.ATTRIBUTES) and len(classes) == len(schemadef.OBJECT_CLASSES)
    assert all(v.endswith("X-ORIGIN 'stateless' )") for v in types + classes)
    parsed = AttributeTypeInfo.from_definition(types)
    assert set(parsed) >= {"statelessOrder", "statelessPortGroup"}
    assert set(ObjectClassInfo.from_definition(classes)) >= {"statelessPolicy", "statelessHost"}


def test_openldap_ldif_parses() -> None:
    records = parse_ldif((PACKAGED / "stateless.ldif").read_text())
    assert records[0][0] == ("dn", "cn=stateless,cn=schema,cn=config")
    types = [v for n, v in records[0] if n == "olcAttributeTypes"]
    info = AttributeTypeInfo.from_definition(types)
    assert info["statelessOrder"].syntax == schemadef.INTEGER
    assert info["statelessEnforced"].syntax == schemadef.BOOLEAN
    assert info["statelessLastBirth"].syntax == schemadef.GENTIME
    assert info["statelessSubnet"].syntax == schemadef.IA5
    assert info["statelessOrder"].single_value and not info["statelessPortGroup"].single_value


def test_base_ldif_has_every_branch() -> None:
    dns = [r[0][1] for r in parse_ldif((PACKAGED / "base.ldif").read_text())]
    assert dns[0] == "ou=stateless,dc=example,dc=com"
    assert {d.split(",")[0] for d in dns[1:]} == {f"ou={o}" for o in schemadef.BASE_OUS}


def test_oids_unique_under_the_uuid_arc() -> None:
    oids = [a.oid for a in schemadef.ATTRIBUTES] + [o.oid for o in schemadef.OBJECT_CLASSES]
    assert len(oids) == len(set(oids))
    assert re.fullmatch(r"2\.25\.\d{30,39}", schemadef.ARC)
    assert int(schemadef.ARC.split(".")[2]) < 2**128
    names = [a.name.lower() for a in schemadef.ATTRIBUTES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("oc", schemadef.OBJECT_CLASSES, ids=lambda o: o.name)
def test_object_classes_only_use_known_attributes(oc: schemadef.ObjectClass) -> None:
    known = {a.name for a in schemadef.ATTRIBUTES} | {"cn", "description"}
    assert set(oc.must) | set(oc.may) <= known

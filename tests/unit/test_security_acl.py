"""The checked-in OpenLDAP ACL file is the one generated from stateless/directory/acl.py."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from stateless.directory import acl

SCHEMA = Path(__file__).resolve().parents[2] / "schema"


def test_checked_in_acl_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("schema_generate", SCHEMA / "generate.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    for rel, text in generator.render_acl().items():
        assert (SCHEMA / rel).read_text() == text, f"schema/{rel} is stale: run python schema/generate.py"


def test_rules_are_numbered_in_order_and_stay_in_the_base() -> None:
    base = "ou=x,dc=example,dc=org"
    rules = acl.olc_access(base)
    assert [int(re.match(r"\{(\d+)\}", r).group(1)) for r in rules] == list(range(len(rules)))  # type: ignore[union-attr]
    for rule in rules:
        targets = re.findall(r'dn\.\w+="([^"]+)"', rule)
        assert targets and all(t.endswith(base) or t.endswith(re.escape(base) + "$") for t in targets)
    assert "by * none" in rules[-1] and "admins" in rules[1] and rules[1].endswith("by * break")

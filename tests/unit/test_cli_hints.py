"""Every hint that names a `stateless ...` command names one the parser accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stateless.cli import UsageError, build_parser

ROOT = Path(__file__).resolve().parents[2] / "stateless"
HINT = re.compile(r"`stateless ([^`]+)`")


def hints() -> list[tuple[str, str]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        # f-string continuation lines: join adjacent literals so a hint split over lines is whole
        text = re.sub(r'"\s*\n\s*f?"', "", text)
        for match in HINT.finditer(text):
            found.append((f"{path.relative_to(ROOT.parent)}", match.group(1)))
    return found


def tokens(hint: str) -> list[str]:
    hint = re.sub(r"\{[^}]*\}", "x", hint)  # f-string fields
    out = []
    for word in hint.split():
        if word in ("...", "…") or word.endswith("..."):
            continue  # "repeat as needed"
        out.append(word)
    return out


def test_the_walk_finds_the_hints() -> None:
    assert len(hints()) > 40


def variants(argv: list[str]) -> list[list[str]]:
    """`a|b` in a docstring's synopsis: each alternative."""
    out: list[list[str]] = [[]]
    for word in argv:
        choices = word.split("|") if "|" in word and not word.startswith("-") else [word]
        out = [[*prefix, choice] for prefix in out for choice in choices]
    return out


@pytest.mark.parametrize("where,hint", hints())
def test_hint_names_a_command_that_exists(where: str, hint: str) -> None:
    for argv in variants(tokens(hint)):
        argv = [a for a in argv if a != "--help"]
        if not argv:
            continue
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:  # --version
            assert exc.code == 0, hint
        except UsageError as exc:
            # A hint may leave out what the reader fills in; command and options must exist.
            assert "arguments are required" in exc.message, \
                f"{where}: `stateless {hint}`: {exc.message}"

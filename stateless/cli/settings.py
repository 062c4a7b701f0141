"""`stateless settings`: the setting keys."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import _emit, _table, cmd
from stateless.model.settings import settings_table


def cmd_settings(args: argparse.Namespace, out: TextIO) -> int:
    rows = settings_table()
    if args.json:
        _emit(out, [{"key": k, "meaning": m, "example": e} for k, m, e in rows])
        return 0
    _table(out, ["key", "meaning", "example"], [list(r) for r in rows])
    return 0


def register(sub: Any) -> None:
    cmd(sub, "settings", cmd_settings, "the setting keys", json_flag=True)

"""`stateless rsop`: a host's effective configuration with provenance."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stateless.cli._common import _connect, _emit, _host, _table, _text, cmd
from stateless.model.effective import EffectiveConfig


def render_rsop(config: EffectiveConfig, out: TextIO) -> None:
    """gpresult-like table: key, value, winning policy, where linked, enforced, overridden."""
    out.write(f"host {config.host}  location {config.location or '(none)'}\n\n")
    rows = []
    for key in sorted(config.settings):
        s = config.settings[key]
        overridden = "; ".join(f"{o.policy}@{o.linked_at}={_text(o.value, key)}"
                               for o in s.overridden)
        rows.append([key, _text(s.value, key), s.policy, s.linked_at,
                     "yes" if s.enforced else "", overridden])
    _table(out, ["key", "value", "winning policy", "linked at", "enforced", "overridden"], rows)
    for removal in config.removed:
        out.write(f"\nremoved {removal.target} by {removal.policy} (linked at {removal.linked_at})")
    if config.removed:
        out.write("\n")
    if config.errors:
        out.write("\nerrors (the host is not applied until they are fixed; it keeps its last applied "
                  "configuration):\n")
        for problem in config.errors:
            out.write(f"  {problem}\n")


def cmd_rsop(args: argparse.Namespace, out: TextIO) -> int:
    from stateless.policy import resolve

    with _connect(args) as d:
        snapshot = d.snapshot()
    host = _host(snapshot, args.uuid)
    config = resolve(snapshot, host.uuid)
    if args.json:
        _emit(out, config.to_json())
    else:
        render_rsop(config, out)
    return 0


def register(sub: Any) -> None:
    sp = cmd(sub, "rsop", cmd_rsop, "effective configuration of a host with provenance",
             json_flag=True)
    sp.add_argument("uuid", metavar="UUID")

"""Run statelessd with every thread under cProfile until it serves, then write the profile.

    .venv/bin/python tests/bench/profiled.py OUT.prof [statelessd options]

`tests/bench/scale.py` starts the daemon this way when `SCALE_PROFILE` names a file. Each
thread gets a profiler of its own when it starts (`threading.setprofile`), so the change
feed's thread and the pools are measured next to the reactor. At the "serving" log line the
profiles are merged and written (pstats format: `python -m pstats OUT.prof`); the daemon
keeps running, unprofiled from then on.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
from typing import Any

PROFILES: list[cProfile.Profile] = []


def _thread_start(*_args: Any) -> None:
    """Called in each new thread before its run(): profile it from here on."""
    sys.setprofile(None)
    profile = cProfile.Profile()
    PROFILES.append(profile)
    profile.enable()


def _dump(path: str) -> None:
    stats: pstats.Stats | None = None
    for profile in list(PROFILES):
        profile.snapshot_stats()
        stats = pstats.Stats(profile) if stats is None else stats.add(profile)
    if stats is not None:
        stats.dump_stats(path)
    threading.setprofile(None)
    PROFILES[0].disable()


def main() -> None:
    from twisted.logger import globalLogPublisher

    from stateless.tap import main as statelessd

    out, sys.argv = sys.argv[1], ["statelessd", *sys.argv[2:]]
    done: list[bool] = []

    def observer(event: dict[str, Any]) -> None:
        if not done and "serving" in str(event.get("log_format", "")) and "url" in event:
            done.append(True)
            _dump(out)

    globalLogPublisher.addObserver(observer)  # type: ignore[arg-type]
    threading.setprofile(_thread_start)
    main_profile = cProfile.Profile()
    PROFILES.append(main_profile)
    main_profile.enable()
    statelessd()


if __name__ == "__main__":
    main()

"""What a failed apply means: try again soon, wait for a change, or stop tracking the host.

Pure: the exception and two facts about the directory in, a verdict out.  Transient means
a retry may succeed without anyone doing anything (vCenter faults and timeouts, the
directory unreachable or a lost race with another writer, and bugs, which must not wedge the
queue); permanent means the host's own inputs are wrong (invalid policy, no location, a full
or missing pool) and only a change to them helps.
"""

from __future__ import annotations

import attrs

from stateless.errors import (
    ConflictError,
    DirectoryError,
    HostEntryMissing,
    NotFoundError,
    StatelessError,
    ValidationError,
)
from stateless.policy.pools import PoolExhaustedError

TRANSIENT, PERMANENT, GONE = "transient", "permanent", "gone"


@attrs.frozen
class Verdict:
    kind: str  # TRANSIENT, PERMANENT or GONE
    cause: str  # of a transient failure: "directory", "vcenter" or "internal"
    reason: str

    @property
    def bug(self) -> bool:
        return self.cause == "internal"


def classify(exc: BaseException, *, in_view: bool, may_lag: bool) -> Verdict:
    """`in_view`: the directory view holds the host's entry; `may_lag`: that view may be
    behind (the host was born here and not seen yet, or the change feed is down)."""
    if isinstance(exc, NotFoundError) and not in_view:
        if may_lag:
            return Verdict(TRANSIENT, "directory", f"{exc} (not in the directory's view yet)")
        return Verdict(GONE, "", str(exc))
    if isinstance(exc, HostEntryMissing):  # in the view, not on the server written to
        return Verdict(TRANSIENT, "directory", f"{exc} (the directory server written to is "
                       "behind this server's view: a replica catching up)")
    if isinstance(exc, ConflictError) and not isinstance(exc, PoolExhaustedError):
        return Verdict(TRANSIENT, "directory", str(exc))  # lost a race with another writer
    if isinstance(exc, ValidationError | ConflictError | NotFoundError):
        return Verdict(PERMANENT, "", str(exc))
    if isinstance(exc, DirectoryError):
        return Verdict(TRANSIENT, "directory", str(exc))
    if isinstance(exc, StatelessError):
        return Verdict(TRANSIENT, "vcenter", str(exc))
    return Verdict(TRANSIENT, "internal", f"internal error: {exc!r}; see the server log")


__all__ = ["GONE", "PERMANENT", "TRANSIENT", "Verdict", "classify"]

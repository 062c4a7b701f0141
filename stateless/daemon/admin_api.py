"""The API's admin changes to one host: re-apply, decommission, approve and deny.

Each is answered once the controller has recorded it (the request is held open meanwhile);
what the controller cannot record is a 503, a host another server owns a 409 that names it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server

from stateless.daemon.outcomes import OwnedElsewhere, Reapplying, ReapplyOutcome
from stateless.daemon.replies import error, finish, internal, reply
from stateless.errors import ConflictError, NotFoundError, StatelessError

Params = dict[str, str]


class AdminController(Protocol):
    """What the admin routes ask of the controller."""

    def reapply(self, uuid: str) -> defer.Deferred[ReapplyOutcome]: ...
    def decommission(self, uuid: str, keep_entry: bool) -> defer.Deferred[
        dict[str, Any] | OwnedElsewhere]: ...
    def approve(self, uuid: str) -> defer.Deferred[dict[str, Any]]: ...
    def deny(self, uuid: str) -> defer.Deferred[dict[str, Any]]: ...


def _owned_elsewhere(request: server.Request, uuid: str, what: str,
                     outcome: OwnedElsewhere) -> bytes:
    where = f" at {outcome.url}/v1/hosts/{uuid}/{what}" if outcome.url else ""
    return error(request, 409, f"host {uuid} is owned by server {outcome.owner}; "
                 f"ask that server{where}", owner=outcome.owner, owner_url=outcome.url)


class AdminHandlers:
    """POST /v1/hosts/{uuid}/{apply,decommission,approve,deny}."""

    def __init__(self, controller: AdminController) -> None:
        self.controller = controller

    def apply(self, request: server.Request, params: Params) -> int:
        """POST /v1/hosts/{uuid}/apply: an admin's re-apply, answered once it is recorded."""
        uuid = params["uuid"]
        d = self.controller.reapply(uuid)  # NotFoundError (404) when unknown

        def answer(outcome: ReapplyOutcome) -> None:
            if isinstance(outcome, Reapplying):
                body = reply(request, 202, {"host": uuid, "status_url": f"/v1/hosts/{uuid}"})
            else:
                body = _owned_elsewhere(request, uuid, "apply", outcome)
            finish(request, body)

        d.addCallbacks(answer, self._failed(request, uuid, "apply", "re-apply not recorded"))
        return server.NOT_DONE_YET

    def decommission(self, request: server.Request, params: Params) -> bytes | int:
        """POST /v1/hosts/{uuid}/decommission[?keep_entry=1]: answered once done."""
        uuid = params["uuid"]
        values = request.args.get(b"keep_entry") if request.args else None
        keep = values is not None and bool(values) and values[0] in (b"1", b"true")
        try:
            d = self.controller.decommission(uuid, keep)  # NotFoundError (404) when unknown
        except ConflictError as exc:
            return error(request, 409, str(exc))

        def answer(outcome: dict[str, Any] | OwnedElsewhere) -> None:
            if isinstance(outcome, OwnedElsewhere):
                body = _owned_elsewhere(request, uuid, "decommission", outcome)
            else:
                body = reply(request, 202, outcome)
            finish(request, body)

        def failed(failure: Failure) -> None:
            if failure.check(StatelessError):
                finish(request, error(request, 503, f"decommission failed: {failure.value}"))
            else:
                internal(request, failure, f"POST /v1/hosts/{uuid}/decommission")

        d.addCallbacks(answer, failed)
        return server.NOT_DONE_YET

    def approve(self, request: server.Request, params: Params) -> int:
        """POST /v1/hosts/{uuid}/approve: pin the quarantined identity and apply the host."""
        return self._decide(request, params["uuid"], "approve", self.controller.approve)

    def deny(self, request: server.Request, params: Params) -> int:
        """POST /v1/hosts/{uuid}/deny: drop what the quarantined birth claimed."""
        return self._decide(request, params["uuid"], "deny", self.controller.deny)

    @classmethod
    def _decide(cls, request: server.Request, uuid: str, what: str,
                call: Callable[[str], defer.Deferred[dict[str, Any]]]) -> int:
        d = defer.maybeDeferred(call, uuid)
        d.addCallbacks(lambda doc: finish(request, reply(request, 200, doc)),
                       cls._failed(request, uuid, what, f"{what} not recorded"))
        return server.NOT_DONE_YET

    @staticmethod
    def _failed(request: server.Request, uuid: str, what: str,
                unrecorded: str) -> Callable[[Failure], None]:
        """The errback of a change: unknown host 404, a conflict 409, not recorded 503."""

        def failed(failure: Failure) -> None:
            if failure.check(NotFoundError):
                finish(request, error(request, 404, str(failure.value)))
            elif failure.check(ConflictError):
                finish(request, error(request, 409, str(failure.value)))
            elif failure.check(StatelessError):
                finish(request, error(request, 503, f"{unrecorded}: {failure.value}"))
            else:
                internal(request, failure, f"POST /v1/hosts/{uuid}/{what}")

        return failed


__all__ = ["AdminController", "AdminHandlers"]

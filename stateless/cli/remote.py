"""Asking the server that owns a host to apply it, and waiting for the outcome.

A host has one writer: the server that owns it. `stateless apply` hands the work to that
server (`POST /v1/hosts/{uuid}/apply`) and long-polls the host's document
(`GET /v1/hosts/{uuid}?wait=S`) until the apply settles, instead of racing it from here.

The admin API wants credentials (`Credentials`): the bearer token of `--admin-token-file`
(or STATELESS_ADMIN_TOKEN_FILE), or a client certificate (`--client-cert`/`--client-key`, or
STATELESS_CLIENT_CERT/STATELESS_CLIENT_KEY); an https server is verified against `--ca-file`
(or STATELESS_CA_FILE), else the system's trust store.
"""

from __future__ import annotations

import argparse
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import attrs

from stateless.cli._common import _emit
from stateless.errors import NotFoundError, StatelessError
from stateless.model.inventory import HostRecord, Snapshot

MAX_POLL = 300.0  # seconds one status request may be held (the API's limit)
SETTLING = ("pending", "applying")


@attrs.frozen
class Credentials:
    """How the CLI authenticates to the admin API, and which CA it trusts for https."""

    token: str = attrs.field(default="", repr=False)
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def context(self, url: str) -> ssl.SSLContext | None:
        if not url.startswith("https:"):
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            if self.cert is not None:
                context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise StatelessError(f"TLS files {self.ca or ''} {self.cert or ''}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
        return context


def remote_options(sp: Any) -> None:
    """The admin API's credentials, on a subcommand that talks to the servers."""
    sp.add_argument("--admin-token-file", metavar="FILE",
                    help="bearer token of the servers' admin API (or STATELESS_ADMIN_TOKEN_FILE)")
    sp.add_argument("--client-cert", metavar="FILE",
                    help="client certificate from the servers' CA (or STATELESS_CLIENT_CERT)")
    sp.add_argument("--client-key", metavar="FILE",
                    help="the client certificate's key (or STATELESS_CLIENT_KEY)")
    sp.add_argument("--ca-file", metavar="FILE",
                    help="CA that signed the servers' HTTPS certificates (or STATELESS_CA_FILE)")


def credentials(args: argparse.Namespace) -> Credentials:
    env = getattr(args, "environ", {})

    def path(option: str, variable: str) -> Path | None:
        value = getattr(args, option, None) or env.get(variable)
        return Path(value) if value else None

    token_file = path("admin_token_file", "STATELESS_ADMIN_TOKEN_FILE")
    token = ""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise StatelessError(f"admin token file {token_file}: {exc.strerror}") from None
    cert = path("client_cert", "STATELESS_CLIENT_CERT")
    key = path("client_key", "STATELESS_CLIENT_KEY")
    if (cert is None) != (key is None):
        raise StatelessError("a client certificate needs both --client-cert and --client-key")
    return Credentials(token, cert, key, path("ca_file", "STATELESS_CA_FILE"))


APPLY_HINT = "`stateless apply --direct` applies from here instead"


def _request(method: str, url: str, timeout: float, creds: Credentials | None = None,
             hint: str = APPLY_HINT) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of one request; a refused or unreachable server is an error."""
    creds = creds or Credentials()
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None,
                                     headers=creds.headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout,
                                    context=creds.context(url)) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {"error": exc.reason}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatelessError(f"{method} {url}: cannot reach the server ({reason}); is it "
                             f"running? {hint}") from None


def _server_url(snapshot: Snapshot, name: str, hint: str = "or use `stateless apply --direct`") -> str:
    server = snapshot.servers.get(name)
    if server is None or not server.url:
        raise NotFoundError(f"server {name}: no entry with a URL under ou=servers; it owns the "
                            f"host, so ask it when it is back, {hint}")
    return server.url.rstrip("/")


def owner_url(snapshot: Snapshot, host: HostRecord) -> str:
    """The API URL of the server that owns `host` (for questions only it can answer)."""
    if not host.owner:
        raise NotFoundError(f"host {host.uuid}: no server owns it (it has not been born, nor "
                            "applied by a server); ask a server with --server URL")
    return _server_url(snapshot, host.owner, "or ask another server with --server URL")


def host_events(base: str, uuid: str, timeout: float,
                creds: Credentials | None = None) -> dict[str, Any]:
    """`GET /v1/hosts/{uuid}/events` of the server at `base`."""
    url = f"{base.rstrip('/')}/v1/hosts/{uuid}/events"
    status, doc = _request("GET", url, timeout, creds, hint="ask another server with --server URL")
    if status == 404:
        raise NotFoundError(f"GET {url}: {doc.get('error', 'not found')}")
    if status != 200:
        raise StatelessError(f"GET {url}: {status} {doc.get('error', '')}")
    return doc


def _await(base: str, uuid: str, wait: float, timeout: float, seen: Callable[[dict[str, Any]], None],
           clock: Callable[[], float] = time.monotonic,
           creds: Credentials | None = None) -> dict[str, Any]:
    """The host's document once the apply settled (or is retried and `wait` ran out)."""
    deadline = clock() + wait
    while True:
        hold = max(0.0, min(MAX_POLL, deadline - clock()))
        status, doc = _request("GET", f"{base}/v1/hosts/{uuid}?wait={hold:.1f}", timeout + hold,
                               creds)
        if status != 200:
            raise StatelessError(f"GET {base}/v1/hosts/{uuid}: {status} {doc.get('error', '')}")
        seen(doc)
        retrying = doc.get("state") == "failed" and doc.get("next_try")
        if (doc.get("state") not in SETTLING and not retrying) or clock() >= deadline:
            return doc


def ask_owner(snapshot: Snapshot, host: HostRecord, *, wait: float, timeout: float, out: TextIO,
              as_json: bool, creds: Credentials | None = None) -> int:
    """Have the owning server re-apply `host`; exit 0 compliant, 3 drifted, 1 otherwise."""
    uuid, owner = host.uuid, host.owner
    base = _server_url(snapshot, owner)
    status, doc = _request("POST", f"{base}/v1/hosts/{uuid}/apply", timeout, creds)
    if status == 409 and doc.get("owner_url"):  # ownership moved since our snapshot: once
        owner, base = str(doc.get("owner")), str(doc["owner_url"]).rstrip("/")
        status, doc = _request("POST", f"{base}/v1/hosts/{uuid}/apply", timeout, creds)
    if status != 202:
        raise StatelessError(f"server {owner} ({base}) refused to re-apply host {uuid}: {status} "
                             f"{doc.get('error', '')}")
    if not as_json:
        out.write(f"asked server {owner} ({base}) to re-apply host {uuid}\n")
    if wait <= 0:
        if as_json:
            _emit(out, {"host": uuid, "server": owner, "url": base, "state": "pending"})
        return 0
    last: list[str] = []

    def seen(doc: dict[str, Any]) -> None:
        line = f"{doc.get('state')}: {doc.get('reason') or ''}".rstrip(": ")
        if doc.get("next_try"):
            line += f" (retried at {doc['next_try']})"
        if not as_json and line not in last:
            out.write(f"  {line}\n")
            last.append(line)

    final = _await(base, uuid, wait, timeout, seen, creds=creds)
    state = final.get("state")
    if as_json:
        _emit(out, {**final, "server": owner, "url": base})
    if state == "compliant":
        return 0
    if state == "drifted":
        return 3
    if state in SETTLING or final.get("next_try"):
        raise StatelessError(f"host {uuid}: still {state} after {wait:.0f}s; server {owner} goes on "
                             f"(see `curl {base}/v1/hosts/{uuid}`)")
    raise StatelessError(f"host {uuid}: {state}: {final.get('reason', '')}")

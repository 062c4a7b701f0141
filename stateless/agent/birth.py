"""Send the birth message: try servers in order, follow one referral, back off with full jitter.

Responses (POST {url}/v1/birth):
  202 {host, status_url}             accepted: done (then optionally wait on status_url)
  200 {"referral": {site, servers}}  go to that site's servers, at most once per run
  429 + Retry-After                  wait as told, then try the same server again
  other 4xx                          fatal: the message itself is wrong, print the server's error
  5xx, no connection, bad reply      next target; after a full round, sleep and start again

Time, randomness and sleeping are passed in so tests drive the retry logic without waiting.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import json
import random
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import dns.resolver

from stateless.agent import __version__
from stateless.agent.locate import Lookups, Target, locate, make_resolver, order_targets
from stateless.agent.signing import HEADER, EnrollmentKey, sign
from stateless.agent.tls import PinnedCA

BIRTH_PATH = "/v1/birth"
FIELDS = ("uuid", "serial", "vendor", "model", "asset", "oem_strings", "macs", "boot_mac", "ipv4",
          "hostname", "domain", "thumbprint", "image")
DONE_STATES = {"compliant"}
FAILED_STATES = {"failed", "quarantined"}
LONG_POLL = 60  # most seconds a status request asks the server to hold it


class AgentError(Exception):
    """The agent could not complete; `exit_code` is what the process exits with."""

    exit_code = 1


class GaveUp(AgentError):
    """No server accepted the birth within the attempts or the time allowed."""

    exit_code = 1


class Fatal(AgentError):
    """A server rejected the birth message itself; retrying would not help."""

    exit_code = 2


class HostFailed(AgentError):
    """The server accepted the host but could not make it compliant."""

    exit_code = 3


@dataclass(frozen=True)
class Settings:
    """What the command line says; validated by `cli`."""

    domain: str | None = None
    site: str | None = None
    servers: tuple[str, ...] = ()
    nameservers: tuple[str, ...] = ()
    scheme: str = "http"
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    request_timeout: float = 10.0
    dns_timeout: float = 2.0
    timeout: float | None = None
    poll_interval: float = 5.0
    state_file: str | None = None
    enroll_key: EnrollmentKey | None = None  # signs every birth for `site` (the key's site)
    ca_fingerprint: str | None = None  # SHA-256 of the only CA trusted; plain http is refused


@dataclass(frozen=True)
class Accepted:
    """The server took the host: where to watch its progress."""

    host: str
    status_url: str
    server: str


@dataclass
class _Reply:
    status: int
    headers: Mapping[str, str]
    text: str
    doc: Any = field(default=None)


class _Unreachable(Exception):
    pass


def birth_document(identity: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the server knows, without empty ones (the server refuses unknown fields)."""
    if not isinstance(identity.get("uuid"), str) or not identity["uuid"].strip():
        raise Fatal("identity has no 'uuid' (the SMBIOS system UUID); the birth message needs it")
    return {k: identity[k] for k in FIELDS if identity.get(k) not in (None, "", [])}


def load_state(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def save_state(path: str | None, doc: Mapping[str, Any]) -> None:
    if not path:
        return
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(dict(doc), sort_keys=True), encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        print(f"stateless-agent: cannot write state file {path}: {exc}", file=sys.stderr)


def _pinned(address: str | None, addr: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    return socket.create_connection((address or addr[0], addr[1]), *args, **kwargs)


class _PinnedHTTP(urllib.request.HTTPHandler):
    """Connects to the address DNS gave for a name, keeping the name in the URL and Host header;
    HTTPS verifies against the pinned CA when there is one."""

    handler_order = 400  # before urllib's own HTTPSHandler, which would use the system's CAs

    def __init__(self, addresses: Mapping[str, str], ca: PinnedCA | None = None) -> None:
        super().__init__()
        self.addresses = addresses
        self.ca = ca

    def _connection(self, cls: type[http.client.HTTPConnection], req: urllib.request.Request,
                    host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = cls(host, **kwargs)
        address = self.addresses.get((urlsplit(req.full_url).hostname or "").lower())
        conn._create_connection = functools.partial(_pinned, address)  # type: ignore[attr-defined]
        return conn

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(self._connection, http.client.HTTPConnection, req), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        extra: dict[str, Any] = {}
        if self.ca is not None:
            parts = urlsplit(req.full_url)
            host = (parts.hostname or "").lower()
            extra["context"] = self.ca.context(host, parts.port or 443, self.addresses.get(host))
        return self.do_open(functools.partial(self._connection, http.client.HTTPSConnection, req),
                            req, **extra)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: the agent goes only where DNS, --server or a referral says."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # the directory's site names


def _site_list(value: Any) -> list[str]:
    """Site names from an answer or the state file; anything else is ignored."""
    if not isinstance(value, list):
        return []
    return [s for s in value if isinstance(s, str) and _SITE.fullmatch(s)][:32]


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Agent:
    """One boot's worth of locating and birthing."""

    def __init__(self, identity: Mapping[str, Any], settings: Settings, *,
                 rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] | None = None,
                 resolver: dns.resolver.Resolver | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.document = birth_document(identity)
        self.settings = settings
        self.rng = rng or random.Random()
        self._sleep = sleep
        self.clock = clock
        self.log = log or (lambda text: print(f"stateless-agent: {text}", file=sys.stderr))
        self._resolver = resolver
        self.lookups: Lookups | None = None  # this round's DNS answers
        self.state = load_state(settings.state_file)
        self.site = settings.site or self.state.get("site") or None
        # The sites after this one by link cost, from the last referral or acceptance seen:
        # tried after the site's own records, before the domain-wide ones.
        self.sites: list[str] = _site_list(self.state.get("sites"))
        self.addresses: dict[str, str] = {}
        self.deadline = clock() + settings.timeout if settings.timeout else None
        self.wall = wall  # the time signatures carry
        self.ca = PinnedCA(settings.ca_fingerprint) if settings.ca_fingerprint else None
        self.opener = urllib.request.build_opener(_PinnedHTTP(self.addresses, self.ca), _NoRedirect())
        self.posts: list[str] = []

    # -- time ---------------------------------------------------------------------------------
    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def sleep(self, seconds: float) -> None:
        left = self.remaining()
        if left is not None and left <= seconds:
            raise GaveUp(f"gave up: the time limit of {self.settings.timeout}s runs out before "
                         f"the next try ({seconds:.1f}s away)")
        if seconds > 0:
            self._sleep(seconds)

    def backoff(self, attempt: int) -> float:
        """Full jitter (uniform in [0, min(cap, base * 2**attempt)])."""
        ceiling = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** attempt)
        return self.rng.uniform(0, ceiling)

    # -- locating -----------------------------------------------------------------------------
    @property
    def resolver(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            self._resolver = make_resolver(self.settings.nameservers, self.settings.dns_timeout)
        return self._resolver

    def _new_round(self) -> Lookups | None:
        """Fresh DNS answers for a round: each name is asked once in it, and not at all once the
        name servers have failed in it (see `Lookups`)."""
        self.lookups = None
        if self.settings.domain or self.settings.nameservers or self._resolver is not None:
            try:
                self.lookups = Lookups(self.resolver, log=self.log)
            except dns.resolver.NoResolverConfiguration:
                self.log("no DNS resolver configured; use --nameserver")
        return self.lookups

    def _remember(self, target: Target) -> Target:
        if target.address:
            self.addresses[target.host.lower()] = target.address
        return target

    def _url_target(self, url: str, source: str, priority: int = 0, weight: int = 0) -> Target:
        host = urlsplit(url).hostname or ""
        address = None
        if host and self.lookups and (self.settings.nameservers or self._resolver is not None):
            address = self.lookups.address(host)
        return self._remember(Target(url.rstrip("/"), priority, weight, address, source))

    def targets(self) -> list[Target]:
        """SRV targets (site, then domain), then the --server fallbacks; no repeats.

        Called once per round; a round whose name servers fail goes straight to --server.
        """
        found: list[Target] = []
        lookups = self._new_round()
        if self.settings.domain and lookups is not None:
            found = locate(lookups, self.settings.domain, self.site, scheme=self.settings.scheme,
                           others=[s for s in self.sites if s != self.site])
        for url in self.settings.servers:
            found.append(self._url_target(url, "--server"))
        unique: dict[str, Target] = {}
        for target in found:
            unique.setdefault(target.url, self._remember(target))
        return list(unique.values())

    # -- HTTP ---------------------------------------------------------------------------------
    def _timeout(self) -> float:
        left = self.remaining()
        return self.settings.request_timeout if left is None else max(0.1, min(
            self.settings.request_timeout, left))

    def request(self, url: str, body: Mapping[str, Any] | None = None) -> _Reply:
        data = json.dumps(body).encode() if body is not None else None
        sent = {"Content-Type": "application/json", "Accept": "application/json",
                "User-Agent": f"stateless-agent/{__version__}"}
        if self.ca is not None and urlsplit(url).scheme != "https":
            raise _Unreachable(f"{url}: plain http refused, the CA is pinned (--ca-fingerprint)")
        key = self.settings.enroll_key
        if data is not None and key is not None and self.settings.site:
            # A fresh timestamp and nonce for every request: a retry is a new signed request.
            sent[HEADER] = sign(data, self.settings.site, key, int(self.wall()))
        req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                     headers=sent)
        try:
            with self.opener.open(req, timeout=self._timeout()) as resp:
                status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, raw = exc.code, exc.headers, exc.read()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Unreachable(f"{url}: {reason}") from exc
        text = raw.decode("utf-8", "replace")
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = None
        return _Reply(status, {k.lower(): v for k, v in headers.items()}, text, doc)

    # -- birth --------------------------------------------------------------------------------
    def _referral(self, reply: _Reply, target: Target) -> tuple[str | None, list[Target]] | None:
        ref = reply.doc.get("referral") if isinstance(reply.doc, dict) else None
        if not isinstance(ref, dict) or not isinstance(ref.get("servers"), list):
            return None
        servers = []
        for item in ref["servers"]:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str) or \
                    urlsplit(item["url"]).scheme not in ("http", "https"):
                self.log(f"{target.url}: ignoring a bad server in the referral: {item!r}")
                continue
            priority, weight = item.get("priority", 0), item.get("weight", 0)
            if not all(isinstance(v, int) and 0 <= v <= 65535 for v in (priority, weight)):
                priority, weight = 0, 0
            servers.append(self._url_target(item["url"], f"referral from {target.url}",
                                            priority, weight))
        site = ref.get("site") if isinstance(ref.get("site"), str) else None
        if ref.get("sites") is not None:
            self.sites = _site_list(ref.get("sites"))
        return site, order_targets(servers)

    def _learn(self, doc: Mapping[str, Any]) -> None:
        """An acceptance names the host's site (and whether that server is in it)."""
        site = doc.get("site")
        if isinstance(site, str) and site and site != self.site:
            self.log(f"the server places this host in site {site}")
            self.site = site
        if doc.get("sites") is not None:
            self.sites = _site_list(doc.get("sites"))
        if doc.get("closest") is False:
            self.log(f"accepted by a server outside site {self.site}: its own site has no "
                     "server that answers")

    @staticmethod
    def _error_text(reply: _Reply) -> str:
        """The server's `error`, with the per-field reasons of a rejected birth message."""
        if isinstance(reply.doc, dict):
            fields = reply.doc.get("fields")
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(fields.items())) \
                if isinstance(fields, dict) else ""
            for key in ("error", "message", "detail"):
                if reply.doc.get(key):
                    return (f"{reply.doc[key]} ({detail})" if detail else str(reply.doc[key]))[:1000]
        return reply.text.strip()[:1000] or http.client.responses.get(reply.status, "")

    def birth(self) -> Accepted:
        """Try every target in order, rounds apart by backoff, until one accepts."""
        referred = False
        throttled = 0
        for attempt in range(self.settings.max_attempts):
            queue = self.targets()
            if not queue:
                self.log(f"round {attempt + 1}: no server found (SRV for domain "
                         f"{self.settings.domain!r}, site {self.site!r}; no --server)")
            while queue:
                target = queue.pop(0)
                url = target.url + BIRTH_PATH
                self.posts.append(url)
                try:
                    reply = self.request(url, self.document)
                except _Unreachable as exc:
                    self.log(f"cannot reach {exc}; trying the next server")
                    continue
                if reply.status == 202 and isinstance(reply.doc, dict):
                    status_url = urljoin(target.url + "/", str(reply.doc.get("status_url", "")))
                    accepted = Accepted(str(reply.doc.get("host", "")), status_url, target.url)
                    self._learn(reply.doc)
                    self.state = {**self.state, "server": target.url}
                    if self.site:
                        self.state["site"] = self.site
                    if self.sites:
                        self.state["sites"] = self.sites
                    save_state(self.settings.state_file, self.state)
                    self.log(f"{target.url} accepted host {accepted.host}")
                    return accepted
                if reply.status == 200:
                    referral = self._referral(reply, target)
                    if referral is None:
                        self.log(f"{target.url}: unexpected {reply.status} reply; trying the next server")
                    elif referred:
                        self.log(f"{target.url} refers again (site {referral[0]}); a referral is "
                                 "followed only once, trying the next server")
                    else:
                        referred = True
                        site, servers = referral
                        self.log(f"{target.url} refers to site {site}: "
                                 + ", ".join(t.url for t in servers))
                        if site:
                            self.site = site
                            self.state = {**self.state, "site": site, "sites": self.sites}
                            save_state(self.settings.state_file, self.state)
                        queue = servers + [t for t in queue if t.url not in {s.url for s in servers}]
                    continue
                if reply.status == 429:
                    wait = retry_after(reply.headers.get("retry-after"))
                    throttled += 1
                    if throttled > self.settings.max_attempts:
                        self.log(f"{target.url} is still busy (429) after {throttled - 1} waits")
                        continue
                    if wait is None:
                        wait = self.backoff(throttled - 1)
                    self.log(f"{target.url} is busy (429); retrying in {wait:.1f}s")
                    self.sleep(wait)
                    queue.insert(0, target)
                    continue
                if 400 <= reply.status < 500:
                    raise Fatal(f"{target.url} rejected the birth message: {reply.status} "
                                f"{self._error_text(reply)}")
                self.log(f"{target.url}: {reply.status} {self._error_text(reply)[:200]}; "
                         "trying the next server")
            if attempt + 1 < self.settings.max_attempts:
                delay = self.backoff(attempt)
                self.log(f"no server accepted the birth; round {attempt + 2} in {delay:.1f}s")
                self.sleep(delay)
        raise GaveUp(f"gave up after {self.settings.max_attempts} rounds: no server accepted the "
                     "birth; check DNS (SRV records), the servers' logs, or pass --server URL")

    # -- after acceptance ---------------------------------------------------------------------
    def wait_compliant(self, accepted: Accepted) -> str:
        """Poll the host's status until compliant; raise HostFailed when the server gives up on it
        (a `failed` host with a `next_try` is still being retried: the wait goes on).

        Each request asks the server to hold it until the host settles (`?wait=`, a long
        poll, bounded by the request timeout), so a waiting host costs the server one request
        rather than one per poll interval.  Requests start at most every poll interval, which
        is also how often a server that answers at once is asked.
        """
        errors = 0
        retrying = ""
        sep = "&" if "?" in accepted.status_url else "?"
        while True:
            started = self.clock()
            wait = max(0, min(LONG_POLL, int(self._timeout()) - 2))  # answered before we give up
            url = f"{accepted.status_url}{sep}wait={wait}" if wait else accepted.status_url
            try:
                reply = self.request(url)
            except _Unreachable as exc:
                reply = None
                self.log(f"status: cannot reach {exc}")
            state = reply.doc.get("state") if reply and isinstance(reply.doc, dict) else None
            if reply is not None and reply.status == 200 and isinstance(state, str):
                errors = 0
                if state in DONE_STATES:
                    self.log(f"host {accepted.host} is {state}")
                    return state
                reason = reply.doc.get("reason") or reply.doc.get("error") or ""
                if state in FAILED_STATES and reply.doc.get("next_try"):
                    # A transient failure: the server retries by itself, so wait on.
                    note = f"host {accepted.host} is {state}: {reason}; the server retries at " \
                           f"{reply.doc['next_try']}"
                    if note != retrying:
                        self.log(note)
                        retrying = note
                elif state in FAILED_STATES:
                    raise HostFailed(f"host {accepted.host} is {state}: {reason}".rstrip(": "))
                self.sleep(self.settings.poll_interval - (self.clock() - started))
                continue
            errors += 1
            if reply is not None:
                self.log(f"status {accepted.status_url}: {reply.status} {self._error_text(reply)[:200]}")
            if errors > self.settings.max_attempts:
                raise GaveUp(f"status {accepted.status_url} failed {errors} times in a row")
            self.sleep(self.backoff(errors - 1))


def run(identity: Mapping[str, Any], settings: Settings, *, wait_compliant: bool = False,
        **kwargs: Any) -> int:
    """Birth (and optionally wait); the exit code: 0 done, 1 gave up, 2 rejected, 3 host failed."""
    try:
        agent = Agent(identity, settings, **kwargs)
        accepted = agent.birth()
        if wait_compliant:
            agent.wait_compliant(accepted)
    except AgentError as exc:
        log = kwargs.get("log") or (lambda text: print(f"stateless-agent: {text}", file=sys.stderr))
        log(str(exc))
        return exc.exit_code
    return 0


def split_urls(values: Iterable[str]) -> Sequence[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]

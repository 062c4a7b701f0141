"""`python -m stateless.agent` / `agent.pyz`: the boot agent's command line."""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from stateless.agent import __version__, identity
from stateless.agent.birth import Settings, run
from stateless.agent.locate import parse_nameserver
from stateless.agent.signing import EnrollmentKey, SignatureError, parse_enrollment_key
from stateless.agent.tls import normalize_fingerprint

DEFAULT_STATE = "/var/lib/stateless/agent-state.json"
DEFAULT_DNS_TIMEOUT = 2.0


def _positive(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text}: must be a number > 0")
    return value


def _nameserver(text: str) -> str:
    try:
        parse_nameserver(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text}: expected IP[:PORT] ({exc})") from None
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stateless-agent",
        description="Find a stateless server over DNS (SRV) and send this host's birth message.")
    p.add_argument("--identity", metavar="FILE", help="identity JSON (uuid, serial, macs, ...); "
                   "default: read it from the host (ESXi)")
    p.add_argument("--domain", help="DNS domain of the _stateless._tcp SRV records")
    p.add_argument("--site", help="site name, tried first (_stateless._tcp.SITE._sites.DOMAIN)")
    p.add_argument("--server", action="append", default=[], metavar="URL",
                   help="server to try after the SRV targets (the one PXE passed); repeatable")
    p.add_argument("--nameserver", action="append", default=[], type=_nameserver,
                   metavar="IP[:PORT]", help="DNS server to ask (default: the system's)")
    p.add_argument("--dns-timeout", type=_positive, default=None, metavar="S",
                   help=f"give one SRV lookup S seconds in all, every name server and retry "
                        f"included (default {DEFAULT_DNS_TIMEOUT:g}); a refused name server fails "
                        "at once")
    p.add_argument("--cmdline", metavar="TEXT", default=None,
                   help="kernel command line to read stateless.site=, stateless.server=, "
                        "stateless.domain=, stateless.nameserver=, stateless.dns-timeout=, "
                        "stateless.enroll-key=, stateless.ca=, stateless.image= and BOOTIF= "
                        "from (explicit options win)")
    p.add_argument("--enroll-key", metavar="KEYID:BASE64",
                   help="the site's enrollment key: every birth is signed with it (needs --site)")
    p.add_argument("--enroll-key-file", metavar="FILE",
                   help="file holding KEYID:BASE64 (keeps the key out of the process list)")
    p.add_argument("--ca-fingerprint", metavar="SHA256HEX",
                   help="trust only the CA with this SHA-256 (of its DER); plain http is then "
                        "refused and SRV targets use https")
    p.add_argument("--scheme", choices=("http", "https"), default=None,
                   help="URL scheme for SRV targets (default http, https with --ca-fingerprint)")
    p.add_argument("--wait-compliant", action="store_true",
                   help="after acceptance, poll the host's status until it is compliant")
    p.add_argument("--timeout", type=_positive, metavar="S",
                   help="give up after S seconds in all (default: no limit)")
    p.add_argument("--attempts", type=int, default=5, help="rounds over all servers (default 5)")
    p.add_argument("--backoff", type=_positive, default=1.0, metavar="S",
                   help="first backoff ceiling; doubles per round (default 1)")
    p.add_argument("--backoff-cap", type=_positive, default=60.0, metavar="S",
                   help="largest backoff ceiling (default 60)")
    p.add_argument("--request-timeout", type=_positive, default=10.0, metavar="S")
    p.add_argument("--poll-interval", type=_positive, default=5.0, metavar="S")
    p.add_argument("--state", default=DEFAULT_STATE, metavar="FILE",
                   help=f"where a referral's site is remembered (default {DEFAULT_STATE}; '' for none)")
    p.add_argument("--version", action="version", version=f"stateless-agent {__version__}")
    return p


def _enroll_key(args: argparse.Namespace, boot: dict[str, str], site: str | None) -> \
        EnrollmentKey | None:
    """The enrollment key: --enroll-key, else --enroll-key-file, else the boot line's."""
    if args.enroll_key and args.enroll_key_file:
        raise ValueError("give --enroll-key or --enroll-key-file, not both")
    text = args.enroll_key
    if args.enroll_key_file:
        try:
            with open(args.enroll_key_file, encoding="utf-8") as f:
                text = f.read().strip()
        except OSError as exc:
            raise ValueError(f"--enroll-key-file {args.enroll_key_file}: {exc.strerror}") from None
    text = text or boot.get("stateless.enroll-key")
    if not text:
        return None
    if not site:
        raise ValueError("an enrollment key belongs to a site: give --site (or stateless.site=) "
                         "with it")
    return parse_enrollment_key(text)


def main(argv: Sequence[str] | None = None, *, rng: random.Random | None = None,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
         log: Callable[[str], None] | None = None) -> int:
    args = parser().parse_args(argv)
    boot = identity.parse_cmdline(args.cmdline or "")
    try:
        if args.identity:
            ident = identity.from_file(args.identity)
        else:
            ident = identity.from_esxi(cmdline=args.cmdline or "")
    except identity.IdentityError as exc:
        print(f"stateless-agent: {exc}", file=sys.stderr)
        return 2
    if boot.get("stateless.image") and not ident.get("image"):
        ident["image"] = boot["stateless.image"]  # the image it booted, as the server named it
    boot_ns = [v for v in boot.get("stateless.nameserver", "").split(",") if v]
    dns_timeout = args.dns_timeout
    if dns_timeout is None:
        try:
            dns_timeout = _positive(boot.get("stateless.dns-timeout") or str(DEFAULT_DNS_TIMEOUT))
        except (ValueError, argparse.ArgumentTypeError):
            print(f"stateless-agent: stateless.dns-timeout={boot['stateless.dns-timeout']} on the "
                  "kernel command line: expected seconds > 0, such as 2", file=sys.stderr)
            return 2
    if args.attempts < 1:
        print("stateless-agent: --attempts must be >= 1", file=sys.stderr)
        return 2
    site = args.site or boot.get("stateless.site")
    try:
        enroll_key = _enroll_key(args, boot, site)
        ca = args.ca_fingerprint or boot.get("stateless.ca")
        ca = normalize_fingerprint(ca) if ca else None
    except (SignatureError, ValueError, OSError) as exc:
        print(f"stateless-agent: {exc}", file=sys.stderr)
        return 2
    settings = Settings(
        domain=args.domain or boot.get("stateless.domain"),
        site=site,
        servers=tuple(args.server or [v for v in boot.get("stateless.server", "").split(",") if v]),
        nameservers=tuple(args.nameserver or boot_ns),
        scheme=args.scheme or ("https" if ca else "http"),
        max_attempts=args.attempts,
        backoff_base=args.backoff,
        backoff_cap=args.backoff_cap,
        request_timeout=args.request_timeout,
        dns_timeout=dns_timeout,
        timeout=args.timeout,
        poll_interval=args.poll_interval,
        state_file=args.state or None,
        enroll_key=enroll_key,
        ca_fingerprint=ca,
    )
    if not settings.domain and not settings.servers:
        print("stateless-agent: nothing to try: give --domain (SRV lookup) and/or --server URL",
              file=sys.stderr)
        return 2
    kwargs: dict[str, Any] = {"rng": rng, "sleep": sleep, "clock": clock}
    if log is not None:
        kwargs["log"] = log
    return run(ident, settings, wait_compliant=args.wait_compliant, **kwargs)

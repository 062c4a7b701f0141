"""`twist statelessd` and the `statelessd` script: options in, one frozen config, a service tree out."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from twisted.python import usage

from stateless import package_version
from stateless.daemon.config import DaemonConfig, load_config
from stateless.daemon.service import StatelessService
from stateless.errors import StatelessError


class Options(usage.Options):
    """Every option can also come from the --config TOML file or a STATELESS_* variable."""

    optParameters = [
        ["config", "c", None, "TOML configuration file"],
        ["state-dir", None, None, "state directory (embedded directory, cookies, secrets)"],
        ["name", None, None, "this server's name in the directory [statelessd]"],
        ["site", None, None, "this server's site [default]"],
        ["listen", None, None, "HTTP API address:port [127.0.0.1:8480]"],
        ["public-url", None, None, "API URL advertised to hosts (SRV target, referrals)"],
        ["ldap", None, None, "directory URL(s), comma-separated; none: embedded slapd"],
        ["bind-dn", None, None, "bind DN for the directory"],
        ["password-file", None, None, "file holding the bind password"],
        ["base", None, None, "base DN of the stateless subtree"],
        ["domain", None, None, "DNS domain of the SRV records [stateless.test]"],
        ["dns", None, None, "none | serve (authoritative zone) | update (RFC 2136) [none]"],
        ["dns-listen", None, None, "address:port of the served zone [127.0.0.1:8553]"],
        ["dns-server", None, None, "address:port of the primary taking updates"],
        ["tsig-key-file", None, None, "TSIG key file for updates"],
        ["mode", None, None, "enforce (re-apply on change) | report (mark drifted) [enforce]"],
        ["scan-interval", None, None, "seconds between compliance scans [600]"],
        ["max-pending", None, None, "births queued before answering 429 [2000]"],
        ["retry-cap", None, None, "longest wait, seconds, between retries of a failed apply [300]"],
        ["vcenter-concurrency", None, None, "hosts applied at once per vCenter [8]"],
        ["threads", None, None, "size of the blocking-call thread pool [16]"],
        ["switch-interval", None, None, "Python thread switch interval, seconds [0.05]"],
        ["secret-key-file", None, None, "key that decrypts vCenter passwords [STATE/secret.key]"],
        ["host-password-file", None, None, "root password of the hosts, for adding them"],
        ["tls-cert", None, None, "serve HTTPS: certificate chain (PEM, server first, CA last)"],
        ["tls-key", None, None, "serve HTTPS: the certificate's private key (PEM)"],
        ["client-ca", None, None, "CA whose client certificates authenticate admin requests"],
        ["admin-token-file", None, None, "file holding the bearer token of admin requests"],
        ["birth-auth", None, None, "required | optional: signed births [required once the site "
                                   "has an enrollment key]"],
    ]
    optFlags = [
        ["public-read", None, "host details (/v1/hosts...) readable without credentials"],
        ["insecure-admin", None, "admin writes without credentials (a lab only)"],
    ]

    config: DaemonConfig

    def opt_version(self) -> NoReturn:
        """Display statelessd's version and exit."""
        print(f"statelessd {package_version()}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        given = {key.replace("-", "_"): value for key, value in self.items()
                 if key != "config" and value is not None and value != 0}
        if "ldap" in given:
            given["ldap_urls"] = given.pop("ldap")
        file = Path(self["config"]) if self["config"] else None
        try:
            self.config = load_config(file, os.environ, given)
        except StatelessError as exc:
            raise usage.UsageError(str(exc)) from None


def makeService(options: Options) -> StatelessService:
    return StatelessService(options.config)


def main(argv: list[str] | None = None) -> None:
    """Console script `statelessd`: the same service tree as `twist statelessd`, in the foreground."""
    from twisted.internet import reactor as _reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    reactor: Any = _reactor

    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as exc:
        print(f"statelessd: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    svc: Any = makeService(options)
    observer: Any = textFileLogObserver(sys.stderr)
    globalLogBeginner.beginLoggingTo([observer])
    reactor.callWhenRunning(svc.startService)
    reactor.addSystemEventTrigger("before", "shutdown", svc.stopService)
    reactor.run()

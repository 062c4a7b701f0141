"""`twist statelessd` and the `statelessd` script: options in, one frozen config, a service tree out.

This is the process front: it alone changes process-wide settings (the thread switch interval,
stdlib logging's root handler, the garbage collector's thresholds) and decides the exit status.
`statelessd ARGS` runs exactly `twist --log-format text [--log-level L] statelessd ARGS`; a
start that fails logs one line and ends the process with status 1.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from twisted.python import usage

from stateless import package_version
from stateless.daemon.config import DaemonConfig, load_config
from stateless.errors import StatelessError

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warn", "error")
START_FAILED_STATUS = 1
# Allocations between young collections while starting (CPython's default is 700). A start
# reads the whole directory into objects that live as long as the process: with the default,
# the collector walked them over and over, a tenth of the start's CPU at 50,000 hosts. Once
# serving, the default again: applies leave short-lived cycles (decoded vCenter answers), and
# collecting them every 50,000 allocations let a 1,000-host storm's RSS pass 280 MB.
GC_YOUNG = 50_000
GC_DEFAULT_YOUNG = gc.get_threshold()[0]


class Options(usage.Options):
    """Every option can also come from the --config TOML file or a STATELESS_* variable."""

    longdesc = ("statelessd also takes --log-format text|json [text] and --log-level "
                "debug|info|warn|error [info]; under twist, give twist's own options of those "
                "names before the subcommand: twist --log-format json statelessd ...")
    optParameters = [
        ["config", "c", None, "TOML configuration file"],
        ["state-dir", None, None, "state directory (embedded directory, cookies, secrets)"],
        ["name", None, None, "this server's name in the directory [statelessd]"],
        ["site", None, None, "this server's site [default]"],
        ["listen", None, None, "HTTP API: ADDRESS:PORT, or a Twisted endpoint such as "
                               "tcp:8480:interface=127.0.0.1, ssl:..., unix:PATH [127.0.0.1:8480]"],
        ["public-url", None, None, "API URL advertised to hosts (SRV target, referrals)"],
        ["ldap", None, None, "directory URL(s), comma-separated, the local replica first "
         "(failover in order, back to the first); none: embedded slapd"],
        ["bind-dn", None, None, "bind DN for the directory"],
        ["password-file", None, None, "file holding the bind password"],
        ["base", None, None, "base DN of the stateless subtree"],
        ["domain", None, None, "DNS domain of the SRV records [stateless.test]"],
        ["host-domain", None, None, "domain of host names in vCenter when neither the birth nor "
         "dns.domain gives one [none]"],
        ["dns", None, None, "none | serve (authoritative zone) | update (RFC 2136) [none]"],
        ["dns-listen", None, None, "address:port of the served zone, UDP and TCP [127.0.0.1:8553]"],
        ["dns-server", None, None, "address:port of the primary taking updates"],
        ["tsig-key-file", None, None, "TSIG key file for updates"],
        ["dns-refresh", None, None, "seconds between refreshes of the registered records [300]"],
        ["mode", None, None, "enforce (re-apply on change) | report (mark drifted) [enforce]"],
        ["scan-interval", None, None, "seconds between compliance scans [600]"],
        ["replica-check", None, None, "seconds between divergence checks of the --ldap "
         "replicas, 0: never [300]"],
        ["vcenter-watch", None, None, "on: vCenter pushes host changes at once; off: scans only [on]"],
        ["max-pending", None, None, "births queued before answering 429 [2000]"],
        ["max-quarantined", None, None, "hosts waiting in quarantine before answering 503 [1000]"],
        ["retry-cap", None, None, "longest wait, seconds, between retries of a failed apply [300]"],
        ["vcenter-concurrency", None, None, "hosts applied at once per vCenter [8]"],
        ["threads", None, None, "size of the blocking-call thread pool [16]"],
        ["switch-interval", None, None, "Python thread switch interval, seconds [0.05]"],
        ["secret-key-file", None, None, "key that decrypts vCenter passwords [STATE/secret.key]"],
        ["host-password-file", None, None, "root password of the hosts, for adding them"],
        ["host-events", None, None, "events kept in memory per host (/v1/hosts/UUID/events) [50]"],
        ["tftp-root", None, None, "keep pxelinux configs for the hosts in this TFTP root"],
        ["image-root", None, None, "serve image files from this directory at /boot/images/"],
        ["boot-ca-fingerprint", None, None, "SHA-256 of the API's CA, put on boot lines"],
        ["boot-module", None, None, "URL of stateless.tgz [beside the image's files]"],
        ["lease", None, None, "seconds this server's lease runs, renewed every third [30]"],
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

    def getSynopsis(self) -> str:
        return "Usage: statelessd [options]  (or: twist [twist options] statelessd [options])"

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


class Process:
    """What only the process may do: report a failed start and end with a non-zero status."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.failed = False

    def start_failed(self, failure: Any) -> None:
        from twisted.logger import Logger

        from stateless.daemon.services import start_failed

        self.failed = True
        Logger(namespace="statelessd").critical("{line}", line=start_failed(failure))
        self.reactor.callWhenRunning(self.reactor.stop)

    def exit_if_failed(self) -> None:
        """After shutdown (services stopped): a failed start ends the process with status 1."""
        if self.failed:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(START_FAILED_STATUS)


def makeService(options: Options) -> Any:
    """The service tree of `options.config`, and the process settings it runs under."""
    from twisted.internet import reactor as default_reactor

    from stateless.daemon import logbridge
    from stateless.daemon.services import build_service

    reactor: Any = default_reactor
    # A daemon that hangs can be made to tell where: SIGABRT prints every thread's stack.
    faulthandler.enable(all_threads=True)
    sys.setswitchinterval(options.config.switch_interval)  # see DaemonConfig.switch_interval
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    logbridge.install()
    root = build_service(options.config, reactor)
    process = Process(reactor)
    root.started.addCallback(settled)
    root.started.addErrback(process.start_failed)
    reactor.addSystemEventTrigger("after", "shutdown", process.exit_if_failed)
    return root


def settled(_: object) -> None:
    """Serving: what the start built (the directory's mirror and snapshot, imported code)
    stays for the life of the process, so later collections no longer walk it."""
    gc.freeze()
    gc.set_threshold(GC_DEFAULT_YOUNG, *gc.get_threshold()[1:])


def twist_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split statelessd's arguments into twist's (log format and level) and the plugin's."""
    twist = {"log-format": "text"}
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in ("--log-format", "--log-level"):
            value = value if eq else next(args, "")
            allowed = LOG_FORMATS if name == "--log-format" else LOG_LEVELS
            if value not in allowed:
                raise usage.UsageError(f"{name} {value!r}: expected {' or '.join(allowed)}")
            twist[name[2:]] = value
        else:
            rest.append(arg)
    return [f"--{k}={v}" for k, v in twist.items()], rest


def _front() -> Any:
    """`twist` itself, except that a stop by SIGTERM or SIGINT ends with status 0 (twist
    kills itself with the signal again once the reactor has stopped)."""
    from twisted.application.runner._runner import Runner
    from twisted.application.twist._twist import Twist

    class Front(Twist):
        @staticmethod
        def run(twistOptions: Any) -> None:
            Runner(reactor=twistOptions["reactor"], defaultLogLevel=twistOptions["logLevel"],
                   logFile=twistOptions["logFile"],
                   fileLogObserverFactory=twistOptions["fileLogObserverFactory"]).run()

    return Front


def main(argv: list[str] | None = None) -> None:
    """Console script `statelessd`: `twist statelessd` with text logs unless told otherwise."""
    args = sys.argv[1:] if argv is None else argv
    try:
        twist, rest = twist_arguments(args)
        if not {"--help", "-h", "--version"} & set(rest):
            Options().parseOptions(rest)  # a bad option: one line, before twist starts anything
    except usage.UsageError as exc:
        print(f"statelessd: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    _front().main(["statelessd", *twist, "statelessd", *rest])

"""Serving boot files: `/boot/ipxe`, `/boot/{uuid-or-mac}/boot.cfg`, the TFTP root, image files.

The renderers are pure (`stateless.boot`); this module answers HTTP from the engine's
current snapshot (one planner per snapshot, so a boot storm compiles the rules once) and
keeps a TFTP root in step with the directory for a TFTP server such as dnsmasq. Files in the
TFTP root are written atomically (temporary file, rename) and only when their content
changes; files it wrote before and no longer wants are removed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server, static

from stateless.boot.render import (
    AGENT_MODULE,
    PXELINUX_MARK,
    BootSettings,
    bootstrap_ipxe,
    host_bootcfg,
    host_ipxe,
    no_image_ipxe,
)
from stateless.boot.select import BootChoice, BootPlanner
from stateless.boot.tree import OWN_DIR, tftp_files
from stateless.errors import NotFoundError, StatelessError, ValidationError
from stateless.model.identity import HostIdentity, normalize_mac, normalize_uuid
from stateless.model.inventory import Server, Snapshot
from stateless.security.enroll import boot_option, valid_keys
from stateless.security.seal import KeyFileRing

log = Logger()


class BootFiles:
    """What the boot endpoints and the TFTP root answer, from the latest snapshot."""

    def __init__(self, site: str, domain: str, secret_key: Path, ca_fingerprint: str = "",
                 agent_module: str = "", now: Callable[[], datetime] | None = None,
                 me: Callable[[], Server | None] = lambda: None) -> None:
        self.site = site
        self.domain = domain
        self._keys = KeyFileRing(secret_key)  # read again only when the key file changes
        self.ca_fingerprint = ca_fingerprint
        self.agent_module = agent_module
        self.now = now or (lambda: datetime.now(UTC))
        self.me = me
        self._snapshot: Snapshot | None = None
        self._planner: BootPlanner | None = None
        self._settings: dict[str, BootSettings] = {}

    def planner(self, snapshot: Snapshot) -> BootPlanner:
        if snapshot is not self._snapshot or self._planner is None:
            self._planner = BootPlanner(snapshot, self.now(), self.site, self.me())
            self._snapshot, self._settings = snapshot, {}
        return self._planner

    def settings(self, site: str) -> BootSettings:
        """The boot-line settings of a site; a key that cannot be opened fails the boot."""
        found = self._settings.get(site)
        if found is None:
            found = self._settings[site] = self._open(site)
        return found

    def _open(self, site: str) -> BootSettings:
        base = BootSettings(domain=self.domain, ca_fingerprint=self.ca_fingerprint,
                            agent_module=self.agent_module or AGENT_MODULE)
        entry = self._snapshot.sites.get(site) if self._snapshot is not None else None
        if entry is None or not entry.enroll_keys:
            return base
        keys, errors = valid_keys(entry, self._keys())
        if not keys:
            raise StatelessError(f"site {site}: no enrollment key can be opened "
                                 f"({'; '.join(errors)}); its hosts are not booted without one")
        newest = next(k for k in sorted(entry.enroll_keys, key=lambda k: k.created, reverse=True)
                      if k.key_id in keys)
        return BootSettings(domain=base.domain, ca_fingerprint=base.ca_fingerprint,
                            agent_module=base.agent_module,
                            enroll_key=boot_option(newest.key_id, keys[newest.key_id]))


def identity_from_query(args: dict[bytes, list[bytes]]) -> HostIdentity | None:
    """The identity iPXE sent (uuid, mac, manufacturer, product, serial); None if none."""
    def get(name: str) -> str:
        values = args.get(name.encode()) or [b""]
        return values[0].decode("utf-8", "replace").strip()

    uuid, mac = get("uuid"), get("mac")
    if not uuid and not mac:
        return None
    if not uuid:
        raise ValidationError("uuid: missing; iPXE sends it as uuid=${uuid}")
    macs = (normalize_mac(mac),) if mac else ()
    return HostIdentity(normalize_uuid(uuid), serial=get("serial"), vendor=get("manufacturer"),
                        model=get("product"), macs=macs, boot_mac=macs[0] if macs else None)


def _json(request: server.Request, code: int, doc: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(doc, sort_keys=True).encode() + b"\n"


def _text(request: server.Request, body: str) -> bytes:
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return body.encode()


class BootResource(resource.Resource):
    """`/boot/...`: iPXE scripts and boot.cfg files, and `/boot/images/` when configured."""

    def __init__(self, files: BootFiles, snapshot: Callable[[], Snapshot],
                 registry: CollectorRegistry, image_root: Path | None = None) -> None:
        super().__init__()
        self.files = files
        self.snapshot = snapshot
        self.images = static.File(str(image_root)) if image_root is not None else None
        self.served = Counter("stateless_boot_requests", "boot requests answered, by kind and "
                              "outcome", ["kind", "outcome"], registry=registry)

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        if path == b"images" and self.images is not None:
            return self.images
        return _BootLeaf(self)

    def render(self, request: server.Request) -> bytes:
        return _json(request, 404, {"error": "/boot serves /boot/ipxe and "
                                             "/boot/{uuid-or-mac}/boot.cfg"})

    def base_url(self, request: server.Request) -> str:
        host = (request.getHeader(b"host") or b"").decode("ascii", "replace")
        if not host:
            own = request.getHost()
            host = f"{own.host}:{own.port}"
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{host}"

    def answer(self, request: server.Request, parts: list[str]) -> bytes:
        method = (request.method or b"").decode("ascii", "replace")
        if method not in ("GET", "HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _json(request, 405, {"error": f"{method} /boot: only GET"})
        try:
            if parts == ["ipxe"]:
                return self._ipxe(request)
            if len(parts) == 2 and parts[1] == "boot.cfg":
                return self._bootcfg(request, parts[0])
        except ValidationError as exc:
            self.served.labels(kind="request", outcome="bad").inc()
            return _json(request, 400, {"error": str(exc)})
        except NotFoundError as exc:
            return _json(request, 404, {"error": str(exc)})
        except StatelessError as exc:
            self.served.labels(kind="request", outcome="unavailable").inc()
            log.warn("boot request {uri}: {error}", uri=request.uri, error=exc)
            return _json(request, 503, {"error": str(exc)})
        return _json(request, 404, {"error": f"no such path /boot/{'/'.join(parts)[:200]}; "
                                             "/boot serves /boot/ipxe and "
                                             "/boot/{uuid-or-mac}/boot.cfg"})

    def _choose(self, identity: HostIdentity, request: server.Request) -> BootChoice:
        peer = request.getClientAddress()
        return self.files.planner(self.snapshot()).choose(identity, getattr(peer, "host", None))

    def _ipxe(self, request: server.Request) -> bytes:
        identity = identity_from_query(request.args or {})
        base = self.base_url(request)
        if identity is None:
            self.served.labels(kind="ipxe", outcome="bootstrap").inc()
            return _text(request, bootstrap_ipxe(base))
        choice = self._choose(identity, request)
        if choice.image is None:
            self.served.labels(kind="ipxe", outcome="no-image").inc()
            log.info("boot: host {uuid}: no image: {reason}", uuid=choice.uuid,
                     reason=choice.reason)
            return _text(request, no_image_ipxe(choice, self.files.settings(choice.site)))
        self.files.settings(choice.site)  # the boot.cfg it asks next must be renderable
        self.served.labels(kind="ipxe", outcome="image").inc()
        log.info("boot: host {uuid}: iPXE script for image {image} (from {source}) at {uri}",
                 uuid=choice.uuid, image=choice.image.name, source=choice.image_from,
                 uri=(request.uri or b"").decode("ascii", "replace"))
        return _text(request, host_ipxe(choice, base))

    def _bootcfg(self, request: server.Request, key: str) -> bytes:
        snapshot = self.snapshot()
        identity = self._identity_of(snapshot, key)
        choice = self._choose(identity, request)
        if choice.image is None:
            self.served.labels(kind="bootcfg", outcome="no-image").inc()
            return _json(request, 404, {"error": f"no image for host {choice.uuid}: "
                                                 f"{choice.reason}", "host": choice.uuid})
        body = host_bootcfg(choice, self.files.settings(choice.site))
        self.served.labels(kind="bootcfg", outcome="image").inc()
        return _text(request, body)

    @staticmethod
    def _identity_of(snapshot: Snapshot, key: str) -> HostIdentity:
        """A UUID, or a MAC of a known host (a MAC alone identifies no unknown host)."""
        if len(key.replace(":", "").replace("-", "")) == 12:
            mac = normalize_mac(key)
            owners = [h for h in snapshot.hosts.values()
                      if h.identity is not None and mac in h.identity.field_values("mac")]
            if len(owners) != 1:
                raise NotFoundError(f"mac {mac}: " + ("no known host has it; ask by UUID"
                                                     if not owners else
                                                     f"{len(owners)} hosts claim it; ask by UUID"))
            return owners[0].identity  # type: ignore[return-value]
        return HostIdentity(normalize_uuid(key))


class _BootLeaf(resource.Resource):
    isLeaf = True

    def __init__(self, parent: BootResource) -> None:
        super().__init__()
        self.parent = parent

    def render(self, request: server.Request) -> bytes:
        parts = [p.decode("utf-8", "replace") for p in (request.prepath or [])[1:]]
        parts += [p.decode("utf-8", "replace") for p in request.postpath or () if p]
        return self.parent.answer(request, [p for p in parts if p])


class Mount(resource.Resource):
    """The site's root: `/boot` to the boot resource, every other path to the API (a leaf)."""

    def __init__(self, api: resource.Resource, boot: resource.Resource) -> None:
        super().__init__()
        self.api = api
        self.boot = boot

    def getChildWithDefault(self, path: bytes, request: server.Request) -> resource.Resource:
        if path == b"boot":
            return self.boot
        assert request.prepath is not None and request.postpath is not None
        request.postpath.insert(0, request.prepath.pop())  # the API routes the whole path
        return self.api

    def render(self, request: server.Request) -> bytes | int:
        return self.api.render(request)


def mount(api: resource.Resource, boot: resource.Resource | None) -> resource.Resource:
    return api if boot is None else Mount(api, boot)


# --- the TFTP root -----------------------------------------------------------------------------


def _owned(path: Path) -> bool:
    """A file of ours: below stateless/, or a pxelinux config that starts with our mark."""
    try:
        with path.open("rb") as f:
            return f.read(len(PXELINUX_MARK)) == PXELINUX_MARK.encode()
    except OSError:
        return False


def write_tree(root: Path, files: dict[str, str]) -> tuple[int, int]:
    """Make `root` hold `files`: (written, removed). Unchanged files are not touched."""
    written = removed = 0
    for rel, text in files.items():
        target = root / rel
        data = text.encode()
        try:
            if target.read_bytes() == data:
                continue
        except OSError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)  # a TFTP server reads it as another user
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written += 1
    wanted = {root / rel for rel in files}
    candidates = list((root / OWN_DIR).glob("*/boot.cfg")) if (root / OWN_DIR).is_dir() else []
    config_dir = root / "pxelinux.cfg"
    if config_dir.is_dir():
        candidates += [p for p in config_dir.iterdir() if p.is_file() and _owned(p)]
    for path in candidates:
        if path not in wanted:
            path.unlink(missing_ok=True)
            removed += 1
            if path.parent.parent == root / OWN_DIR:
                with_dir = path.parent
                if not any(with_dir.iterdir()):
                    with_dir.rmdir()
    return written, removed


class TftpSync:
    """Keeps the TFTP root in step with the snapshots it is handed; one write at a time."""

    def __init__(self, root: Path, files: BootFiles, run: Callable[..., defer.Deferred[Any]]) -> None:
        self.root = root
        self.files = files
        self.run = run  # a blocking call in the daemon's thread pool
        self._latest: Snapshot | None = None
        self._busy = False
        self.synced: defer.Deferred[None] = defer.Deferred()  # fires after the first sync

    def update(self, snapshot: Snapshot) -> None:
        self._latest = snapshot
        if not self._busy:
            self._next()

    def _next(self) -> None:
        snapshot, self._latest = self._latest, None
        if snapshot is None:
            self._busy = False
            return
        self._busy = True
        d = self.run(self._sync, snapshot)
        d.addCallbacks(self._done, self._failed)

    def _sync(self, snapshot: Snapshot) -> tuple[int, int]:
        planner = self.files.planner(snapshot)
        return write_tree(self.root, tftp_files(planner, self.files.settings))

    def _done(self, counts: tuple[int, int]) -> None:
        if any(counts):
            log.info("TFTP root {root}: {written} file(s) written, {removed} removed",
                     root=str(self.root), written=counts[0], removed=counts[1])
        if not self.synced.called:
            self.synced.callback(None)
        self._next()

    def _failed(self, failure: Any) -> None:
        log.error("TFTP root {root} not updated: {error}", root=str(self.root),
                  error=failure.getErrorMessage())
        self._next()


__all__ = ["BootFiles", "BootResource", "Mount", "TftpSync", "identity_from_query", "mount",
           "write_tree"]


def start_boot(config: Any, snapshot: Callable[[], Snapshot], registry: CollectorRegistry,
               run: Callable[..., defer.Deferred[Any]],
               url: Callable[[], str]) -> tuple[BootResource, TftpSync | None]:
    """The /boot resource and, with --tftp-root, the TFTP root's sync (first sync started);
    `url()` is this server's API URL once it listens."""
    def me() -> Server | None:
        return Server(config.name, config.site, url()) if url() else None

    def files() -> BootFiles:
        return BootFiles(config.site, config.domain, config.secret_key,
                         config.boot_ca_fingerprint.lower(), config.boot_module, me=me)

    boot = BootResource(files(), snapshot, registry, config.image_root)
    tftp = None
    if config.tftp_root is not None:
        config.tftp_root.mkdir(parents=True, exist_ok=True)
        tftp = TftpSync(config.tftp_root, files(), run)  # its own planner: it runs in a thread
        tftp.update(snapshot())
    return boot, tftp

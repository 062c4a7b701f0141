"""Which image, location, site and servers a booting host gets (pure).

Image precedence: the nearest container up the host's location chain that has an image
assigned (`stateless image assign`), else the image of the first deploy rule that gives one.
Containers win so that assigning or rolling back a cluster's image changes exactly the hosts
placed there. What cannot be read (a rule that does not compile, an unreadable rules branch,
a missing image entry) leaves the host without an image: it is told why and retries later,
never booted from a guess.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from stateless.errors import ValidationError
from stateless.federation import covering_sites, is_live
from stateless.model.identity import HostIdentity
from stateless.model.inventory import Container, Image, Scope, Server, Snapshot, path_chain, str_tuple
from stateless.rules import CompiledRules, RuleError, compile_rules
from stateless.sites import site_of


@attrs.frozen
class BootChoice:
    """The outcome for one host; `image` None means "no image", and `reason` says why."""

    uuid: str
    known: bool
    image: Image | None
    image_from: str  # "container /DC1/Prod", "rule NAME" or ""
    location: str | None
    site: str
    servers: tuple[str, ...] = attrs.field(converter=str_tuple)
    reason: str = ""


def assigned_image(snapshot: Snapshot, location: str | None) -> tuple[str, str] | None:
    """(image name, container path) of the nearest container up the chain assigning one; a
    host with no location yet has the root's (the default image of every host)."""
    for path in reversed(path_chain(location or "/")):
        container = snapshot.containers.get(path)
        if container is not None and container.image:
            return container.image, path
    return None


def assigned(current: Container, name: str) -> tuple[str, str | None]:
    """(image, previous image) after assigning `name`: the assignment it replaces is kept."""
    if current.image == name:
        return name, current.previous_image  # assigning again loses nothing
    return name, current.image


def rolled_back(current: Container) -> tuple[str | None, str | None]:
    """(image, previous image) after a rollback: the previous one again, and the current one
    kept as previous, so a second rollback undoes the first."""
    if current.previous_image is None:
        raise ValidationError(f"container {current.path}: no previous image to roll back to "
                              f"(current: {current.image or 'none'})")
    return current.previous_image, current.image


def reboot_required(wanted: BootChoice, booted: str | None) -> bool:
    """The host runs another image than the one it would boot now (`booted` None: unknown,
    which never asks for a reboot)."""
    now = wanted.image.name if wanted.image is not None else None
    return booted is not None and booted != now


class BootPlanner:
    """Built once per snapshot (rules compiled, sites' servers listed), asked once per boot."""

    def __init__(self, snapshot: Snapshot, now: datetime, home_site: str,
                 me: Server | None = None) -> None:
        """`me`: the answering server, counted live even before its own entry is in the
        snapshot (just after it starts)."""
        self.snapshot = snapshot
        self.home_site = home_site
        self.rules: CompiledRules | None = None
        self.rules_problem = ""
        unread = snapshot.blocking.get((Scope.RULES, ""))
        if unread:
            self.rules_problem = f"deploy rules cannot be read: {unread[0]}"
        else:
            try:
                self.rules = compile_rules(snapshot.rules)
            except RuleError as exc:
                self.rules_problem = f"deploy rules cannot be used: {exc}"
        live: dict[str, list[Server]] = {}
        servers = dict(snapshot.servers)
        if me is not None:
            servers.setdefault(me.name, me)
        for server in sorted(servers.values(),
                             key=lambda s: (s.priority, -s.weight, s.name)):
            if is_live(server, now):
                live.setdefault(server.site, []).append(server)
        self._live = live
        self._covered_by = covering_sites(snapshot, now)

    def servers_for(self, site: str) -> tuple[str, ...]:
        """URLs of the site's live servers, then those of the site covering it."""
        urls = [s.url for s in self._live.get(site, ())]
        cover = self._covered_by.get(site)
        if cover is not None:
            urls += [s.url for s in self._live.get(cover, ())]
        return tuple(dict.fromkeys(urls))

    def site_for(self, identity: HostIdentity, peer: str | None) -> str:
        sites = self.snapshot.sites.values()
        for address in (identity.ipv4, peer):
            if address:
                try:
                    found = site_of(sites, address)
                except ValueError:
                    found = None
                if found:
                    return found
        return self.home_site

    def choose(self, identity: HostIdentity, peer: str | None = None) -> BootChoice:
        """Image, location, site and servers of the host with this identity."""
        record = self.snapshot.hosts.get(identity.uuid)
        if record is not None and record.identity is not None:
            identity = record.identity  # what it said at birth beats what firmware sends
        site = self.site_for(identity, peer)
        servers = self.servers_for(site)
        base = dict(uuid=identity.uuid, known=record is not None, site=site, servers=servers)
        if self.rules is None:
            return BootChoice(image=None, image_from="", location=None,
                              reason=self.rules_problem, **base)  # type: ignore[arg-type]
        result = self.rules.evaluate(identity)
        location = (record.location if record is not None else None) or result.location
        assigned = assigned_image(self.snapshot, location)
        if assigned is not None:
            name, source = assigned[0], f"container {assigned[1]}"
        elif result.image:
            name, source = result.image, f"rule {result.matched['image']}"
        else:
            return BootChoice(image=None, image_from="", location=location,
                              reason="no deploy rule or container gives this host an image",
                              **base)  # type: ignore[arg-type]
        image = self.snapshot.images.get(name)
        if image is None:
            return BootChoice(image=None, image_from=source, location=location,
                              reason=f"image {name} (from {source}) is not in ou=images; "
                                     "import it with `stateless image import`",
                              **base)  # type: ignore[arg-type]
        return BootChoice(image=image, image_from=source, location=location,
                          **base)  # type: ignore[arg-type]


__all__ = ["BootChoice", "BootPlanner", "assigned", "assigned_image", "reboot_required", "rolled_back"]

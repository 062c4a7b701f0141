"""Federated daemons against a real 3-provider mesh and two vCenter simulators: each daemon
applies only its vCenter's hosts, an edit on one provider reaches a daemon attached to another,
and a killed daemon's hosts are taken over after its lease runs out, never applied by two."""

from __future__ import annotations

import io
import itertools
import json
import re
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import attrs
import ldap3
import pytest

from stateless.cli import main
from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE, EmbeddedDirectory
from stateless.directory.secrets import encrypt_password
from stateless.model.inventory import Server, VCenter
from tests.integration.fixtures_daemon import (
    Daemon,
    Estate,
    births,
    hosts_by_name,
    identity,
    load_estate,
    ntp_servers,
    states,
    wait_for,
    wait_states,
)
from tests.integration.fixtures_slapd import Mesh, Slapd
from tests.integration.fixtures_vcsim import Vcsim

_bases = itertools.count(1)
LEASE = "3"  # seconds: short, so a takeover happens within the test
TAKEN = re.compile(r"host (\S+): now owned by \S+ \(was \S+\): taken from (\S+) by (\S+) at (\S+); "
                   r"the lease of \S+ ran out at (\S+)")


def slapd_of(mesh: Mesh, node: EmbeddedDirectory, base: str) -> Slapd:
    return Slapd(node.url, mesh.bind_dn, mesh.providers[0].password_file, base, node.data_dir)


@attrs.frozen
class Federation:
    mesh: Mesh
    estate: Estate
    key_file: Path

    @property
    def base(self) -> str:
        return self.estate.base

    def slapd(self, provider: int) -> Slapd:
        return slapd_of(self.mesh, self.mesh.providers[provider - 1], self.base)

    def cli(self, *argv: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        status = main(list(argv), out=out, err=err,
                      environ={k: v for k, v in self.estate.env.items() if k.startswith("STATELESS_")})
        assert status == 0, err.getvalue()
        return out.getvalue()

    def name_vcenter(self, path: str, vcenter: str) -> None:
        """Set a container's vCenter on provider 1 with a plain modify."""
        d = self.estate.directory
        d.modify(d.container_dn(path), {"statelessVCenterName": [(ldap3.MODIFY_REPLACE, [vcenter])]},
                 f"name the vCenter of {path}")

    def register(self, name: str, sim: Vcsim) -> None:
        self.estate.directory.add_vcenter(VCenter(name, sim.url, sim.user,
                                                  encrypt_password(sim.password, self.key_file)))

    def server(self, name: str, site: str, vcenters: tuple[str, ...]) -> None:
        self.estate.directory.add_server(Server(name, site, "http://127.0.0.1:1", vcenters))

    def replicated(self, dn: str) -> None:
        self.mesh.wait_everywhere(dn, lambda url: self.mesh.read(url, dn, "objectClass") is not None)

    def daemon(self, start: Callable[..., Daemon], tmp_path: Path, name: str, site: str,
               provider: int) -> Daemon:
        return start(tmp_path / name, self.slapd(provider), self.base, self.key_file, name=name,
                     site=site, extra=("--lease", LEASE, "--scan-interval", "600"))


@pytest.fixture
def federation(slapd_mesh: Mesh, vcsim_factory: Callable[..., Vcsim], tmp_path: Path) -> Federation:
    base = f"ou=fd{next(_bases)},{DEFAULT_BASE}"
    key_file = tmp_path / "secret.key"
    sim = vcsim_factory("-dc", "0")
    estate = load_estate(slapd_of(slapd_mesh, slapd_mesh.providers[0], base), base, sim, key_file)
    return Federation(slapd_mesh, estate, key_file)


def names_in(sim: Vcsim) -> set[str]:
    si = sim.connect()
    found = hosts_by_name(si)
    assert all(len(v) == 1 for v in found.values()), found  # no host added twice
    return set(found)


def ntp_everywhere(sim: Vcsim, names: set[str], wanted: list[str]) -> bool:
    si = sim.connect()
    found = hosts_by_name(si)
    return all(n in found and ntp_servers(found[n][0]) == wanted for n in names)


def test_each_vcenter_gets_only_its_hosts_and_an_edit_on_provider_1_reaches_provider_3(
        federation: Federation, vcsim_factory: Callable[..., Vcsim], daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    f = federation
    sim_a, sim_b = f.estate.vcsim, vcsim_factory("-dc", "0")
    f.register("vc2", sim_b)
    f.cli("container", "add", "/DC2", "--kind", "datacenter")
    f.cli("container", "add", "/DC2/ClusterC", "--kind", "cluster")
    f.cli("rules", "add", "lab-dc2", "--order", "15", "--match", "ipv4=10.2.0.0/16",
          "--location", "/DC2/ClusterC")
    f.name_vcenter("/DC1", "vc1")
    f.name_vcenter("/DC2", "vc2")
    f.server("dA", "siteA", ("vc1",))
    f.server("dB", "siteB", ("vc2",))
    f.replicated(f.estate.directory.named_dn("servers", "dB"))
    d_a = f.daemon(daemons, tmp_path, "dA", "siteA", provider=3)
    d_b = f.daemon(daemons, tmp_path, "dB", "siteB", provider=2)

    ids_a = [identity(n, "siteA") for n in (1, 2, 3)]
    ids_b = [identity(n, "siteB") for n in (11, 12, 13)]
    assert births(d_a, ids_a) == [202] * 3 and births(d_b, ids_b) == [202] * 3
    wait_states(d_a, [i["uuid"] for i in ids_a])
    wait_states(d_b, [i["uuid"] for i in ids_b])
    names_a = {f"{i['hostname']}.example.com" for i in ids_a}
    names_b = {f"{i['hostname']}.example.com" for i in ids_b}
    assert names_in(sim_a) == names_a and names_in(sim_b) == names_b
    # dA shows dB's hosts as owned elsewhere, and the other way round
    seen = wait_for(lambda: (s := states(d_a)) and all(s.get(i["uuid"], {}).get("owner") == "dB"
                                                      for i in ids_b) and s, what="dB's hosts on dA")
    assert all(seen[i["uuid"]]["owner"] == "dA" for i in ids_a)

    # An edit on provider 1: applied by dA (attached to provider 3) and dB (provider 2).
    with Directory([f.mesh.providers[0].url], f.mesh.bind_dn, f.mesh.password, base=f.base) as p1:
        p1.policy_set("Baseline", {"ntp.servers": "10.9.9.9"})
    wait_for(lambda: ntp_everywhere(sim_a, names_a, ["10.9.9.9"]), 60, what="the edit in vc1")
    wait_for(lambda: ntp_everywhere(sim_b, names_b, ["10.9.9.9"]), 60, what="the edit in vc2")
    assert names_in(sim_a) == names_a and names_in(sim_b) == names_b

    # A host whose vCenter nobody serves is reported, not silently skipped.
    f.register("vc3", sim_b)
    f.name_vcenter("/DC2", "vc3")
    wait_for(lambda: d_b.get("/healthz").get("vcenters") == ["vc1", "vc2", "vc3"]
             and f.mesh.read(f.mesh.providers[1].url, f.estate.directory.container_dn("/DC2"),
                             "statelessVCenterName") == ["vc3"], what="vc3 on provider 2")
    lone = identity(14, "siteB")
    assert births(d_b, [lone]) == [202]
    failed = wait_states(d_b, [lone["uuid"]], "failed")[lone["uuid"]]
    assert "vCenter vc3, which server dB does not serve (no server serves it)" in failed["reason"]
    assert f"{lone['hostname']}.example.com" not in names_in(sim_b) | names_in(sim_a)


def _taken(daemon: Daemon) -> dict[str, tuple[str, datetime, datetime]]:
    """host -> (old owner, when taken, when the old owner's lease ran out), from the log."""
    out = {}
    for found in TAKEN.finditer(daemon.log.read_text(errors="replace")):
        host, old, new, at, expired = found.groups()
        if new == daemon.name:
            out[host] = (old, datetime.fromisoformat(at), datetime.fromisoformat(expired))
    return out


def test_a_killed_daemons_hosts_are_taken_over_after_its_lease_and_never_applied_twice(
        federation: Federation, daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    f = federation
    sim = f.estate.vcsim
    f.name_vcenter("/DC1", "vc1")
    f.server("dA1", "siteA", ("vc1",))
    f.server("dA2", "siteA", ("vc1",))
    f.replicated(f.estate.directory.named_dn("servers", "dA2"))
    first = f.daemon(daemons, tmp_path, "dA1", "siteA", provider=3)
    second = f.daemon(daemons, tmp_path, "dA2", "siteA", provider=2)
    ids = [identity(n, "siteA") for n in (21, 22, 23, 24)]
    uuids = [i["uuid"] for i in ids]
    assert births(first, ids) == [202] * 4
    wait_states(first, uuids)
    killed = datetime.now(UTC)
    first.stop(signal.SIGKILL)

    def all_taken() -> bool:
        s = states(second)
        return all(s.get(u, {}).get("owner") == "dA2" and s[u]["state"] == "compliant"
                   for u in uuids)

    wait_for(all_taken, 60, what="dA2 owning dA1's hosts")
    expiry = f.estate.directory.snapshot().servers["dA1"].lease_expiry
    assert expiry is not None and expiry > killed  # dA1 held its lease when it died
    taken = _taken(second)
    assert sorted(taken) == sorted(uuids)
    for old, at, expired in taken.values():
        assert old == "dA1" and abs((expired - expiry).total_seconds()) < 0.001
        assert at > expired  # taken only after the lease ran out: never two owners at once
    # dA2 applied none of them before it took them (its log, in order)
    log = second.log.read_text(errors="replace")
    for uuid in uuids:
        taken_at = log.index(f"host {uuid}: now owned by dA2 (was dA1)")
        assert f"host {uuid}: applied through" not in log[:taken_at]

    # Later edits are applied by the daemon that took the hosts over.
    names = {f"{i['hostname']}.example.com" for i in ids}
    with Directory([f.mesh.providers[0].url], f.mesh.bind_dn, f.mesh.password, base=f.base) as p1:
        p1.policy_set("Baseline", {"ntp.servers": "10.8.8.8"})
    wait_for(lambda: ntp_everywhere(sim, names, ["10.8.8.8"]), 60, what="the edit after takeover")
    assert names_in(sim) == names


def test_a_daemon_that_cannot_renew_its_lease_fences_itself_until_it_can(
        slapd: Slapd, base: str, vcsim_factory: Callable[..., Vcsim],
        daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    sim = vcsim_factory("-dc", "0")
    estate = load_estate(slapd, base, sim, tmp_path / "secret.key")
    daemon = daemons(tmp_path / "d", slapd, base, tmp_path / "secret.key", name="dF",
                     site="siteA", extra=("--lease", LEASE))
    ident = identity(41, "siteA")
    assert births(daemon, [ident]) == [202]
    wait_states(daemon, [ident["uuid"]])
    assert daemon.get("/healthz")["lease"]["live"]

    # The directory is up but refuses the renewal (the server's entry is gone): fenced.
    entry = estate.directory.snapshot().servers["dF"]
    estate.directory.delete_entry(estate.directory.named_dn("servers", "dF"))
    fenced = wait_for(lambda: (r := daemon.request("GET", "/healthz"))[0] == 503 and r,
                      what="the daemon fenced")
    doc = json.loads(fenced[2])
    assert doc["lease"]["fenced"] and doc["reason"].startswith("fenced: the lease ran out")
    assert "no such entry" in doc["reason"]
    # An edit reaches the daemon but no apply starts while it is fenced.
    estate.directory.policy_set("Baseline", {"ntp.servers": "10.7.7.7"})
    wait_for(lambda: "10.7.7.7" in json.dumps(daemon.get(f"/v1/hosts/{ident['uuid']}/effective"))
             and daemon.metrics().get("stateless_queue", 0) >= 1, what="the edit queued")
    name = f"{ident['hostname']}.example.com"
    assert not ntp_everywhere(sim, {name}, ["10.7.7.7"])
    assert daemon.get(f"/v1/hosts/{ident['uuid']}")["state"] == "compliant"

    # The entry back: the next renewal lifts the fence and the edit is applied.
    estate.directory.add_server(entry)
    wait_for(lambda: daemon.request("GET", "/healthz")[0] == 200, what="the fence lifted")
    wait_for(lambda: ntp_everywhere(sim, {name}, ["10.7.7.7"]), 60, what="the edit applied")
    log = daemon.log.read_text(errors="replace")
    assert "fenced: the lease ran out" in log and "renewed until" in log

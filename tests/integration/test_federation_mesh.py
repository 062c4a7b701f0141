"""Daemons on a replicated directory: a partition healed, and a site behind a chaining consumer.

Real slapd providers (and a consumer), the simulator, real statelessd processes; hosts are
checked in vCenter with pyvmomi and in each replica with ldap3.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stateless.cli import main
from stateless.directory.client import Directory
from stateless.directory.embedded import ROOT_DN, EmbeddedDirectory
from stateless.errors import StatelessError
from tests.integration.fixtures_daemon import (
    Daemon,
    identity,
    load_estate,
    ntp_servers,
    one_host,
    vlan,
    wait_for,
    wait_states,
)
from tests.integration.fixtures_federation import PAIR_BASE, Pair
from tests.integration.fixtures_slapd import Slapd
from tests.integration.fixtures_vcsim import Vcsim
from tests.ports import free_port

SITE_A = [identity(n, "siteA") for n in (1, 2)]  # ClusterA
SITE_B = [identity(n, "siteB") for n in (11, 12)]  # ClusterB


def health(daemon: Daemon) -> Any:
    _, _, body = daemon.request("GET", "/healthz")
    return json.loads(body)


def cli(pair: Pair, tmp_path: Path, *argv: str) -> tuple[int, str]:
    password = tmp_path / "pw"
    password.write_text(pair.password)
    out, err = io.StringIO(), io.StringIO()
    code = main(["--ldap", f"{pair.local.url},{pair.remote.url}", "--bind-dn", ROOT_DN,
                 "--password-file", str(password), "--base", PAIR_BASE, *argv],
                out=out, err=err, environ={})
    return code, out.getvalue() + err.getvalue()


def policy_values(directory: Directory, name: str) -> dict[str, Any]:
    return dict(directory.snapshot().policies[name].settings)


def hosts_show(si: Any, idents: list[dict[str, Any]], ntp: list[str],
               vlans: dict[str, int]) -> bool:
    for ident in idents:
        host = one_host(si, ident)
        if ntp_servers(host) != ntp or any(vlan(host, pg) != v for pg, v in vlans.items()):
            return False
    return True


def vcenters_of(directory: Directory) -> set[str]:
    """The vCenters a replica holds; none while it has not received the base yet."""
    try:
        return set(directory.snapshot().vcenters)
    except StatelessError:
        return set()


def estate_on(pair: Pair, sim: Vcsim, tmp_path: Path) -> Directory:
    load_estate(pair.slapd(pair.local), PAIR_BASE, sim, tmp_path / "secret.key")
    local, remote = pair.directory(pair.local), pair.directory(pair.remote)
    wait_for(lambda: vcenters_of(remote) == vcenters_of(local) != set(),
             what="the estate replicated to the second provider")
    return local


def test_partition_edits_on_both_sides_heal_and_hosts_follow_the_converged_directory(
        pair: Pair, vcsim_factory: Callable[..., Vcsim], daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    sim = vcsim_factory("-dc", "0")
    local = estate_on(pair, sim, tmp_path)
    remote = pair.directory(pair.remote)
    key = tmp_path / "secret.key"
    a = daemons(tmp_path / "a", pair.slapd(pair.local, f"{pair.local.url},{pair.remote.url}"),
                PAIR_BASE, key, name="sdA", site="siteA", extra=("--replica-check", "1"))
    b = daemons(tmp_path / "b", pair.slapd(pair.remote, f"{pair.remote.url},{pair.local.url}"),
                PAIR_BASE, key, name="sdB", site="siteB", extra=("--replica-check", "1"))
    assert [a.birth(i)[0] for i in SITE_A] + [b.birth(i)[0] for i in SITE_B] == [202] * 4
    wait_states(a, [i["uuid"] for i in SITE_A])
    wait_states(b, [i["uuid"] for i in SITE_B])
    wait_for(lambda: health(a).get("directory_diverged") == 0, what="replicas agree at first")

    # Partition: each side edits, and its daemon applies what its side sees.
    pair.partition()
    local.policy_set("Network-Std", {"portgroup.Management.vlan": "11"})
    local.policy_set("Baseline", {"ntp.servers": "10.9.1.1"})
    remote.policy_set("ClusterB-Net", {"portgroup.vMotion.vlan": "25"})
    remote.policy_set("Baseline", {"ntp.servers": "10.9.2.2"})  # the same entry, later
    si = sim.connect()
    wait_for(lambda: hosts_show(si, SITE_A, ["10.9.1.1"], {"Management": 11}), timeout=60,
             what="site A's hosts with site A's edits")
    wait_for(lambda: hosts_show(si, SITE_B, ["10.9.2.2"], {"vMotion": 25, "Management": 10}),
             timeout=60, what="site B's hosts with site B's edits")
    wait_for(lambda: (health(a).get("directory_diverged") or 0) >= 3
             and (health(b).get("directory_diverged") or 0) >= 3,
             what="both daemons reporting the diverged entries")
    metric = a.metrics()["stateless_directory_diverged"]
    assert metric >= 3

    # Heal; `directory check --repair` settles whatever slapd alone does not.
    pair.heal()
    code, text = cli(pair, tmp_path, "directory", "check", "--repair", "--settle", "5")
    assert code == 0, text
    code, text = cli(pair, tmp_path, "directory", "check")
    assert code == 0, text
    converged = policy_values(local, "Baseline")
    assert converged == policy_values(remote, "Baseline")
    ntp = converged["ntp.servers"]
    assert list(ntp) in (["10.9.1.1"], ["10.9.2.2"])
    for d in (local, remote):
        assert policy_values(d, "Network-Std")["portgroup.Management.vlan"] == 11
        assert policy_values(d, "ClusterB-Net")["portgroup.vMotion.vlan"] == 25

    # Every host ends with the effective configuration of the converged directory.
    wait_for(lambda: hosts_show(si, SITE_A, list(ntp), {"Management": 11, "vMotion": 20}),
             timeout=60, what="site A's hosts converged")
    wait_for(lambda: hosts_show(si, SITE_B, list(ntp), {"Management": 11, "vMotion": 25}),
             timeout=60, what="site B's hosts converged")
    for daemon, idents in ((a, SITE_A), (b, SITE_B)):
        wait_states(daemon, [i["uuid"] for i in idents])
        wait_for(lambda d=daemon: health(d).get("directory_diverged") == 0,  # type: ignore[misc]
                 what=f"{daemon.name}: replicas agree again")
        assert daemon.metrics()["stateless_directory_diverged"] == 0
    assert a.stop() == 0 and b.stop() == 0


def test_a_daemon_behind_a_chaining_consumer_records_births_and_applies(
        pair: Pair, vcsim_factory: Callable[..., Vcsim], daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    sim = vcsim_factory("-dc", "0")
    local = estate_on(pair, sim, tmp_path)
    consumer = EmbeddedDirectory(tmp_path / "c3", port=free_port(), server_id=3,
                                 role="consumer", provider=pair.local.url,
                                 admin_password_file=pair.local.password_file)
    consumer.start()
    try:
        behind = Directory([consumer.url], ROOT_DN, pair.password, base=PAIR_BASE)
        wait_for(lambda: vcenters_of(behind) == {"vc1"},
                 what="the estate replicated to the consumer")
        slapd = Slapd(consumer.url, ROOT_DN, pair.local.password_file, PAIR_BASE, consumer.data_dir)
        d = daemons(tmp_path / "c", slapd, PAIR_BASE, tmp_path / "secret.key", name="sdC",
                    site="siteB")
        assert [d.birth(i)[0] for i in SITE_B] == [202, 202]
        wait_states(d, [i["uuid"] for i in SITE_B])
        for directory in (local, pair.directory(pair.remote), behind):  # written through
            wait_for(lambda dd=directory: all(  # type: ignore[misc]
                (h := dd.snapshot().hosts.get(i["uuid"])) is not None
                and h.owner == "sdC" and h.state is not None and h.state.value == "compliant"
                for i in SITE_B), what="births and states on every replica")
        si = sim.connect()
        assert hosts_show(si, SITE_B, ["10.1.0.123", "10.2.0.123"], {"vMotion": 21})
        # A policy edit on the provider reaches the consumer, and the daemon applies it.
        local.policy_set("ClusterB-Net", {"portgroup.vMotion.vlan": "26"})
        wait_for(lambda: hosts_show(si, SITE_B, ["10.1.0.123", "10.2.0.123"], {"vMotion": 26}),
                 timeout=60, what="the edit applied through the consumer's daemon")
        assert d.stop() == 0
    finally:
        consumer.stop()

"""A named secret serves only the kind of use it was stored for, against the real slapd,
the CLI and a daemon applying through the simulator; a rotated key file is picked up live.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from stateless.directory.client import Directory
from stateless.directory.secrets import (
    SecretKind,
    SecretResolver,
    refused_references,
    secret_context,
    set_secret,
    stored_kind,
)
from stateless.errors import NotFoundError, SecretKindError
from stateless.security import seal
from tests.integration.fixtures_daemon import Daemon, Estate, identity, wait_for, wait_states
from tests.integration.fixtures_slapd import Slapd
from tests.integration.fixtures_vcsim import Vcsim, has_password
from tests.integration.test_security_cli import Cli
from tests.integration.test_security_daemon import stateless

CHAP = "canary-chap-as-root-5d2a90"
ROOT = "canary-root-proper-81c4e7"


@pytest.fixture
def cli(slapd: Slapd, directory: Directory, tmp_path: Path) -> Cli:
    return Cli(slapd, directory, tmp_path / "secret.key")


def _raw_secret(ldapmodify: Callable[[str], None], base: str, name: str, kind: str | None,
                sealed: str) -> None:
    """A named secret added with ldapmodify, behind the CLI's back."""
    lines = [f"dn: cn={name},ou=secrets,{base}", "changetype: add", "objectClass: top",
             "objectClass: statelessSecret", f"cn: {name}", f"statelessSealed: {sealed}"]
    lines += [f"statelessSecretKind: {kind}"] if kind else []
    ldapmodify("\n".join(lines) + "\n")


def test_the_resolver_opens_a_secret_only_for_its_kind(directory: Directory,
                                                       tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    ring = seal.load_keyring(key, create=True)
    set_secret(directory, SecretKind.SNMP, "snmp-ro", "c0mm", ring)
    set_secret(directory, SecretKind.CHAP, "iscsi-chap", CHAP, ring)
    resolver = SecretResolver(directory, key)
    assert resolver("snmp-ro", "snmp.communities") == "c0mm"
    with pytest.raises(SecretKindError) as caught:
        resolver("iscsi-chap", "account.root.password")
    assert caught.value.message == (
        "account.root.password: secret iscsi-chap is stored as a chap secret, but "
        "account.root.password needs a root-password secret; store it as one with `stateless "
        "secret set root-password iscsi-chap`, or name a root-password secret in "
        "account.root.password")
    with pytest.raises(NotFoundError, match="secret none: not in the directory"):
        resolver("none", "snmp.communities")
    assert stored_kind(directory, "iscsi-chap") is SecretKind.CHAP
    assert stored_kind(directory, "none") is None


def test_a_secret_written_without_a_kind_counts_as_chap(slapd: Slapd, directory: Directory,
                                                        tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    ring = seal.load_keyring(key, create=True)

    def ldapmodify(ldif: str) -> None:
        Estate(slapd, directory.base, key, None, directory).ldapmodify(ldif)  # type: ignore[arg-type]

    _raw_secret(ldapmodify, directory.base, "old", None, ring.seal("v", secret_context("old")))
    resolver = SecretResolver(directory, key)
    assert resolver("old", "iscsi.chap.secret") == "v"
    with pytest.raises(SecretKindError, match="stored as a chap secret"):
        resolver("old", "snmp.communities")


def test_a_rotated_key_file_is_picked_up_without_a_new_resolver(cli: Cli,
                                                                directory: Directory) -> None:
    source = cli.key_file.parent / "ro.secret"
    source.write_text("c0mm-first\n")
    cli("secret", "set", "snmp", "snmp-ro", "--from-file", str(source), "--create-key")
    resolver = SecretResolver(directory, cli.key_file)
    assert resolver("snmp-ro", "snmp.communities") == "c0mm-first"
    first = seal.load_keyring(cli.key_file).newest.key_id

    cli("secret", "rotate")  # a new key in a new file; every value re-sealed with it
    source.write_text("c0mm-second\n")
    cli("secret", "set", "snmp", "snmp-ro", "--from-file", str(source))
    assert seal.load_keyring(cli.key_file).newest.key_id != first
    assert resolver("snmp-ro", "snmp.communities") == "c0mm-second"


def test_the_cli_refuses_a_reference_to_a_secret_of_another_kind(cli: Cli,
                                                                 directory: Directory) -> None:
    source = cli.key_file.parent / "chap.secret"
    source.write_text(CHAP + "\n")
    cli("secret", "set", "chap", "iscsi-chap", "--from-file", str(source), "--create-key")
    cli("secret", "set", "snmp", "snmp-ro", "--from-file", str(source))
    cli("policy", "create", "Base", "--set", "ntp.servers=10.0.0.1")

    for argv, key in (
            (("policy", "set", "Base", "account.root.password=secret:iscsi-chap"),
             "account.root.password"),
            (("policy", "set", "Base", "iscsi.chap.secret=snmp-ro"), "iscsi.chap.secret"),
            (("policy", "set", "Base", "snmp.targets=10.0.0.7/secret:iscsi-chap"), "snmp.targets"),
            (("policy", "create", "Other", "--set", "snmp.communities=secret:iscsi-chap"),
             "snmp.communities")):
        status, out, err = cli(*argv, ok=False)
        assert status == 1, out + err
        assert f"{key}: secret " in err and " is stored as a " in err, err
        assert "`stateless secret set " in err and CHAP not in out + err
    snapshot = directory.snapshot()
    assert "Other" not in snapshot.policies
    assert set(snapshot.policies["Base"].settings) == {"ntp.servers"}

    cli("container", "add", "/DC1", "--kind", "datacenter")
    uuid = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
    status, _, err = cli("host", "add", uuid, "--path", "/DC1", "--answer",
                         "account.root.password=secret:snmp-ro", ok=False)
    assert status == 1 and "needs a root-password secret" in err and uuid not in directory.snapshot().hosts
    cli("host", "add", uuid, "--path", "/DC1")
    status, _, err = cli("host", "set", uuid, "--path", "/", "--answer",
                         "snmp.communities=secret:iscsi-chap", ok=False)
    assert status == 1 and "stored as a chap secret, but snmp.communities needs" in err
    assert directory.snapshot().hosts[uuid].location == "/DC1"  # nothing written

    # the right kind, and a secret not set yet (sealed later), stay allowed
    cli("policy", "set", "Base", "iscsi.chap.secret=iscsi-chap", "snmp.communities=secret:snmp-ro",
        "account.root.password=secret:later")
    assert refused_references(directory, directory.snapshot().policies["Base"].settings) == []


def _hosts(vc: Vcsim) -> list[Any]:
    content = vc.connect().RetrieveContent()
    return list(content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem],
                                                        True).view)


def test_a_chap_secret_named_as_the_root_password_blocks_the_host(
        estate: Estate, sim: Vcsim, daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """Both written with ldapmodify: the host fails for good, saying why; root is never set."""
    ring = seal.load_keyring(estate.key_file)
    _raw_secret(estate.ldapmodify, estate.base, "esx-chap", "chap",
                ring.seal(CHAP, secret_context("esx-chap")))
    estate.ldapmodify(f"dn: cn=RootByChap,ou=policies,{estate.base}\nchangetype: add\n"
                      "objectClass: top\nobjectClass: statelessPolicy\ncn: RootByChap\n"
                      "statelessAccount: root.password=secret:esx-chap\n")
    assert stateless(estate, "policy", "link", "RootByChap", "/DC1/Prod/ClusterA")[0] == 0
    d = daemons(tmp_path / "sd1", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--birth-auth", "optional"))
    host = identity(1, "siteA")
    assert d.birth(host)[0] == 202

    failed = wait_states(d, [host["uuid"]], state="failed")[host["uuid"]]
    wait_for(lambda: d.host(host["uuid"]).get("next_try") is None,
             what="the failure taken as permanent (no retry scheduled)")
    reason = d.host(host["uuid"])["reason"]
    assert "account.root.password: secret esx-chap is stored as a chap secret" in reason, failed
    assert "`stateless secret set root-password esx-chap`" in reason
    [esx] = [h for h in _hosts(sim) if h.name.split(".")[0] == host["hostname"]]
    assert not has_password(esx, "root", CHAP)
    assert CHAP not in d.log.read_text(errors="replace")

    # the fix the message gives: store it as a root-password secret, then apply again
    source = tmp_path / "root.secret"
    source.write_text(ROOT + "\n")
    status, out, err = stateless(estate, "secret", "set", "root-password", "esx-chap",
                                 "--from-file", str(source), "--secret-key-file",
                                 str(estate.key_file))
    assert status == 0, out + err
    status, _, body = d.request("POST", f"/v1/hosts/{host['uuid']}/apply", b"")
    assert status in (200, 202), body
    wait_states(d, [host["uuid"]])
    assert has_password(esx, "root", ROOT)

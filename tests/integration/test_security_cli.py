"""`stateless enroll-key` and `stateless secret` against the real slapd; raw LDAP holds no secret."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from stateless.agent.signing import parse_enrollment_key, sign
from stateless.cli import main
from stateless.directory.client import Directory
from stateless.directory.secrets import decrypt_password, read_secret
from stateless.model.inventory import Site, VCenter
from stateless.security import seal
from stateless.security.birthauth import authenticate
from tests.integration.fixtures_slapd import Slapd

CANARY = "Canary-7f3e-password"
CHAP = "Chap-Canary-0a1b2c"


class Cli:
    def __init__(self, slapd: Slapd, directory: Directory, key_file: Path) -> None:
        self.conn = ["--ldap", slapd.url, "--bind-dn", slapd.bind_dn, "--password-file",
                     str(slapd.password_file), "--base", directory.base]
        self.key_file = key_file

    def __call__(self, *argv: str, ok: bool = True) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main([*self.conn, *argv], out=out, err=err,
                      environ={"STATELESS_SECRET_KEY_FILE": str(self.key_file)})
        if ok:
            assert status == 0, err.getvalue()
        return status, out.getvalue(), err.getvalue()


@pytest.fixture
def cli(slapd: Slapd, directory: Directory, tmp_path: Path) -> Cli:
    directory.add_site(Site("siteA", ("10.1.0.0/16",)))
    directory.add_site(Site("siteB", ("10.2.0.0/16",)))
    return Cli(slapd, directory, tmp_path / "secret.key")


def keys_of(cli: Cli, site: str, *extra: str) -> list[dict[str, str]]:
    return json.loads(cli("enroll-key", "show", site, "--json", *extra)[1])["keys"]


def test_enroll_key_rotation_keeps_two_and_reveals_only_on_request(cli: Cli,
                                                                    directory: Directory) -> None:
    status, _, err = cli("enroll-key", "rotate", "siteA", ok=False)
    assert status == 1 and "does not exist" in err  # no key file yet
    seal.load_keyring(cli.key_file, create=True)
    _, out, _ = cli("enroll-key", "show", "siteA")
    assert "no enrollment key" in out
    ids = []
    for _ in range(3):
        _, out, _ = cli("enroll-key", "rotate", "siteA")
        ids.append(re.search(r"new enrollment key (\w+)", out).group(1))  # type: ignore[union-attr]
    assert "no longer valid: " + ids[0] in out
    shown = keys_of(cli, "siteA")
    assert [k["key_id"] for k in shown] == [ids[2], ids[1]]
    assert all(set(k) == {"key_id", "created"} for k in shown)
    revealed = keys_of(cli, "siteA", "--reveal")
    assert [k["key_id"] for k in revealed] == [ids[2], ids[1]]
    assert revealed[0]["boot_option"] == "stateless.enroll-key=" + revealed[0]["secret"]
    _, table, _ = cli("enroll-key", "show", "siteA", "--reveal")
    assert revealed[0]["boot_option"] in table
    _, table, _ = cli("enroll-key", "show", "siteA")
    assert revealed[0]["secret"].split(":")[1] not in table

    # What the boot line carries authenticates against what the directory holds.
    sites = directory.snapshot().sites
    ring = seal.load_keyring(cli.key_file)
    now = int(time.time())
    for key in revealed:
        parsed = parse_enrollment_key(key["secret"])
        header = sign(b"{}", "siteA", parsed, now)
        assert authenticate(header, b"{}", sites, ring, now=now).key_id == key["key_id"]
    status, _, err = cli("enroll-key", "rotate", "nowhere", ok=False)
    assert status == 1 and "site nowhere: not found" in err


def ldap_dump(slapd: Slapd, base: str) -> str:
    """Every entry and attribute of the subtree, as the directory's admin sees it (ldapsearch)."""
    proc = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.url, "-D",
                           slapd.bind_dn, "-y", str(slapd.password_file), "-b", base, "*", "+"],
                          capture_output=True, text=True, check=True)
    return proc.stdout


def _decoded(dump: str) -> str:
    """The dump with base64 (`attr:: value`) values decoded too."""
    extra = []
    for line in dump.splitlines():
        if ":: " in line:
            extra.append(base64.b64decode(line.split(":: ", 1)[1]).decode("utf-8", "replace"))
    return dump + "\n".join(extra)


def canaries(dump: str) -> list[str]:
    text = _decoded(dump)
    found = [c for c in (CANARY, CHAP) if c in text]
    found += [c for c in (CANARY, CHAP) if base64.b64encode(c.encode()).decode()[:16] in text]
    return found


def test_secrets_are_sealed_and_raw_ldap_shows_no_canary(cli: Cli, slapd: Slapd,
                                                         directory: Directory, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    directory.add_vcenter(VCenter("vc1", "https://vc1.example.com/sdk", "svc"))
    secret_file = tmp_path / "vc.pw"
    secret_file.write_text(CANARY + "\n")
    status, _, err = cli("secret", "set", "vcenter", "vc1", "--from-file", str(secret_file),
                         ok=False)
    assert status == 1 and "does not exist" in err
    _, out, _ = cli("secret", "set", "vcenter", "vc1", "--from-file", str(secret_file),
                    "--create-key")
    assert "created secret key file" in out and CANARY not in out
    monkeypatch.setattr("sys.stdin", io.StringIO(CHAP + "\n"))
    _, out, _ = cli("secret", "set", "chap", "iscsi-chap")
    assert CHAP not in out
    cli("enroll-key", "rotate", "siteA")
    status, _, err = cli("secret", "set", "vcenter", "vc9", "--from-file", str(secret_file),
                         ok=False)
    assert status == 1 and "not registered" in err and CANARY not in err
    status, _, err = cli("secret", "set", "chap", "x", CANARY, ok=False)
    assert status == 2 and "unrecognized arguments" in err  # never from the command line

    dump = ldap_dump(slapd, directory.base)
    assert "aesgcm:" in dump and canaries(dump) == []
    vc = directory.snapshot().vcenters["vc1"]
    assert decrypt_password(vc.password, cli.key_file) == CANARY
    assert read_secret(directory, "iscsi-chap", seal.load_keyring(cli.key_file)) == ("chap", CHAP)
    _, listed, _ = cli("vcenter", "list", "--json")
    assert json.loads(listed)[0]["password"] == "encrypted" and CANARY not in listed


def test_rotate_reseals_every_value(cli: Cli, slapd: Slapd, directory: Directory,
                                    tmp_path: Path) -> None:
    directory.add_vcenter(VCenter("vc1", "https://vc1/sdk", "svc"))
    pw = tmp_path / "pw"
    pw.write_text(CANARY)
    cli("secret", "set", "vcenter", "vc1", "--from-file", str(pw), "--create-key")
    cli("secret", "set", "snmp", "ro-community", "--from-file", str(pw))
    cli("enroll-key", "rotate", "siteA")
    before = keys_of(cli, "siteA", "--reveal")
    first = seal.load_keyring(cli.key_file).newest.key_id

    _, out, _ = cli("secret", "rotate")
    newest = seal.load_keyring(cli.key_file).newest.key_id
    assert newest != first and "re-sealed 3 value(s)" in out
    dump = ldap_dump(slapd, directory.base)
    assert f"aesgcm:{first}:" not in dump and dump.count(f"aesgcm:{newest}:") == 3
    assert canaries(dump) == []
    assert decrypt_password(directory.snapshot().vcenters["vc1"].password, cli.key_file) == CANARY
    assert keys_of(cli, "siteA", "--reveal") == before  # the enrollment key itself is unchanged
    _, out, _ = cli("secret", "rotate", "--reseal")
    assert "re-sealed 0 value(s)" in out and "3 already were" in out

    # A server still holding only the old key file cannot open the new values, and says why.
    old_only = seal.KeyRing([k for k in seal.load_keyring(cli.key_file).keys if k.key_id == first])
    with pytest.raises(seal.SecretError, match=f"sealed with key {newest}"):
        old_only.unseal(directory.snapshot().vcenters["vc1"].password, "statelessPassword")


def test_values_of_earlier_versions_are_resealed(cli: Cli, slapd: Slapd, directory: Directory) -> None:
    legacy = Fernet.generate_key()
    cli.key_file.write_bytes(legacy + b"\n")
    old_value = "fernet:" + Fernet(legacy).encrypt(CANARY.encode()).decode()
    directory.add_vcenter(VCenter("vc1", "https://vc1/sdk", "svc", old_value))
    directory.add_vcenter(VCenter("vc2", "https://vc2/sdk", "svc", "clear-" + CANARY))
    assert decrypt_password(old_value, cli.key_file) == CANARY  # still opens before rotation
    status, _, err = cli("enroll-key", "rotate", "siteA", ok=False)
    assert status == 1 and "secret rotate" in err  # the old key file seals nothing

    _, out, _ = cli("secret", "rotate")
    assert "re-sealed 2 value(s)" in out
    vcenters = directory.snapshot().vcenters
    assert vcenters["vc1"].password.startswith("aesgcm:")
    assert decrypt_password(vcenters["vc1"].password, cli.key_file) == CANARY
    assert decrypt_password(vcenters["vc2"].password, cli.key_file) == "clear-" + CANARY
    assert legacy.decode() in cli.key_file.read_text()  # kept: backups may still hold fernet values
    assert canaries(ldap_dump(slapd, directory.base)) == []


def test_a_value_that_cannot_be_resealed_is_reported_and_the_rest_go_on(
        cli: Cli, directory: Directory, tmp_path: Path) -> None:
    directory.add_vcenter(VCenter("vc1", "https://vc1/sdk", "svc"))
    pw = tmp_path / "pw"
    pw.write_text(CANARY)
    cli("secret", "set", "vcenter", "vc1", "--from-file", str(pw), "--create-key")
    foreign = seal.load_keyring(tmp_path / "foreign.key", create=True)
    directory.add_vcenter(VCenter("vc2", "https://vc2/sdk", "svc",
                                  foreign.seal(CANARY, "statelessPassword")))
    status, out, err = cli("secret", "rotate", ok=False)
    assert status == 1 and "1 value(s) could not be re-sealed" in err
    assert "re-sealed 1 value(s)" in out and "cn=vc2" in out and CANARY not in out + err


def test_other_outputs_never_show_a_secret_value(cli: Cli, directory: Directory) -> None:
    cli("policy", "create", "Snmp", "--set", "snmp.communities=secret:Canary-Community",
        "--set", "snmp.targets=10.0.0.7:162/secret:Canary-Community", "--set", "ntp.servers=10.0.0.1")
    cli("container", "add", "/DC1", "--kind", "datacenter")
    cli("policy", "link", "Snmp", "/DC1")
    uuid = "4c4c4544-0042-3510-8052-b4c04f4b4e31"
    cli("host", "add", uuid, "--path", "/DC1", "--answer", "snmp.communities=secret:Canary-Answer")
    outputs = [cli("policy", "show", "Snmp")[1], cli("policy", "show", "Snmp", "--json")[1],
               cli("rsop", uuid)[1], cli("rsop", uuid, "--json")[1],
               cli("host", "show", uuid)[1], cli("host", "show", uuid, "--json")[1]]
    for text in outputs:
        assert "Canary" not in text and "<secret>" in text
    assert "10.0.0.1" in outputs[0]
    status, _, err = cli("policy", "set", "Snmp", "snmp.communities=Canary has spaces", ok=False)
    assert status == 1 and "Canary" not in err and "<secret>" in err


@pytest.mark.parametrize("argv", [
    ("policy", "create", "Clear", "--set", "snmp.communities=Canary-Clear"),
    ("policy", "create", "Clear", "--set", "snmp.targets=10.0.0.7:162/Canary-Clear"),
    ("host", "add", "4c4c4544-0042-3510-8052-b4c04f4b4e39", "--path", "/DC1",
     "--answer", "snmp.communities=Canary-Clear"),
])
def test_an_snmp_community_in_clear_is_refused_on_write(cli: Cli, slapd: Slapd, directory: Directory,
                                                       argv: tuple[str, ...]) -> None:
    cli("container", "add", "/DC1", "--kind", "datacenter")
    status, out, err = cli(*argv, ok=False)
    assert status == 1 and "stateless secret set snmp NAME" in err and "Canary" not in out + err
    dump = subprocess.run(["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", slapd.url,
                           "-D", slapd.bind_dn, "-y", str(slapd.password_file), "-b", directory.base],
                          capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and "Canary" not in dump.stdout
    assert "cn=Clear" not in dump.stdout and "4e39" not in dump.stdout

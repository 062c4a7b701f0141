"""Listing, changing and removing every kind, and the writes the directory refuses (real slapd)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stateless.directory.client import Directory
from tests.integration.test_cli import H1, H2, Run, build, cli  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]


def js(cli: Run, *argv: str) -> object:  # noqa: F811
    return json.loads(cli(*argv, "--json")[1])


def refused(cli: Run, *argv: str) -> str:  # noqa: F811
    status, out, err = cli(*argv, ok=False)
    assert status == 1 and out == "", (status, out, err)
    assert err.count("\n") == 1, err
    return err


def test_sites_and_site_links_crud(cli: Run) -> None:  # noqa: F811
    cli("site", "add", "siteA", "--subnet", "10.1.0.0/16")
    cli("site", "add", "siteB", "--subnet", "10.2.0.0/16")
    cli("site", "add", "branch", "--subnet", "10.1.5.0/24")  # more specific inside siteA: allowed
    assert "is already site siteA's" in refused(cli, "site", "add", "dup", "--subnet", "10.1.0.0/16")
    assert "is already site siteB's" in refused(cli, "site", "set", "branch", "--subnet",
                                                "10.2.0.0/16")
    cli("site", "link", "siteA", "siteB", "--cost", "10")
    assert "relinked" in cli("site", "link", "siteB", "siteA", "--cost", "20")[1]
    shown = js(cli, "site", "show", "siteA")
    assert shown["links"] == [{"a": "siteA", "b": "siteB", "cost": 20}]  # type: ignore[index]
    cli("site", "set", "branch", "--subnet", "10.1.6.0/24", "--description", "Branch office")
    assert js(cli, "site", "show", "branch")["subnets"] == ["10.1.6.0/24"]  # type: ignore[index]
    cli("server", "add", "sd1", "--site", "siteB", "--url", "http://127.0.0.1:8080")
    err = refused(cli, "site", "delete", "siteB")
    assert "servers sd1 belong to it" in err and "`stateless server delete NAME`" in err
    cli("server", "delete", "sd1")
    assert "site link(s) siteA-siteB" in cli("site", "delete", "siteB")[1]
    assert js(cli, "site", "list")["links"] == []  # type: ignore[index]
    cli("site", "link", "siteA", "branch", "--cost", "5")
    cli("site", "unlink", "branch", "siteA")
    assert "not linked" in refused(cli, "site", "unlink", "branch", "siteA")
    assert "site nope: not in the directory" in refused(cli, "site", "show", "nope")


def test_servers_crud_and_validation(cli: Run) -> None:  # noqa: F811
    cli("site", "add", "siteA", "--subnet", "10.1.0.0/16")
    err = refused(cli, "server", "add", "sd1", "--site", "siteZ", "--url", "http://10.1.0.5:8080")
    assert "site siteZ does not exist" in err and "`stateless site add siteZ --subnet CIDR`" in err
    err = refused(cli, "server", "add", "sd1", "--site", "siteA", "--url", "not-a-url")
    assert "server sd1 url 'not-a-url': not a http/https URL" in err
    err = refused(cli, "server", "add", "sd1", "--site", "siteA", "--url", "http://h:1",
                  "--vcenter", "vcX")
    assert "vCenter vcX is not registered" in err
    cli("server", "add", "sd1", "--site", "siteA", "--url", "http://10.1.0.5:8080")
    cli("server", "set", "sd1", "--priority", "5", "--url", "https://sd1.example.com:8443")
    shown = js(cli, "server", "show", "sd1")
    assert (shown["priority"], shown["url"]) == (5, "https://sd1.example.com:8443")  # type: ignore[index]
    assert "not a http/https URL" in refused(cli, "server", "set", "sd1", "--url", "ftp://x")
    assert [s["name"] for s in js(cli, "server", "list")] == ["sd1"]  # type: ignore[union-attr,index]
    cli("server", "delete", "sd1")
    assert js(cli, "server", "list") == []
    assert "server sd1: not in the directory" in refused(cli, "server", "delete", "sd1")


def test_vcenter_url_show_set_delete(cli: Run, tmp_path: Path) -> None:  # noqa: F811
    pw = tmp_path / "vc.pw"
    pw.write_text("secret\n")
    key = ["--secret-key-file", str(tmp_path / "k"), "--create-key"]
    err = refused(cli, "vcenter", "add", "vc1", "--url", "not-a-url", "--user", "u",
                  "--password-file", str(pw), *key)
    assert "vCenter vc1 url 'not-a-url'" in err
    cli("vcenter", "add", "vc1", "--url", "https://vc1.example.com/sdk", "--user", "u",
        "--password-file", str(pw), *key)
    cli("vcenter", "set", "vc1", "--user", "admin", "--url", "https://vc2.example.com/sdk")
    shown = js(cli, "vcenter", "show", "vc1")
    assert (shown["user"], shown["url"], shown["password"]) == (  # type: ignore[index]
        "admin", "https://vc2.example.com/sdk", "encrypted")
    cli("container", "add", "/DC1", "--kind", "datacenter")
    assert "vCenter nope is not registered" in refused(cli, "container", "set", "/DC1",
                                                       "--vcenter", "nope")
    cli("container", "set", "/DC1", "--vcenter", "vc1")
    err = refused(cli, "vcenter", "delete", "vc1")
    assert "still named by container /DC1" in err
    cli("container", "set", "/DC1", "--no-vcenter")
    cli("vcenter", "delete", "vc1")
    assert js(cli, "vcenter", "list") == []


def test_container_hierarchy_set_show_delete(cli: Run) -> None:  # noqa: F811
    assert "a cluster cannot sit in the root" in refused(
        cli, "container", "add", "/C", "--kind", "cluster")
    assert "a folder cannot sit in the root" in refused(
        cli, "container", "add", "/F", "--kind", "folder")
    build(cli)
    assert "a folder cannot sit in a cluster" in refused(
        cli, "container", "add", "/DC1/Prod/ClusterA/F", "--kind", "folder")
    assert "a datacenter cannot sit in a folder" in refused(
        cli, "container", "add", "/DC1/Prod/DC2", "--kind", "datacenter")
    assert "parent /DC1/Nope does not exist" in refused(
        cli, "container", "add", "/DC1/Nope/C", "--kind", "cluster")
    cli("container", "set", "/DC1/Prod", "--block-inheritance", "--description", "production")
    shown = js(cli, "container", "show", "/DC1/Prod")
    assert shown["block"] is True and shown["children"] == ["/DC1/Prod/ClusterA"]  # type: ignore[index]
    cli("container", "set", "/DC1/Prod", "--no-block-inheritance")
    assert js(cli, "container", "show", "/DC1/Prod")["block"] is False  # type: ignore[index]
    err = refused(cli, "container", "delete", "/DC1/Prod")
    assert "not empty" in err and "`stateless container delete /DC1/Prod --recursive`" in err
    err = refused(cli, "container", "delete", "/DC1/Prod", "--recursive")
    assert f"hosts {H1} are placed in it" in err
    cli("host", "move", H1, "--path", "/DC1")
    out = cli("container", "delete", "/DC1/Prod", "--recursive")[1]
    assert out == "deleted container /DC1/Prod/ClusterA\ndeleted container /DC1/Prod\n"
    assert {c["path"] for c in js(cli, "container", "list")} == {"/", "/DC1"}  # type: ignore[union-attr,index]


def test_rule_references_must_exist(cli: Run) -> None:  # noqa: F811
    build(cli)
    err = refused(cli, "rules", "add", "r1", "--location", "/DC9", "--image", "nope", "--policy",
                  "NoSuch")
    assert "location /DC9 does not exist" in err and "image nope does not exist" in err
    assert "policy NoSuch does not exist" in err
    cli("rules", "add", "r1", "--location", "/DC1/Prod/ClusterA", "--policy", "Security")
    assert js(cli, "rules", "show", "r1")["policies"] == ["Security"]  # type: ignore[index]
    cli("host", "move", H1, "--path", "/DC1")
    err = refused(cli, "container", "delete", "/DC1/Prod", "--recursive")
    assert "rules r1 place hosts in it" in err
    err = refused(cli, "rules", "delete", "nope")
    assert "rule nope: not in the directory; see `stateless rules list`" in err


def test_policy_pool_references_must_exist(cli: Run) -> None:  # noqa: F811
    err = refused(cli, "policy", "create", "N", "--set", "vmknic.vMotion.ip=pool:nope")
    assert "pool nope does not exist" in err
    build(cli)
    err = refused(cli, "policy", "set", "Network", "vmknic.vMotion.ip=pool:nope")
    assert "policy Network: vmknic.vMotion.ip=pool:nope: pool nope does not exist (pools: vmo)" in err
    err = refused(cli, "policy", "set", "Baseline", "no.such.key=1")
    assert "setting no.such.key: unknown setting" in err


def test_pool_usage_and_delete(cli: Run, directory: Directory) -> None:  # noqa: F811
    build(cli)
    cli("host", "add", H2, "--path", "/DC1/Prod/ClusterA", "--answer", "dns.hostname=esx02",
        "--answer", "vmknic.vMotion.address=10.0.20.40", "--answer",
        "vmknic.vMotion.netmask=255.255.255.0")
    usage = js(cli, "pool", "show", "vmo")
    allocated = directory.snapshot().hosts[H1].allocations[0].address
    assert (usage["size"], usage["allocated"], usage["free"]) == (41, 2, 39)  # type: ignore[index]
    assert {(a["address"], a["host"]) for a in usage["addresses"]} == {  # type: ignore[index]
        (allocated, H1), ("10.0.20.40", H2)}
    assert usage["used_by"] == ["policy Network (vmknic.vMotion.ip)"]  # type: ignore[index]
    listed = cli("pool", "list")[1]
    assert "vmo" in listed and "41" in listed and "39" in listed
    assert "still used by policy Network" in refused(cli, "pool", "delete", "vmo")
    cli("policy", "unset", "Network", "vmknic.vMotion.ip")
    err = refused(cli, "pool", "delete", "vmo")
    assert f"{allocated} ({H1})" in err and "`stateless host decommission UUID --keep-entry`" in err
    assert "freed 10.0.20.40" in cli("host", "set", H2, "--unset-answer",
                                     "vmknic.vMotion.address")[1]
    assert "freed " + allocated in cli("host", "delete", H1)[1]
    assert js(cli, "pool", "show", "vmo")["allocated"] == 0  # type: ignore[index]
    cli("pool", "delete", "vmo")
    assert "pool vmo: not in the directory" in refused(cli, "pool", "show", "vmo")


def test_host_move_set_delete_and_listing(cli: Run, directory: Directory) -> None:  # noqa: F811
    build(cli)
    cli("host", "move", H1, "--path", "/DC1/Prod")
    assert js(cli, "host", "show", H1)["location"] == "/DC1/Prod"  # type: ignore[index]
    assert "location /DC9 does not exist" in refused(cli, "host", "move", H1, "--path", "/DC9")
    err = refused(cli, "host", "set", H1, "--unset-answer", "dns.domain")
    assert "no answer dns.domain" in err
    cli("host", "set", H1, "--unset-answer", "dns.hostname")
    assert "dns.hostname" not in js(cli, "host", "show", H1)["answers"]  # type: ignore[index]
    cli("rules", "add", "place", "--location", "/DC1/Prod/ClusterA")
    directory.add_host(H2)  # known, never born, placed by the rule
    hosts = {h["uuid"]: h for h in js(cli, "host", "list")}  # type: ignore[union-attr,index]
    assert hosts[H2]["location"] == "/DC1/Prod/ClusterA" and hosts[H2]["state"] == "new"
    assert "/DC1/Prod/ClusterA" in cli("host", "list")[1]
    cli("host", "delete", H2)
    assert f"host {H2}: not in the directory" in refused(cli, "host", "delete", H2)


@pytest.mark.parametrize("argv,text", [
    (["--ldap", "http://127.0.0.1:1", "site", "list"],
     "directory URL http://127.0.0.1:1: not an LDAP URL (scheme http); expected ldap://host:port"),
    (["--base", "garbage", "site", "list"], "base 'garbage': not an LDAP DN"),
])
def test_connection_mistakes_are_one_clear_line(cli: Run, argv: list[str], text: str) -> None:  # noqa: F811
    assert text in refused(cli, *argv)


def test_rules_test_all_and_repair(cli: Run, directory: Directory) -> None:  # noqa: F811
    from datetime import UTC, datetime

    from stateless.model.identity import HostIdentity

    build(cli)
    directory.record_identity(HostIdentity(H1, vendor="Dell Inc."), datetime.now(UTC))
    assert cli("rules", "test", "--all")[1] == "every known host matches the current rules\n"
    cli("rules", "add", "dell", "--match", "vendor=Dell*", "--location", "/DC1/Prod")
    status, out, _ = cli("rules", "test", "--all", "--json", ok=False)
    assert status == 3
    assert json.loads(out) == [{"host": H1, "location": "/DC1/Prod/ClusterA",
                                "rule_location": "/DC1/Prod", "image": None, "policies": [],
                                "changes": ["location /DC1/Prod/ClusterA -> /DC1/Prod (rule dell)"]}]
    out = cli("rules", "repair")[1]
    assert f"host {H1}: now at /DC1/Prod" in out and f"`stateless apply {H1}`" in out
    assert js(cli, "host", "show", H1)["location"] == "/DC1/Prod"  # type: ignore[index]
    assert cli("rules", "test", "--all")[0] == 0
    directory.set_host_state(H1, "compliant", applied_digest="sha256:old")
    status, out, _ = cli("rules", "test", "--all", ok=False)
    assert status == 3 and "effective configuration differs" in out
    assert "rules test: give --identity FILE.json or --all" in cli("rules", "test", ok=False)[2]


def test_rules_set_changes_fields_with_the_same_checks(cli: Run) -> None:  # noqa: F811
    build(cli)
    cli("rules", "add", "r1", "--match", "vendor=Dell*", "--location", "/DC1")
    cli("rules", "set", "r1", "--order", "5", "--match", "model=R650", "--policy", "Security")
    shown = js(cli, "rules", "show", "r1")
    assert (shown["order"], shown["match"], shown["location"], shown["policies"]) == (  # type: ignore[index]
        5, {"model": ["R650"]}, "/DC1", ["Security"])
    assert "image nope does not exist" in refused(cli, "rules", "set", "r1", "--image", "nope")
    cli("rules", "set", "r1", "--no-location")
    assert js(cli, "rules", "show", "r1")["location"] is None  # type: ignore[index]
    assert "rule nope: not in the directory" in refused(cli, "rules", "set", "nope", "--order", "1")


def test_files_in_utf16_and_with_a_bom_are_read(cli: Run, tmp_path: Path) -> None:  # noqa: F811
    import codecs

    estate = tmp_path / "estate.stateless"
    estate.write_bytes(codecs.BOM_UTF16_LE + "container add /DC1 --kind datacenter\r\n"
                       "rules add any --location /DC1\r\n".encode("utf-16-le"))
    assert "2 command(s)" in cli("load", str(estate))[1]
    identity = tmp_path / "id.json"
    identity.write_bytes(codecs.BOM_UTF16_LE + json.dumps({"uuid": H1}).encode("utf-16-le"))
    assert js(cli, "rules", "test", "--identity", str(identity))["location"] == "/DC1"  # type: ignore[index]
    identity.write_bytes(codecs.BOM_UTF8 + json.dumps({"uuid": H1, "macs": "00:50:56:aa:bb:cc"})
                         .encode())
    assert "field macs must be a list of strings" in refused(
        cli, "rules", "test", "--identity", str(identity))
    identity.write_text(json.dumps({"vendor": "Dell"}))
    assert "field uuid is missing" in refused(cli, "rules", "test", "--identity", str(identity))

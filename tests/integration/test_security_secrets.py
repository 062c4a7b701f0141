"""Secrets never leak: a canary in every secret, a full run, then every output is searched.

The vCenter password, the hosts' root password, a CHAP secret, an SNMP community (both as
sealed named secrets that a policy names, and that the host really receives) and the site's
enrollment key; births accepted, refused and quarantined, applies, the API's every read,
`/metrics`, the daemon's log and the whole directory as its rootDN reads it with ldapsearch.
None of them may show a canary. A community written in clear behind the CLI's back blocks
the host and shows nowhere either.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyVmomi import vim

from stateless.agent.signing import EnrollmentKey, sign
from tests.integration.fixtures_daemon import Daemon, Estate, identity, wait_for, wait_states
from tests.integration.fixtures_vcsim import Vcsim, has_password
from tests.integration.test_security_daemon import T1, T2, enroll, stateless

CANARIES = {"vcenter": "canary-vc-5b1e9d", "root-password": "canary-root-c3f0a2",
            "chap": "canary-chap-97d4e1", "snmp": "canary-snmp-2a6b8f",
            "root-setting": "canary-root-set-61d0b7"}


def _secret(where: Estate, tmp: Path, kind: str, name: str, value: str) -> None:
    source = tmp / f"{kind}.secret"
    source.write_text(value + "\n")
    status, out, err = stateless(where, "secret", "set", kind, name, "--from-file", str(source),
                                 "--secret-key-file", str(where.key_file))
    assert status == 0, out + err


def _signed(d: Daemon, doc: dict[str, object], key: EnrollmentKey) -> tuple[int, bytes]:
    body = json.dumps(doc).encode()
    status, _, answer = d.request("POST", "/v1/birth", body, {
        "Authorization": sign(body, "siteA", key, int(time.time()))})
    return status, answer


def _sealed_policy(where: Estate) -> None:
    """A policy on ClusterA that names the SNMP, CHAP and root password secrets (references,
    never values)."""
    status, out, err = stateless(
        where, "policy", "create", "Sealed", "--set", "snmp.enabled=true",
        "--set", "snmp.communities=secret:snmp-ro", "--set", "snmp.targets=10.0.0.7:162/secret:snmp-ro",
        "--set", "iscsi.enabled=true", "--set", "iscsi.chap.name=iqn.1998-01.com.vmware:esx",
        "--set", "iscsi.chap.secret=iscsi-chap", "--set", "account.root.password=secret:esx-root")
    assert status == 0, out + err
    assert stateless(where, "policy", "link", "Sealed", "/DC1/Prod/ClusterA")[0] == 0


def _hosts(vc: Vcsim) -> list[Any]:
    content = vc.connect().RetrieveContent()
    return list(content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True).view)


def _applied_in_clear(vc: Vcsim, hostname: str) -> None:
    """The applier did open the secrets: the host (and only the host) holds them in clear."""
    [esx] = [h for h in _hosts(vc) if h.name.split(".")[0] == hostname]
    snmp = esx.configManager.snmpSystem.configuration
    assert list(snmp.readOnlyCommunities) == [CANARIES["snmp"]]
    assert [t.community for t in snmp.trapTargets] == [CANARIES["snmp"]]
    hbas = esx.configManager.storageSystem.storageDeviceInfo.hostBusAdapter
    [iscsi] = [h for h in hbas if isinstance(h, vim.host.InternetScsiHba)]
    assert iscsi.authenticationProperties.chapSecret == CANARIES["chap"]
    assert has_password(esx, "root", CANARIES["root-setting"])
    assert all(CANARIES["root-setting"] not in str(v.value) for v in esx.customValue)


def test_no_secret_reaches_logs_api_metrics_or_the_directory_in_clear(
        estate: Estate, sim: Vcsim, daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    key = enroll(estate)
    _secret(estate, tmp_path, "vcenter", "vc1", CANARIES["vcenter"])
    _secret(estate, tmp_path, "chap", "iscsi-chap", CANARIES["chap"])
    _secret(estate, tmp_path, "snmp", "snmp-ro", CANARIES["snmp"])
    _secret(estate, tmp_path, "root-password", "esx-root", CANARIES["root-setting"])
    _sealed_policy(estate)
    root = tmp_path / "root.password"
    root.write_text(CANARIES["root-password"] + "\n")
    d = daemons(tmp_path / "sd1", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--host-password-file", str(root)))
    canaries = {**CANARIES, "enroll-key": base64.urlsafe_b64encode(key.secret).rstrip(b"=").decode(),
                "enroll-key-hex": key.secret.hex()}

    host = {**identity(1, "siteA"), "thumbprint": T1}
    answers: list[bytes] = []
    status, answer = _signed(d, host, key)
    assert status == 202, answer
    answers.append(answer)
    wait_states(d, [host["uuid"]])
    _applied_in_clear(sim, str(host["hostname"]))
    for doc in ({**host, "thumbprint": T2}, identity(2, "siteA")):  # quarantined, then refused
        answers.append(_signed(d, doc, EnrollmentKey(key.key_id, b"\x02" * 32))[1])
        answers.append(_signed(d, doc, key)[1])
    for method, path in (("GET", "/v1/hosts"), ("GET", f"/v1/hosts/{host['uuid']}"),
                         ("GET", f"/v1/hosts/{host['uuid']}/effective"), ("GET", "/metrics"),
                         ("GET", "/healthz"), ("POST", f"/v1/hosts/{host['uuid']}/apply"),
                         ("POST", f"/v1/hosts/{identity(3, 'siteA')['uuid']}/approve")):
        answers.append(d.request(method, path, b"" if method == "POST" else None)[2])
    wait_states(d, [host["uuid"]], state="quarantined")
    status, out, err = stateless(estate, "hosts", "deny", host["uuid"], "--admin-token-file",
                                 str(d.state_dir / "admin.token"))
    assert status == 0, out + err
    wait_states(d, [host["uuid"]])
    d.stop()

    dump = subprocess.run(["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", estate.slapd.url,
                           "-D", estate.slapd.bind_dn, "-y", str(estate.slapd.password_file),
                           "-b", estate.base, "(objectClass=*)", "*", "+"],
                          capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert dump.stdout.count("aesgcm:") >= 5  # the sealed values are there, only sealed
    outputs = {"log": d.log.read_text(errors="replace"), "directory": dump.stdout,
               "api": b"\n".join(answers).decode(errors="replace"), "cli": out + err}
    for where, text in outputs.items():
        for what, canary in canaries.items():
            assert canary not in text, f"the {what} secret appears in the {where}"


def _sealed_host(estate: Estate, daemons: Callable[..., Daemon],
                 tmp_path: Path) -> tuple[Daemon, dict[str, Any]]:
    """The SNMP, CHAP and root password secrets sealed, the policy naming them linked, a
    daemon, and one host born and compliant under it."""
    for kind, name, value in (("snmp", "snmp-ro", CANARIES["snmp"]),
                              ("chap", "iscsi-chap", CANARIES["chap"]),
                              ("root-password", "esx-root", CANARIES["root-setting"])):
        _secret(estate, tmp_path, kind, name, value)
    _sealed_policy(estate)
    d = daemons(tmp_path / "sd1", estate.slapd, estate.base, estate.key_file, name="sd1",
                site="siteA", extra=("--birth-auth", "optional"))
    host = identity(1, "siteA")
    assert d.birth(host)[0] == 202
    wait_states(d, [host["uuid"]])
    return d, host


def test_a_community_written_in_clear_blocks_the_host_and_is_never_shown(
        estate: Estate, sim: Vcsim, daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    """ldapmodify behind the CLI's back: a problem that blocks the host, its value `<secret>`."""
    d, host = _sealed_host(estate, daemons, tmp_path)

    clear = "canary-clear-snmp-e40c71"
    policy = f"cn=Sealed,ou=policies,{estate.base}"
    estate.ldapmodify(f"dn: {policy}\nchangetype: modify\nreplace: statelessSnmp\n"
                      f"statelessSnmp: enabled=true; communities={clear}\n")
    failed = wait_states(d, [host["uuid"]], state="failed")[host["uuid"]]
    assert policy in failed["reason"] and "stateless secret set snmp" in failed["reason"]
    errors = d.get(f"/v1/hosts/{host['uuid']}/effective")["errors"]
    assert [(e["dn"], e["attribute"]) for e in errors] == [(policy, "statelessSnmp")]
    _applied_in_clear(sim, str(host["hostname"]))  # the host kept its sealed community
    answers = [d.request("GET", path)[2] for path in (
        "/v1/hosts", f"/v1/hosts/{host['uuid']}", f"/v1/hosts/{host['uuid']}/effective", "/metrics")]
    _, out, err = stateless(estate, "problems")
    assert "statelessSnmp" in out and "<secret>" in out, out + err
    d.stop()
    for where, text in {"log": d.log.read_text(errors="replace"), "cli": out + err,
                        "api": b"\n".join(answers).decode(errors="replace")}.items():
        assert clear not in text, f"the community written in clear appears in the {where}"
        assert CANARIES["snmp"] not in text, f"the sealed community appears in the {where}"


def test_a_new_root_password_secret_is_applied_again(
        estate: Estate, sim: Vcsim, daemons: Callable[..., Daemon],
        tmp_path: Path) -> None:
    """Nothing can read a password back: the stamp of the sealed value says it changed."""
    d, host = _sealed_host(estate, daemons, tmp_path)
    _applied_in_clear(sim, str(host["hostname"]))
    [esx] = [h for h in _hosts(sim) if h.name.split(".")[0] == host["hostname"]]

    _secret(estate, tmp_path, "root-password", "esx-root", "canary-root-next-0c55e3")
    status, _, body = d.request("POST", f"/v1/hosts/{host['uuid']}/apply", b"")
    assert status in (200, 202), body
    wait_for(lambda: has_password(esx, "root", "canary-root-next-0c55e3"),
             what="the new root password on the host")
    wait_states(d, [host["uuid"]])
    assert "canary-root-next-0c55e3" not in d.log.read_text(errors="replace")

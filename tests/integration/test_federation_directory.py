"""Replicated topologies against the real slapd: a 3-provider mesh, a chaining consumer, a
partition healed, conflicting edits, and `directory check [--repair]` making replicas converge."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from stateless.cli import main
from stateless.directory import replicas
from stateless.directory.client import Directory
from stateless.directory.embedded import DEFAULT_BASE, ROOT_DN, SUFFIX, EmbeddedDirectory
from stateless.errors import ConflictError
from stateless.model.inventory import Policy
from tests.integration.fixtures_slapd import Mesh, stop_all
from tests.ports import free_port

_bases = itertools.count(1)


@pytest.fixture
def fed_base(slapd_mesh: Mesh) -> str:
    """A subtree of its own per test, created on provider 1 and replicated everywhere."""
    base = f"ou=fed{next(_bases)},{DEFAULT_BASE}"
    conn = slapd_mesh.connect(slapd_mesh.providers[0].url)
    assert conn.add(base, ["organizationalUnit"]), conn.result
    conn.unbind()
    slapd_mesh.wait_everywhere(base, lambda url: slapd_mesh.read(url, base) is not None)
    return base


def _add(mesh: Mesh, url: str, dn: str, description: str) -> None:
    conn = mesh.connect(url)
    assert conn.add(dn, ["organizationalUnit"], {"description": description}), (url, dn, conn.result)
    conn.unbind()


def _modify(mesh: Mesh, url: str, dn: str, description: str) -> None:
    conn = mesh.connect(url)
    assert conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [description])]}), conn.result
    conn.unbind()


def _delete(mesh: Mesh, url: str, dn: str) -> None:
    conn = mesh.connect(url)
    assert conn.delete(dn), (url, dn, conn.result)
    conn.unbind()


def _check(mesh: Mesh, base: str, settle: float = 2.0) -> replicas.CheckReport:
    return replicas.check(mesh.urls, mesh.bind_dn, mesh.password, base, settle=settle)


def test_mesh_replicates_adds_and_modifies_both_ways(slapd_mesh: Mesh, fed_base: str) -> None:
    m = slapd_mesh
    p1, p2, p3 = (p.url for p in m.providers)
    dn = f"ou=both-ways,{fed_base}"
    _add(m, p1, dn, "added on 1")
    m.wait_everywhere("add on provider 1", lambda url: m.read(url, dn) == ["added on 1"])
    _modify(m, p3, dn, "modified on 3")
    m.wait_everywhere("modify on provider 3", lambda url: m.read(url, dn) == ["modified on 3"])
    other = f"ou=from-2,{fed_base}"
    _add(m, p2, other, "added on 2")
    m.wait_everywhere("add on provider 2", lambda url: m.read(url, other) == ["added on 2"])
    report = _check(m, fed_base)
    assert report.converged and report.checked == 3, report.as_json()


def test_consumer_chains_writes_to_its_provider(slapd_mesh: Mesh, fed_base: str) -> None:
    m = slapd_mesh
    p1 = m.providers[0].url
    dn = f"ou=via-consumer,{fed_base}"
    _add(m, m.consumer.url, dn, "written through the consumer")
    # chained synchronously: the provider has it when the consumer answers
    assert m.read(p1, dn) == ["written through the consumer"]
    m.wait_everywhere("the chained add", lambda url: m.read(url, dn) is not None)
    _modify(m, m.consumer.url, dn, "modified through the consumer")
    m.wait_everywhere("the chained modify",
                      lambda url: m.read(url, dn) == ["modified through the consumer"])

    # the chain asserts the client's own identity: an anonymous write is refused, not proxied
    anonymous = ldap3.Connection(ldap3.Server(m.consumer.url, get_info=ldap3.NONE), auto_bind=True)
    assert not anonymous.add(f"ou=anonymous,{fed_base}", ["organizationalUnit"])
    assert anonymous.result["result"] != 0
    assert m.read(p1, f"ou=anonymous,{fed_base}") is None


def test_partition_edits_on_both_sides_heal_check_repair(slapd_mesh: Mesh, fed_base: str) -> None:
    m = slapd_mesh
    p1, p2, _ = (p.url for p in m.providers)
    names = {n: f"ou={n},{fed_base}" for n in
             ("edited", "container", "doomed", "from-a", "from-b", "kid")}
    names["kid"] = f"ou=kid,{names['container']}"
    for n in ("edited", "container", "doomed"):
        _add(m, p1, names[n], "before")
    m.wait_everywhere("the entries before the partition",
                      lambda url: all(m.read(url, names[n]) for n in ("edited", "container", "doomed")))

    m.partition({1}, {2, 3})  # the consumer follows provider 1, so it is on side a
    try:
        _add(m, p1, names["from-a"], "a")
        _modify(m, p1, names["edited"], "edited on a")
        _delete(m, p1, names["container"])
        _add(m, p2, names["from-b"], "b")
        _add(m, p2, names["kid"], "added below the container on b")
        _delete(m, p2, names["doomed"])
        _modify(m, p2, names["edited"], "edited on b, later")
        assert m.read(p2, names["from-a"]) is None and m.read(p1, names["from-b"]) is None
    finally:
        m.heal()
    m.wait_everywhere("the edits of both sides", lambda url: bool(
        m.read(url, names["from-a"]) and m.read(url, names["from-b"]) and m.read(url, names["kid"])))

    before = _check(m, fed_base)
    print(f"\nafter healing, slapd alone left {len(before.diverged)} entries diverged: "
          f"{[(d.dn, d.kind, d.action) for d in before.diverged]}")
    result = replicas.repair(before, m.bind_dn, m.password, timeout=30)
    print(f"repair: {[(a.dn, a.action, a.replica, a.error) for a in result.actions]}")
    assert result.converged, result.after.as_json()
    assert all(a.error is None for a in result.actions), result.actions
    for url in m.urls:
        assert m.read(url, names["from-a"]) == ["a"]
        assert m.read(url, names["from-b"]) == ["b"]
        assert m.read(url, names["edited"]) == ["edited on b, later"]
        assert m.read(url, names["doomed"]) is None
        assert m.read(url, names["kid"]) == ["added below the container on b"]
    # the deleted container either came back (a child was added below it) or is gone
    # everywhere; never on some replicas only
    assert len({m.read(url, names["container"]) is None for url in m.urls}) == 1


def _conflicting_edits(m: Mesh, d1: Directory, d2: Directory, name: str) -> tuple[str, int]:
    """Edit one policy on providers 1 and 2 at the same moment until they diverge."""
    dn = d1.policy_dn(name)
    for attempt in range(1, 41):
        barrier = threading.Barrier(2)

        def edit(d: Directory, value: str, barrier: threading.Barrier) -> None:
            barrier.wait()
            # the other edit may replicate in between this one's read and write: refused
            with contextlib.suppress(ConflictError):
                d.policy_set(name, {"dns.servers": [value]})

        threads = [threading.Thread(target=edit, args=(d, f"10.{i}.{attempt}.1", barrier))
                   for i, d in ((1, d1), (2, d2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not _check(m, dn, settle=3.0).converged:  # a lagging replica is not a divergence
            return "concurrent edits", attempt
    return "", 40


def _diverge_offline(node: EmbeddedDirectory, dn: str) -> None:
    """Write one replica's database directly while it is stopped: nothing replicates it."""
    change = node.data_dir / "offline.ldif"
    change.write_text(f"dn: {dn}\nchangetype: modify\nreplace: description\n"
                      "description: written offline\n-\n")
    node.stop()
    subprocess.run(["/usr/sbin/slapmodify", "-F", str(node.data_dir / "config"), "-b", SUFFIX,
                    "-l", str(change)], check=True, capture_output=True)
    node.start()


def _cli(m: Mesh, tmp_path: Path, *argv: str) -> tuple[int, str]:
    password = tmp_path / "pw"
    password.write_text(m.password)
    out, err = io.StringIO(), io.StringIO()
    code = main(["--ldap", ",".join(m.urls), "--bind-dn", ROOT_DN, "--password-file", str(password),
                 *argv], out=out, err=err, environ={})
    return code, out.getvalue() + err.getvalue()


def test_conflicting_edits_of_one_policy_reported_and_repaired(
    slapd_mesh: Mesh, fed_base: str, tmp_path: Path
) -> None:
    m = slapd_mesh
    p1, p2, p3 = m.providers
    d1 = Directory([p1.url], ROOT_DN, m.password, base=fed_base)
    d2 = Directory([p2.url], ROOT_DN, m.password, base=fed_base)
    try:
        d1.init()
        dn = d1.create_policy(Policy("Shared", settings={"dns.servers": ["10.0.0.1"]}))
        m.wait_everywhere("the policy", lambda url: m.read(url, dn) is not None)
        how, attempts = _conflicting_edits(m, d1, d2, "Shared")
    finally:
        d1.close()
        d2.close()
    if not how:  # slapd kept up with every pair of edits this time: diverge one replica directly
        _diverge_offline(p3, dn)
        how = "a write to provider 3's database while it was stopped"
    print(f"\ndiverged by {how} (attempt {attempts})")

    code, text = _cli(m, tmp_path, "--base", dn, "directory", "check", "--json", "--settle", "1")
    assert code == 3, text
    report = json.loads(text)
    assert report["checked"] == 1 and report["replicas"] == list(m.urls)
    [entry] = report["diverged"]
    assert entry["dn"] == dn and entry["kind"] == "values" and entry["action"] == "rewrite"
    csns = {url: r["csn"] for url, r in entry["replicas"].items()}
    assert entry["newest"] == max(csns, key=lambda url: csns[url])
    winner = m.read(entry["newest"], dn, "statelessDnsServer"), m.read(entry["newest"], dn)

    code, text = _cli(m, tmp_path, "--base", dn, "directory", "check", "--repair")
    assert code == 0, text
    assert f"rewrote {dn} on {entry['newest']} (newest version, values)" in text
    assert "after repair: checked 1 entries" in text and text.rstrip().endswith("converged")
    for url in m.urls:
        assert (m.read(url, dn, "statelessDnsServer"), m.read(url, dn)) == winner
    code, text = _cli(m, tmp_path, "--base", dn, "directory", "check")
    assert code == 0 and "converged" in text, text


@pytest.fixture
def cli_nodes(tmp_path: Path) -> Iterator[list[Path]]:
    dirs: list[Path] = []
    yield dirs
    stop_all([EmbeddedDirectory(data) for data in dirs])


def test_cli_starts_a_mesh_and_a_consumer(tmp_path: Path, cli_nodes: list[Path]) -> None:
    ports = [free_port() for _ in range(3)]
    url = [f"ldap://127.0.0.1:{p}" for p in ports]

    def start(name: str, port: int, *argv: str, env: dict[str, str]) -> dict[str, str]:
        cli_nodes.append(tmp_path / name)
        out, err = io.StringIO(), io.StringIO()
        assert main(["directory", "start", "--data", str(tmp_path / name), "--port", str(port),
                     *argv], out=out, err=err, environ=env) == 0, err.getvalue()
        return dict(line.removeprefix("export ").split("=", 1)
                    for line in out.getvalue().splitlines() if line.startswith("export "))

    first = start("a", ports[0], "--server-id", "1", "--peer", url[1], env={})
    second = start("b", ports[1], "--server-id", "2", "--peer", url[0], env=first)
    third = start("c", ports[2], "--consumer-of", url[0], env=first)
    assert (first["STATELESS_LDAP"], second["STATELESS_LDAP"], third["STATELESS_LDAP"]) == tuple(url)
    assert Path(second["STATELESS_PASSWORD_FILE"]).read_text() == Path(
        first["STATELESS_PASSWORD_FILE"]).read_text()

    mesh = Mesh((EmbeddedDirectory(tmp_path / "a"), EmbeddedDirectory(tmp_path / "b")),
                EmbeddedDirectory(tmp_path / "c"), Path(first["STATELESS_PASSWORD_FILE"]).read_text())
    mesh.wait_everywhere("the base entries", lambda u: mesh.read(u, DEFAULT_BASE) is not None)
    dn = f"ou=cli,{DEFAULT_BASE}"
    _add(mesh, url[1], dn, "on b")
    mesh.wait_everywhere("an add on b", lambda u: mesh.read(u, dn) == ["on b"])

    out, err = io.StringIO(), io.StringIO()
    code = main(["directory", "check"], out=out, err=err,
                environ={**first, "STATELESS_LDAP": ",".join(url)})
    assert code == 0, err.getvalue()
    assert out.getvalue().endswith("on 3 replicas: converged\n")

    err = io.StringIO()
    assert main(["directory", "start", "--data", str(tmp_path / "x"), "--peer", url[0],
                 "--consumer-of", url[0]], out=io.StringIO(), err=err, environ={}) == 2
    assert "give one of them" in err.getvalue()
    err = io.StringIO()
    assert main(["--ldap", url[0], "directory", "check"], out=io.StringIO(), err=err,
                environ={}) == 2
    assert "at least two replicas" in err.getvalue()


# --- the production shape: TLS on every agreement, a replication account, authz for the chain ---


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 that it signed."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
             signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, subject)])).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            import ipaddress
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = cert("test CA", ca_key, ca_name, ca_key, ca=True)
    server = cert("127.0.0.1", key, ca_name, ca_key, ca=False)
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def test_tls_mesh_with_accounts_and_a_chaining_consumer(tmp_path: Path, cli_nodes: list[Path]) -> None:
    """What contrib/openldap/ ships: StartTLS required on agreements and on the chain, a
    replication account that only reads and asserts identities for the chain, and a service
    account that writes, on a provider or through the consumer."""
    from stateless.directory.topology import Credentials, Tls

    ca, certificate, key = _certificates(tmp_path)
    tls = Tls(str(certificate), str(key), str(ca))
    replicator = Credentials(f"cn=replicator,{SUFFIX}", "replicator-secret")
    service = Credentials(f"cn=statelessd,{SUFFIX}", "service-secret")
    ports = [free_port() for _ in range(3)]
    url = [f"ldap://127.0.0.1:{p}" for p in ports]
    first = tmp_path / "a" / "admin.password"
    shape = {"replication": replicator, "tls": tls, "writers": (service.bind_dn,)}
    nodes = [
        EmbeddedDirectory(tmp_path / "a", port=ports[0], server_id=1, peers=(url[1],), **shape),
        EmbeddedDirectory(tmp_path / "b", port=ports[1], server_id=2, peers=(url[0],),
                          admin_password_file=first, **shape),
        EmbeddedDirectory(tmp_path / "c", port=ports[2], server_id=3, role="consumer",
                          provider=url[0], admin_password_file=first, **shape),
    ]
    for node in nodes:
        cli_nodes.append(node.data_dir)
        node.start()
    mesh = Mesh((nodes[0], nodes[1]), nodes[2], first.read_text())
    conn = mesh.connect(url[0])
    for account, extra in ((replicator, {"authzTo": f"dn.subtree:{SUFFIX}"}), (service, {})):
        assert conn.add(account.bind_dn, ["organizationalRole", "simpleSecurityObject"],
                        {"userPassword": account.password, **extra}), conn.result
    conn.unbind()
    mesh.wait_everywhere("the base and the accounts",
                         lambda u: mesh.read(u, service.bind_dn, "cn") == ["statelessd"])

    def write(at: str, as_: Credentials, dn: str, description: str) -> dict[str, object]:
        conn = mesh.connect(at, as_.bind_dn, as_.password)
        if mesh.read(at, dn) is None:
            conn.add(dn, ["organizationalUnit"], {"description": description})
        else:
            conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [description])]})
        conn.unbind()
        return dict(conn.result)

    dn = f"ou=over-tls,{DEFAULT_BASE}"
    # through the consumer: chained to a over StartTLS, the service account asserted
    assert write(url[2], service, dn, "through the consumer")["result"] == 0
    assert mesh.read(url[0], dn) == ["through the consumer"]
    mesh.wait_everywhere("the chained add", lambda u: mesh.read(u, dn) is not None)
    assert write(url[1], service, dn, "on b")["result"] == 0
    mesh.wait_everywhere("a modify on b", lambda u: mesh.read(u, dn) == ["on b"])

    # the replication account only reads; the root DN is not asserted by the chain, so through
    # the consumer it writes as the replication account: refused
    admin = Credentials(ROOT_DN, mesh.password)
    for at, who in ((url[0], replicator), (url[2], admin)):
        assert write(at, who, dn, "refused")["description"] == "insufficientAccessRights", (at, who)
    assert mesh.read(url[0], dn) == ["on b"]
    # the listeners offer StartTLS with a certificate the CA vouches for
    server = ldap3.Server(url[1], get_info=ldap3.NONE,
                          tls=ldap3.Tls(ca_certs_file=str(ca), validate=ssl.CERT_REQUIRED))
    checked = ldap3.Connection(server, service.bind_dn, service.password)
    checked.open()
    assert checked.start_tls() and checked.bind()
    checked.unbind()

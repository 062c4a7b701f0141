"""A named secret serves only the kind of use it was stored for; the key ring is read once."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateless.cli import build_parser
from stateless.daemon.failures import PERMANENT, classify
from stateless.errors import NotFoundError, SecretKindError
from stateless.model.config import Snmp
from stateless.model.secretref import NEEDS, SecretKind, named_secrets
from stateless.model.settings import coerce
from stateless.security import seal
from stateless.vcenter.secretrefs import (
    StaticSecrets,
    as_references,
    clear_communities,
    clear_targets,
    resolve,
)

KINDS = {"ro": SecretKind.SNMP, "trap": SecretKind.SNMP, "chap": SecretKind.CHAP,
         "root": SecretKind.ROOT_PASSWORD}
STORE = StaticSecrets({"ro": "c0mm-ro", "trap": "c0mm-trap", "chap": "chap-pw", "root": "root-pw"},
                      KINDS)


@pytest.mark.parametrize(("key", "text", "names"), [
    ("iscsi.chap.secret", "chap", ["chap"]),
    ("snmp.communities", "secret:ro,secret:trap", ["ro", "trap"]),
    ("snmp.targets", "10.0.0.7:162/secret:trap,10.0.0.8", ["trap"]),
    ("account.root.password", "secret:root", ["root"]),
    ("ntp.servers", "10.0.0.1", []),
])
def test_a_setting_names_its_secrets(key: str, text: str, names: list[str]) -> None:
    assert named_secrets(key, coerce(key, text)) == names


def test_every_secret_setting_needs_a_kind_it_can_be_stored_as() -> None:
    assert set(NEEDS.values()) == {SecretKind.CHAP, SecretKind.SNMP, SecretKind.ROOT_PASSWORD}


def test_a_secret_of_another_kind_is_refused_naming_key_secret_kinds_and_fix() -> None:
    with pytest.raises(SecretKindError) as caught:
        resolve("secret:chap", STORE, "host h", "account.root.password")
    message = caught.value.message
    assert message.startswith("account.root.password: secret chap is stored as a chap secret")
    assert "needs a root-password secret" in message
    assert "`stateless secret set root-password chap`" in message
    assert "chap-pw" not in message


@pytest.mark.parametrize("kind", ["chap", "snmp", "root-password"])
def test_the_fix_the_error_gives_is_a_command_that_exists(kind: str) -> None:
    fix = SecretKindError("k", "name", "vcenter", kind).message.split("`")[1].split()
    assert fix[:4] == ["stateless", "secret", "set", kind]
    build_parser().parse_args(fix[1:])


def test_the_right_kind_opens() -> None:
    assert resolve("secret:root", STORE, "h", "account.root.password") == "root-pw"
    assert STORE("chap", "iscsi.chap.secret") == "chap-pw"


def test_a_community_that_is_a_chap_secret_is_never_sent_or_compared() -> None:
    wrong = Snmp(True, ("secret:chap",), ("10.0.0.7/secret:chap",))
    with pytest.raises(SecretKindError, match=r"^snmp\.communities: secret chap"):
        clear_communities(wrong, STORE, "h")
    with pytest.raises(SecretKindError, match=r"^snmp\.targets: secret chap"):
        clear_targets(wrong.targets or (), STORE, "h")
    with pytest.raises(SecretKindError, match=r"^snmp\.targets: secret root"):
        as_references(Snmp(True, ("chap-pw",), ()), Snmp(True, (), ("10.0.0.7/secret:root",)),
                      STORE, "h")


def test_a_store_without_kinds_serves_any_use_and_one_with_kinds_needs_each() -> None:
    assert StaticSecrets({"x": "v"})("x", "account.root.password") == "v"
    with pytest.raises(NotFoundError, match="secret x: its kind is not known"):
        StaticSecrets({"x": "v"}, {})("x", "iscsi.chap.secret")


def test_a_kind_mismatch_blocks_the_host_for_good_not_as_a_transient_fault() -> None:
    exc = SecretKindError("iscsi.chap.secret", "snmp-ro", "snmp", "chap")
    assert classify(exc, in_view=True, may_lag=True).kind == PERMANENT


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    loads: list[Path] = []
    real = seal.load_keyring

    def load(location: Path, *, create: bool = False) -> seal.KeyRing:
        loads.append(location)
        return real(location, create=create)

    monkeypatch.setattr(seal, "load_keyring", load)
    return loads


def test_the_key_ring_is_read_again_only_when_the_key_file_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.key"
    first = seal.load_keyring(path, create=True)
    loads = _counted(monkeypatch)
    ring = seal.KeyFileRing(path)
    assert ring() is ring() is ring()
    assert len(loads) == 1
    assert ring().newest.key_id == first.newest.key_id

    added = seal.add_key(path)  # a rotation: a new file renamed into place
    assert ring().newest.key_id == added.key_id
    assert len(loads) == 2 and ring() is ring()

    path.unlink()
    with pytest.raises(seal.SecretError, match="secret key file"):
        ring()  # no stale ring once the file is gone: fail closed

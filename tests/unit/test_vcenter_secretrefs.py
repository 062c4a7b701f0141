"""SNMP communities read from a host are mapped back to references; clear values go only out."""

from __future__ import annotations

import pytest

from stateless.errors import NotFoundError, SecretKindError, VCenterError
from stateless.model.config import Snmp
from stateless.model.secretref import SecretKind
from stateless.vcenter.secretrefs import (
    UNKNOWN_COMMUNITY,
    Destination,
    OpenedOnce,
    StaticSecrets,
    as_references,
    clear_communities,
    clear_targets,
)

SECRETS = StaticSecrets({"ro": "c0mm-ro", "trap": "c0mm-trap"})
WANT = Snmp(True, ("secret:ro",), ("10.0.0.7:162/secret:trap",))


@pytest.mark.parametrize(("actual", "expected"), [
    (Snmp(True, ("c0mm-ro",), ("10.0.0.7:162/c0mm-trap",)), WANT),
    (Snmp(True, ("other", "c0mm-ro"), ("10.0.0.7:162/c0mm-ro", "10.0.0.8:162")),
     Snmp(True, (UNKNOWN_COMMUNITY, "secret:ro"), ("10.0.0.7:162/secret:ro", "10.0.0.8:162"))),
    (Snmp(False, (), ()), Snmp(False, (), ())),
    (Snmp(), Snmp()),
])
def test_read_back_communities_become_references(actual: Snmp, expected: Snmp) -> None:
    assert as_references(actual, WANT, SECRETS, "host") == expected


def test_a_community_nothing_wanted_opens_never_shows() -> None:
    mapped = as_references(Snmp(True, ("c0mm-ro",), None), Snmp(True), SECRETS, "host")
    assert mapped.communities == (UNKNOWN_COMMUNITY,)


def test_clear_values_are_made_for_the_call_only() -> None:
    assert clear_communities(WANT, SECRETS, "h") == ["c0mm-ro"]
    assert clear_targets(("10.0.0.7/secret:trap", "t.example.com:1162"), SECRETS, "h") == [
        Destination("10.0.0.7", 162, "c0mm-trap"), Destination("t.example.com", 1162, "")]


def test_no_secret_store_fails_naming_the_secret() -> None:
    with pytest.raises(VCenterError, match="no secret store to resolve 'ro'"):
        as_references(Snmp(True, ("x",)), WANT, None, "host h")


def test_a_stamp_changes_with_the_secret_and_does_not_reveal_it() -> None:
    values = {"root": "first-pw"}
    store = StaticSecrets(values)
    before = store.stamp("root")
    assert "first-pw" not in before and before == store.stamp("root")
    values["root"] = "second-pw"
    assert store.stamp("root") != before
    assert StaticSecrets({"root": "second-pw"}).stamp("root") != store.stamp("root")  # keyed


def test_an_apply_opens_each_secret_once_per_setting() -> None:
    """The applier's up-front check and the call that needs a secret share one opening;
    refusals are never kept: each use is refused again."""
    opened: list[tuple[str, str]] = []
    store = StaticSecrets({"ro": "c0mm-ro", "gone": "x"}, {"ro": SecretKind.SNMP})

    class Counting:
        def __call__(self, name: str, key: str) -> str:
            opened.append((name, key))
            return store(name, key)

        def stamp(self, name: str) -> str:
            return store.stamp(name)

    once = OpenedOnce(Counting())
    assert clear_communities(WANT, once, "x") == clear_communities(WANT, once, "x") == ["c0mm-ro"]
    assert opened == [("ro", "snmp.communities")]
    assert once("ro", "snmp.targets") == "c0mm-ro" and len(opened) == 2
    for _ in range(2):
        with pytest.raises(SecretKindError):
            once("ro", "iscsi.chap.secret")
        with pytest.raises(NotFoundError):
            once("gone", "snmp.communities")
    assert len(opened) == 6
    assert once.stamp("ro") == store.stamp("ro")

"""RFC 4533 codec, OpenLDAP cookie merging and the mirror's batches.

Byte strings are written out from the ASN.1 of RFC 4533 section 2 (IMPLICIT TAGS, DEFAULT
values left out, booleans TRUE as 0xFF); those marked "slapd" were captured from OpenLDAP 2.5.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stateless.directory.mirror import ChangeBatch, Mirror
from stateless.directory.synccodec import (
    SyncCodecError,
    SyncCookie,
    SyncDoneControl,
    SyncInfoMessage,
    SyncMode,
    SyncRequest,
    SyncStateControl,
    decode_sync_done,
    decode_sync_info,
    decode_sync_request,
    decode_sync_state,
    encode_sync_done,
    encode_sync_info,
    encode_sync_request,
    encode_sync_state,
    merge_cookie,
)

U1 = "00112233-4455-6677-8899-aabbccddeeff"
U1_HEX = "00112233445566778899aabbccddeeff"
U2 = "cf250d7e-7a32-1041-9bb1-9167149523cf"
U2_HEX = "cf250d7e7a3210419bb19167149523cf"
U3 = "cf252f48-7a32-1041-9bb2-9167149523cf"
U4 = "cf2566a2-7a32-1041-9bb3-9167149523cf"
SLAPD_COOKIE = b"rid=000,sid=001,csn=20261121200858.480747Z#000000#001#000000"


@pytest.mark.parametrize(
    ("value", "hex_bytes"),
    [
        # SEQUENCE { mode ENUMERATED 3 }
        (SyncRequest(SyncMode.REFRESH_AND_PERSIST), "30030a0103"),
        # SEQUENCE { mode 1, cookie OCTET STRING "abc" }  (reloadHint FALSE is the default)
        (SyncRequest(SyncMode.REFRESH_ONLY, b"abc"), "30080a01010403616263"),
        # ... reloadHint TRUE
        (SyncRequest(SyncMode.REFRESH_AND_PERSIST, b"abc", True), "300b0a010304036162630101ff"),
        (SyncRequest(SyncMode.REFRESH_ONLY, b""), "30050a01010400"),
    ],
)
def test_sync_request(value: SyncRequest, hex_bytes: str) -> None:
    assert encode_sync_request(value.mode, value.cookie, value.reload_hint).hex() == hex_bytes
    assert decode_sync_request(bytes.fromhex(hex_bytes)) == value


@pytest.mark.parametrize(
    ("value", "hex_bytes"),
    [
        # SEQUENCE { state add(1), entryUUID OCTET STRING (16) }
        (SyncStateControl("add", U1), "30150a0101" + "0410" + U1_HEX),
        (SyncStateControl("present", U1), "30150a0100" + "0410" + U1_HEX),
        (SyncStateControl("modify", U1, b"c"), "30180a0102" + "0410" + U1_HEX + "040163"),
        (SyncStateControl("delete", U1, b""), "30170a0103" + "0410" + U1_HEX + "0400"),
        # slapd: an entry of an initial refresh
        (SyncStateControl("add", U2), "30150a01010410" + U2_HEX),
    ],
)
def test_sync_state(value: SyncStateControl, hex_bytes: str) -> None:
    assert encode_sync_state(value).hex() == hex_bytes
    assert decode_sync_state(bytes.fromhex(hex_bytes)) == value


@pytest.mark.parametrize("state", ["present", "add", "modify", "delete"])
def test_the_short_sync_state_decodes_as_pyasn1_does(state: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoder without pyasn1 (the common 23-byte value) agrees with the pyasn1 one."""
    import random

    from stateless.directory import synccodec

    rng = random.Random(state)
    values = [encode_sync_state(SyncStateControl(state, str(uuid.UUID(int=rng.getrandbits(128)))))
              for _ in range(50)]
    short = [decode_sync_state(v) for v in values]
    assert all(len(v) == 23 for v in values)
    monkeypatch.setattr(synccodec, "_short_sync_state", lambda _data: None)
    assert short == [decode_sync_state(v) for v in values]


@pytest.mark.parametrize(
    ("value", "hex_bytes"),
    [
        (SyncDoneControl(), "3000"),
        (SyncDoneControl(b"x", True), "3006040178" + "0101ff"),
        (SyncDoneControl(b"x"), "3003040178"),
        # slapd: end of a refreshOnly search without cookie (refreshDeletes TRUE)
        (SyncDoneControl(SLAPD_COOKIE, True), "3041043c" + SLAPD_COOKIE.hex() + "0101ff"),
        # slapd: end of a refreshOnly search resumed from a cookie (present phase)
        (SyncDoneControl(SLAPD_COOKIE), "303e043c" + SLAPD_COOKIE.hex()),
    ],
)
def test_sync_done(value: SyncDoneControl, hex_bytes: str) -> None:
    assert encode_sync_done(value).hex() == hex_bytes
    assert decode_sync_done(bytes.fromhex(hex_bytes)) == value


@pytest.mark.parametrize(
    ("value", "hex_bytes"),
    [
        # newcookie [0] syncCookie
        (SyncInfoMessage("newcookie", b"xyz"), "800378797a"),
        # refreshDelete [1] SEQUENCE {} : refreshDone defaults to TRUE
        (SyncInfoMessage("refreshDelete"), "a100"),
        (SyncInfoMessage("refreshDelete", refresh_done=False), "a103010100"),
        (SyncInfoMessage("refreshDelete", b"c"), "a103040163"),
        # refreshPresent [2]
        (SyncInfoMessage("refreshPresent", b"c"), "a203040163"),
        (SyncInfoMessage("refreshPresent", b"c", refresh_done=False), "a206040163010100"),
        # syncIdSet [3] SEQUENCE { refreshDeletes TRUE, syncUUIDs SET OF { uuid } }
        (SyncInfoMessage("syncIdSet", refresh_deletes=True, uuids=(U1,)), "a3170101ff3112" + "0410" + U1_HEX),
        (SyncInfoMessage("syncIdSet", b"c", uuids=(U1,)), "a317040163" + "3112" + "0410" + U1_HEX),
        (SyncInfoMessage("syncIdSet", uuids=()), "a3023100"),
        # slapd: the present set sent when a persist search resumes from a cookie
        (
            SyncInfoMessage("syncIdSet", uuids=(U2, U3, U4)),
            "a33831360410cf250d7e7a3210419bb19167149523cf0410cf252f487a3210419bb29167149523cf"
            "0410cf2566a27a3210419bb39167149523cf",
        ),
    ],
)
def test_sync_info(value: SyncInfoMessage, hex_bytes: str) -> None:
    assert encode_sync_info(value).hex() == hex_bytes
    assert decode_sync_info(bytes.fromhex(hex_bytes)) == value


def test_sync_request_booleans_are_der() -> None:
    """LDAP is BER, but slapd wants TRUE as 0xFF; a BER encoder would write 0x01."""
    assert encode_sync_request(SyncMode.REFRESH_ONLY, None, True).endswith(b"\x01\x01\xff")


@pytest.mark.parametrize(
    ("decode", "hex_bytes", "message"),
    [
        (decode_sync_state, "30140a0101040f" + U1_HEX[:30], "syncStateValue"),  # 15-byte UUID
        (decode_sync_state, "30150a0104" + "0410" + U1_HEX, "syncStateValue"),  # state 4
        (decode_sync_done, "300000", "trailing"),
        (decode_sync_info, "a4020400", "syncInfoValue"),  # no such choice
        (decode_sync_info, "", "syncInfoValue"),
        (decode_sync_request, "30030a0102", "syncRequestValue"),  # mode 2 is reserved
    ],
)
def test_garbage_is_refused(decode: Any, hex_bytes: str, message: str) -> None:
    with pytest.raises(SyncCodecError, match=message):
        decode(bytes.fromhex(hex_bytes))


# --- cookies ----------------------------------------------------------------------------------

A1 = "20261121200640.348935Z#000000#001#000000"
A2 = "20261121200700.000000Z#000000#001#000000"
B1 = "20261121200600.000000Z#000000#002#000000"
B2 = "20261121200900.000000Z#000002#002#000000"
C1 = "20261121200500.000000Z#000000#00a#000000"


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (f"rid=000,sid=001,csn={A1}", SyncCookie(0, 1, {1: A1})),
        (f"rid=123,csn={A1};{B1}", SyncCookie(123, None, {1: A1, 2: B1})),
        (f"rid=000,sid=00a,csn={C1}", SyncCookie(0, 10, {10: C1})),
        ("rid=007", SyncCookie(7, None, {})),
        (f"rid=000,csn={A1},delcsn={B1}", SyncCookie(0, None, {1: A1}, (f"delcsn={B1}",))),
        ("opaque-cookie", None),
        ("rid=000,csn=not-a-csn", None),
        ("rid=x", None),
        ("", None),
    ],
)
def test_cookie_parse(raw: str, parsed: SyncCookie | None) -> None:
    assert SyncCookie.parse(raw.encode()) == parsed


@pytest.mark.parametrize(
    ("stored", "new", "merged"),
    [
        # first cookie: the sending server's sid is dropped
        (None, f"rid=000,sid=001,csn={A1}", f"rid=000,csn={A1}"),
        # a refresh with nothing new sends no cookie: keep the old one
        (f"rid=000,csn={A1};{B1}", None, f"rid=000,csn={A1};{B1}"),
        # a live notification names only its origin server: the others stay
        (f"rid=000,csn={A1};{B1}", f"rid=000,sid=001,csn={B2}", f"rid=000,csn={A1};{B2}"),
        (f"rid=000,csn={A1};{B1}", f"rid=000,sid=002,csn={A2}", f"rid=000,csn={A2};{B1}"),
        # an older CSN never moves a server backwards
        (f"rid=000,csn={A2};{B2}", f"rid=000,csn={A1};{B1}", f"rid=000,csn={A2};{B2}"),
        # a new server ID joins
        (f"rid=000,csn={A1}", f"rid=000,sid=00a,csn={C1}", f"rid=000,csn={A1};{C1}"),
        # opaque cookies of other servers are replaced, never merged
        ("opaque-1", "opaque-2", "opaque-2"),
        ("opaque-1", f"rid=000,csn={A1}", f"rid=000,csn={A1}"),
        (None, None, None),
    ],
)
def test_cookie_merge(stored: str | None, new: str | None, merged: str | None) -> None:
    def enc(value: str | None) -> bytes | None:
        return value.encode() if value is not None else None

    assert merge_cookie(enc(stored), enc(new)) == enc(merged)


# --- mirror batches ---------------------------------------------------------------------------

BASE = "ou=stateless,dc=example,dc=com"


def _run(mirror: Mirror, steps: list[tuple[str, ...]]) -> None:
    for step in steps:
        if step[0] == "done":
            mirror.on_refresh_done()
        elif step[0] == "start":
            mirror.on_refresh_start()
        else:
            kind, entry_uuid, dn = step
            mirror.on_change(kind, entry_uuid, dn, {"ou": [dn.split(",")[0][3:].encode()]})


H1 = f"ou=h1,{BASE}"
H2 = f"ou=h2,{BASE}"
INV = f"ou=inventory,{BASE}"
DC = f"ou=dc1,{INV}"
CL = f"ou=cl1,{DC}"


@pytest.mark.parametrize(
    ("steps", "batches"),
    [
        # the initial refresh is one batch, closed by the end of the refresh
        (
            [("add", U1, H1), ("add", U2, H2), ("present", U3, H1), ("done",)],
            [ChangeBatch(3, frozenset({H1, H2}), refresh=True)],
        ),
        # after the refresh every change is a batch of its own
        (
            [("add", U1, H1), ("done",), ("modify", U1, H1), ("delete", U1, H1), ("delete", U1, H1)],
            [
                ChangeBatch(2, frozenset({H1}), refresh=True),
                ChangeBatch(3, modified=frozenset({H1})),
                ChangeBatch(4, deleted=frozenset({H1})),
            ],
        ),
        # a re-refresh after a reconnect gathers its changes again; add+delete cancel out,
        # delete+add is a modification
        (
            [("add", U1, H1), ("done",), ("start",), ("add", U2, H2), ("delete", U2, H2),
             ("delete", U1, H1), ("add", U3, H1), ("done",)],
            [
                ChangeBatch(2, frozenset({H1}), refresh=True),
                ChangeBatch(7, modified=frozenset({H1}), refresh=True),
            ],
        ),
        # a renamed container moves its subtree
        (
            [("add", U1, INV), ("add", U2, DC), ("add", U3, CL), ("done",),
             ("modify", U2, f"ou=dc2,{INV}")],
            [
                ChangeBatch(4, frozenset({INV, DC, CL}), refresh=True),
                ChangeBatch(5, frozenset({f"ou=dc2,{INV}", f"ou=cl1,ou=dc2,{INV}"}),
                            deleted=frozenset({DC, CL})),
            ],
        ),
    ],
)
def test_mirror_batches(steps: list[tuple[str, ...]], batches: list[ChangeBatch]) -> None:
    seen: list[ChangeBatch] = []
    _run(Mirror(on_batch=seen.append), steps)
    assert seen == batches


def test_mirror_view_is_immutable_and_ordered() -> None:
    mirror = Mirror()
    _run(mirror, [("add", U3, CL), ("add", U1, INV), ("add", U2, DC), ("done",)])
    view = mirror.view()
    assert [dn for dn, _ in view.pairs()] == [INV, DC, CL]
    assert mirror.take_changes() == ChangeBatch(4, frozenset({INV, DC, CL}), refresh=True)
    assert not mirror.take_changes()
    mirror.on_change("delete", U3, CL, {})
    assert len(view.entries) == 3 and len(mirror.view().entries) == 2
    assert mirror.take_changes().deleted == {CL}
    assert view.by_dn()[INV.upper().lower()].text() == {"ou": ["inventory"]}

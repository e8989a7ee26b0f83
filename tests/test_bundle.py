"""Offline bundles: export, verify with no database, and refuse every one-byte change."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from provenance.bundle import export_bundle, verify_bundle
from provenance.entries import raw_public_key
from provenance.ledger import Ledger
from provenance.parties import key_body
from provenance.verify import VerificationError
from tests.ledger_support import NOW, party_key, register_party, signed_by, test_catalog

CATALOG = test_catalog()


def fill(session: Session, ledger: Ledger) -> None:
    old = register_party(session, ledger, "acme")
    register_party(session, ledger, "shop", "merchant")
    ledger.append(
        session,
        [signed_by(old, "acme", body={"text": f"a{i}", "n": i}) for i in range(12)],
        now=NOW,
    )
    new = party_key("acme", 1)
    add = {"party": "acme", "key": key_body(raw_public_key(new), NOW - timedelta(minutes=1))}
    ledger.append(session, [signed_by(old, "acme", "key.add", add)], now=NOW)
    revoke = {
        "party": "acme",
        "key_id": signed_by(old, "acme").statement.key,
        "revoked_at": "2026-11-26T12:00:00.000000Z",
        "reason": "rotated",
    }
    ledger.append(session, [signed_by(new, "acme", "key.revoke", revoke)], now=NOW)
    ledger.append(
        session, [signed_by(new, "acme", body={"text": f"b{i}", "n": i}) for i in range(9)], now=NOW
    )
    ledger.append_as_platform(
        session,
        [ledger.statement("test.note", {"text": "by platform"}, now=NOW, actor="shop")],
        now=NOW,
    )


def bundle(session: Session, ledger: Ledger, first: int = 0, stop: int | None = None) -> bytes:
    checkpoint = ledger.issue_checkpoint(session, now=NOW)
    out = io.BytesIO()
    export_bundle(session, ledger, out, checkpoint, first=first, stop=stop)
    return out.getvalue()


def verify(raw: bytes, trusted: bytes | None = None) -> object:
    return verify_bundle(io.BytesIO(raw), CATALOG, trusted_key=trusted)


@pytest.fixture()
def filled(session: Session, genesis: Ledger) -> Ledger:
    fill(session, genesis)
    return genesis


def test_whole_log_bundle_verifies_with_the_trusted_key(session: Session, filled: Ledger) -> None:
    raw = bundle(session, filled)
    report = verify(raw, filled.platform.public_key)
    assert report.stop == report.tree_size == filled.tree_head(session).size  # type: ignore[attr-defined]
    assert report.root == filled.tree_head(session).root  # type: ignore[attr-defined]


@pytest.mark.parametrize(("first", "stop"), [(0, 1), (3, 10), (5, 26), (26, 27), (16, 16), (1, 27)])
def test_partial_range_bundle_verifies(
    session: Session, filled: Ledger, first: int, stop: int
) -> None:
    assert filled.tree_head(session).size == 27
    verify(bundle(session, filled, first, stop), filled.platform.public_key)


def test_bundle_under_another_platform_key_is_refused(session: Session, filled: Ledger) -> None:
    with pytest.raises(VerificationError) as info:
        verify(bundle(session, filled), raw_public_key(party_key("impostor")))
    assert info.value.code == "untrusted-key"


def test_range_outside_the_checkpoint_is_refused(session: Session, filled: Ledger) -> None:
    with pytest.raises(Exception, match="not inside"):
        bundle(session, filled, 5, 99)


def test_each_line_changed_once_fails_naming_the_entry(session: Session, filled: Ledger) -> None:
    raw = bundle(session, filled, 3, 20)
    lines = raw.split(b"\n")
    offset = 0
    for number, line in enumerate(lines[:-1]):
        position = offset + len(line) // 2
        changed = raw[:position] + bytes([raw[position] ^ 0x01]) + raw[position + 1 :]
        with pytest.raises(VerificationError) as info:
            verify(changed, filled.platform.public_key)
        if line.startswith(b'{"entry":'):
            seq = int(line.rsplit(b'"seq":', 1)[1].split(b",", 1)[0])
            assert info.value.seq == seq, (number, str(info.value))
            assert f"entry {seq}" in str(info.value)
        offset += len(line) + 1


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_one_byte_change_fails(session: Session, filled: Ledger, data: st.DataObject) -> None:
    raw = getattr(filled, "_bundle_cache", None)
    if raw is None:
        raw = bundle(session, filled, 2, 25)
        filled._bundle_cache = raw  # type: ignore[attr-defined]
    position = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != raw[position]))
    changed = raw[:position] + bytes([value]) + raw[position + 1 :]
    with pytest.raises(VerificationError):
        verify(changed, filled.platform.public_key)


@pytest.mark.parametrize("origin", ["bad origin", "bad+origin", "", "bad\torigin"])
def test_header_origin_that_cannot_name_a_key_fails(
    session: Session, filled: Ledger, origin: str
) -> None:
    raw = bundle(session, filled, 2, 25)
    first, rest = raw.split(b"\n", 1)
    header = json.loads(first)
    header["origin"] = origin
    changed = rfc8785.dumps(header) + b"\n" + rest
    with pytest.raises(VerificationError, match="line 1: origin"):
        verify(changed, filled.platform.public_key)


def test_truncated_bundle_fails(session: Session, filled: Ledger) -> None:
    raw = bundle(session, filled)
    for cut in (len(raw) // 3, len(raw) - 1, len(raw) - 40):
        with pytest.raises(VerificationError):
            verify(raw[:cut], filled.platform.public_key)


def test_appended_data_fails(session: Session, filled: Ledger) -> None:
    raw = bundle(session, filled)
    with pytest.raises(VerificationError, match="after the end"):
        verify(raw + b'{"kind":"end","count":0}\n', filled.platform.public_key)


def test_hidden_key_change_in_the_context_is_refused(session: Session, filled: Ledger) -> None:
    raw = bundle(session, filled, 20, 27)
    lines = raw.split(b"\n")
    revocation = next(
        i for i, line in enumerate(lines) if b'"context"' in line and b"key.revoke" in line
    )
    hidden = b"\n".join(lines[:revocation] + lines[revocation + 1 :])
    with pytest.raises(VerificationError) as info:
        verify(hidden, filled.platform.public_key)
    assert info.value.code == "key-chain-broken"


def test_bundle_signed_by_a_rotated_platform_key_verifies(session: Session, filled: Ledger) -> None:
    from provenance.ledger import Ledger as LedgerService
    from provenance.ledger import PlatformSigner

    new_key = party_key("platform", 1)
    add = {
        "party": "platform",
        "key": key_body(raw_public_key(new_key), NOW - timedelta(seconds=1)),
    }
    filled.append_as_platform(session, [filled.statement("key.add", add, now=NOW)], now=NOW)
    rotated = LedgerService(CATALOG, PlatformSigner(new_key, origin=filled.platform.origin))
    raw = bundle(session, rotated, 10, 28)
    verify(raw, raw_public_key(new_key))
    with pytest.raises(VerificationError) as info:
        verify(raw, filled.platform.public_key)
    assert info.value.code == "untrusted-key"


def test_key_the_log_never_registered_is_refused(session: Session, filled: Ledger) -> None:
    from provenance.ledger import Ledger as LedgerService
    from provenance.ledger import PlatformSigner

    stranger = party_key("stranger")
    forged = LedgerService(CATALOG, PlatformSigner(stranger, origin=filled.platform.origin))
    with pytest.raises(VerificationError) as info:
        verify(bundle(session, forged), raw_public_key(stranger))
    assert info.value.code == "untrusted-key"


def test_hidden_key_change_in_the_middle_of_the_context_is_refused(
    session: Session, filled: Ledger
) -> None:
    raw = bundle(session, filled, 20, 27)
    lines = raw.split(b"\n")
    context = [i for i, line in enumerate(lines) if line.startswith(b'{"kind":"context"')]
    assert len(context) >= 4
    hidden = b"\n".join(lines[: context[1]] + lines[context[1] + 1 :])
    with pytest.raises(VerificationError) as info:
        verify(hidden, filled.platform.public_key)
    assert info.value.code == "key-chain-broken"


def test_range_before_a_platform_key_rotation_verifies_with_the_new_key(
    session: Session, filled: Ledger
) -> None:
    from provenance.ledger import Ledger as LedgerService
    from provenance.ledger import PlatformSigner

    new_key = party_key("platform", 2)
    add = {
        "party": "platform",
        "key": key_body(raw_public_key(new_key), NOW - timedelta(seconds=1)),
    }
    filled.append_as_platform(session, [filled.statement("key.add", add, now=NOW)], now=NOW)
    rotated = LedgerService(CATALOG, PlatformSigner(new_key, origin=filled.platform.origin))
    raw = bundle(session, rotated, 3, 10)
    assert b'"kind":"later"' in raw
    verify(raw, raw_public_key(new_key))
    lines = raw.split(b"\n")
    later = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"later"'))
    without = b"\n".join(lines[:later] + lines[later + 1 :])
    with pytest.raises(VerificationError):
        verify(without, raw_public_key(new_key))


def test_audit_checks_checkpoints_signed_before_a_rotation(
    session: Session, filled: Ledger
) -> None:
    from provenance.audit import audit
    from provenance.ledger import Ledger as LedgerService
    from provenance.ledger import PlatformSigner

    filled.issue_checkpoint(session, now=NOW)
    new_key = party_key("platform", 3)
    add = {
        "party": "platform",
        "key": key_body(raw_public_key(new_key), NOW - timedelta(seconds=1)),
    }
    filled.append_as_platform(session, [filled.statement("key.add", add, now=NOW)], now=NOW)
    rotated = LedgerService(CATALOG, PlatformSigner(new_key, origin=filled.platform.origin))
    rotated.issue_checkpoint(session, now=NOW)
    seen: list[tuple[int, bytes]] = []
    report = audit(
        session,
        CATALOG,
        trusted_platform_key=raw_public_key(new_key),
        check_checkpoint=lambda note, size, root, key: seen.append((size, key)),
    )
    assert report.checkpoints_checked == 2
    assert {key for _, key in seen} == {filled.platform.public_key, raw_public_key(new_key)}


def test_hidden_last_key_change_after_the_range_is_refused(
    session: Session, filled: Ledger
) -> None:
    raw = bundle(session, filled, 3, 10)
    lines = raw.split(b"\n")
    later = [i for i, line in enumerate(lines) if line.startswith(b'{"kind":"later"')]
    assert len(later) == 2
    assert any(line.startswith(b'{"kind":"tail"') for line in lines)
    hidden = b"\n".join(lines[: later[-1]] + lines[later[-1] + 1 :])
    with pytest.raises(VerificationError) as info:
        verify(hidden, filled.platform.public_key)
    assert info.value.code == "key-chain-broken"


@pytest.mark.parametrize(("first", "stop"), [(27, 27), (0, 0), (5, 5)])
def test_empty_range_bundles_still_prove_the_key_chain(
    session: Session, filled: Ledger, first: int, stop: int
) -> None:
    verify(bundle(session, filled, first, stop), filled.platform.public_key)


def test_hidden_key_change_that_ends_the_log_is_refused(session: Session, filled: Ledger) -> None:
    register_party(session, filled, "late-party")  # the log now ends with a key change
    raw = bundle(session, filled, 0, 1)
    lines = raw.split(b"\n")
    later = [i for i, line in enumerate(lines) if line.startswith(b'{"kind":"later"')]
    hidden = b"\n".join(lines[: later[-1]] + lines[later[-1] + 1 :])
    verify(raw, filled.platform.public_key)
    with pytest.raises(VerificationError) as info:
        verify(hidden, filled.platform.public_key)
    assert info.value.code == "key-chain-broken"

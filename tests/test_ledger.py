"""Appending to the ledger: keys, signatures, schemas, replays, atomic batches, proofs."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.entries import SignedStatement, encode_record, raw_public_key
from provenance.errors import CardtraceError
from provenance.ledger import Ledger, LedgerEntry, rebuild_projections
from provenance.merkle import root_from_leaves, verify_consistency, verify_inclusion
from provenance.parties import Party, PartyKey, key_body
from tests.ledger_support import NOW, party_key, register_party, signed_by


def size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def test_genesis_registers_the_platform_and_its_key(session: Session, genesis: Ledger) -> None:
    assert genesis.tree_head(session).size == 1
    platform = session.get(Party, "platform")
    assert platform is not None and platform.kind == "platform"
    key = session.get(PartyKey, genesis.platform.key_id)
    assert key is not None and key.public_key == genesis.platform.public_key
    assert not genesis.ensure_genesis(session, name="again", now=NOW)


def test_first_entry_must_be_the_platform_registering_itself(
    session: Session, ledger: Ledger
) -> None:
    key = party_key("mallory")
    with pytest.raises(CardtraceError) as info:
        ledger.append(session, [signed_by(key, "mallory")], now=NOW)
    assert info.value.code == "not-permitted"
    assert size(session) == 0


def test_party_signs_with_its_own_key(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    [appended] = genesis.append(session, [signed_by(key, "acme")], now=NOW)
    assert appended.seq == 2
    assert genesis.record(session, 2).statement.actor == "acme"


def test_key_of_another_party_is_refused(session: Session, genesis: Ledger) -> None:
    register_party(session, genesis, "acme")
    other = register_party(session, genesis, "other")
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(other, "acme")], now=NOW)
    assert info.value.code == "key-not-of-actor"
    assert size(session) == 3


def test_unknown_key_is_refused(session: Session, genesis: Ledger) -> None:
    register_party(session, genesis, "acme")
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(party_key("acme", 9), "acme")], now=NOW)
    assert info.value.code == "unknown-key"


def test_unregistered_actor_is_refused(session: Session, genesis: Ledger) -> None:
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(party_key("ghost"), "ghost")], now=NOW)
    assert info.value.code == "unknown-party"


def test_platform_may_sign_on_behalf_of_a_party(session: Session, genesis: Ledger) -> None:
    register_party(session, genesis, "acme")
    statement = genesis.statement("test.note", {"text": "via API"}, now=NOW, actor="acme")
    assert statement.on_behalf
    [appended] = genesis.append_as_platform(session, [statement], now=NOW)
    assert genesis.record(session, appended.seq).statement.on_behalf


def test_party_cannot_claim_to_be_the_platform_signing(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(key, "acme", on_behalf=True)], now=NOW)
    assert info.value.code == "key-not-of-actor"


def test_only_the_platform_registers_parties(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    body = {"party": "acme2", "kind": "issuer", "name": "x", "keys": []}
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(key, "acme", "party.register", body)], now=NOW)
    assert info.value.code == "not-permitted"


def test_rotation_then_revocation(session: Session, genesis: Ledger) -> None:
    old = register_party(session, genesis, "acme")
    new = party_key("acme", 1)
    add = {"party": "acme", "key": key_body(raw_public_key(new), NOW - timedelta(hours=1))}
    genesis.append(session, [signed_by(old, "acme", "key.add", add)], now=NOW)
    genesis.append(session, [signed_by(new, "acme", body={"text": "new key"})], now=NOW)
    revoke = {
        "party": "acme",
        "key_id": signed_by(old, "acme").statement.key,
        "revoked_at": "2026-11-26T11:59:00.000000Z",
        "reason": "rotated",
    }
    genesis.append(session, [signed_by(new, "acme", "key.revoke", revoke)], now=NOW)
    before = size(session)
    # Signed after the revocation time: refused, nothing written.
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(old, "acme", body={"text": "late"})], now=NOW)
    assert info.value.code == "key-revoked"
    assert size(session) == before
    row = session.get(PartyKey, revoke["key_id"])
    assert row is not None and row.revoke_reason == "rotated"


def test_party_cannot_change_another_partys_keys(session: Session, genesis: Ledger) -> None:
    register_party(session, genesis, "acme")
    mallory = register_party(session, genesis, "mallory")
    add = {"party": "acme", "key": key_body(raw_public_key(mallory), NOW)}
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(mallory, "mallory", "key.add", add)], now=NOW)
    assert info.value.code == "not-permitted"


def test_key_id_must_match_the_public_key(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    body = key_body(raw_public_key(party_key("acme", 2)), NOW)
    body["key_id"] = "0" * 16
    with pytest.raises(CardtraceError) as info:
        genesis.append(
            session, [signed_by(key, "acme", "key.add", {"party": "acme", "key": body})], now=NOW
        )
    assert info.value.code == "key-state"


def test_key_not_yet_valid_is_refused(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    future = party_key("acme", 3)
    add = {"party": "acme", "key": key_body(raw_public_key(future), NOW + timedelta(days=1))}
    genesis.append(session, [signed_by(key, "acme", "key.add", add)], now=NOW)
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(future, "acme")], now=NOW)
    assert info.value.code == "key-not-valid"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x", "extra": 1}, "body.extra"),
        ({"text": 5}, "body.text"),
        ({}, "body.text"),
        ({"text": "x" * 201}, "body.text"),
        ({"text": "x", "n": "5"}, "body.n"),
    ],
)
def test_body_not_matching_its_schema_is_refused(
    session: Session, genesis: Ledger, body: dict[str, object], field: str
) -> None:
    key = register_party(session, genesis, "acme")
    before = size(session)
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(key, "acme", body=body)], now=NOW)
    assert info.value.code == "bad-entry"
    assert info.value.field == field
    assert size(session) == before


def test_unknown_entry_type_is_refused(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(key, "acme", "code.teleport", {})], now=NOW)
    assert info.value.code == "unknown-entry-type"


def test_forged_signature_is_refused(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    good = signed_by(key, "acme")
    forged = SignedStatement(
        good.statement, good.payload, bytes([good.signature[0] ^ 1]) + good.signature[1:]
    )
    before = size(session)
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [forged], now=NOW)
    assert info.value.code == "bad-signature"
    assert size(session) == before


def test_replay_of_an_entry_whose_key_was_revoked_since_is_named_a_replay(
    session: Session, genesis: Ledger
) -> None:
    old = register_party(session, genesis, "acme")
    early = signed_by(old, "acme", body={"text": "before the revocation"})
    genesis.append(session, [early], now=NOW)
    new = party_key("acme", 1)
    add = {"party": "acme", "key": key_body(raw_public_key(new), NOW - timedelta(hours=1))}
    genesis.append(session, [signed_by(old, "acme", "key.add", add)], now=NOW)
    revoke = {
        "party": "acme",
        "key_id": early.statement.key,
        "revoked_at": "2026-11-26T11:59:00.000000Z",
        "reason": "lost",
    }
    genesis.append(session, [signed_by(new, "acme", "key.revoke", revoke)], now=NOW)
    before = size(session)
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [early], now=NOW)
    assert info.value.code == "replayed-entry"
    assert size(session) == before


def test_replayed_entry_is_refused(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    entry = signed_by(key, "acme")
    genesis.append(session, [entry], now=NOW)
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [entry], now=NOW)
    assert info.value.code == "replayed-entry"
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(key, "acme", body={"text": "b"})] * 2, now=NOW)
    assert info.value.code == "replayed-entry"


def test_entry_time_far_from_the_clock_is_refused(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(key, "acme", time=NOW - timedelta(hours=2))], now=NOW)
    assert info.value.code == "entry-time-skew"


def test_bad_entry_in_a_batch_writes_nothing(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    batch = [signed_by(key, "acme", body={"text": f"n{i}"}) for i in range(300)]
    bad = signed_by(party_key("acme", 7), "acme", body={"text": "bad"})
    before = size(session)
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [*batch[:150], bad, *batch[150:]], now=NOW)
    assert "entry 150" in str(info.value)
    assert size(session) == before


def forged(entry: SignedStatement) -> SignedStatement:
    """The same statement with one bit of its signature flipped."""
    signature = bytes([entry.signature[0] ^ 1]) + entry.signature[1:]
    return SignedStatement(entry.statement, entry.payload, signature)


def test_forged_signature_deep_in_a_large_batch_is_named_and_writes_nothing(
    session: Session, genesis: Ledger
) -> None:
    # Large enough that the signatures are checked on the pool while the rows are written.
    key = register_party(session, genesis, "acme")
    batch = [signed_by(key, "acme", body={"text": f"n{i}"}) for i in range(400)]
    batch[333] = forged(batch[333])
    before = size(session)
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, batch, now=NOW)
    assert info.value.code == "bad-signature"
    assert "entry 333" in str(info.value)
    assert size(session) == before
    assert genesis.tree_head(session).size == before


def test_replay_inside_a_large_batch_is_named_and_writes_nothing(
    session: Session, genesis: Ledger
) -> None:
    key = register_party(session, genesis, "acme")
    old = [signed_by(key, "acme", body={"text": f"old{i}"}) for i in range(40)]
    appended = genesis.append(session, old, now=NOW)
    before = size(session)
    root = genesis.tree_head(session).root
    batch = [signed_by(key, "acme", body={"text": f"new{i}"}) for i in range(100)]
    batch[70] = old[12]
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, batch, now=NOW)
    assert info.value.code == "replayed-entry"
    assert f"entry 70 of this batch is already in the ledger as entry {appended[12].seq}" in str(
        info.value
    )
    assert size(session) == before
    assert genesis.tree_head(session).root == root
    # The batch without the replay goes in whole afterwards: nothing was left half-written.
    del batch[70]
    assert len(genesis.append(session, batch, now=NOW)) == 99


def test_the_earlier_of_a_replay_and_a_forged_signature_is_named(
    session: Session, genesis: Ledger
) -> None:
    key = register_party(session, genesis, "acme")
    old = [signed_by(key, "acme", body={"text": f"old{i}"}) for i in range(5)]
    genesis.append(session, old, now=NOW)
    batch = [signed_by(key, "acme", body={"text": f"new{i}"}) for i in range(100)]
    batch[80] = old[0]
    batch[90] = forged(batch[90])
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, batch, now=NOW)
    assert (info.value.code, "entry 80" in str(info.value)) == ("replayed-entry", True)
    batch[20] = forged(batch[20])
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, batch, now=NOW)
    assert (info.value.code, "entry 20" in str(info.value)) == ("bad-signature", True)


def test_batch_is_chained_and_its_tree_proves_every_entry(
    session: Session, genesis: Ledger
) -> None:
    key = register_party(session, genesis, "acme")
    old_head = genesis.tree_head(session)
    batch = [signed_by(key, "acme", body={"text": f"n{i}", "n": i}) for i in range(500)]
    appended = genesis.append(session, batch, now=NOW)
    assert [a.seq for a in appended] == list(range(2, 502))
    leaves = list(session.scalars(select(LedgerEntry.leaf_hash).order_by(LedgerEntry.seq)))
    head = genesis.tree_head(session)
    assert head.size == 502
    assert head.root == root_from_leaves(leaves)
    # The chain: every record names its predecessor's leaf hash.
    for seq in (2, 3, 250, 501):
        record = genesis.record(session, seq)
        assert record.prev == leaves[seq - 1]
        assert record.keyprev == 1  # acme's registration is the last key entry
        assert encode_record(record.signed, seq, record.prev, record.keyprev) == record.raw
    rng = random.Random(7)
    for seq in rng.sample(range(502), 25):
        proof = genesis.inclusion_proof(session, seq, head.size)
        verify_inclusion(leaves[seq], seq, head.size, proof, head.root)
    proof = genesis.consistency_proof(session, old_head.size, head.size)
    verify_consistency(old_head.size, head.size, old_head.root, head.root, proof)
    assert genesis.root_at(session, 100) == root_from_leaves(leaves[:100])


def test_proof_beyond_the_log_is_refused(session: Session, genesis: Ledger) -> None:
    with pytest.raises(CardtraceError) as info:
        genesis.inclusion_proof(session, 0, 5)
    assert info.value.code == "bad-proof"
    with pytest.raises(CardtraceError):
        genesis.consistency_proof(session, 1, 2)


def test_rebuilding_projections_gives_the_same_state(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    register_party(session, genesis, "shop", "merchant")
    new = party_key("acme", 1)
    genesis.append(
        session,
        [
            signed_by(
                key, "acme", "key.add", {"party": "acme", "key": key_body(raw_public_key(new), NOW)}
            )
        ],
        now=NOW,
    )
    revoke = {
        "party": "acme",
        "key_id": signed_by(key, "acme").statement.key,
        "revoked_at": "2026-11-26T12:00:00.000000Z",
        "reason": "lost laptop",
    }
    genesis.append(session, [signed_by(new, "acme", "key.revoke", revoke)], now=NOW)

    def snapshot() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        parties = session.execute(select(Party.__table__).order_by(Party.id)).all()
        keys = session.execute(select(PartyKey.__table__).order_by(PartyKey.key_id)).all()
        return [tuple(r) for r in parties], [tuple(r) for r in keys]

    before = snapshot()
    session.expire_all()
    assert rebuild_projections(session, genesis.catalog) == size(session)
    session.expire_all()
    assert snapshot() == before


def test_platform_cannot_sign_on_behalf_of_itself(session: Session, genesis: Ledger) -> None:
    statement = genesis.statement("test.note", {"text": "x"}, now=NOW)
    from dataclasses import replace

    with pytest.raises(CardtraceError) as info:
        genesis.append_as_platform(session, [replace(statement, on_behalf=True)], now=NOW)
    assert info.value.code == "not-permitted"


def test_second_platform_registration_is_refused(session: Session, genesis: Ledger) -> None:
    body = {"party": "platform2", "kind": "platform", "name": "x", "keys": []}
    with pytest.raises(CardtraceError) as info:
        genesis.append_as_platform(
            session, [genesis.statement("party.register", body, now=NOW)], now=NOW
        )
    assert info.value.code == "not-permitted"


def test_same_key_listed_twice_is_refused(session: Session, genesis: Ledger) -> None:
    key = key_body(raw_public_key(party_key("twice")), NOW)
    body = {"party": "twice", "kind": "issuer", "name": "x", "keys": [key, key]}
    with pytest.raises(CardtraceError) as info:
        genesis.append_as_platform(
            session, [genesis.statement("party.register", body, now=NOW)], now=NOW
        )
    assert info.value.code == "key-exists"


def test_revocation_dated_after_its_entry_is_refused(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    revoke = {
        "party": "acme",
        "key_id": signed_by(key, "acme").statement.key,
        "revoked_at": "2026-11-27T00:00:00.000000Z",
        "reason": "later",
    }
    with pytest.raises(CardtraceError) as info:
        genesis.append(session, [signed_by(key, "acme", "key.revoke", revoke)], now=NOW)
    assert info.value.code == "key-state"


def test_key_management_entries_chain_through_keyprev(session: Session, genesis: Ledger) -> None:
    key = register_party(session, genesis, "acme")
    genesis.append(
        session, [signed_by(key, "acme", body={"text": f"{i}"}) for i in range(3)], now=NOW
    )
    register_party(session, genesis, "other")
    genesis.append(session, [signed_by(key, "acme", body={"text": "after"})], now=NOW)
    assert [genesis.record(session, s).keyprev for s in range(7)] == [-1, 0, 1, 1, 1, 1, 5]

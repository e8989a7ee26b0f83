"""Verify before sale in-process: one code or many, with or without the node cache, the
same answer; and a cache shared by two stores never mixes their trees."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from provenance.db import write_transaction
from provenance.entries import format_time
from provenance.fingerprints import serial_fingerprint
from provenance.instance import ensure_identity
from provenance.ledger import Ledger, PlatformSigner
from provenance.merkle import verify_inclusion
from provenance.verdict import CodeQuery, NodeCache, VerifyResult, verify_codes
from tests.codes_support import (
    ISSUER,
    PARTNER,
    PRODUCT,
    SHOP,
    Chain,
    b64,
    build_chain,
    fp,
    person,
    pin,
    sale_body,
    serial,
)
from tests.keys import FINGERPRINT_KEY
from tests.ledger_support import NOW, PLATFORM_KEY
from tests.ledger_support import test_catalog as catalog_for_tests
from webapp.database import make_engine, upgrade


def raw_query(i: int, pin_of: int | None = None) -> CodeQuery:
    return CodeQuery.from_raw(
        FINGERPRINT_KEY, ISSUER, PRODUCT, serial(i), pin(i if pin_of is None else pin_of)
    )


# Codes of build_chain: 0-4 listed by the shop, 5-9 held by it, 10-14 with the
# distributor, 15-19 with the issuer; below, 0 is sold, 1 redeemed, 2 voided, 3 frozen and
# tainted, 400 attested by the shop, and 1000 never issued; 501 has a known serial.
QUERIES = [
    raw_query(0),
    raw_query(1),
    raw_query(2),
    raw_query(3),
    raw_query(4),
    raw_query(7),
    raw_query(12),
    raw_query(17),
    raw_query(400),
    raw_query(1000),
    raw_query(5, pin_of=6),
    CodeQuery(fp(4)),
    CodeQuery(fp(1000)),
]


def _add_history(session: Session, chain: Chain) -> None:
    chain.append(session, SHOP, "code.sale", sale_body(0))
    chain.append(session, ISSUER, "code.redeem", {"code": b64(fp(1))})
    chain.append(session, ISSUER, "code.void", {"codes": [b64(fp(2))], "reason": "recalled"})
    chain.append(session, SHOP, "code.sale", sale_body(3, instrument="stolen-card"))
    report = {
        "kind": "instrument",
        "pseudonym": person("instrument", "stolen-card"),
        "reported_at": format_time(NOW),
        "reason": "chargeback",
    }
    chain.append(session, PARTNER, "payment.stolen", report)
    chain.append(session, ISSUER, "code.freeze", {"codes": [b64(fp(3))], "reason": "inquiry"})
    pair = [b64(fp(400)), b64(serial_fingerprint(FINGERPRINT_KEY, ISSUER, PRODUCT, serial(400)))]
    body = {"product": PRODUCT, "codes": [pair], "evidence_sha256": "ab" * 32, "note": "invoice"}
    chain.append(session, SHOP, "code.attest", body)


@pytest.fixture()
def store(session: Session, ledger: Ledger) -> Chain:
    """The test supply chain with every kind of history, a checkpoint, then one entry more
    (so some entries are proved and one is pending)."""
    chain = build_chain(session, ledger)
    _add_history(session, chain)
    ledger.issue_checkpoint(session, now=NOW)
    chain.append(session, SHOP, "code.list", {"codes": [b64(fp(7))]})
    session.flush()
    return chain


def _verify(session: Session, queries: list[CodeQuery], cache: NodeCache | None) -> VerifyResult:
    return verify_codes(session, queries, merchant=SHOP, now=NOW, nodes=cache)


def _assert_proofs_verify(result: VerifyResult) -> None:
    proofs = result.proofs
    assert proofs.root is not None
    for seq, entry in proofs.entries.items():
        verify_inclusion(entry.leaf_hash, seq, proofs.checkpoint_size, entry.proof, proofs.root)


def test_each_code_gets_the_same_answer_alone_as_in_a_list(session: Session, store: Chain) -> None:
    together = _verify(session, QUERIES, None)
    for query, verdict in zip(QUERIES, together.verdicts, strict=True):
        alone = _verify(session, [query], None)
        assert alone.verdicts == (verdict,)
        seqs = {step.seq for step in verdict.custody}
        assert set(alone.proofs.entries) | set(alone.proofs.pending) == seqs
        for seq, proof in alone.proofs.entries.items():
            assert together.proofs.entries[seq] == proof
        assert (alone.proofs.root, alone.proofs.note) == (
            together.proofs.root,
            together.proofs.note,
        )
    reasons = {r.code.value for v in together.verdicts for r in v.reasons}
    assert {
        "already-sold",
        "redeemed",
        "voided",
        "frozen",
        "tainted-stolen-payment",
        "custody-break",
        "supplier-attested-only",
        "unknown-origin",
        "same-serial-different-pin",
    } <= reasons
    assert together.proofs.pending


def test_the_same_code_asked_twice_gets_one_answer_each(session: Session, store: Chain) -> None:
    result = _verify(session, [raw_query(4), raw_query(4)], None)
    assert (
        result.verdicts[0]
        == result.verdicts[1]
        == _verify(session, [raw_query(4)], None).verdicts[0]
    )


def test_cached_proofs_are_the_uncached_proofs(session: Session, store: Chain) -> None:
    cache = NodeCache()
    uncached = _verify(session, QUERIES, None)
    cold = _verify(session, QUERIES, cache)
    warm = _verify(session, QUERIES, cache)
    assert cold == uncached
    assert warm == uncached
    assert len(cache) > 0
    for query in QUERIES:
        assert _verify(session, [query], cache) == _verify(session, [query], None)
    _assert_proofs_verify(warm)


def test_a_cache_smaller_than_one_proof_still_gives_the_same_proofs(
    session: Session, store: Chain
) -> None:
    cache = NodeCache(max_nodes=2)
    uncached = _verify(session, QUERIES, None)
    for _ in range(3):
        assert _verify(session, QUERIES, cache) == uncached
    assert len(cache) <= 2


def test_a_warm_cache_reads_no_tree_nodes(session: Session, store: Chain) -> None:
    cache = NodeCache()
    _verify(session, [raw_query(4)], cache)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = session.get_bind()
    assert isinstance(engine.engine, Engine)
    event.listen(engine.engine, "before_cursor_execute", record)
    try:
        result = _verify(session, [raw_query(4)], cache)
    finally:
        event.remove(engine.engine, "before_cursor_execute", record)
    assert result.proofs.entries
    assert not [s for s in statements if "merkle_node" in s]


def test_audit_paths_kept_for_one_checkpoint_are_not_served_against_the_next(
    session: Session, ledger: Ledger, store: Chain
) -> None:
    cache = NodeCache()
    before = _verify(session, QUERIES, cache)
    assert before.proofs.pending
    ledger.issue_checkpoint(session, now=NOW)  # takes in the entry that was pending
    session.flush()
    after = _verify(session, QUERIES, cache)
    assert after.proofs.checkpoint_size > before.proofs.checkpoint_size
    assert not after.proofs.pending
    assert after == _verify(session, QUERIES, None)
    _assert_proofs_verify(after)
    # The same entry's path differs between the two checkpoints; each answer has its own.
    shared = set(before.proofs.entries) & set(after.proofs.entries)
    assert any(before.proofs.entries[s].proof != after.proofs.entries[s].proof for s in shared)


def test_a_cache_holding_one_audit_path_still_gives_the_same_proofs(
    session: Session, store: Chain
) -> None:
    cache = NodeCache(max_proofs=1)
    uncached = _verify(session, QUERIES, None)
    for _ in range(3):
        assert _verify(session, QUERIES, cache) == uncached
    with pytest.raises(ValueError):
        NodeCache(max_proofs=0)


@pytest.fixture()
def other_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(make_url(f"sqlite:///{tmp_path / 'other.db'}"))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("differs_by", ["instance", "origin"])
def test_a_shared_cache_never_serves_one_logs_nodes_to_another(
    session: Session, ledger: Ledger, other_engine: Engine, differs_by: str
) -> None:
    # Two stores whose logs share their genesis entry but not what follows, so the same
    # node ids hold different hashes.
    build_chain(session, ledger, codes=20)
    other_origin = "other.example/log" if differs_by == "origin" else ledger.platform.origin
    other_ledger = Ledger(catalog_for_tests(), PlatformSigner(PLATFORM_KEY, origin=other_origin))
    with Session(other_engine) as other, write_transaction(other):
        build_chain(other, other_ledger, codes=16)
        other_ledger.issue_checkpoint(other, now=NOW)
        if differs_by == "instance":
            ensure_identity(other, other_origin, NOW)
    ledger.issue_checkpoint(session, now=NOW)
    if differs_by == "instance":
        ensure_identity(session, ledger.platform.origin, datetime(2026, 1, 1, tzinfo=UTC))
    session.flush()

    cache = NodeCache()
    mine = _verify(session, [raw_query(4)], cache)
    with Session(other_engine) as other:
        theirs_uncached = _verify(other, [raw_query(4)], None)
        theirs = _verify(other, [raw_query(4)], cache)
    other_ledger.close()
    assert mine.proofs.root != theirs.proofs.root
    assert theirs == theirs_uncached
    _assert_proofs_verify(theirs)
    assert _verify(session, [raw_query(4)], cache) == mine

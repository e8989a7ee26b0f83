"""`ledger audit` finds rows changed behind the ledger's back, by raw SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from provenance.audit import audit
from provenance.entries import decode_record
from provenance.ledger import Ledger
from provenance.merkle import leaf_hash
from provenance.verify import VerificationError
from tests.ledger_support import NOW, register_party, signed_by, test_catalog


@pytest.fixture()
def filled(session: Session, genesis: Ledger) -> Session:
    key = register_party(session, genesis, "acme")
    genesis.append(
        session,
        [signed_by(key, "acme", body={"text": f"n{i}", "n": i}) for i in range(40)],
        now=NOW,
    )
    session.flush()
    return session


def run_audit(session: Session) -> VerificationError:
    session.expire_all()
    with pytest.raises(VerificationError) as info:
        audit(session, test_catalog())
    return info.value


def test_untouched_log_passes(filled: Session) -> None:
    report = audit(filled, test_catalog())
    assert report.size == 42
    assert report.nodes_checked == 2 * 42 - bin(42).count("1")


def test_altered_record_byte_is_found(filled: Session) -> None:
    raw = filled.execute(text("SELECT record FROM ledger_entry WHERE seq = 7")).scalar_one()
    changed = bytes(raw).replace(b'"text":"n', b'"text":"m')
    assert changed != raw
    filled.execute(text("UPDATE ledger_entry SET record = :r WHERE seq = 7"), {"r": changed})
    error = run_audit(filled)
    assert (error.code, error.seq) == ("leaf-mismatch", 7)


def test_altered_record_with_matching_leaf_hash_is_found(filled: Session) -> None:
    raw = filled.execute(text("SELECT record FROM ledger_entry WHERE seq = 7")).scalar_one()
    changed = bytes(raw).replace(b'"text":"n', b'"text":"m')
    assert changed != raw
    record = decode_record(changed)
    filled.execute(
        text(
            "UPDATE ledger_entry SET record = :r, leaf_hash = :h, statement_hash = :s WHERE seq = 7"
        ),
        {"r": changed, "h": leaf_hash(changed), "s": record.signed.statement_hash},
    )
    # Every copied column agrees, but the signature no longer covers the statement.
    error = run_audit(filled)
    assert (error.code, error.seq) == ("bad-signature", 7)


def test_deleted_row_is_found(filled: Session) -> None:
    filled.execute(text("DELETE FROM ledger_entry WHERE seq = 20"))
    assert run_audit(filled).code == "entry-missing"


def test_deleted_last_row_is_found(filled: Session) -> None:
    filled.execute(text("DELETE FROM ledger_entry WHERE seq = 41"))
    assert run_audit(filled).code == "head-mismatch"


def test_reordered_rows_are_found(filled: Session) -> None:
    filled.execute(text("UPDATE ledger_entry SET seq = -1 WHERE seq = 10"))
    filled.execute(text("UPDATE ledger_entry SET seq = 10 WHERE seq = 11"))
    filled.execute(text("UPDATE ledger_entry SET seq = 11 WHERE seq = -1"))
    assert run_audit(filled).code == "out-of-sequence"


def test_inserted_row_at_the_end_is_found(filled: Session) -> None:
    filled.execute(
        text(
            "INSERT INTO ledger_entry (seq, type, time, actor, key_id, statement_hash, leaf_hash,"
            " record) SELECT 42, type, time, actor, key_id, :h, leaf_hash, record"
            " FROM ledger_entry WHERE seq = 41"
        ),
        {"h": b"\x01" * 32},
    )
    assert run_audit(filled).code == "out-of-sequence"


def test_inserted_row_in_the_middle_is_found(filled: Session) -> None:
    for seq in range(41, 14, -1):
        filled.execute(
            text("UPDATE ledger_entry SET seq = :n WHERE seq = :o"), {"n": seq + 1, "o": seq}
        )
    filled.execute(
        text(
            "INSERT INTO ledger_entry (seq, type, time, actor, key_id, statement_hash, leaf_hash,"
            " record) SELECT 15, type, time, actor, key_id, :h, leaf_hash, record"
            " FROM ledger_entry WHERE seq = 14"
        ),
        {"h": b"\x02" * 32},
    )
    assert run_audit(filled).code == "out-of-sequence"


def test_altered_copied_column_is_found(filled: Session) -> None:
    filled.execute(text("UPDATE ledger_entry SET actor = 'someone' WHERE seq = 5"))
    assert run_audit(filled).code == "column-mismatch"


def test_altered_tree_node_is_found(filled: Session) -> None:
    filled.execute(text("UPDATE merkle_node SET hash = :h WHERE id = 3"), {"h": b"\x00" * 32})
    assert run_audit(filled).code == "node-mismatch"


def test_deleted_tree_node_is_found(filled: Session) -> None:
    filled.execute(text("DELETE FROM merkle_node WHERE id = 7"))
    assert run_audit(filled).code == "node-missing"


def test_extra_tree_node_is_found(filled: Session) -> None:
    filled.execute(
        text("INSERT INTO merkle_node (id, hash) VALUES (999999, :h)"), {"h": b"\x00" * 32}
    )
    assert run_audit(filled).code == "node-count"


def test_altered_head_is_found(filled: Session) -> None:
    filled.execute(text("UPDATE ledger_head SET size = 41 WHERE id = 1"))
    assert run_audit(filled).code == "head-mismatch"

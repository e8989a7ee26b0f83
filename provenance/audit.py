"""Audit the live database as an outsider would: recompute everything, trust nothing.

Every stored row is checked against what the records themselves imply: the sequence
has no gap, no extra and no reordered row; each record's bytes, chain link, signer and
signature; the columns copied out of each record; every stored tree node; the head;
and the root of every stored checkpoint.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.catalog import EntryCatalog
from provenance.entries import Record
from provenance.ledger import LedgerEntry, LedgerHead, MerkleNode, StoredCheckpoint
from provenance.merkle import EMPTY_ROOT, CompactRange, NodeId, RootHash
from provenance.parties import PLATFORM_PARTY, KeyRegistry
from provenance.verify import LogVerifier, VerificationError

_PAGE = 2000
_NODE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class AuditReport:
    size: int
    root: RootHash
    nodes_checked: int
    checkpoints_checked: int


CheckpointCheck = Callable[[str, int, bytes, bytes], None]
"""Verifies a stored checkpoint note (note, size, root) is signed by the given public key."""


def audit(
    session: Session,
    catalog: EntryCatalog,
    *,
    platform: str = PLATFORM_PARTY,
    trusted_platform_key: bytes | None = None,
    check_checkpoint: CheckpointCheck | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Check the whole log in the database.

    Raises:
        VerificationError: at the first problem, naming the entry (or node) and why.
    """
    head = session.scalars(select(LedgerHead).where(LedgerHead.id == 1)).one_or_none()
    if head is None:
        raise VerificationError("the ledger head row is missing", code="head-missing")
    checkpoints: dict[int, list[StoredCheckpoint]] = {}
    for stored in session.scalars(select(StoredCheckpoint).order_by(StoredCheckpoint.size)):
        checkpoints.setdefault(stored.size, []).append(stored)
    buffered: list[tuple[NodeId, bytes]] = []
    nodes_checked = 0

    def check_nodes() -> None:
        nonlocal nodes_checked
        for start in range(0, len(buffered), _NODE_CHUNK):
            chunk = dict(buffered[start : start + _NODE_CHUNK])
            rows = session.execute(
                select(MerkleNode.id, MerkleNode.hash).where(MerkleNode.id.in_(chunk))
            )
            stored = {node: value for node, value in rows}
            for node, expected in chunk.items():
                got = stored.get(node)
                if got is None:
                    raise VerificationError(f"tree node {node} is missing", code="node-missing")
                if not hmac.compare_digest(got, expected):
                    raise VerificationError(
                        f"tree node {node} does not match the entries below it",
                        code="node-mismatch",
                    )
            nodes_checked += len(chunk)
        buffered.clear()

    verifier = LogVerifier(
        catalog,
        registry=KeyRegistry(platform=platform),
        trusted_platform_key=trusted_platform_key,
        on_nodes=buffered.extend,
    )
    checked_checkpoints = 0
    cursor = 0
    while True:
        rows = (
            session.execute(
                select(LedgerEntry)
                .where(LedgerEntry.seq >= cursor)
                .order_by(LedgerEntry.seq)
                .limit(_PAGE)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for row in rows:
            expected = verifier.size
            if row.seq != expected:
                raise VerificationError(
                    f"entry {expected} is missing (the next stored entry is {row.seq})",
                    code="entry-missing",
                    seq=expected,
                )
            record = verifier.feed(row.record, row.leaf_hash)
            column = _mismatched_column(row, record)
            if column is not None:
                raise VerificationError(
                    f"entry {row.seq}: the stored {column} column does not match the record",
                    code="column-mismatch",
                    seq=row.seq,
                )
            size = row.seq + 1
            for stored in checkpoints.get(size, ()):
                _check_root(stored, verifier.root())
        if len(buffered) >= 20 * _NODE_CHUNK:
            check_nodes()
        cursor = rows[-1].seq + 1
        if progress is not None:
            progress(cursor, head.size)
        session.expunge_all()
    verifier.finish()
    check_nodes()
    size = verifier.size
    if size != head.size:
        raise VerificationError(
            f"the head says {head.size} entries but {size} are stored", code="head-mismatch"
        )
    if head.last_key_seq != verifier.key_seq:
        raise VerificationError(
            "the head's last key-management entry is not the last one stored",
            code="head-mismatch",
        )
    if head.size and head.last_leaf != verifier.prev:
        raise VerificationError(
            "the head's last leaf is not the last entry's", code="head-mismatch"
        )
    if CompactRange.from_bytes(head.frontier) != verifier.left:
        raise VerificationError(
            "the head's tree edge does not match the entries", code="head-mismatch"
        )
    stored_nodes = session.scalar(select(func.count()).select_from(MerkleNode)) or 0
    expected_nodes = 2 * size - bin(size).count("1")
    if stored_nodes != expected_nodes:
        raise VerificationError(
            f"the tree store holds {stored_nodes} nodes; {size} entries make {expected_nodes}",
            code="node-count",
        )
    for stored in checkpoints.get(0, ()):
        _check_root(stored, EMPTY_ROOT)
    unchecked = [s for s in checkpoints if s > size]
    if unchecked:
        raise VerificationError(
            f"checkpoint of size {unchecked[0]} is beyond the log's {size} entries",
            code="checkpoint-beyond-log",
        )
    # Signatures last: a checkpoint may be signed by a platform key added after its size.
    for group in checkpoints.values():
        for stored in group:
            key = verifier.registry.keys.get(stored.key_id)
            if key is None or key.party != verifier.registry.platform:
                raise VerificationError(
                    f"checkpoint of size {stored.size} names key {stored.key_id}, which is "
                    "not a platform key",
                    code="checkpoint-mismatch",
                )
            if check_checkpoint is not None:
                check_checkpoint(stored.note, stored.size, stored.root, key.public_key)
            checked_checkpoints += 1
    return AuditReport(size, verifier.root(), nodes_checked, checked_checkpoints)


def _mismatched_column(row: LedgerEntry, record: Record) -> str | None:
    """The name of the first copied column that disagrees with the record, if any."""
    statement = record.statement
    if row.type != statement.type:
        return "type"
    if row.actor != statement.actor:
        return "actor"
    if row.key_id != statement.key:
        return "key_id"
    if row.time != statement.time:
        return "time"
    if row.statement_hash != record.signed.statement_hash:
        return "statement_hash"
    return None


def _check_root(stored: StoredCheckpoint, root: RootHash) -> None:
    if not hmac.compare_digest(stored.root, root):
        raise VerificationError(
            f"checkpoint of size {stored.size} has a root the entries do not produce",
            code="checkpoint-mismatch",
            seq=stored.size - 1,
        )

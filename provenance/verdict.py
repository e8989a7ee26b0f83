"""Verify before sale: may this code be sold, by this merchant, now? And why.

Reads projections and the ledger only; writes nothing. Every reason that applies is
returned (not just the first), each as a stable code with a sentence in English and
Chinese, together with the code's custody chain and the inclusion proofs of the
entries behind the verdict against the latest signed checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from provenance.codes import (
    BatchStatus,
    Code,
    CodeBatch,
    CodeEvent,
    CodeState,
    Origin,
)
from provenance.fingerprints import code_fingerprint, normalise_part, serial_fingerprint
from provenance.ledger import LedgerEntry, MerkleNode, StoredCheckpoint
from provenance.merkle import NodeId, assemble, inclusion_plan, plan_node_ids
from provenance.parties import Party, PartyKey, PartyKind, PartyStatus

_CHUNK = 500


class Decision(StrEnum):
    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


_RANK = {Decision.ALLOW: 0, Decision.REVIEW: 1, Decision.BLOCK: 2}


class ReasonCode(StrEnum):
    UNKNOWN_ORIGIN = "unknown-origin"
    SAME_SERIAL_DIFFERENT_PIN = "same-serial-different-pin"
    ISSUANCE_INCOMPLETE = "issuance-incomplete"
    SUPPLIER_ATTESTED = "supplier-attested-only"
    ISSUED_ON_BEHALF = "issued-on-behalf"
    CUSTODY_BREAK = "custody-break"
    ALREADY_SOLD = "already-sold"
    REDEEMED = "redeemed"
    VOIDED = "voided"
    FROZEN = "frozen"
    EXPIRED = "expired"
    TAINTED = "tainted-stolen-payment"
    MERCHANT_UNKNOWN = "merchant-unknown"
    MERCHANT_NOT_APPROVED = "merchant-not-approved"
    MERCHANT_SUSPENDED = "merchant-suspended"


# code -> (decision, English, Chinese). The sentences name no PIN and no personal data.
REASONS: dict[ReasonCode, tuple[Decision, str, str]] = {
    ReasonCode.UNKNOWN_ORIGIN: (
        Decision.BLOCK,
        "No issuer issued this code and no vetted supplier attested its origin.",
        "该卡密没有发行方发行记录，也没有经审核的供货商声明其来源。",
    ),
    ReasonCode.SAME_SERIAL_DIFFERENT_PIN: (
        Decision.BLOCK,
        "A code with this serial number is on record with a different PIN.",
        "该序列号已登记，但对应的卡密不同。",
    ),
    ReasonCode.ISSUANCE_INCOMPLETE: (
        Decision.BLOCK,
        "The code's batch was uploaded but the issuer has not signed for it.",
        "该卡密所在批次已上传，但发行方尚未签名确认。",
    ),
    ReasonCode.SUPPLIER_ATTESTED: (
        Decision.REVIEW,
        "The code's origin is only attested by a supplier, not signed by its issuer.",
        "该卡密的来源仅由供货商声明，未经发行方签名。",
    ),
    ReasonCode.ISSUED_ON_BEHALF: (
        Decision.REVIEW,
        "The code's batch was signed by the platform for the issuer, not by the issuer.",
        "该卡密批次由平台代发行方签名，而非发行方本人签名。",
    ),
    ReasonCode.CUSTODY_BREAK: (
        Decision.BLOCK,
        "The selling merchant does not hold this code: its custody chain ends elsewhere.",
        "销售商户并不持有该卡密：其流转链终止于其他主体。",
    ),
    ReasonCode.ALREADY_SOLD: (
        Decision.BLOCK,
        "This code has already been sold.",
        "该卡密已售出。",
    ),
    ReasonCode.REDEEMED: (
        Decision.BLOCK,
        "This code has already been redeemed.",
        "该卡密已被兑换。",
    ),
    ReasonCode.VOIDED: (
        Decision.BLOCK,
        "The issuer or the platform has voided this code.",
        "发行方或平台已作废该卡密。",
    ),
    ReasonCode.FROZEN: (
        Decision.BLOCK,
        "This code is frozen pending investigation.",
        "该卡密已被冻结，正在调查中。",
    ),
    ReasonCode.EXPIRED: (
        Decision.BLOCK,
        "This code's batch has expired.",
        "该卡密所在批次已过期。",
    ),
    ReasonCode.TAINTED: (
        Decision.BLOCK,
        "This code was bought with a payment reported stolen.",
        "该卡密曾使用被举报为盗用的支付方式购买。",
    ),
    ReasonCode.MERCHANT_UNKNOWN: (
        Decision.BLOCK,
        "The selling party is not a registered merchant.",
        "销售方不是已登记的商户。",
    ),
    ReasonCode.MERCHANT_NOT_APPROVED: (
        Decision.BLOCK,
        "The selling merchant has not been approved by merchant vetting.",
        "销售商户尚未通过审核。",
    ),
    ReasonCode.MERCHANT_SUSPENDED: (
        Decision.BLOCK,
        "The selling merchant is suspended or terminated.",
        "销售商户已被暂停或终止。",
    ),
}


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    decision: Decision
    message: str
    message_zh: str

    @classmethod
    def of(cls, code: ReasonCode) -> Reason:
        decision, english, chinese = REASONS[code]
        return cls(code, decision, english, chinese)


@dataclass(frozen=True, slots=True)
class CodeQuery:
    """A code asked about: its fingerprint, and its serial fingerprint if the raw code was
    given (which lets a different PIN for a known serial be recognised)."""

    fingerprint: bytes
    serial_fp: bytes | None = None

    @classmethod
    def from_raw(cls, key: bytes, issuer: str, product: str, serial: str, pin: str) -> CodeQuery:
        """Fingerprint a raw code; the PIN goes no further than this call.

        Raises:
            CodeFormatError: the serial or PIN is malformed (the message omits them).
        """
        serial = normalise_part(serial, "serial")
        pin = normalise_part(pin, "pin")
        return cls(
            code_fingerprint(key, issuer, product, serial, pin),
            serial_fingerprint(key, issuer, product, serial),
        )


@dataclass(frozen=True, slots=True)
class CustodyStep:
    """One entry in a code's history; ``signer`` differs from ``actor`` when the
    platform signed on the actor's behalf."""

    seq: int
    type: str
    time: datetime
    actor: str
    signer: str


@dataclass(frozen=True, slots=True)
class CodeSummary:
    product: str
    batch: str | None
    origin: str
    holder: str
    state: str
    frozen: bool
    tainted: bool
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class CodeVerdict:
    fingerprint: bytes
    decision: Decision
    reasons: tuple[Reason, ...]
    code: CodeSummary | None
    custody: tuple[CustodyStep, ...]


@dataclass(frozen=True, slots=True)
class EntryProof:
    seq: int
    leaf_hash: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Proofs:
    """Inclusion proofs of every entry behind the verdicts, against one checkpoint.

    Entries newer than the checkpoint are ``pending``: the next checkpoint covers them.
    """

    checkpoint_size: int
    root: bytes | None
    note: str | None
    entries: dict[int, EntryProof] = field(default_factory=dict)
    pending: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    merchant: str
    verdicts: tuple[CodeVerdict, ...]
    proofs: Proofs


def _decide(reasons: Iterable[Reason]) -> Decision:
    decision = Decision.ALLOW
    for reason in reasons:
        if _RANK[reason.decision] > _RANK[decision]:
            decision = reason.decision
    return decision


# Statements are built once: verify runs before every sale, and building a statement
# costs as much as running it. Lists go in through expanding bind parameters.
_PARTY = select(Party.kind, Party.status).where(Party.id == bindparam("party"))
_CODES = (
    select(
        Code.fingerprint,
        Code.product,
        Code.batch,
        Code.origin,
        Code.holder,
        Code.state,
        Code.frozen,
        Code.tainted,
        Code.issued_seq,
        CodeBatch.status.label("batch_status"),
        CodeBatch.issue_seq,
        CodeBatch.expires_at,
    )
    .outerjoin(CodeBatch, CodeBatch.id == Code.batch)
    .where(Code.fingerprint.in_(bindparam("fps", expanding=True)))
)
_SERIALS = select(Code.serial_fp).where(Code.serial_fp.in_(bindparam("sfps", expanding=True)))
_EVENTS = select(CodeEvent.fingerprint, CodeEvent.seq).where(
    CodeEvent.fingerprint.in_(bindparam("fps", expanding=True))
)
_ENTRIES = (
    select(
        LedgerEntry.seq,
        LedgerEntry.type,
        LedgerEntry.time,
        LedgerEntry.actor,
        LedgerEntry.leaf_hash,
        PartyKey.party_id,
    )
    .outerjoin(PartyKey, PartyKey.key_id == LedgerEntry.key_id)
    .where(LedgerEntry.seq.in_(bindparam("seqs", expanding=True)))
)
_CHECKPOINT = (
    select(StoredCheckpoint.size, StoredCheckpoint.root, StoredCheckpoint.note)
    .order_by(StoredCheckpoint.size.desc(), StoredCheckpoint.issued_at.desc())
    .limit(1)
)
_NODES = select(MerkleNode.id, MerkleNode.hash).where(
    MerkleNode.id.in_(bindparam("ids", expanding=True))
)


@dataclass(frozen=True, slots=True)
class _CodeRow:
    fingerprint: bytes
    product: str
    batch: str | None
    origin: str
    holder: str
    state: str
    frozen: bool
    tainted: bool
    issued_seq: int
    batch_status: str | None
    issue_seq: int | None
    expires_at: datetime | None


def _merchant_reasons(connection: Connection, merchant: str) -> list[Reason]:
    row = connection.execute(_PARTY, {"party": merchant}).first()
    if row is None or row.kind != PartyKind.MERCHANT.value:
        return [Reason.of(ReasonCode.MERCHANT_UNKNOWN)]
    if row.status in (PartyStatus.SUSPENDED.value, PartyStatus.TERMINATED.value):
        return [Reason.of(ReasonCode.MERCHANT_SUSPENDED)]
    if row.status != PartyStatus.APPROVED.value:
        return [Reason.of(ReasonCode.MERCHANT_NOT_APPROVED)]
    return []


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    items = list(dict.fromkeys(values))
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def verify_codes(
    session: Session,
    queries: Sequence[CodeQuery],
    *,
    merchant: str,
    now: datetime,
) -> VerifyResult:
    """Judge each code for a sale by ``merchant`` at ``now``; write nothing.

    Args:
        queries: the codes (at most what the caller allows; the API caps it at 10,000).
    """
    # Core statements on the session's connection: the ORM layer adds nothing here.
    connection = session.connection()
    merchant_reasons = _merchant_reasons(connection, merchant)
    codes: dict[bytes, _CodeRow] = {}
    for chunk in _chunks(q.fingerprint for q in queries):
        for row in connection.execute(_CODES, {"fps": chunk}):
            codes[row.fingerprint] = _CodeRow(**row._mapping)
    unknown_serials = [
        q.serial_fp for q in queries if q.fingerprint not in codes and q.serial_fp is not None
    ]
    known_serials: set[bytes] = set()
    for chunk in _chunks(unknown_serials):
        known_serials.update(connection.scalars(_SERIALS, {"sfps": chunk}))
    chains: dict[bytes, set[int]] = {
        fp: {row.issued_seq} | ({row.issue_seq} if row.issue_seq is not None else set())
        for fp, row in codes.items()
    }
    for chunk in _chunks(codes):
        for fp, seq in connection.execute(_EVENTS, {"fps": chunk}):
            chains[fp].add(seq)
    entries = _entries(connection, [seq for chain in chains.values() for seq in chain])

    verdicts = []
    for query in queries:
        code = codes.get(query.fingerprint)
        if code is None:
            reason = (
                ReasonCode.SAME_SERIAL_DIFFERENT_PIN
                if query.serial_fp is not None and query.serial_fp in known_serials
                else ReasonCode.UNKNOWN_ORIGIN
            )
            reasons = [Reason.of(reason), *merchant_reasons]
            verdicts.append(
                CodeVerdict(query.fingerprint, _decide(reasons), tuple(reasons), None, ())
            )
            continue
        reasons = [*_code_reasons(code, merchant, now), *merchant_reasons]
        summary = CodeSummary(
            product=code.product,
            batch=code.batch,
            origin=code.origin,
            holder=code.holder,
            state=code.state,
            frozen=code.frozen,
            tainted=code.tainted,
            expires_at=code.expires_at,
        )
        custody = tuple(entries[s][0] for s in sorted(chains[code.fingerprint]) if s in entries)
        verdicts.append(
            CodeVerdict(code.fingerprint, _decide(reasons), tuple(reasons), summary, custody)
        )
    proofs = _proofs(connection, entries)
    return VerifyResult(merchant, tuple(verdicts), proofs)


def _code_reasons(code: _CodeRow, merchant: str, now: datetime) -> list[Reason]:
    reasons: list[Reason] = []
    if code.batch is not None and code.batch_status != BatchStatus.ACTIVE.value:
        reasons.append(Reason.of(ReasonCode.ISSUANCE_INCOMPLETE))
    if code.origin == Origin.SUPPLIER_ATTESTED.value:
        reasons.append(Reason.of(ReasonCode.SUPPLIER_ATTESTED))
    elif code.origin == Origin.ISSUER_ON_BEHALF.value:
        reasons.append(Reason.of(ReasonCode.ISSUED_ON_BEHALF))
    state_reason = {
        CodeState.SOLD.value: ReasonCode.ALREADY_SOLD,
        CodeState.REDEEMED.value: ReasonCode.REDEEMED,
        CodeState.VOIDED.value: ReasonCode.VOIDED,
    }.get(code.state)
    if state_reason is not None:
        reasons.append(Reason.of(state_reason))
    elif code.holder != merchant:
        reasons.append(Reason.of(ReasonCode.CUSTODY_BREAK))
    if code.frozen:
        reasons.append(Reason.of(ReasonCode.FROZEN))
    if code.tainted:
        reasons.append(Reason.of(ReasonCode.TAINTED))
    if code.expires_at is not None and code.expires_at <= now:
        reasons.append(Reason.of(ReasonCode.EXPIRED))
    return reasons


def _entries(connection: Connection, seqs: Sequence[int]) -> dict[int, tuple[CustodyStep, bytes]]:
    """seq -> (custody step, leaf hash) for the entries behind the verdicts."""
    found: dict[int, tuple[CustodyStep, bytes]] = {}
    for chunk in _chunks(seqs):
        for seq, kind, time, actor, leaf, signer in connection.execute(_ENTRIES, {"seqs": chunk}):
            found[seq] = (CustodyStep(seq, kind, time, actor, signer or actor), leaf)
    return found


def _proofs(connection: Connection, entries: dict[int, tuple[CustodyStep, bytes]]) -> Proofs:
    checkpoint = connection.execute(_CHECKPOINT).first()
    if checkpoint is None:
        return Proofs(0, None, None, {}, tuple(sorted(entries)))
    size, root, note = checkpoint
    covered = sorted(s for s in entries if s < size)
    plans = {seq: inclusion_plan(seq, size) for seq in covered}
    ids: set[NodeId] = set()
    for plan in plans.values():
        ids |= plan_node_ids(plan)
    nodes: dict[NodeId, bytes] = {}
    for chunk in _chunks(sorted(ids)):
        for node, value in connection.execute(_NODES, {"ids": chunk}):
            nodes[NodeId(node)] = value
    proofs = {
        seq: EntryProof(seq, entries[seq][1], tuple(assemble(plan, nodes)))
        for seq, plan in plans.items()
    }
    return Proofs(size, root, note, proofs, tuple(sorted(s for s in entries if s >= size)))

"""Verify before sale: may this code be sold, by this merchant, now? And why.

Reads projections and the ledger only; writes nothing. Every reason that applies is
returned (not just the first), each as a stable code with a sentence in English and
Chinese, together with the code's custody chain and the inclusion proofs of the
entries behind the verdict against the latest signed checkpoint.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    any_,
    bindparam,
    case,
    exists,
    false,
    literal,
    select,
    true,
    union,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from provenance.codes import (
    BatchStatus,
    Code,
    CodeBatch,
    CodeEvent,
    CodeState,
    Origin,
)
from provenance.db import DriverSelect
from provenance.fingerprints import code_fingerprint, normalise_part, serial_fingerprint
from provenance.instance import InstanceInfo
from provenance.ledger import LedgerEntry, MerkleNode, StoredCheckpoint
from provenance.merkle import NodeId, assemble, inclusion_plan, plan_node_ids
from provenance.parties import Party, PartyKey, PartyKind, PartyStatus
from provenance.partners.models import CompromisedCode

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
    COMPROMISED = "compromised-code-reported"


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
    ReasonCode.COMPROMISED: (
        Decision.BLOCK,
        "An anti-fraud partner reported this code (or its serial) compromised.",
        "反欺诈合作方已通报该卡密（或其序列号）泄露。",
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


LogKey = tuple[str | None, str, bytes | None]
"""A log as the node cache knows it: instance id, checkpoint origin, genesis leaf hash."""

_PathKey = tuple[int, bytes, int]
"""An audit path as the node cache keeps it: checkpoint size, checkpoint root, entry seq."""


class NodeCache:
    """Hashes of the log's perfect subtrees, kept in the process between verifies.

    A perfect subtree's hash never changes once its last leaf is in the log, so a hash
    read once answers every later proof that needs it. Hashes are kept per log, known by
    its instance id, origin and genesis leaf, so that one process reading two stores
    never serves one store's tree to the other; at most ``max_nodes`` per log and
    ``max_logs`` logs, the least recently used going first.

    It also keeps whole audit paths, at most ``max_proofs`` per log: the path of entry
    ``seq`` to the checkpoint of ``size`` leaves and root ``root`` never changes either,
    and the entries behind verdicts (a batch's issuance, its transfers) are shared by
    thousands of codes, so most verifies fold no tree hashes at all.

    Give a cache only to sessions that read committed data: a node read inside a
    transaction that is later rolled back would outlive it. Safe to share between threads.
    """

    def __init__(
        self, max_nodes: int = 65_536, max_logs: int = 4, max_proofs: int = 16_384
    ) -> None:
        if max_nodes < 1 or max_logs < 1 or max_proofs < 1:
            raise ValueError("a node cache holds at least one node and path of one log")
        self.max_nodes = max_nodes
        self.max_logs = max_logs
        self.max_proofs = max_proofs
        self._logs: OrderedDict[LogKey, OrderedDict[NodeId, bytes]] = OrderedDict()
        self._paths: OrderedDict[LogKey, OrderedDict[_PathKey, tuple[bytes, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup_paths(
        self, log: LogKey, size: int, root: bytes, seqs: Iterable[int]
    ) -> tuple[dict[int, tuple[bytes, ...]], list[int]]:
        """The cached audit paths of ``seqs`` to the checkpoint (``size``, ``root``) of
        ``log``, and the entries it holds none for."""
        found: dict[int, tuple[bytes, ...]] = {}
        missing: list[int] = []
        with self._lock:
            paths = self._paths.get(log)
            if paths is None:
                return found, list(seqs)
            self._paths.move_to_end(log)
            for seq in seqs:
                key = (size, root, seq)
                path = paths.get(key)
                if path is None:
                    missing.append(seq)
                else:
                    paths.move_to_end(key)
                    found[seq] = path
        return found, missing

    def store_paths(
        self, log: LogKey, size: int, root: bytes, paths: Mapping[int, tuple[bytes, ...]]
    ) -> None:
        """Remember audit paths to the checkpoint (``size``, ``root``) of ``log``."""
        with self._lock:
            cached = self._paths.get(log)
            if cached is None:
                cached = self._paths[log] = OrderedDict()
                while len(self._paths) > self.max_logs:
                    self._paths.popitem(last=False)
            else:
                self._paths.move_to_end(log)
            for seq, path in paths.items():
                cached[(size, root, seq)] = path
            while len(cached) > self.max_proofs:
                cached.popitem(last=False)

    def lookup(
        self, log: LogKey, ids: Iterable[NodeId]
    ) -> tuple[dict[NodeId, bytes], list[NodeId]]:
        """The cached hashes of ``ids`` in ``log``, and the ids it does not hold."""
        found: dict[NodeId, bytes] = {}
        missing: list[NodeId] = []
        with self._lock:
            nodes = self._logs.get(log)
            if nodes is None:
                return found, list(ids)
            self._logs.move_to_end(log)
            for nid in ids:
                value = nodes.get(nid)
                if value is None:
                    missing.append(nid)
                else:
                    nodes.move_to_end(nid)
                    found[nid] = value
        return found, missing

    def store(self, log: LogKey, nodes: Mapping[NodeId, bytes]) -> None:
        """Remember hashes read from ``log``'s tree."""
        with self._lock:
            cached = self._logs.get(log)
            if cached is None:
                cached = self._logs[log] = OrderedDict()
                while len(self._logs) > self.max_logs:
                    self._logs.popitem(last=False)
            else:
                self._logs.move_to_end(log)
            cached.update(nodes)
            while len(cached) > self.max_nodes:
                cached.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(nodes) for nodes in self._logs.values())


# Statements are built once: verify runs before every sale, and building a statement
# costs as much as running it. A single code (the common case, before each sale) is read
# with its batch, custody entries and their signers in one statement; lists of codes go
# in chunks, through expanding IN lists on SQLite and one array parameter (``= ANY``) on
# PostgreSQL, whose SQL text then stays the same for every list length.
_CODE_COLUMNS = (
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
    # A partner's notice names a code or its serial (partner.code entries).
    exists()
    .where(CompromisedCode.fingerprint.in_([Code.fingerprint, Code.serial_fp]))
    .label("compromised"),
)
_ENTRY_COLUMNS = (
    LedgerEntry.seq,
    LedgerEntry.type,
    LedgerEntry.time,
    LedgerEntry.actor,
    LedgerEntry.leaf_hash,
    PartyKey.party_id,
)
_LATEST = (
    select(StoredCheckpoint.size, StoredCheckpoint.root, StoredCheckpoint.note)
    .order_by(StoredCheckpoint.size.desc(), StoredCheckpoint.issued_at.desc())
    .limit(1)
    .subquery("latest")
)
_MERCHANT = select(Party.kind, Party.status).where(Party.id == bindparam("party")).subquery("m")
_ONE = select(literal(1).label("one")).subquery("one")
# The merchant, the latest checkpoint, the log's identity and (for one raw code) whether
# its serial is known, in one round trip.
_HEAD_COLUMNS = (
    _MERCHANT.c.kind,
    _MERCHANT.c.status,
    _LATEST.c.size,
    _LATEST.c.root,
    _LATEST.c.note,
    select(InstanceInfo.instance_id)
    .where(InstanceInfo.id == 1)
    .scalar_subquery()
    .label("instance_id"),
    select(LedgerEntry.leaf_hash).where(LedgerEntry.seq == 0).scalar_subquery().label("genesis"),
)
_HEAD_FROM = _ONE.outerjoin(_MERCHANT, true()).outerjoin(_LATEST, true())
_HEAD = select(*_HEAD_COLUMNS, false().label("serial_known")).select_from(_HEAD_FROM)

_ONE_CODE = (
    select(*_CODE_COLUMNS)
    .outerjoin(CodeBatch, CodeBatch.id == Code.batch)
    .where(Code.fingerprint == bindparam("fp"))
    .cte("c")
)
_ONE_CHAIN = union(
    select(_ONE_CODE.c.issued_seq.label("seq")),
    select(_ONE_CODE.c.issue_seq).where(_ONE_CODE.c.issue_seq.is_not(None)),
    select(CodeEvent.seq).where(CodeEvent.fingerprint == bindparam("fp")),
).subquery("chain")
_CODE_AND_CHAIN = (
    select(
        *_ONE_CODE.c,
        *(column.label(f"entry_{column.key}") for column in _ENTRY_COLUMNS),
    )
    .select_from(
        _ONE_CODE.outerjoin(_ONE_CHAIN, true())
        .outerjoin(LedgerEntry, LedgerEntry.seq == _ONE_CHAIN.c.seq)
        .outerjoin(PartyKey, PartyKey.key_id == LedgerEntry.key_id)
    )
    .subquery("cc")
)
# Everything one code's verdict needs, in one round trip: a row per custody entry (at
# least one, with the code's columns empty if it is unknown), each led by the head.
_ONE_VERDICT = select(
    *_HEAD_COLUMNS,
    # Whether the serial is on record, asked only when the code is not: a probe of the
    # serial index is a random read in a large index.
    case(
        (exists(select(_ONE_CODE.c.fingerprint)), false()),
        else_=exists().where(Code.serial_fp == bindparam("sfp")),
    ).label("serial_known"),
    *_CODE_AND_CHAIN.c,
).select_from(_HEAD_FROM.outerjoin(_CODE_AND_CHAIN, true()))
_ONE_VERDICT_ROWS = DriverSelect(_ONE_VERDICT)  # run before every sale: on the driver's cursor


def _listed(column: InstrumentedAttribute[Any], name: str, postgresql: bool) -> ColumnElement[bool]:
    if postgresql:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


@dataclass(frozen=True, slots=True)
class _ListStatements:
    codes: Select[*tuple[Any, ...]]
    serials: Select[*tuple[Any, ...]]
    events: Select[*tuple[Any, ...]]
    entries: Select[*tuple[Any, ...]]
    nodes: Select[*tuple[Any, ...]]

    @classmethod
    def build(cls, postgresql: bool) -> _ListStatements:
        return cls(
            codes=select(*_CODE_COLUMNS)
            .outerjoin(CodeBatch, CodeBatch.id == Code.batch)
            .where(_listed(Code.fingerprint, "fps", postgresql)),
            serials=select(Code.serial_fp).where(_listed(Code.serial_fp, "sfps", postgresql)),
            events=select(CodeEvent.fingerprint, CodeEvent.seq).where(
                _listed(CodeEvent.fingerprint, "fps", postgresql)
            ),
            entries=select(*_ENTRY_COLUMNS)
            .outerjoin(PartyKey, PartyKey.key_id == LedgerEntry.key_id)
            .where(_listed(LedgerEntry.seq, "seqs", postgresql)),
            nodes=select(MerkleNode.id, MerkleNode.hash).where(
                _listed(MerkleNode.id, "ids", postgresql)
            ),
        )


_BY_DIALECT = {False: _ListStatements.build(False), True: _ListStatements.build(True)}


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
    compromised: bool


@dataclass(frozen=True, slots=True)
class _Head:
    merchant_reasons: list[Reason]
    checkpoint: tuple[int, bytes, str] | None
    log: LogKey | None
    serial_known: bool


def _head(values: Sequence[Any]) -> _Head:
    kind, status, size, root, note, instance_id, genesis, serial_known = values
    if kind != PartyKind.MERCHANT.value:
        reasons = [Reason.of(ReasonCode.MERCHANT_UNKNOWN)]
    elif status in (PartyStatus.SUSPENDED.value, PartyStatus.TERMINATED.value):
        reasons = [Reason.of(ReasonCode.MERCHANT_SUSPENDED)]
    elif status != PartyStatus.APPROVED.value:
        reasons = [Reason.of(ReasonCode.MERCHANT_NOT_APPROVED)]
    else:
        reasons = []
    if size is None:
        return _Head(reasons, None, None, bool(serial_known))
    origin = note.split("\n", 1)[0]
    return _Head(reasons, (size, root, note), (instance_id, origin, genesis), bool(serial_known))


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    items = list(dict.fromkeys(values))
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def verify_codes(
    session: Session | Connection,
    queries: Sequence[CodeQuery],
    *,
    merchant: str,
    now: datetime,
    nodes: NodeCache | None = None,
) -> VerifyResult:
    """Judge each code for a sale by ``merchant`` at ``now``; write nothing.

    Args:
        session: a session, or a connection of its own (a read engine's).
        queries: the codes (at most what the caller allows; the API caps it at 10,000).
        nodes: where to keep tree hashes between calls (see :class:`NodeCache`); the
            answer is the same with or without it.
    """
    # Core statements on the session's connection: the ORM layer adds nothing here.
    connection = session if isinstance(session, Connection) else session.connection()
    postgresql = connection.dialect.name == "postgresql"
    statements = _BY_DIALECT[postgresql]
    distinct = {q.fingerprint for q in queries}
    if len(distinct) == 1:
        serial_fp = next((q.serial_fp for q in queries if q.serial_fp is not None), None)
        head, codes, chains, entries = _one_code(
            connection, merchant, queries[0].fingerprint, serial_fp
        )
        known_serials = {serial_fp} if head.serial_known and serial_fp is not None else set()
    else:
        head = _head(connection.execute(_HEAD, {"party": merchant}).one())
        codes, chains, entries, known_serials = _many_codes(connection, statements, queries)

    verdicts = []
    for query in queries:
        code = codes.get(query.fingerprint)
        if code is None:
            reason = (
                ReasonCode.SAME_SERIAL_DIFFERENT_PIN
                if query.serial_fp is not None and query.serial_fp in known_serials
                else ReasonCode.UNKNOWN_ORIGIN
            )
            reasons = [Reason.of(reason), *head.merchant_reasons]
            verdicts.append(
                CodeVerdict(query.fingerprint, _decide(reasons), tuple(reasons), None, ())
            )
            continue
        reasons = [*_code_reasons(code, merchant, now), *head.merchant_reasons]
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
    proofs = _proofs(connection, statements, head, entries, nodes)
    return VerifyResult(merchant, tuple(verdicts), proofs)


_Entries = dict[int, tuple[CustodyStep, bytes]]
"""seq -> (custody step, leaf hash) for the entries behind the verdicts."""


def _one_code(
    connection: Connection, merchant: str, fingerprint: bytes, serial_fp: bytes | None
) -> tuple[_Head, dict[bytes, _CodeRow], dict[bytes, set[int]], _Entries]:
    codes: dict[bytes, _CodeRow] = {}
    chain: set[int] = set()
    entries: _Entries = {}
    head: _Head | None = None
    heading = len(_HEAD_COLUMNS) + 1
    width = heading + len(_CODE_COLUMNS)
    parameters = {"party": merchant, "sfp": serial_fp, "fp": fingerprint}
    for row in _ONE_VERDICT_ROWS.rows(connection, parameters):
        if head is None:
            head = _head(row[:heading])
            if row[heading] is not None:
                code = _CodeRow(*row[heading:width])
                codes[fingerprint] = code
                chain.add(code.issued_seq)
                if code.issue_seq is not None:
                    chain.add(code.issue_seq)
        seq, kind, time, actor, leaf, signer = row[width:]
        if seq is not None:
            chain.add(seq)
            entries[seq] = (CustodyStep(seq, kind, time, actor, signer or actor), leaf)
    assert head is not None  # the head row is always there
    return head, codes, ({fingerprint: chain} if codes else {}), entries


def _many_codes(
    connection: Connection, statements: _ListStatements, queries: Sequence[CodeQuery]
) -> tuple[dict[bytes, _CodeRow], dict[bytes, set[int]], _Entries, set[bytes]]:
    codes: dict[bytes, _CodeRow] = {}
    for chunk in _chunks(q.fingerprint for q in queries):
        for row in connection.execute(statements.codes, {"fps": chunk}):
            codes[row.fingerprint] = _CodeRow(*row)
    unknown_serials = [
        q.serial_fp for q in queries if q.fingerprint not in codes and q.serial_fp is not None
    ]
    known_serials: set[bytes] = set()
    for chunk in _chunks(unknown_serials):
        known_serials.update(connection.scalars(statements.serials, {"sfps": chunk}))
    chains: dict[bytes, set[int]] = {
        fp: {row.issued_seq} | ({row.issue_seq} if row.issue_seq is not None else set())
        for fp, row in codes.items()
    }
    for chunk in _chunks(codes):
        for fp, seq in connection.execute(statements.events, {"fps": chunk}):
            chains[fp].add(seq)
    entries: _Entries = {}
    for chunk in _chunks(seq for chain in chains.values() for seq in chain):
        for seq, kind, time, actor, leaf, signer in connection.execute(
            statements.entries, {"seqs": chunk}
        ):
            entries[seq] = (CustodyStep(seq, kind, time, actor, signer or actor), leaf)
    return codes, chains, entries, known_serials


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
    if code.compromised:
        reasons.append(Reason.of(ReasonCode.COMPROMISED))
    if code.expires_at is not None and code.expires_at <= now:
        reasons.append(Reason.of(ReasonCode.EXPIRED))
    return reasons


def _proofs(
    connection: Connection,
    statements: _ListStatements,
    head: _Head,
    entries: _Entries,
    cache: NodeCache | None,
) -> Proofs:
    if head.checkpoint is None or head.log is None:
        return Proofs(0, None, None, {}, tuple(sorted(entries)))
    size, root, note = head.checkpoint
    covered = sorted(s for s in entries if s < size)
    if cache is None:
        paths: dict[int, tuple[bytes, ...]] = {}
        todo = covered
    else:
        paths, todo = cache.lookup_paths(head.log, size, root, covered)
    if todo:
        built = _build_paths(connection, statements, head.log, size, todo, cache)
        if cache is not None:
            cache.store_paths(head.log, size, root, built)
        paths.update(built)
    proofs = {seq: EntryProof(seq, entries[seq][1], paths[seq]) for seq in covered}
    return Proofs(size, root, note, proofs, tuple(sorted(s for s in entries if s >= size)))


def _build_paths(
    connection: Connection,
    statements: _ListStatements,
    log: LogKey,
    size: int,
    covered: list[int],
    cache: NodeCache | None,
) -> dict[int, tuple[bytes, ...]]:
    plans = {seq: inclusion_plan(seq, size) for seq in covered}
    ids: set[NodeId] = set()
    for plan in plans.values():
        ids |= plan_node_ids(plan)
    if cache is None:
        nodes: dict[NodeId, bytes] = {}
        missing: list[NodeId] = sorted(ids)
    else:
        nodes, missing = cache.lookup(log, ids)
    read: dict[NodeId, bytes] = {}
    for chunk in _chunks(sorted(missing)):
        for node, value in connection.execute(statements.nodes, {"ids": chunk}):
            read[NodeId(node)] = value
    if cache is not None and read:
        cache.store(log, read)
    nodes.update(read)
    return {seq: tuple(assemble(plan, nodes)) for seq, plan in plans.items()}

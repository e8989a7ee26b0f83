"""The ledger: append signed entries, keep the tree, serve records and proofs.

Appending takes one lock (PostgreSQL: ``SELECT ... FOR UPDATE`` on the single
``ledger_head`` row; SQLite: the database write lock, which the first ``UPDATE`` of that
row takes), so concurrent appenders form one sequence. A batch is one transaction: the
records, the new tree nodes, the head and the projections are written together or not
at all. The head keeps the tree's right edge, so appending reads O(1) rows and proofs
read O(log n) rows by primary key.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from provenance.catalog import AppliedEntry, EntryCatalog, EntryType
from provenance.checkpoint import Checkpoint, sign_checkpoint
from provenance.db import Base, BigIntId
from provenance.entries import (
    GENESIS_PREV,
    MAX_STATEMENT_BYTES,
    EntryFormatError,
    Record,
    SignatureError,
    SignedStatement,
    Statement,
    decode_record,
    encode_record,
    key_id_for,
    raw_public_key,
    sign_statement,
)
from provenance.errors import ConflictError, NotFoundError
from provenance.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    ProofError,
    RootHash,
    assemble,
    consistency_plan,
    inclusion_plan,
    leaf_hash,
    plan_node_ids,
    root_plan,
)
from provenance.parties import (
    KEY_MANAGEMENT_TYPES,
    KeyRegistry,
    KeyState,
    key_body,
    load_registry,
    referenced_ids,
)

# Signature checks of a batch this large are spread over threads (Ed25519 verification
# in ``cryptography`` releases the GIL).
PARALLEL_VERIFY_THRESHOLD = 64
MAX_BATCH = 100_000
_IN_CHUNK = 500
GENESIS_PREV_BYTES = bytes.fromhex(GENESIS_PREV)


class ReplayError(ConflictError):
    code = "replayed-entry"
    title = "Entry already in the ledger"


class ClockSkewError(EntryFormatError):
    code = "entry-time-skew"
    title = "Entry time too far from the platform's clock"


class BatchError(EntryFormatError):
    code = "bad-batch"
    title = "Batch refused"


# --- tables -----------------------------------------------------------------------


class LedgerEntry(Base):
    __tablename__ = "ledger_entry"

    seq: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(64), index=True)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str] = mapped_column(String(16))
    statement_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    record: Mapped[bytes] = mapped_column(LargeBinary)


class MerkleNode(Base):
    """Every perfect subtree's hash, keyed by :func:`provenance.merkle.node_id`."""

    __tablename__ = "merkle_node"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerHead(Base):
    """One row: the log's size, last leaf and right edge; the row appenders lock."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    last_leaf: Mapped[bytes] = mapped_column(LargeBinary(32))
    last_key_seq: Mapped[int] = mapped_column(BigInteger)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)


class StoredCheckpoint(Base):
    """A signed checkpoint the platform issued: the signed-note text, as served."""

    __tablename__ = "checkpoint"

    size: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    # The platform key that signed it: after a rotation the same size may be re-signed.
    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    issued_at: Mapped[datetime] = mapped_column(index=True)
    note: Mapped[str] = mapped_column(Text)


# Read paths built once (proofs are asked for on every verify and by every auditor).
_NODES = select(MerkleNode.id, MerkleNode.hash).where(
    MerkleNode.id.in_(bindparam("ids", expanding=True))
)
_HEAD_SIZE = select(LedgerHead.size).where(LedgerHead.id == 1)
_ENTRY_TABLE = cast(Table, LedgerEntry.__table__)
_NODE_TABLE = cast(Table, MerkleNode.__table__)


# --- values -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    seq: int
    type: str
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class TreeHead:
    size: int
    root: RootHash


@dataclass(frozen=True, slots=True)
class PlatformSigner:
    """The platform's identity in the log: its party id and its Ed25519 key."""

    private_key: Ed25519PrivateKey = field(repr=False)
    origin: str = "cardtrace.local/log"
    party: str = "platform"
    public_key: bytes = field(init=False, repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        # Derived once: every platform statement names the key id.
        public = raw_public_key(self.private_key)
        object.__setattr__(self, "public_key", public)
        object.__setattr__(self, "key_id", key_id_for(public))


@dataclass(slots=True)
class _Pending:
    signed: SignedStatement
    entry_type: EntryType
    body: BaseModel
    statement_hash: bytes


class Ledger:
    """Appends to and reads from the log. Holds no database state of its own."""

    def __init__(
        self,
        catalog: EntryCatalog,
        platform: PlatformSigner,
        *,
        max_clock_skew: timedelta = timedelta(minutes=5),
        verify_threads: int = 2,
    ) -> None:
        self.catalog = catalog
        self.platform = platform
        self.max_clock_skew = max_clock_skew
        self._verify_threads = verify_threads
        self._pool: ThreadPoolExecutor | None = None

    # --- writing ------------------------------------------------------------------

    def statement(
        self, type: str, body: dict[str, Any], *, now: datetime, actor: str | None = None
    ) -> Statement:
        """A statement the platform signs, as itself or on behalf of ``actor``."""
        on_behalf = actor is not None and actor != self.platform.party
        return Statement(
            type=type,
            time=now,
            actor=actor or self.platform.party,
            key=self.platform.key_id,
            on_behalf=on_behalf,
            body=body,
        )

    def ensure_genesis(self, session: Session, *, name: str, now: datetime) -> bool:
        """Start an empty log with the platform registering itself and its key.

        Returns:
            Whether the genesis entry was written (``False`` if the log was not empty).
        """
        if self.tree_head(session).size > 0:
            return False
        body = {
            "party": self.platform.party,
            "kind": "platform",
            "name": name,
            "keys": [key_body(self.platform.public_key, now)],
        }
        self.append_as_platform(session, [self.statement("party.register", body, now=now)], now=now)
        return True

    def append_as_platform(
        self, session: Session, statements: Sequence[Statement], *, now: datetime
    ) -> list[AppendedEntry]:
        """Sign statements with the platform key and append them.

        The signatures were made here, with the key the platform signs with, so they are
        not verified again; every other check still applies.
        """
        key = self.platform.private_key
        signed = [sign_statement(s, key) for s in statements]
        return self._append(session, signed, now=now, signed_here=True)

    def append(
        self, session: Session, batch: Sequence[SignedStatement], *, now: datetime
    ) -> list[AppendedEntry]:
        """Validate, authorise, verify and append signed statements, in order, atomically.

        Call inside a write transaction (see :func:`provenance.db.write_transaction`); the
        caller commits.

        Raises:
            EntryFormatError: a body does not match its type, or a time is out of range.
            SignatureError: a key may not sign an entry, or a signature does not verify.
            ConflictError: an entry replays one already in the ledger, or contradicts it.
        """
        return self._append(session, batch, now=now, signed_here=False)

    def _append(
        self,
        session: Session,
        batch: Sequence[SignedStatement],
        *,
        now: datetime,
        signed_here: bool,
    ) -> list[AppendedEntry]:
        if not batch:
            return []
        if len(batch) > MAX_BATCH:
            raise BatchError(f"a batch holds at most {MAX_BATCH} entries; got {len(batch)}")
        pending = [self._validate(i, signed, now) for i, signed in enumerate(batch)]
        _refuse_repeats(pending)

        head = self._lock_head(session)
        key_ids: set[str] = set()
        party_ids: set[str] = set()
        for p in pending:
            more_keys, more_parties = referenced_ids(p.signed.statement, p.body)
            key_ids |= more_keys
            party_ids |= more_parties
        registry = load_registry(session, key_ids, party_ids, self.platform.party)
        try:
            signers = self._authorize(registry, pending)
        except (SignatureError, ConflictError):
            # A replayed entry is named as a replay, even if its key has since lapsed.
            self._refuse_replays(session, pending)
            raise
        checks: _SignatureChecks | None = None
        if signed_here:
            # Only the platform's own key may have signed them, and it is the key in use.
            own = self.platform.public_key
            if any(key.public_key != own for key in signers):
                raise SignatureError("the platform's key is not the one registered for it")
        else:
            checks = self._start_signature_checks(pending, signers)
        # Signatures are checked on other threads while this one writes. The rows go in a
        # savepoint: a bad signature, a replay (the unique statement hash) or a projection
        # refusing an entry (a custody rule) takes this batch's rows back, so a refused
        # batch writes nothing even if the caller carries on with its transaction.
        integrity_error = _integrity_errors(session)
        try:
            with session.begin_nested():
                appended = self._write(session, head, pending)
                if checks is not None:
                    checks.result()
                return appended
        except integrity_error:
            # The earlier of the first bad signature and the first replay is named.
            bad = checks.first_bad() if checks is not None else None
            replay = self._first_replay(session, pending)
            if checks is not None and bad is not None and (replay is None or bad < replay[0]):
                checks.result()
            if replay is not None:
                raise _replay_error(*replay) from None
            raise
        except Exception:
            # A bad signature is the first thing wrong with a batch, whatever else is.
            if checks is not None:
                checks.result()
            raise

    def _validate(self, index: int, signed: SignedStatement, now: datetime) -> _Pending:
        statement = signed.statement
        try:
            if abs(statement.time - now) > self.max_clock_skew:
                raise ClockSkewError(
                    f"entry time is more than {int(self.max_clock_skew.total_seconds())} s "
                    "from the platform's clock",
                    field="time",
                )
            if len(signed.payload) > MAX_STATEMENT_BYTES:
                raise EntryFormatError(
                    f"entry is {len(signed.payload)} bytes; the limit is {MAX_STATEMENT_BYTES}"
                )
            entry_type = self.catalog.get(statement.type)
            body = entry_type.parse_body(statement)
        except EntryFormatError as e:
            raise _at(e, index) from e
        return _Pending(signed, entry_type, body, signed.statement_hash)

    def _refuse_replays(self, session: Session, pending: list[_Pending]) -> None:
        """Raises ReplayError naming the first entry already in the ledger, if any."""
        replay = self._first_replay(session, pending)
        if replay is not None:
            raise _replay_error(*replay)

    def _first_replay(self, session: Session, pending: list[_Pending]) -> tuple[int, int] | None:
        """The batch position and ledger seq of the first entry already in the ledger."""
        position = {p.statement_hash: i for i, p in enumerate(pending)}
        hashes = list(position)
        found: list[tuple[int, int]] = []
        for start in range(0, len(hashes), _IN_CHUNK):
            chunk = hashes[start : start + _IN_CHUNK]
            rows = session.execute(
                select(LedgerEntry.statement_hash, LedgerEntry.seq).where(
                    LedgerEntry.statement_hash.in_(chunk)
                )
            )
            found.extend((position[h], seq) for h, seq in rows)
        return min(found) if found else None

    def _lock_head(self, session: Session) -> LedgerHead:
        if session.get_bind().dialect.name == "sqlite":
            # Take SQLite's write lock now, before anything is decided on what we read.
            session.execute(
                update(LedgerHead).where(LedgerHead.id == 1).values(size=LedgerHead.size)
            )
        head = session.scalars(
            select(LedgerHead)
            .where(LedgerHead.id == 1)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
        if head is None:
            raise NotFoundError("the ledger is not initialised; run 'cardtrace init'")
        return head

    def _authorize(self, registry: KeyRegistry, pending: list[_Pending]) -> list[KeyState]:
        keys: list[KeyState] = []
        for i, p in enumerate(pending):
            statement = p.signed.statement
            try:
                key = registry.authorize(statement, p.entry_type, p.body)
                registry.apply(p.body, statement.time)
            except (SignatureError, ConflictError) as e:
                raise _at(e, i) from e
            keys.append(key)
        return keys

    def _start_signature_checks(
        self, pending: list[_Pending], keys: list[KeyState]
    ) -> _SignatureChecks:
        """Check every signature: on this thread for a small batch, else on the pool."""

        def check(start: int, stop: int) -> int | None:
            for i in range(start, stop):
                try:
                    pending[i].signed.verify(keys[i].public_key)
                except SignatureError:
                    return i
            return None

        n = len(pending)
        if n < PARALLEL_VERIFY_THRESHOLD or self._verify_threads < 2:
            done: Future[int | None] = Future()
            done.set_result(check(0, n))
            return _SignatureChecks(pending, keys, [done])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._verify_threads, "cardtrace-verify")
        step = -(-n // self._verify_threads)
        futures = [self._pool.submit(check, s, min(s + step, n)) for s in range(0, n, step)]
        return _SignatureChecks(pending, keys, futures)

    def _write(
        self, session: Session, head: LedgerHead, pending: list[_Pending]
    ) -> list[AppendedEntry]:
        frontier = CompactRange.from_bytes(head.frontier)
        prev = head.last_leaf
        seq = head.size
        keyprev = head.last_key_seq
        entry_rows: list[dict[str, Any]] = []
        created: list[tuple[NodeId, bytes]] = []
        applied: list[AppliedEntry[Any]] = []
        for p in pending:
            record = encode_record(p.signed, seq, prev, keyprev)
            leaf = leaf_hash(record)
            statement = p.signed.statement
            entry_rows.append(
                {
                    "seq": seq,
                    "type": statement.type,
                    "time": statement.time,
                    "actor": statement.actor,
                    "key_id": statement.key,
                    "statement_hash": p.statement_hash,
                    "leaf_hash": leaf,
                    "record": record,
                }
            )
            frontier.push_leaf(leaf, created)
            applied.append(AppliedEntry(seq, statement, p.body, leaf))
            prev = leaf
            if statement.type in KEY_MANAGEMENT_TYPES:
                keyprev = seq
            seq += 1
        _insert_rows(session, _ENTRY_TABLE, entry_rows)
        _insert_rows(session, _NODE_TABLE, [{"id": i, "hash": h} for i, h in created])
        head.size = seq
        head.last_leaf = prev
        head.last_key_seq = keyprev
        head.frontier = frontier.to_bytes()
        session.flush()
        _project(session, self.catalog, applied)
        return [AppendedEntry(a.seq, a.statement.type, a.leaf_hash) for a in applied]

    # --- reading ------------------------------------------------------------------

    def tree_head(self, session: Session) -> TreeHead:
        head = session.scalars(
            select(LedgerHead).where(LedgerHead.id == 1).execution_options(populate_existing=True)
        ).one_or_none()
        if head is None:
            raise NotFoundError("the ledger is not initialised; run 'cardtrace init'")
        return TreeHead(head.size, CompactRange.from_bytes(head.frontier).root())

    def record(self, session: Session, seq: int) -> Record:
        raw = session.scalar(select(LedgerEntry.record).where(LedgerEntry.seq == seq))
        if raw is None:
            raise NotFoundError(f"the ledger has no entry {seq}")
        return decode_record(raw)

    def _nodes(self, session: Session, ids: set[NodeId]) -> dict[NodeId, bytes]:
        rows = session.connection().execute(_NODES, {"ids": list(ids)})
        return {NodeId(i): h for i, h in rows}

    def _check_size(self, session: Session, size: int) -> None:
        current = session.connection().execute(_HEAD_SIZE).scalar()
        if current is None:
            raise NotFoundError("the ledger is not initialised; run 'cardtrace init'")
        if not 0 <= size <= current:
            raise ProofError(f"the ledger has {current} entries; there is no tree of size {size}")

    def inclusion_proof(self, session: Session, seq: int, size: int) -> list[bytes]:
        """The audit path of entry ``seq`` in the tree of ``size`` entries (O(log n) reads).

        Raises:
            ProofError: ``size`` is beyond the log, or ``seq`` is not below it.
        """
        self._check_size(session, size)
        plan = inclusion_plan(seq, size)
        return assemble(plan, self._nodes(session, plan_node_ids(plan)))

    def consistency_proof(self, session: Session, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof between two tree sizes (O(log n) reads).

        Raises:
            ProofError: a size is beyond the log, or ``old_size > new_size``.
        """
        self._check_size(session, new_size)
        plan = consistency_plan(old_size, new_size)
        return assemble(plan, self._nodes(session, plan_node_ids(plan)))

    def root_at(self, session: Session, size: int) -> RootHash:
        """The root of the tree of the first ``size`` entries.

        Raises:
            ProofError: ``size`` is beyond the log.
        """
        self._check_size(session, size)
        if size == 0:
            return EMPTY_ROOT
        plan = root_plan(size)
        return RootHash(assemble(plan, self._nodes(session, plan_node_ids(plan)))[0])

    # --- checkpoints --------------------------------------------------------------

    def issue_checkpoint(self, session: Session, *, now: datetime) -> StoredCheckpoint:
        """Sign the current tree head as a C2SP checkpoint, unless the latest already is.

        The note's key name is the log's origin, as transparency-log tooling expects.
        """
        head = self._lock_head(session)
        latest = self.latest_checkpoint(session)
        if latest is not None and latest.size == head.size:
            return latest
        root = CompactRange.from_bytes(head.frontier).root()
        note = sign_checkpoint(
            Checkpoint(self.platform.origin, head.size, root),
            self.platform.origin,
            self.platform.private_key,
        )
        row = StoredCheckpoint(
            size=head.size,
            key_id=self.platform.key_id,
            root=root,
            issued_at=now,
            note=note.decode("utf-8"),
        )
        session.add(row)
        session.flush()
        return row

    def latest_checkpoint(self, session: Session) -> StoredCheckpoint | None:
        """The newest checkpoint signed with the platform's current key."""
        return session.scalars(
            select(StoredCheckpoint)
            .where(StoredCheckpoint.key_id == self.platform.key_id)
            .order_by(StoredCheckpoint.size.desc())
            .limit(1)
        ).first()

    def checkpoint_at(self, session: Session, size: int) -> StoredCheckpoint:
        row = session.scalars(
            select(StoredCheckpoint)
            .where(StoredCheckpoint.size == size)
            .order_by(StoredCheckpoint.key_id == self.platform.key_id)
        ).all()
        if not row:
            raise NotFoundError(f"no checkpoint of size {size} was issued")
        return row[-1]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _replay_error(index: int, seq: int) -> ReplayError:
    return ReplayError(f"entry {index} of this batch is already in the ledger as entry {seq}")


def _refuse_repeats(pending: list[_Pending]) -> None:
    seen: dict[bytes, int] = {}
    for i, p in enumerate(pending):
        if p.statement_hash in seen:
            raise ReplayError(f"entry {i} repeats entry {seen[p.statement_hash]} of this batch")
        seen[p.statement_hash] = i


class _SignatureChecks:
    """Signature checks under way; :meth:`result` waits and names the first bad entry."""

    def __init__(
        self, pending: list[_Pending], keys: list[KeyState], futures: list[Future[int | None]]
    ) -> None:
        self._pending = pending
        self._keys = keys
        self._futures = futures

    def first_bad(self) -> int | None:
        """Wait for every check; the position of the first entry that fails, if any."""
        bad = [i for i in (f.result() for f in self._futures) if i is not None]
        return min(bad) if bad else None

    def result(self) -> None:
        """Wait for every check (also when another error is on its way out).

        Raises:
            SignatureError: prefixed with the position of the first entry that fails.
        """
        first = self.first_bad()
        if first is not None:
            try:
                self._pending[first].signed.verify(self._keys[first].public_key)
            except SignatureError as e:
                raise _at(e, first) from e


def _integrity_errors(session: Session) -> tuple[type[BaseException], ...]:
    """What the database raises for a broken unique key: SQLAlchemy's and the driver's."""
    dbapi = session.get_bind().dialect.dbapi
    driver = getattr(dbapi, "IntegrityError", None) if dbapi is not None else None
    return (IntegrityError, driver) if isinstance(driver, type) else (IntegrityError,)


# PostgreSQL takes rows through COPY several times faster than through INSERT; below
# this many rows the extra round trip of COPY is not worth it.
_COPY_THRESHOLD = 16


def _insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Write plain rows straight through the driver: this is the append's hot path.

    Values are converted as the columns' types would (SQLite keeps times as text), but
    without the per-parameter work of a compiled statement.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    columns = list(rows[0])
    driver = connection.connection.driver_connection
    assert driver is not None
    if dialect.name == "postgresql" and len(rows) >= _COPY_THRESHOLD:
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        return
    sql, processors, positional = _raw_insert(table, dialect, tuple(columns))
    converted = (
        [
            row[c] if convert is None else convert(row[c])
            for c, convert in zip(columns, processors, strict=True)
        ]
        for row in rows
    )
    values: list[Any] = (
        [tuple(v) for v in converted]
        if positional
        else [dict(zip(columns, v, strict=True)) for v in converted]
    )
    cursor = driver.cursor()
    try:
        cursor.executemany(sql, values)
    finally:
        cursor.close()


_RAW_INSERTS: dict[tuple[str, str, tuple[str, ...]], tuple[str, list[Any], bool]] = {}


def _raw_insert(
    table: Table, dialect: Any, columns: tuple[str, ...]
) -> tuple[str, list[Any], bool]:
    """The driver-level INSERT for these columns, each column's value converter, and
    whether the driver takes parameters by position (else by name)."""
    key = (table.name, dialect.name, columns)
    cached = _RAW_INSERTS.get(key)
    if cached is None:
        compiled = insert(table).values({c: bindparam(c) for c in columns}).compile(dialect=dialect)
        if compiled.positional and list(compiled.positiontup or []) != list(columns):
            raise RuntimeError(f"unexpected parameter order for {table.name}")
        processors = [
            # Bytes go to the drivers as they are; other types convert as SQLAlchemy would.
            None
            if isinstance(table.c[c].type, LargeBinary)
            else table.c[c].type.bind_processor(dialect)
            for c in columns
        ]
        cached = _RAW_INSERTS[key] = (str(compiled), processors, compiled.positional)
    return cached


def _at(error: Any, index: int) -> Any:
    """The same error, its message prefixed with the entry's position in the batch."""
    clone = type(error)(f"entry {index}: {error.message}")
    clone.code = error.code
    if hasattr(error, "field"):
        clone.field = error.field
    return clone


def _project(session: Session, catalog: EntryCatalog, applied: Sequence[AppliedEntry[Any]]) -> None:
    for type_name, run in groupby(applied, key=lambda a: a.statement.type):
        project = catalog.get(type_name).project
        if project is not None:
            project(session, list(run))


def iter_records(
    session: Session, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, bytes, bytes]]:
    """Stream ``(seq, record, stored leaf hash)`` in log order, in pages."""
    page = 2000
    cursor = start
    while stop is None or cursor < stop:
        query = select(LedgerEntry.seq, LedgerEntry.record, LedgerEntry.leaf_hash).where(
            LedgerEntry.seq >= cursor
        )
        if stop is not None:
            query = query.where(LedgerEntry.seq < stop)
        rows = session.execute(query.order_by(LedgerEntry.seq).limit(page)).all()
        if not rows:
            return
        yield from ((seq, record, stored) for seq, record, stored in rows)
        cursor = rows[-1][0] + 1


def rebuild_projections(session: Session, catalog: EntryCatalog) -> int:
    """Empty the projection tables and replay every entry into them.

    Returns:
        The number of entries replayed.
    """
    for table in catalog.projection_tables:
        session.execute(delete(Base.metadata.tables[table]))
    count = 0
    batch: list[AppliedEntry[Any]] = []
    for seq, raw, _ in iter_records(session):
        record = decode_record(raw)
        entry_type = catalog.get(record.statement.type)
        batch.append(
            AppliedEntry(
                seq, record.statement, entry_type.parse_body(record.statement), leaf_hash(raw)
            )
        )
        count += 1
        if len(batch) >= 1000:
            _project(session, catalog, batch)
            batch = []
    _project(session, catalog, batch)
    session.flush()
    return count


# --- listing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryRow:
    """An entry as a listing shows it."""

    seq: int
    type: str
    time: datetime
    actor: str
    key_id: str
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of entries and where the pages beside it start."""

    rows: list[EntryRow]
    newer: int | None  # the ``after`` of the newer page, if there is one
    older: int | None  # the ``before`` of the older page, if there is one


def entry_page(
    session: Session,
    *,
    type_: str | None = None,
    actor: str | None = None,
    before: int | None = None,
    after: int | None = None,
    size: int = 50,
) -> EntryPage:
    """One page of ``size`` entries, newest first, of one type and actor if given: those
    before ``before``, or the ones just after ``after`` (keyset on ``seq``, the primary
    key: no OFFSET over a long log)."""
    query = select(
        LedgerEntry.seq,
        LedgerEntry.type,
        LedgerEntry.time,
        LedgerEntry.actor,
        LedgerEntry.key_id,
        LedgerEntry.leaf_hash,
    )
    if type_:
        query = query.where(LedgerEntry.type == type_)
    if actor:
        query = query.where(LedgerEntry.actor == actor)
    if after is not None:
        found = session.execute(
            query.where(LedgerEntry.seq > after).order_by(LedgerEntry.seq).limit(size + 1)
        ).all()
        more_newer = len(found) > size
        rows = [EntryRow(*r) for r in reversed(found[:size])]
        return EntryPage(
            rows,
            newer=rows[0].seq if more_newer and rows else None,
            older=rows[-1].seq if rows else after + 1,
        )
    if before is not None:
        query = query.where(LedgerEntry.seq < before)
    found = session.execute(query.order_by(LedgerEntry.seq.desc()).limit(size + 1)).all()
    rows = [EntryRow(*r) for r in found[:size]]
    return EntryPage(
        rows,
        newer=(rows[0].seq if rows else before - 1) if before is not None else None,
        older=rows[-1].seq if len(found) > size else None,
    )

"""Card codes from issuer to sale: products, issuance batches, custody.

Every step is a ledger entry; the tables here are projections of those entries, kept
in the same transaction. The custody rules (only the holder transfers, lists or sells;
a sold, redeemed or voided code goes nowhere) are checked by the projectors, so an
entry that breaks them is refused and its batch writes nothing.

Codes are known by fingerprints (see :mod:`provenance.fingerprints`); raw PINs never
reach these tables or the ledger.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, cast

from pydantic import AfterValidator, Field
from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from provenance.catalog import AppliedEntry, Body, EntryType, each
from provenance.db import Base
from provenance.entries import parse_time
from provenance.errors import ConflictError, NotFoundError, ValidationError
from provenance.merkle import CompactRange, leaf_hash
from provenance.parties import (
    PLATFORM_PARTY,
    NotPermittedError,
    Party,
    PartyIdStr,
    PartyKind,
    TimeStr,
)

CHUNK_SIZE = 500
MAX_CODES_PER_ENTRY = 1000
MAX_BATCH_SIZE = 1_000_000
FINGERPRINT_SCHEME = "cardtrace/code/v1"


class CodeState(StrEnum):
    ISSUED = "issued"  # with its issuer (or its attesting supplier)
    HELD = "held"  # transferred to a distributor or merchant
    LISTED = "listed"
    SOLD = "sold"
    REDEEMED = "redeemed"
    VOIDED = "voided"


class Origin(StrEnum):
    ISSUER_SIGNED = "issuer-signed"
    ISSUER_ON_BEHALF = "issuer-on-behalf"  # the platform signed for the issuer
    SUPPLIER_ATTESTED = "supplier-attested"


class BatchStatus(StrEnum):
    PENDING = "pending"  # codes arriving, not yet signed for by the issuer
    ACTIVE = "active"


# --- errors -------------------------------------------------------------------------


class CustodyError(ConflictError):
    """An event that the code's custody does not allow."""

    code = "custody-break"
    title = "Custody rule broken"


class UnknownCodeError(CustodyError):
    code = "unknown-code"
    title = "Unknown code"


class CodeExistsError(ConflictError):
    code = "code-exists"
    title = "Code already recorded"

    def __init__(self, message: str, *, fingerprint: bytes | None = None) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint


class BatchStateError(ConflictError):
    code = "bad-batch-state"
    title = "Batch cannot change that way"


class ProductError(ConflictError):
    code = "bad-product"
    title = "Unknown or mismatched product"


def short(fingerprint: bytes) -> str:
    """How messages name a code: the first 12 hex digits of its fingerprint."""
    return fingerprint.hex()[:12]


# --- bodies -------------------------------------------------------------------------


# The base64 of 32 bytes, in its one canonical spelling: 43 characters, the last of which
# carries 4 bits (its 2 low bits zero), then one "=". Checked without decoding: every
# code of every issuance chunk passes through here.
_FINGERPRINT_RE = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


def _fingerprint(value: str) -> str:
    if not _FINGERPRINT_RE.fullmatch(value):
        raise ValueError("must be the base64 of a 32-byte fingerprint")
    return value


_MONEY_RE = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?")


def _money(value: str) -> str:
    # ASCII digits only, no sign, exponent, separators or leading zeros: one spelling each.
    if not _MONEY_RE.fullmatch(value):
        raise ValueError("must be a non-negative amount written like '100.00' (at most 4 decimals)")
    return value


def _pseudonym(value: str) -> str:
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError("must be a 32-hex-digit pseudonym")
    return value


def _product_id(value: str) -> str:
    if not (1 <= len(value) <= 100) or any(
        not (c.isascii() and ((c.isalnum() and not c.isupper()) or c in "._-")) for c in value
    ):
        raise ValueError("must be 1-100 lower-case letters, digits, '.', '_' or '-'")
    return value


Fingerprint = Annotated[str, AfterValidator(_fingerprint)]
Money = Annotated[str, AfterValidator(_money)]
Pseudonym = Annotated[str, AfterValidator(_pseudonym)]
ProductId = Annotated[str, AfterValidator(_product_id)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
# [code fingerprint, serial fingerprint], both base64.
FingerprintPair = Annotated[list[Fingerprint], Field(min_length=2, max_length=2)]


class Charset(StrEnum):
    DIGITS = "digits"
    ALNUM = "alnum"


class PartFormat(Body):
    charset: Charset = Field(strict=False)
    min_length: int = Field(ge=1, le=64)
    max_length: int = Field(ge=1, le=64)


class ProductRegisterBody(Body):
    product: ProductId
    issuer: PartyIdStr
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    face_value: Money
    currency: Currency
    serial: PartFormat
    pin: PartFormat


class BatchCodesBody(Body):
    batch: ProductId
    product: ProductId
    offset: int = Field(ge=0, le=MAX_BATCH_SIZE)
    codes: list[FingerprintPair] = Field(min_length=1, max_length=CHUNK_SIZE)


class BatchIssueBody(Body):
    batch: ProductId
    product: ProductId
    count: int = Field(ge=1, le=MAX_BATCH_SIZE)
    face_value: Money
    currency: Currency
    expires_at: TimeStr | None = None
    root: Fingerprint
    scheme: str = Field(pattern=r"^cardtrace/code/v1$")


class AttestBody(Body):
    product: ProductId
    codes: list[FingerprintPair] = Field(min_length=1, max_length=CHUNK_SIZE)
    evidence_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    note: str = Field(default="", max_length=500)


class TransferBody(Body):
    codes: list[Fingerprint] = Field(min_length=1, max_length=MAX_CODES_PER_ENTRY)
    sender: PartyIdStr = Field(alias="from")
    recipient: PartyIdStr = Field(alias="to")


class ListBody(Body):
    codes: list[Fingerprint] = Field(min_length=1, max_length=MAX_CODES_PER_ENTRY)
    price: Money | None = None


class SaleBody(Body):
    code: Fingerprint
    buyer: Pseudonym
    instrument: Pseudonym | None = None
    payment_ref: Pseudonym | None = None
    device: Pseudonym | None = None
    ip: Pseudonym | None = None
    amount: Money
    currency: Currency


class RedeemBody(Body):
    code: Fingerprint


class CodesReasonBody(Body):
    codes: list[Fingerprint] = Field(min_length=1, max_length=MAX_CODES_PER_ENTRY)
    reason: str = Field(min_length=1, max_length=500)


class StolenKind(StrEnum):
    INSTRUMENT = "instrument"
    PAYMENT_REF = "payment_ref"


class StolenPaymentBody(Body):
    kind: StolenKind = Field(strict=False)
    pseudonym: Pseudonym
    reported_at: TimeStr
    reason: str = Field(min_length=1, max_length=500)


# --- tables -------------------------------------------------------------------------


class Product(Base):
    __tablename__ = "product"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    issuer: Mapped[str] = mapped_column(ForeignKey("party.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    face_value: Mapped[str] = mapped_column(String(24))
    currency: Mapped[str] = mapped_column(String(3))
    serial_charset: Mapped[str] = mapped_column(String(8))
    serial_min: Mapped[int] = mapped_column(Integer)
    serial_max: Mapped[int] = mapped_column(Integer)
    pin_charset: Mapped[str] = mapped_column(String(8))
    pin_min: Mapped[int] = mapped_column(Integer)
    pin_max: Mapped[int] = mapped_column(Integer)
    registered_seq: Mapped[int] = mapped_column(BigInteger)


class CodeBatch(Base):
    __tablename__ = "code_batch"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    product: Mapped[str] = mapped_column(ForeignKey("product.id"), index=True)
    issuer: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    received: Mapped[int] = mapped_column(Integer)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    count: Mapped[int | None] = mapped_column(Integer)
    root: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    face_value: Mapped[str | None] = mapped_column(String(24))
    currency: Mapped[str | None] = mapped_column(String(3))
    expires_at: Mapped[datetime | None]
    origin: Mapped[str | None] = mapped_column(String(24))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    issue_seq: Mapped[int | None] = mapped_column(BigInteger)


class Code(Base):
    __tablename__ = "code"

    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    serial_fp: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    product: Mapped[str] = mapped_column(String(100))
    batch: Mapped[str | None] = mapped_column(String(100), index=True)
    batch_index: Mapped[int | None] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(24))
    holder: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    frozen: Mapped[bool] = mapped_column(Boolean)
    tainted: Mapped[bool] = mapped_column(Boolean)
    issued_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    sale_instrument: Mapped[str | None] = mapped_column(String(32), index=True)
    sale_payment_ref: Mapped[str | None] = mapped_column(String(32), index=True)


class CodeEvent(Base):
    """Each later entry that touched a code (issuance is found through the code row)."""

    __tablename__ = "code_event"

    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))


class StolenPayment(Base):
    __tablename__ = "stolen_payment"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(32), primary_key=True)
    reported_at: Mapped[datetime]
    reporter: Mapped[str] = mapped_column(String(64))
    reported_seq: Mapped[int] = mapped_column(BigInteger)


# --- helpers for projectors -----------------------------------------------------------


def _b(value: str) -> bytes:
    return base64.b64decode(value)


def _party(session: Session, party_id: str) -> Party:
    party = session.get(Party, party_id)
    if party is None:
        raise NotPermittedError(f"no party {party_id!r} is registered")
    return party


def _product(session: Session, product_id: str) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise ProductError(f"no product {product_id!r} is registered")
    return product


def _issuer_or_platform(entry: AppliedEntry[Any], issuer: str, what: str) -> None:
    if entry.actor not in (issuer, PLATFORM_PARTY):
        raise NotPermittedError(f"only the issuer {issuer} or the platform may {what}")


@dataclass(frozen=True, slots=True)
class _Row:
    fingerprint: bytes
    holder: str
    state: str
    frozen: bool
    product: str
    batch_status: str | None


def _load(session: Session, fingerprints: Sequence[bytes]) -> dict[bytes, _Row]:
    rows = session.execute(
        select(
            Code.fingerprint, Code.holder, Code.state, Code.frozen, Code.product, CodeBatch.status
        )
        .outerjoin(CodeBatch, CodeBatch.id == Code.batch)
        .where(Code.fingerprint.in_(fingerprints))
    )
    found = {r[0]: _Row(*r) for r in rows}
    for fp in fingerprints:
        if fp not in found:
            raise UnknownCodeError(f"code {short(fp)} was never issued or attested")
    if len(set(fingerprints)) != len(fingerprints):
        raise CustodyError("the same code appears twice in one entry")
    return found


_FINAL = {CodeState.SOLD.value, CodeState.REDEEMED.value, CodeState.VOIDED.value}


def _movable(row: _Row, holder: str, what: str) -> None:
    if row.batch_status is not None and row.batch_status != BatchStatus.ACTIVE.value:
        raise CustodyError(
            f"code {short(row.fingerprint)} belongs to a batch its issuer has not signed for; "
            f"it cannot be {what}",
            code="code-not-issued",
        )
    if row.state in _FINAL:
        raise CustodyError(
            f"code {short(row.fingerprint)} is {row.state}; it cannot be {what}",
            code=f"code-{row.state}",
        )
    if row.frozen:
        raise CustodyError(
            f"code {short(row.fingerprint)} is frozen; it cannot be {what}", code="code-frozen"
        )
    if row.holder != holder:
        raise CustodyError(
            f"code {short(row.fingerprint)} is held by {row.holder}, not {holder}",
            code="not-holder",
        )


def _events(session: Session, fingerprints: Sequence[bytes], seq: int, kind: str) -> None:
    session.execute(
        insert(CodeEvent), [{"fingerprint": fp, "seq": seq, "kind": kind} for fp in fingerprints]
    )


# --- projectors ---------------------------------------------------------------------


def _project_product(session: Session, entry: AppliedEntry[ProductRegisterBody]) -> None:
    body = entry.body
    if entry.actor not in (body.issuer, PLATFORM_PARTY):
        raise NotPermittedError(f"only {body.issuer} or the platform may register its products")
    if _party(session, body.issuer).kind != PartyKind.ISSUER.value:
        raise NotPermittedError(f"{body.issuer} is not an issuer")
    if session.get(Product, body.product) is not None:
        raise ProductError(f"product {body.product!r} is already registered")
    for part in (body.serial, body.pin):
        if part.min_length > part.max_length:
            raise ProductError("a format's min_length is larger than its max_length")
    session.add(
        Product(
            id=body.product,
            issuer=body.issuer,
            sku=body.sku,
            name=body.name,
            face_value=body.face_value,
            currency=body.currency,
            serial_charset=body.serial.charset.value,
            serial_min=body.serial.min_length,
            serial_max=body.serial.max_length,
            pin_charset=body.pin.charset.value,
            pin_min=body.pin.min_length,
            pin_max=body.pin.max_length,
            registered_seq=entry.seq,
        )
    )
    session.flush()


_CODE_TABLE = cast(Table, Code.__table__)
_CODE_COLUMNS = tuple(column.name for column in _CODE_TABLE.columns)
_COPY_CODES = f"COPY code ({', '.join(_CODE_COLUMNS)}) FROM STDIN"
_INSERT_CODES = (
    f"INSERT INTO code ({', '.join(_CODE_COLUMNS)}) "  # noqa: S608 (column names only)
    f"VALUES ({', '.join('?' for _ in _CODE_COLUMNS)})"
)


def _write_codes(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert code rows through the driver: ``COPY`` on PostgreSQL (several times faster
    than INSERT for a chunk of hundreds), ``executemany`` on SQLite."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    assert driver is not None
    if connection.dialect.name == "postgresql":
        with driver.cursor() as cursor, cursor.copy(_COPY_CODES) as copy:
            for row in rows:
                copy.write_row([row[name] for name in _CODE_COLUMNS])
        return
    # SQLite takes every value of a code row as it is (bytes, text, integers, booleans
    # as 0 and 1), so the rows skip SQLAlchemy's per-parameter processing.
    cursor = driver.cursor()
    try:
        cursor.executemany(_INSERT_CODES, [[row[name] for name in _CODE_COLUMNS] for row in rows])
    finally:
        cursor.close()


def _integrity_errors(session: Session) -> tuple[type[BaseException], ...]:
    """What a broken primary key raises: SQLAlchemy's error, or the driver's (COPY)."""
    dbapi = session.get_bind().dialect.dbapi
    driver = getattr(dbapi, "IntegrityError", None) if dbapi is not None else None
    return (IntegrityError, driver) if isinstance(driver, type) else (IntegrityError,)


def _insert_codes(
    session: Session,
    pairs: Sequence[Sequence[str]],
    *,
    product: str,
    batch: str | None,
    offset: int,
    origin: Origin,
    holder: str,
    seq: int,
) -> list[bytes]:
    fingerprints = [_b(fp) for fp, _ in pairs]
    if len(set(fingerprints)) != len(fingerprints):
        seen: set[bytes] = set()
        twice = next(fp for fp in fingerprints if fp in seen or seen.add(fp))  # type: ignore[func-returns-value]
        raise CodeExistsError(f"code {short(twice)} appears twice", fingerprint=twice)
    rows = [
        {
            "fingerprint": fp,
            "serial_fp": _b(serial),
            "product": product,
            "batch": batch,
            "batch_index": offset + i if batch is not None else None,
            "origin": origin.value,
            "holder": holder,
            "state": CodeState.ISSUED.value,
            "frozen": False,
            "tainted": False,
            "issued_seq": seq,
            "last_seq": seq,
            "sale_instrument": None,
            "sale_payment_ref": None,
        }
        for i, (fp, (_, serial)) in enumerate(zip(fingerprints, pairs, strict=True))
    ]
    # The primary key refuses a code already recorded, so nothing is read before the
    # write; only a refused chunk looks up which code it was, to name it.
    try:
        with session.begin_nested():
            _write_codes(session, rows)
    except _integrity_errors(session) as e:
        found = set(
            session.scalars(select(Code.fingerprint).where(Code.fingerprint.in_(fingerprints)))
        )
        existing = next((fp for fp in fingerprints if fp in found), fingerprints[0])
        raise CodeExistsError(
            f"code {short(existing)} is already recorded", fingerprint=existing
        ) from e
    return fingerprints


def _project_batch_codes(session: Session, entry: AppliedEntry[BatchCodesBody]) -> None:
    body = entry.body
    product = _product(session, body.product)
    if entry.actor != product.issuer:
        raise NotPermittedError(
            f"only {product.issuer} (or the platform for it) issues {product.id}"
        )
    batch = session.get(CodeBatch, body.batch)
    if batch is None:
        if body.offset != 0:
            raise BatchStateError(f"batch {body.batch}: the first codes must have offset 0")
        batch = CodeBatch(
            id=body.batch,
            product=product.id,
            issuer=product.issuer,
            status=BatchStatus.PENDING.value,
            received=0,
            frontier=CompactRange.empty().to_bytes(),
            first_seq=entry.seq,
        )
        session.add(batch)
    if batch.status != BatchStatus.PENDING.value or batch.product != product.id:
        raise BatchStateError(f"batch {body.batch} is already issued, or of another product")
    if body.offset != batch.received:
        raise BatchStateError(
            f"batch {body.batch}: codes arrive out of order (offset {body.offset}, "
            f"expected {batch.received})"
        )
    fingerprints = _insert_codes(
        session,
        body.codes,
        product=product.id,
        batch=body.batch,
        offset=body.offset,
        origin=Origin.ISSUER_SIGNED,
        holder=product.issuer,
        seq=entry.seq,
    )
    frontier = CompactRange.from_bytes(batch.frontier)
    for fp in fingerprints:
        frontier.push_leaf(leaf_hash(fp))
    batch.frontier = frontier.to_bytes()
    batch.received += len(fingerprints)
    session.flush()


def _project_batch_issue(session: Session, entry: AppliedEntry[BatchIssueBody]) -> None:
    body = entry.body
    product = _product(session, body.product)
    if entry.actor != product.issuer:
        raise NotPermittedError(
            f"only {product.issuer} (or the platform for it) issues {product.id}"
        )
    batch = session.get(CodeBatch, body.batch)
    if batch is None or batch.status != BatchStatus.PENDING.value:
        raise BatchStateError(f"batch {body.batch} has no codes waiting to be issued")
    if batch.product != product.id:
        raise BatchStateError(f"batch {body.batch} holds codes of {batch.product}")
    if batch.received != body.count:
        raise BatchStateError(
            f"batch {body.batch}: {batch.received} codes arrived, the issuer signs for {body.count}"
        )
    root = CompactRange.from_bytes(batch.frontier).root()
    if root != _b(body.root):
        raise BatchStateError(
            f"batch {body.batch}: the signed root does not match the codes that arrived"
        )
    origin = Origin.ISSUER_ON_BEHALF if entry.statement.on_behalf else Origin.ISSUER_SIGNED
    batch.status = BatchStatus.ACTIVE.value
    batch.count = body.count
    batch.root = root
    batch.face_value = body.face_value
    batch.currency = body.currency
    batch.expires_at = parse_time(body.expires_at) if body.expires_at else None
    batch.origin = origin.value
    batch.issue_seq = entry.seq
    if origin is not Origin.ISSUER_SIGNED:
        session.execute(update(Code).where(Code.batch == batch.id).values(origin=origin.value))
    session.flush()


def _project_attest(session: Session, entry: AppliedEntry[AttestBody]) -> None:
    body = entry.body
    product = _product(session, body.product)
    attester = _party(session, entry.actor)
    if attester.kind not in (PartyKind.DISTRIBUTOR.value, PartyKind.MERCHANT.value):
        raise NotPermittedError("only a distributor or merchant attests the origin of codes")
    _insert_codes(
        session,
        body.codes,
        product=product.id,
        batch=None,
        offset=0,
        origin=Origin.SUPPLIER_ATTESTED,
        holder=entry.actor,
        seq=entry.seq,
    )
    session.flush()


def _project_transfer(session: Session, entry: AppliedEntry[TransferBody]) -> None:
    body = entry.body
    if entry.actor != body.sender:
        raise NotPermittedError(f"{entry.actor} may not transfer codes held by {body.sender}")
    if body.recipient == body.sender:
        raise CustodyError("a transfer needs two different parties")
    recipient = _party(session, body.recipient)
    if recipient.kind not in (PartyKind.DISTRIBUTOR.value, PartyKind.MERCHANT.value):
        raise NotPermittedError(f"{body.recipient} is not a distributor or merchant")
    fingerprints = [_b(fp) for fp in body.codes]
    for row in _load(session, fingerprints).values():
        _movable(row, body.sender, "transferred")
    session.execute(
        update(Code)
        .where(Code.fingerprint.in_(fingerprints))
        .values(holder=body.recipient, state=CodeState.HELD.value, last_seq=entry.seq)
    )
    _events(session, fingerprints, entry.seq, "transfer")


def _project_list(session: Session, entry: AppliedEntry[ListBody]) -> None:
    fingerprints = [_b(fp) for fp in entry.body.codes]
    for row in _load(session, fingerprints).values():
        _movable(row, entry.actor, "listed")
    session.execute(
        update(Code)
        .where(Code.fingerprint.in_(fingerprints))
        .values(state=CodeState.LISTED.value, last_seq=entry.seq)
    )
    _events(session, fingerprints, entry.seq, "list")


def _project_sale(session: Session, entry: AppliedEntry[SaleBody]) -> None:
    body = entry.body
    fp = _b(body.code)
    seller = _party(session, entry.actor)
    if seller.kind != PartyKind.MERCHANT.value:
        raise NotPermittedError(f"{entry.actor} is not a merchant")
    row = _load(session, [fp])[fp]
    _movable(row, entry.actor, "sold")
    tainted = any(
        value is not None and session.get(StolenPayment, (kind.value, value)) is not None
        for kind, value in (
            (StolenKind.INSTRUMENT, body.instrument),
            (StolenKind.PAYMENT_REF, body.payment_ref),
        )
    )
    values: dict[str, Any] = {
        "state": CodeState.SOLD.value,
        "last_seq": entry.seq,
        "sale_instrument": body.instrument,
        "sale_payment_ref": body.payment_ref,
    }
    if tainted:
        values["tainted"] = True
    session.execute(update(Code).where(Code.fingerprint == fp).values(**values))
    _events(session, [fp], entry.seq, "sale")


def _final_step(state: CodeState, kind: str) -> Any:
    def project(session: Session, entry: AppliedEntry[Any]) -> None:
        body = entry.body
        raw = [body.code] if hasattr(body, "code") else body.codes
        fingerprints = [_b(fp) for fp in raw]
        rows = _load(session, fingerprints)
        for row in rows.values():
            product = _product(session, row.product)
            _issuer_or_platform(entry, product.issuer, f"{kind} its codes")
            if row.state in (CodeState.REDEEMED.value, CodeState.VOIDED.value):
                raise CustodyError(
                    f"code {short(row.fingerprint)} is already {row.state}",
                    code=f"code-{row.state}",
                )
        session.execute(
            update(Code)
            .where(Code.fingerprint.in_(fingerprints))
            .values(state=state.value, last_seq=entry.seq)
        )
        _events(session, fingerprints, entry.seq, kind)

    return project


def _freeze(frozen: bool, kind: str) -> Any:
    def project(session: Session, entry: AppliedEntry[CodesReasonBody]) -> None:
        fingerprints = [_b(fp) for fp in entry.body.codes]
        for row in _load(session, fingerprints).values():
            _issuer_or_platform(entry, _product(session, row.product).issuer, f"{kind} codes")
            if row.frozen == frozen:
                already = "frozen" if frozen else "not frozen"
                raise CustodyError(f"code {short(row.fingerprint)} is already {already}")
        session.execute(
            update(Code)
            .where(Code.fingerprint.in_(fingerprints))
            .values(frozen=frozen, last_seq=entry.seq)
        )
        _events(session, fingerprints, entry.seq, kind)

    return project


def _project_stolen(session: Session, entry: AppliedEntry[StolenPaymentBody]) -> None:
    body = entry.body
    reporter = _party(session, entry.actor)
    if reporter.kind not in (PartyKind.PARTNER.value, PartyKind.PLATFORM.value):
        raise NotPermittedError(
            "only an anti-fraud partner or the platform reports stolen payments"
        )
    if session.get(StolenPayment, (body.kind.value, body.pseudonym)) is not None:
        raise ConflictError(
            f"that {body.kind.value} is already reported stolen", code="already-reported"
        )
    session.add(
        StolenPayment(
            kind=body.kind.value,
            pseudonym=body.pseudonym,
            reported_at=parse_time(body.reported_at),
            reporter=entry.actor,
            reported_seq=entry.seq,
        )
    )
    column = Code.sale_instrument if body.kind is StolenKind.INSTRUMENT else Code.sale_payment_ref
    affected = list(session.scalars(select(Code.fingerprint).where(column == body.pseudonym)))
    if affected:
        session.execute(update(Code).where(Code.fingerprint.in_(affected)).values(tainted=True))
        _events(session, affected, entry.seq, "tainted")
    session.flush()


ENTRY_TYPES = (
    EntryType("product.register", ProductRegisterBody, each(_project_product)),
    EntryType("batch.codes", BatchCodesBody, each(_project_batch_codes)),
    EntryType("batch.issue", BatchIssueBody, each(_project_batch_issue)),
    EntryType("code.attest", AttestBody, each(_project_attest)),
    EntryType("code.transfer", TransferBody, each(_project_transfer)),
    EntryType("code.list", ListBody, each(_project_list)),
    EntryType("code.sale", SaleBody, each(_project_sale)),
    EntryType("code.redeem", RedeemBody, each(_final_step(CodeState.REDEEMED, "redeem"))),
    EntryType("code.void", CodesReasonBody, each(_final_step(CodeState.VOIDED, "void"))),
    EntryType("code.freeze", CodesReasonBody, each(_freeze(True, "freeze"))),
    EntryType("code.unfreeze", CodesReasonBody, each(_freeze(False, "unfreeze"))),
    EntryType("payment.stolen", StolenPaymentBody, each(_project_stolen)),
)
PROJECTION_TABLES = ("code_event", "code", "code_batch", "product", "stolen_payment")


def get_code(session: Session, fingerprint: bytes) -> Code:
    code = session.get(Code, fingerprint)
    if code is None:
        raise NotFoundError(f"no code {short(fingerprint)}")
    return code


def require_product(session: Session, issuer: str, product: str) -> Product:
    """The product a raw code claims to be, if its issuer registered it.

    Raises:
        ValidationError: ``unknown-issuer`` or ``unknown-product`` (naming the field).
    """
    party = session.get(Party, issuer)
    if party is None or party.kind != PartyKind.ISSUER.value:
        raise ValidationError(
            f"no issuer {issuer!r} is registered", code="unknown-issuer", field="issuer"
        )
    found = session.get(Product, product)
    if found is None or found.issuer != issuer:
        raise ValidationError(
            f"{issuer} has no product {product!r}", code="unknown-product", field="product"
        )
    return found

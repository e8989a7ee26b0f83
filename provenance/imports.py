"""CSV imports of issuance, transfers and sales: all or nothing, with line numbers.

Each import streams its file once and appends as it goes, inside the caller's
transaction. Every bad line is reported (up to a limit) with its number and the reason;
if there is any, nothing is applied: the caller rolls the transaction back. Memory does
not grow with the file: a batch is fingerprinted and appended chunk by chunk.

Raw PINs are read, normalised, fingerprinted and dropped; error messages never repeat a
value from the file. Buyer accounts, payment instruments, devices and IP addresses are
turned into keyed pseudonyms; a full card number in the instrument column is refused.
"""

from __future__ import annotations

import base64
import csv
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import pydantic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session
from stdnum import luhn

from provenance.codes import MAX_CODES_PER_ENTRY, CodeExistsError, Product, SaleBody, short
from provenance.entries import (
    PARTY_ID_RE,
    SignedStatement,
    Statement,
    key_id_for,
    raw_public_key,
    sign_statement,
)
from provenance.errors import CardtraceError, ValidationError
from provenance.fingerprints import code_fingerprint, normalise_part, pseudonym
from provenance.issuance import BatchBuilder
from provenance.ledger import Ledger, PlatformSigner

MAX_REPORTED_ERRORS = 100
_FLUSH_ENTRIES = 10  # chunk entries appended per ledger call

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"line {self.line}{where}: {self.message}"


class ImportFailedError(ValidationError):
    """The file had bad lines; nothing was applied."""

    code = "import-failed"
    title = "Import refused"

    def __init__(self, errors: list[LineError], total: int) -> None:
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {total - 5} more)" if total > 5 else ""
        super().__init__(f"{total} bad line(s), nothing imported: {shown}{more}")
        self.errors = errors
        self.total = total


@dataclass(slots=True)
class ImportReport:
    rows: int = 0
    entries: int = 0
    batches: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Signers:
    """Who signs each party's entries: its own key if the importer holds it, else the
    platform on its behalf."""

    platform: PlatformSigner
    keys: Mapping[str, Ed25519PrivateKey] = field(default_factory=dict)

    def sign(
        self, ledger: Ledger, kind: str, body: dict[str, Any], actor: str, now: datetime
    ) -> SignedStatement:
        key = self.keys.get(actor)
        if key is None:
            return sign_statement(
                ledger.statement(kind, body, now=now, actor=actor), self.platform.private_key
            )
        statement = Statement(kind, now, actor, key_id_for(raw_public_key(key)), False, body)
        return sign_statement(statement, key)


@dataclass(slots=True)
class _Run:
    """Collects errors; once there is one, nothing more is appended."""

    errors: list[LineError] = field(default_factory=list)
    total: int = 0

    def fail(self, line: int, error: CardtraceError | str, field_name: str | None = None) -> None:
        self.total += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            message = error.message if isinstance(error, CardtraceError) else error
            name = getattr(error, "field", None) or field_name
            self.errors.append(LineError(line, name, message))

    @property
    def ok(self) -> bool:
        return self.total == 0

    def finish(self) -> None:
        if self.total:
            raise ImportFailedError(self.errors, self.total)


def _numbered(
    rows: Iterable[Mapping[str, str | None]],
) -> Iterator[tuple[int, Mapping[str, str | None]]]:
    # Line 1 is the header; data starts on line 2.
    for index, row in enumerate(rows):
        yield index + 2, row


def _require(row: Mapping[str, str | None], name: str) -> str:
    value = row.get(name)
    if value is None or not value.strip():
        raise ValidationError(f"{name} is missing", field=name)
    return value.strip()


def check_columns(header: Iterable[str] | None, required: Iterable[str]) -> None:
    """Raises ImportFailedError (line 1) if the header lacks a required column."""
    present = set(header or ())
    missing = [c for c in required if c not in present]
    if missing:
        raise ImportFailedError(
            [LineError(1, None, f"the header lacks the column(s) {', '.join(missing)}")], 1
        )


# --- issuance ---------------------------------------------------------------------


ISSUANCE_COLUMNS = ("batch", "product", "serial", "pin")


def import_issuance(
    session: Session,
    ledger: Ledger,
    rows: Iterable[Mapping[str, str | None]],
    *,
    fingerprint_key: bytes,
    signers: Signers,
    now: datetime,
    expires_at: datetime | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Issue the batches in a CSV (columns batch, product, serial, pin; a batch's rows
    together). Each batch's chunks and its issue entry are signed by the product's
    issuer (its own key from ``signers``, else the platform on its behalf).

    Raises:
        ImportFailedError: any bad line; nothing was appended (roll back the transaction).
    """
    run = _Run()
    report = ImportReport()
    done: set[str] = set()
    builder: BatchBuilder | None = None
    # Where each code not yet appended came from, to name the line of a code refused as
    # already recorded: the codes of the builder's open chunk, and those of pending entries.
    chunk_lines: dict[bytes, int] = {}
    pending_lines: dict[bytes, int] = {}
    pending: list[SignedStatement] = []

    def append(force: bool = False) -> None:
        if not run.ok:
            pending.clear()
            pending_lines.clear()
            return
        if pending and (force or len(pending) >= _FLUSH_ENTRIES):
            try:
                ledger.append(session, pending, now=now)
                report.entries += len(pending)
            except CodeExistsError as e:
                line = pending_lines.get(e.fingerprint or b"", batch_line)
                run.fail(line, "this code is already recorded (issued or attested before)", "pin")
            except CardtraceError as e:
                run.fail(batch_line, e)
            pending.clear()
            pending_lines.clear()

    def chunk_ready(body: dict[str, Any] | None, issuer: str) -> None:
        if body is None:
            return
        if run.ok:
            pending_lines.update(chunk_lines)
            pending.append(signers.sign(ledger, "batch.codes", body, issuer, now))
            append()
        chunk_lines.clear()

    def close_batch() -> None:
        nonlocal builder
        if builder is None:
            return
        chunk_ready(builder.flush(), builder.product.issuer)
        if run.ok:
            body = builder.issue_body(expires_at=expires_at)
            pending.append(signers.sign(ledger, "batch.issue", body, builder.product.issuer, now))
            append(force=True)
            report.batches.append(builder.batch)
        done.add(builder.batch)
        builder = None

    products: dict[str, Product | None] = {}
    first_lines: dict[str, int] = {}
    batch_line = 2
    for line, row in _numbered(rows):
        report.rows += 1
        try:
            batch = _require(row, "batch")
            product_id = _require(row, "product")
            if product_id not in products:
                products[product_id] = session.get(Product, product_id)
            product = products[product_id]
            if product is None:
                # The file's values are not repeated: in a shifted line this cell could
                # hold a PIN.
                raise ValidationError("this line's product is not registered", field="product")
            if builder is not None and batch != builder.batch:
                close_batch()
            if builder is None:
                if batch in done:
                    raise ValidationError(
                        f"this line's batch appears again after other rows (it started at "
                        f"line {first_lines[batch]}); keep a batch's rows together",
                        field="batch",
                    )
                builder = BatchBuilder(fingerprint_key, product, batch)
                batch_line = line
                first_lines[batch] = line
            elif product.id != builder.product.id:
                raise ValidationError(
                    f"this line's batch holds product {builder.product.id} (since line "
                    f"{batch_line}); a batch has one product",
                    field="product",
                )
            serial = normalise_part(_require(row, "serial"), "serial")
            pin = normalise_part(_require(row, "pin"), "pin")
            fp, chunk = builder.add_normalised(serial, pin)
            chunk_lines[fp] = line
            chunk_ready(chunk, builder.product.issuer)
        except CardtraceError as e:
            run.fail(line, e)
        if progress is not None and report.rows % 1000 == 0:
            progress(report.rows)
    close_batch()
    append(force=True)
    run.finish()
    return report


# --- transfers and sales ------------------------------------------------------------


def _code_from_row(row: Mapping[str, str | None], key: bytes) -> bytes:
    """A code named by a fingerprint column (hex) or by issuer, product, serial and pin."""
    fingerprint = row.get("fingerprint")
    if fingerprint:
        try:
            raw = bytes.fromhex(fingerprint.strip())
        except ValueError as e:
            raise ValidationError("fingerprint must be 64 hex digits", field="fingerprint") from e
        if len(raw) != 32:
            raise ValidationError("fingerprint must be 64 hex digits", field="fingerprint")
        return raw
    issuer = _require(row, "issuer")
    product = _require(row, "product")
    serial = normalise_part(_require(row, "serial"), "serial")
    pin = normalise_part(_require(row, "pin"), "pin")
    return code_fingerprint(key, issuer, product, serial, pin)


def _party(row: Mapping[str, str | None], name: str) -> str:
    value = _require(row, name)
    if not PARTY_ID_RE.fullmatch(value):
        raise ValidationError(f"{name} is not a party id", field=name)
    return value


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _sold_code(statement: SignedStatement) -> bytes:
    return base64.b64decode(statement.statement.body["code"])


def import_transfers(
    session: Session,
    ledger: Ledger,
    rows: Iterable[Mapping[str, str | None]],
    *,
    fingerprint_key: bytes,
    signers: Signers,
    now: datetime,
    progress: Progress | None = None,
) -> ImportReport:
    """Transfers from a CSV (columns from, to, and fingerprint or issuer/product/serial/
    pin). Consecutive rows with the same sender and recipient become one entry.

    Raises:
        ImportFailedError: any bad line, or a transfer custody refuses; nothing applied.
    """
    run = _Run()
    report = ImportReport()
    group: list[tuple[int, bytes]] = []
    route: tuple[str, str] | None = None

    def flush() -> None:
        nonlocal group
        if group and route is not None and run.ok:
            body = {"codes": [_b64(fp) for _, fp in group], "from": route[0], "to": route[1]}
            try:
                ledger.append(
                    session, [signers.sign(ledger, "code.transfer", body, route[0], now)], now=now
                )
                report.entries += 1
            except CardtraceError as e:
                where = next((line for line, fp in group if short(fp) in e.message), group[0][0])
                run.fail(where, e)
        group = []

    for line, row in _numbered(rows):
        report.rows += 1
        try:
            sender, recipient = _party(row, "from"), _party(row, "to")
            fp = _code_from_row(row, fingerprint_key)
            if route != (sender, recipient) or len(group) >= MAX_CODES_PER_ENTRY:
                flush()
                route = (sender, recipient)
            group.append((line, fp))
        except CardtraceError as e:
            run.fail(line, e)
        if progress is not None and report.rows % 1000 == 0:
            progress(report.rows)
    flush()
    run.finish()
    return report


def instrument_pseudonym(key: bytes, value: str) -> str:
    """Pseudonymise a payment instrument id or token; refuse a full card number.

    Raises:
        ValidationError: the value looks like a primary account number (PAN).
    """
    digits = value.replace(" ", "").replace("-", "")
    if digits.isdigit() and 13 <= len(digits) <= 19 and luhn.is_valid(digits):
        raise ValidationError(
            "full card numbers are refused; send the payment token or instrument id instead",
            code="card-number-refused",
            field="instrument",
        )
    return pseudonym(key, "instrument", value)


SALE_COLUMNS = ("merchant", "buyer", "amount", "currency")


def sale_body(row: Mapping[str, str | None], key: bytes) -> dict[str, Any]:
    """The ``code.sale`` body for one CSV row (pseudonymising personal data).

    Raises:
        ValidationError: a field is missing or malformed (named, value not repeated).
    """
    fp = _code_from_row(row, key)
    body: dict[str, Any] = {
        "code": _b64(fp),
        "buyer": pseudonym(key, "buyer", _require(row, "buyer")),
        "amount": _require(row, "amount"),
        "currency": _require(row, "currency"),
    }
    instrument = (row.get("instrument") or "").strip()
    if instrument:
        body["instrument"] = instrument_pseudonym(key, instrument)
    for name in ("payment_ref", "device", "ip"):
        value = (row.get(name) or "").strip()
        if value:
            body[name] = pseudonym(key, name, value)
    # Checked here, so a bad amount is reported on its own line.
    try:
        SaleBody.model_validate(body)
    except pydantic.ValidationError as e:
        first = e.errors(include_url=False, include_input=False)[0]
        where = str(first["loc"][0]) if first["loc"] else "row"
        raise ValidationError(f"{where}: {first['msg']}", field=where) from e
    return body


def import_sales(
    session: Session,
    ledger: Ledger,
    rows: Iterable[Mapping[str, str | None]],
    *,
    fingerprint_key: bytes,
    signers: Signers,
    now: datetime,
    progress: Progress | None = None,
    on_append: Callable[[Session, Sequence[Statement]], None] | None = None,
) -> ImportReport:
    """Sales from a CSV (merchant, buyer, amount, currency, the code, and optionally
    instrument, payment_ref, device, ip). Each sale is one entry, signed by its merchant.

    ``on_append`` is given each appended run of sales, in the import's transaction: the
    real-time risk state records them there
    (:meth:`provenance.risk.live.LiveRisk.entries_appended`).

    Raises:
        ImportFailedError: any bad line, or a sale custody refuses; nothing applied.
    """
    run = _Run()
    report = ImportReport()
    pending: list[tuple[int, SignedStatement]] = []

    def flush() -> None:
        if pending and run.ok:
            try:
                ledger.append(session, [s for _, s in pending], now=now)
                report.entries += len(pending)
                if on_append is not None:
                    on_append(session, [s.statement for _, s in pending])
            except CardtraceError as e:
                where = next(
                    (
                        line
                        for line, s in pending
                        if s.statement.body["code"]
                        and short(base64.b64decode(s.statement.body["code"])) in e.message
                    ),
                    pending[0][0],
                )
                run.fail(where, e)
        pending.clear()

    for line, row in _numbered(rows):
        report.rows += 1
        try:
            merchant = _party(row, "merchant")
            body = sale_body(row, fingerprint_key)
            pending.append((line, signers.sign(ledger, "code.sale", body, merchant, now)))
        except CardtraceError as e:
            run.fail(line, e)
        if len(pending) >= 500:
            flush()
        if progress is not None and report.rows % 1000 == 0:
            progress(report.rows)
    flush()
    run.finish()
    return report


# --- a whole file -------------------------------------------------------------------

TRANSFER_COLUMNS = ("from", "to")
# What each kind of file holds: its required columns.
COLUMNS: dict[str, tuple[str, ...]] = {
    "issuance": ISSUANCE_COLUMNS,
    "transfers": TRANSFER_COLUMNS,
    "sales": SALE_COLUMNS,
}
_NOT_CSV = "the line is not valid CSV (a field too long, or a stray quote)"


def csv_rows(reader: Any) -> Iterator[Any]:
    """A ``csv`` reader's rows; a line the module cannot read fails the import with its
    number (the module's own message is not repeated: it may quote the line)."""
    read = reader.line_num  # the last line of the rows read so far
    try:
        for row in reader:
            read = reader.line_num
            yield row
    except csv.Error as e:
        # The unreadable row starts on the line after the last row read.
        raise ImportFailedError([LineError(read + 1, None, _NOT_CSV)], 1) from e


def count_rows(text: IO[str]) -> int:
    """The data rows of a CSV file (its header not counted).

    Raises:
        ImportFailedError: a line is not valid CSV.
    """
    return max(sum(1 for _ in csv_rows(csv.reader(text))) - 1, 0)


def import_csv(
    session: Session,
    ledger: Ledger,
    kind: str,
    text: IO[str],
    *,
    fingerprint_key: bytes,
    signers: Signers,
    now: datetime,
    expires_at: datetime | None = None,
    progress: Progress | None = None,
    on_append: Callable[[Session, Sequence[Statement]], None] | None = None,
) -> ImportReport:
    """Import one CSV file of ``kind`` (a key of :data:`COLUMNS`), all or nothing.

    Args:
        text: the file, opened as text (``encoding="utf-8-sig", newline=""``).
        expires_at: issuance only: the batches' expiry.
        on_append: sales only: told of each chunk of sale statements appended.

    Raises:
        ValidationError: an unknown kind, or an expiry for another kind than issuance.
        ImportFailedError: the header or any line is bad (nothing was applied).
    """
    if kind not in COLUMNS:
        raise ValidationError(f"the kind of file must be one of {', '.join(COLUMNS)}", field="kind")
    if expires_at is not None and kind != "issuance":
        raise ValidationError("an expiry applies to issuance only", field="expires_at")
    reader = csv.DictReader(text)
    try:
        header = reader.fieldnames
    except csv.Error as e:
        raise ImportFailedError([LineError(1, None, _NOT_CSV)], 1) from e
    check_columns(header, COLUMNS[kind])
    rows = csv_rows(reader)
    common: dict[str, Any] = {
        "fingerprint_key": fingerprint_key,
        "signers": signers,
        "now": now,
        "progress": progress,
    }
    if kind == "issuance":
        return import_issuance(session, ledger, rows, expires_at=expires_at, **common)
    if kind == "transfers":
        return import_transfers(session, ledger, rows, **common)
    return import_sales(session, ledger, rows, on_append=on_append, **common)

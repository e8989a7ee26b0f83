"""The enterprise registry and the ICP filing registry, behind interfaces.

Checks ask a :class:`EnterpriseRegistry` and an :class:`IcpRegistry`; every answer says
which source it came from and as of which date. The offline implementation,
:class:`OfflineRegistry`, reads the extract the platform last imported (CSV or JSON, see
docs/ONBOARDING.md); a live service (天眼查, 企查查, the MIIT filing system) plugs in
by implementing the same two methods.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from merchant_onboarding.errors import RegistryImportError
from merchant_onboarding.models import RegistryEnterprise, RegistryExtract, RegistryIcp

T = TypeVar("T")

MAX_EXTRACT_RECORDS = 2_000_000


class RegistryKind(StrEnum):
    ENTERPRISE = "enterprise"
    ICP = "icp"


# 存续/在业: in business. 吊销: licence revoked. 注销: deregistered. 撤销: registration
# cancelled. 迁出: moved to another registration authority. 停业: business suspended.
ACTIVE_STATUSES = frozenset({"存续", "在业"})
KNOWN_STATUSES = ACTIVE_STATUSES | {"吊销", "注销", "撤销", "迁出", "停业"}


@dataclass(frozen=True, slots=True)
class Source:
    """Where an answer came from: a registry extract of some date, or a live service."""

    name: str
    extract_date: date | None

    def describe(self) -> str:
        when = f" extract of {self.extract_date.isoformat()}" if self.extract_date else ""
        return f"{self.name}{when}"


@dataclass(frozen=True, slots=True)
class Lookup(Generic[T]):
    """A registry's answer: what it found (``None`` or empty: nothing) and its source.

    ``source`` is ``None`` when no extract has been imported: the registry could not be
    asked at all, which a check reports differently from "not registered".
    """

    found: T
    source: Source | None


@dataclass(frozen=True, slots=True)
class EnterpriseRecord:
    credit_code: str
    name: str
    status: str
    established: date | None
    capital: str | None
    capital_yuan: int | None
    legal_rep: str | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True, slots=True)
class IcpFiling:
    icp_number: str
    domain: str
    holder_name: str
    holder_credit_code: str | None
    holder_kind: str
    approved_on: date | None


class EnterpriseRegistry(Protocol):
    def enterprise(self, credit_code: str) -> Lookup[EnterpriseRecord | None]:
        """The registered enterprise with that unified social credit code."""


class IcpRegistry(Protocol):
    def filings(self, icp_number: str, domain: str | None) -> Lookup[list[IcpFiling]]:
        """Filings under that number (without its ``-N`` site suffix), and of that domain."""


@dataclass(frozen=True, slots=True)
class Registries:
    enterprise: EnterpriseRegistry
    icp: IcpRegistry


def normalise_name(name: str) -> str:
    """Compare entity names: NFKC (full-width to half-width), no spaces, ASCII brackets."""
    text = unicodedata.normalize("NFKC", name)
    return re.sub(r"\s+", "", text).replace("（", "(").replace("）", ")").casefold()


def icp_base(number: str) -> str:
    """``京ICP备12345678号-3`` -> ``京ICP备12345678号``: the holder's filing number."""
    text = unicodedata.normalize("NFKC", number).strip()
    return re.sub(r"-\d+$", "", text)


class OfflineRegistry:
    """Both registries, answered from the imported extracts in the database."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _source(self, kind: RegistryKind) -> Source | None:
        extract = self.session.get(RegistryExtract, kind.value)
        if extract is None:
            return None
        return Source(extract.source, extract.extract_date)

    def enterprise(self, credit_code: str) -> Lookup[EnterpriseRecord | None]:
        source = self._source(RegistryKind.ENTERPRISE)
        row = self.session.get(RegistryEnterprise, credit_code) if source else None
        if row is None:
            return Lookup(None, source)
        return Lookup(
            EnterpriseRecord(
                row.credit_code,
                row.name,
                row.status,
                row.established,
                row.capital,
                row.capital_yuan,
                row.legal_rep,
            ),
            source,
        )

    def filings(self, icp_number: str, domain: str | None) -> Lookup[list[IcpFiling]]:
        source = self._source(RegistryKind.ICP)
        if source is None:
            return Lookup([], None)
        base = icp_base(icp_number)
        condition = RegistryIcp.icp_number == base
        if domain:
            condition = condition | (RegistryIcp.domain == domain)
        rows = self.session.scalars(
            select(RegistryIcp).where(condition).order_by(RegistryIcp.icp_number)
        )
        return Lookup(
            [
                IcpFiling(
                    r.icp_number,
                    r.domain,
                    r.holder_name,
                    r.holder_credit_code,
                    r.holder_kind,
                    r.approved_on,
                )
                for r in rows
            ],
            source,
        )


# --- importing an extract ------------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EnterpriseRow(_Record):
    credit_code: str = Field(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")
    name: str = Field(min_length=1, max_length=200)
    status: str = Field(min_length=1, max_length=16)
    established: date | None = None
    capital: str | None = Field(default=None, max_length=64)
    legal_rep: str | None = Field(default=None, max_length=100)

    @pydantic.field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        if value not in KNOWN_STATUSES:
            raise ValueError(f"must be one of {', '.join(sorted(KNOWN_STATUSES))}")
        return value

    @pydantic.field_validator("established", "capital", "legal_rep", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value == "" else value


class IcpRow(_Record):
    icp_number: str = Field(min_length=1, max_length=64)
    domain: str = Field(min_length=1, max_length=253)
    holder_name: str = Field(min_length=1, max_length=200)
    holder_credit_code: str | None = Field(default=None, pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")
    holder_kind: str = Field(min_length=1, max_length=16)
    approved_on: date | None = None

    @pydantic.field_validator("holder_credit_code", "approved_on", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value == "" else value


_ROW_MODELS: dict[RegistryKind, type[_Record]] = {
    RegistryKind.ENTERPRISE: EnterpriseRow,
    RegistryKind.ICP: IcpRow,
}


def capital_in_yuan(text: str | None) -> int | None:
    """``1000万元人民币`` -> 10000000; ``500000元`` -> 500000; unparseable -> None."""
    if not text:
        return None
    match = re.match(
        r"\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*(万|亿)?", unicodedata.normalize("NFKC", text)
    )
    if match is None:
        return None
    amount = float(match.group(1).replace(",", ""))
    factor = {"万": 10_000, "亿": 100_000_000}.get(match.group(2) or "", 1)
    return round(amount * factor)


@dataclass(frozen=True, slots=True)
class ImportReport:
    kind: RegistryKind
    records: int
    source: str
    extract_date: date


def _first_error(e: pydantic.ValidationError) -> tuple[str, str]:
    first = e.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    return where, first["msg"]


def _rows_csv(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        if None in row:
            raise RegistryImportError(
                f"line {reader.line_num}: more values than columns", line=reader.line_num
            )
        yield reader.line_num, dict(row)


def parse_extract(
    kind: RegistryKind,
    raw: bytes,
    *,
    fmt: str,
    source: str | None = None,
    extract_date: date | None = None,
) -> tuple[list[_Record], str, date]:
    """Read an extract file into validated records.

    JSON: ``{"registry", "source", "extract_date", "records": [...]}``. CSV: a header
    line and one record per line; ``source`` and ``extract_date`` are given separately.

    Raises:
        RegistryImportError: naming the line (CSV) or record number (JSON) and the field.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RegistryImportError("the extract is not UTF-8 text") from e
    rows: Iterable[tuple[int, dict[str, Any]]]
    where_kind = "line"
    if fmt == "json":
        where_kind = "record"
        try:
            document = json.loads(text)
        except json.JSONDecodeError as e:
            raise RegistryImportError(f"not JSON: {e.msg} at line {e.lineno}", line=e.lineno) from e
        if not isinstance(document, dict) or not isinstance(document.get("records"), list):
            raise RegistryImportError("a JSON extract is an object with a records list")
        if document.get("registry") != kind.value:
            raise RegistryImportError(
                f"the extract says registry {document.get('registry')!r}, not {kind.value!r}",
                field="registry",
            )
        source = source or document.get("source")
        if extract_date is None and document.get("extract_date"):
            try:
                extract_date = date.fromisoformat(str(document["extract_date"]))
            except ValueError as e:
                raise RegistryImportError(
                    "extract_date must be a date like 2026-11-01", field="extract_date"
                ) from e
        rows = (
            (i, r if isinstance(r, dict) else {"": r}) for i, r in enumerate(document["records"], 1)
        )
    elif fmt == "csv":
        rows = _rows_csv(text)
    else:
        raise RegistryImportError(f"unknown extract format {fmt!r}; use csv or json")
    if not source or len(source) > 200:
        raise RegistryImportError("name the extract's source (1-200 characters)", field="source")
    if extract_date is None:
        raise RegistryImportError("give the extract's date", field="extract_date")
    model = _ROW_MODELS[kind]
    records: list[_Record] = []
    seen: set[tuple[str, ...]] = set()
    for number, row in rows:
        try:
            record = model.model_validate(row)
        except pydantic.ValidationError as e:
            field, message = _first_error(e)
            raise RegistryImportError(
                f"{where_kind} {number}: {field}: {message}", line=number, field=field
            ) from e
        key = (
            (record.credit_code,)
            if isinstance(record, EnterpriseRow)
            else (icp_base(record.icp_number), record.domain.lower())  # type: ignore[attr-defined]
        )
        if key in seen:
            raise RegistryImportError(
                f"{where_kind} {number}: the same record appears twice", line=number
            )
        seen.add(key)
        records.append(record)
        if len(records) > MAX_EXTRACT_RECORDS:
            raise RegistryImportError(f"an extract holds at most {MAX_EXTRACT_RECORDS} records")
    return records, source, extract_date


def import_extract(
    session: Session,
    kind: RegistryKind,
    raw: bytes,
    *,
    fmt: str,
    now: datetime,
    source: str | None = None,
    extract_date: date | None = None,
) -> ImportReport:
    """Replace the extract in use for ``kind``, all or nothing (the caller commits).

    Raises:
        RegistryImportError: the file is refused; nothing was changed.
    """
    records, source, extract_date = parse_extract(
        kind, raw, fmt=fmt, source=source, extract_date=extract_date
    )
    if kind is RegistryKind.ENTERPRISE:
        session.execute(delete(RegistryEnterprise))
        values = [
            {
                "credit_code": r.credit_code,
                "name": r.name,
                "status": r.status,
                "established": r.established,
                "capital": r.capital,
                "capital_yuan": capital_in_yuan(r.capital),
                "legal_rep": r.legal_rep,
            }
            for r in records
            if isinstance(r, EnterpriseRow)
        ]
        table: Any = RegistryEnterprise
    else:
        session.execute(delete(RegistryIcp))
        values = [
            {
                "icp_number": icp_base(r.icp_number),
                "domain": r.domain.lower().rstrip("."),
                "holder_name": r.holder_name,
                "holder_credit_code": r.holder_credit_code,
                "holder_kind": r.holder_kind,
                "approved_on": r.approved_on,
            }
            for r in records
            if isinstance(r, IcpRow)
        ]
        table = RegistryIcp
    for start in range(0, len(values), 1000):
        session.execute(insert(table), values[start : start + 1000])
    extract = session.get(RegistryExtract, kind.value)
    if extract is None:
        extract = RegistryExtract(kind=kind.value)
        session.add(extract)
    extract.source = source
    extract.extract_date = extract_date
    extract.imported_at = now
    extract.records = len(values)
    session.flush()
    return ImportReport(kind, len(values), source, extract_date)

"""Transfer lists: read a CSV of account-to-account transfers into compact arrays.

A transfer list has a header row naming at least ``source``, ``target``, ``amount`` and
``timestamp`` (ISO 8601; a time without an offset is taken as UTC); other columns are
ignored, except ``device``, ``ip`` and ``instrument``, which, when present, say what
the sending account used and feed the shared-attribute ring detector. Accounts become
integer ids, so a file of several million rows costs a few dozen bytes a row: two
``int32`` ids, a ``float64`` amount and an ``int64`` time, never an object per row.

Reading is all or nothing: the first bad row raises :class:`TransferListError` with its
line number, and the caller writes nothing.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

import numpy as np
import numpy.typing as npt

from provenance.errors import ValidationError

REQUIRED_COLUMNS = ("source", "target", "amount", "timestamp")
ATTRIBUTE_COLUMNS = ("device", "ip", "instrument")

IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]


class TransferListError(ValidationError):
    """A transfer list that cannot be read; the message names the line."""

    code = "bad-transfer-list"
    title = "Bad transfer list"

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


@dataclass(slots=True)
class TransferTable:
    """Transfers as parallel arrays; position ``i`` is the ``i``-th data row (0-based).

    Attributes:
        accounts: account names, indexed by id.
        source, target: account ids (``int32``).
        amount: amounts (``float64``).
        time: seconds since the epoch, UTC (``int64``).
        attributes: per attribute column present (``device``, ``ip``, ``instrument``),
            one id per row into ``attribute_values[column]`` (-1 where the cell is empty).
    """

    accounts: list[str]
    source: Int32Array
    target: Int32Array
    amount: FloatArray
    time: IntArray
    attributes: dict[str, Int32Array] = field(default_factory=dict)
    attribute_values: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.source.shape[0])

    @property
    def n_accounts(self) -> int:
        return len(self.accounts)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[str, str, float, datetime | int]],
        attributes: dict[str, list[str | None]] | None = None,
    ) -> TransferTable:
        """A table from ``(source, target, amount, time)`` values (times as datetimes
        or epoch seconds), for tests and generators; ``attributes`` maps a column to one
        value per row."""
        builder = _Builder(tuple(attributes or ()))
        for index, (source, target, amount, when) in enumerate(rows):
            seconds = when if isinstance(when, int) else _epoch(when)
            values = tuple((attributes or {})[c][index] for c in builder.attribute_columns)
            builder.add(source, target, float(amount), seconds, values)
        return builder.build()

    def format_time(self, index: int) -> str:
        """The ISO 8601 UTC spelling of row ``index``'s time."""
        return format_epoch(int(self.time[index]))


def _epoch(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return math.floor(when.timestamp())


def format_epoch(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Builder:
    def __init__(self, attribute_columns: tuple[str, ...]) -> None:
        self.ids: dict[str, int] = {}
        self.accounts: list[str] = []
        self.source = array("i")
        self.target = array("i")
        self.amount = array("d")
        self.time = array("q")
        self.attribute_columns = attribute_columns
        self.attribute_ids: list[dict[str, int]] = [{} for _ in attribute_columns]
        self.attribute_rows = [array("i") for _ in attribute_columns]

    def _id(self, name: str) -> int:
        found = self.ids.get(name)
        if found is None:
            found = self.ids[name] = len(self.accounts)
            self.accounts.append(name)
        return found

    def add(
        self,
        source: str,
        target: str,
        amount: float,
        seconds: int,
        attributes: tuple[str | None, ...] = (),
    ) -> None:
        self.source.append(self._id(source))
        self.target.append(self._id(target))
        self.amount.append(amount)
        self.time.append(seconds)
        for ids, rows, value in zip(
            self.attribute_ids, self.attribute_rows, attributes, strict=True
        ):
            if not value:
                rows.append(-1)
                continue
            found = ids.get(value)
            if found is None:
                found = ids[value] = len(ids)
            rows.append(found)

    def build(self) -> TransferTable:
        pairs = zip(self.attribute_columns, self.attribute_ids, strict=True)
        values = {column: list(ids) for column, ids in pairs}
        return TransferTable(
            accounts=self.accounts,
            source=np.frombuffer(self.source, dtype=np.int32).copy(),
            target=np.frombuffer(self.target, dtype=np.int32).copy(),
            amount=np.frombuffer(self.amount, dtype=np.float64).copy(),
            time=np.frombuffer(self.time, dtype=np.int64).copy(),
            attributes={
                column: np.frombuffer(rows, dtype=np.int32).copy()
                for column, rows in zip(self.attribute_columns, self.attribute_rows, strict=True)
            },
            attribute_values=values,
        )


def _parse_time(text: str, line: int, cache: dict[str, int]) -> int:
    found = cache.get(text)
    if found is not None:
        return found
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TransferListError(
            f"timestamp {text[:40]!r} is not an ISO 8601 date and time", line=line
        ) from None
    seconds = _epoch(when)
    if len(cache) > 100_000:
        cache.clear()
    cache[text] = seconds
    return seconds


def _parse_amount(text: str, line: int) -> float:
    try:
        amount = float(text)
    except ValueError:
        raise TransferListError(f"amount {text[:40]!r} is not a number", line=line) from None
    if not math.isfinite(amount) or amount < 0:
        raise TransferListError(
            f"amount {text[:40]!r} must be a finite number, zero or more", line=line
        )
    return amount


def read_transfers(stream: IO[str]) -> TransferTable:
    """Read a transfer list (see the module docstring) from a text stream.

    Returns:
        The table, row ``i`` being the ``i``-th data row.

    Raises:
        TransferListError: the file is empty, the header lacks a required column, or a
            row has a missing account, a bad amount or a bad timestamp (with its line).
    """
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise TransferListError("the file is empty: expected a header row", line=1) from None
    except csv.Error as e:
        raise TransferListError(f"not a CSV file ({e})", line=1) from None
    columns = [name.strip().lower().lstrip("\ufeff") for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise TransferListError(
            f"the header lacks the column(s) {', '.join(missing)} "
            f"(needs {', '.join(REQUIRED_COLUMNS)})",
            line=1,
        )
    s, t, a, w = (columns.index(name) for name in REQUIRED_COLUMNS)
    present = tuple(name for name in ATTRIBUTE_COLUMNS if name in columns)
    extra = [columns.index(name) for name in present]
    width = max(s, t, a, w, *extra) + 1
    builder = _Builder(present)
    cache: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) < width:
                raise TransferListError(
                    f"expected at least {width} fields, found {len(row)}", line=line
                )
            source, target = row[s].strip(), row[t].strip()
            if not source or not target:
                raise TransferListError("source and target must not be empty", line=line)
            builder.add(
                source,
                target,
                _parse_amount(row[a], line),
                _parse_time(row[w], line, cache),
                tuple(row[i].strip() or None for i in extra),
            )
    except csv.Error as e:
        raise TransferListError(f"malformed CSV ({e})", line=reader.line_num) from None
    if not builder.source:
        raise TransferListError("the file has a header but no transfers", line=2)
    return builder.build()


def iter_rows(table: TransferTable, rows: Iterable[int]) -> Iterator[tuple[int, str, str]]:
    """``(row, source name, target name)`` for the given rows."""
    for row in rows:
        yield row, table.accounts[table.source[row]], table.accounts[table.target[row]]

"""Reading watch-list files: CSV and FollowTheMoney (OpenSanctions) entity JSON.

A reader is an iterable of :class:`ListedParty`, read from a text stream one line or
record at a time. It checks every record; the parties of good records are yielded as it
goes, and once the stream is exhausted any bad records raise one
:class:`~merchant_onboarding.errors.WatchlistImportError` naming each bad line (up to
``MAX_REPORTED_ERRORS``) and the field. :func:`~merchant_onboarding.screening.import_watchlist`
writes inside a savepoint, so that error leaves nothing behind.

Messages never repeat a value from the file.

CSV (``format="csv"``), UTF-8 with a header line; columns in any order:

============ ======== ==============================================================
column       required meaning
============ ======== ==============================================================
``id``       yes      the entry's identifier in the list, unique within the file
``name``     yes      the listed name
``kind``     yes      ``person``, ``entity`` (a company or organisation) or
                      ``unspecified``
``aliases``  no       other names, separated by ``;``
``countries`` no      country codes or names, separated by ``;``
``note``     no       free text shown to the officer (at most 500 characters)
============ ======== ==============================================================

FollowTheMoney (``format="ftm"``): one entity per line, as in OpenSanctions'
``entities.ftm.json`` and ``targets.nested.json`` exports. Top-level keys are ``id``,
``schema``, ``properties`` and optionally ``caption``, ``datasets``, ``referents``,
``target``, ``first_seen``, ``last_seen``, ``last_change``; any other key is refused.
``properties`` maps each property name to a list of values; values are strings, or, in
the nested export, entity objects. Entities of schema ``Person`` are persons; ``Company``,
``Organization`` and ``PublicBody`` are entities; ``LegalEntity`` is unspecified. Their
``name``, ``alias`` and ``previousName`` values are screened (``weakAlias`` is not: such
aliases are short and generic by definition). Entities of other schemata (``Sanction``,
``Address``, ``Ownership``, ...) are counted and skipped.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TextIO

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from merchant_onboarding.errors import ScreeningInputError, WatchlistImportError
from provenance.imports import LineError

MAX_REPORTED_ERRORS = 100
MAX_NAME_LENGTH = 500
MAX_NAMES_PER_ENTRY = 500


class PartyKind(StrEnum):
    """Who a name belongs to: a natural person, or a company or organisation."""

    PERSON = "person"
    ENTITY = "entity"
    UNSPECIFIED = "unspecified"


class NameRole(StrEnum):
    NAME = "name"
    ALIAS = "alias"
    PREVIOUS_NAME = "previous-name"


class WatchlistFormat(StrEnum):
    CSV = "csv"
    FTM = "ftm"


@dataclass(frozen=True, slots=True)
class ListedName:
    name: str
    role: NameRole


@dataclass(frozen=True, slots=True)
class ListedParty:
    """One entry of a watch list, as read from its file.

    ``names`` is never empty; the first is the entry's main name, and ``caption`` (the
    name the list shows) defaults to it.
    """

    line: int
    entry_id: str
    kind: PartyKind
    names: tuple[ListedName, ...]
    schema: str | None = None
    countries: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    note: str | None = None
    caption: str | None = None


class _Errors:
    """Collects bad lines; raises them all at the end of the file."""

    def __init__(self) -> None:
        self.errors: list[LineError] = []
        self.total = 0

    def add(self, line: int, field: str | None, message: str) -> None:
        self.total += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line, field, message))

    def add_pydantic(self, line: int, error: pydantic.ValidationError) -> None:
        for problem in error.errors(include_input=False, include_url=False):
            field = ".".join(str(part) for part in problem["loc"]) or None
            self.add(line, field, _pydantic_message(problem))

    def finish(self) -> None:
        if self.total:
            raise WatchlistImportError(self.errors, self.total)


def _pydantic_message(problem: Any) -> str:
    kind = problem["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    return str(problem["msg"])


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
ListName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_NAME_LENGTH)]


class WatchlistReader:
    """An iterable of the parties in a watch-list file."""

    format: WatchlistFormat

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.skipped: Counter[str] = Counter()

    def __iter__(self) -> Iterator[ListedParty]:
        raise NotImplementedError


def open_reader(format: WatchlistFormat | str, stream: TextIO) -> WatchlistReader:
    """The reader for ``format`` (``csv`` or ``ftm``) over a text stream.

    Raises:
        ScreeningInputError: the format is not one of them.
    """
    readers: dict[str, type[WatchlistReader]] = {"csv": CsvReader, "ftm": FtmReader}
    try:
        return readers[WatchlistFormat(format)](stream)
    except ValueError as e:
        raise ScreeningInputError("unknown format (use csv or ftm)", field="format") from e


# --- CSV ----------------------------------------------------------------------------------

CSV_COLUMNS = ("id", "name", "kind", "aliases", "countries", "note")
CSV_REQUIRED = ("id", "name", "kind")


class _CsvRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[Text, StringConstraints(max_length=200)]
    name: Annotated[Text, StringConstraints(max_length=MAX_NAME_LENGTH)]
    kind: PartyKind
    aliases: str | None = None
    countries: Annotated[str, StringConstraints(max_length=200)] | None = None
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


def _split(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in value.split(";") if part.strip()]


class CsvReader(WatchlistReader):
    """CSV with a header line; see the module docstring for the columns."""

    format = WatchlistFormat.CSV

    def __iter__(self) -> Iterator[ListedParty]:
        errors = _Errors()
        reader = csv.DictReader(self._stream, restkey="\0rest")
        try:
            header = reader.fieldnames
        except (UnicodeDecodeError, csv.Error) as e:
            errors.add(1, None, _unreadable(e))
            errors.finish()
            return
        if not header:
            errors.add(1, None, "empty file: expected a header line")
            errors.finish()
            return
        names = [column.strip() for column in header]
        for column in names:
            if column not in CSV_COLUMNS:
                errors.add(1, column or None, f"unknown column (columns: {', '.join(CSV_COLUMNS)})")
        for column in CSV_REQUIRED:
            if column not in names:
                errors.add(1, column, "required column missing")
        if len(set(names)) != len(names):
            errors.add(1, None, "a column appears twice")
        errors.finish()
        reader.fieldnames = names
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except (UnicodeDecodeError, csv.Error) as e:
                errors.add(reader.line_num + 1, None, _unreadable(e))
                break
            line = reader.line_num
            if "\0rest" in record:
                errors.add(line, None, "more fields than the header has columns")
                continue
            if any(value is None for value in record.values()):
                errors.add(line, None, "fewer fields than the header has columns")
                continue
            values = {k: v for k, v in record.items() if v.strip()}
            try:
                row = _CsvRow.model_validate(values)
            except pydantic.ValidationError as e:
                errors.add_pydantic(line, e)
                continue
            party = _csv_party(line, row, errors)
            if party is not None:
                yield party
        errors.finish()


def _csv_party(line: int, row: _CsvRow, errors: _Errors) -> ListedParty | None:
    names = [ListedName(row.name, NameRole.NAME)]
    for alias in _split(row.aliases):
        if len(alias) > MAX_NAME_LENGTH:
            errors.add(line, "aliases", f"an alias is longer than {MAX_NAME_LENGTH} characters")
            return None
        names.append(ListedName(alias, NameRole.ALIAS))
    if len(names) > MAX_NAMES_PER_ENTRY:
        errors.add(line, "aliases", f"more than {MAX_NAMES_PER_ENTRY} names")
        return None
    return ListedParty(
        line=line,
        entry_id=row.id,
        kind=row.kind,
        names=tuple(names),
        countries=tuple(_split(row.countries)),
        note=row.note,
    )


def _unreadable(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"not valid CSV ({error})"


# --- FollowTheMoney -----------------------------------------------------------------------

PERSON_SCHEMATA = frozenset({"Person"})
ENTITY_SCHEMATA = frozenset({"Company", "Organization", "PublicBody"})
UNSPECIFIED_SCHEMATA = frozenset({"LegalEntity"})
NAME_PROPERTIES = {
    "name": NameRole.NAME,
    "alias": NameRole.ALIAS,
    "previousName": NameRole.PREVIOUS_NAME,
}
COUNTRY_PROPERTIES = ("country", "nationality", "jurisdiction", "citizenship")
_SCHEMA_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_PROPERTY_NAME = re.compile(r"^[a-z][A-Za-z0-9]{0,63}$")

PropertyValue = str | dict[str, Any]


class _FtmEntity(BaseModel):
    """The FtM entity envelope; ``properties`` is open, as the format defines it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: Annotated[Text, StringConstraints(max_length=200)]
    entity_schema: Annotated[str, Field(alias="schema", pattern=_SCHEMA_NAME.pattern)]
    properties: dict[str, list[PropertyValue]] = Field(default_factory=dict)
    caption: str | None = None
    datasets: list[str] = Field(default_factory=list)
    referents: list[str] = Field(default_factory=list)
    target: bool | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    last_change: str | None = None


class FtmReader(WatchlistReader):
    """FollowTheMoney entities, one JSON object per line; see the module docstring."""

    format = WatchlistFormat.FTM

    def __iter__(self) -> Iterator[ListedParty]:
        errors = _Errors()
        line = 0
        lines = iter(self._stream)
        while True:
            try:
                text = next(lines)
            except StopIteration:
                break
            except UnicodeDecodeError:
                errors.add(line + 1, None, "not UTF-8 text")
                break
            line += 1
            if not text.strip():
                continue
            try:
                document = json.loads(text)
            except json.JSONDecodeError as e:
                errors.add(line, None, f"not JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(document, dict):
                errors.add(line, None, "not a JSON object")
                continue
            try:
                entity = _FtmEntity.model_validate(document)
            except pydantic.ValidationError as e:
                errors.add_pydantic(line, e)
                continue
            party = self._party(line, entity, errors)
            if party is not None:
                yield party
        if line == 0:
            errors.add(1, None, "empty file: expected one entity per line")
        errors.finish()

    def _party(self, line: int, entity: _FtmEntity, errors: _Errors) -> ListedParty | None:
        bad = [p for p in entity.properties if not _PROPERTY_NAME.match(p)]
        if bad:
            errors.add(line, "properties", "a property name is not a FollowTheMoney name")
            return None
        schema = entity.entity_schema
        if schema in PERSON_SCHEMATA:
            kind = PartyKind.PERSON
        elif schema in ENTITY_SCHEMATA:
            kind = PartyKind.ENTITY
        elif schema in UNSPECIFIED_SCHEMATA:
            kind = PartyKind.UNSPECIFIED
        else:
            self.skipped[schema] += 1
            return None
        names: list[ListedName] = []
        for prop, role in NAME_PROPERTIES.items():
            for value in entity.properties.get(prop, ()):
                field = f"properties.{prop}"
                if not isinstance(value, str):
                    errors.add(line, field, "a name must be a string")
                    return None
                value = value.strip()
                if len(value) > MAX_NAME_LENGTH:
                    errors.add(line, field, f"longer than {MAX_NAME_LENGTH} characters")
                    return None
                if value:
                    names.append(ListedName(value, role))
        if not any(n.role is NameRole.NAME for n in names):
            errors.add(line, "properties.name", "required for a Person or organisation")
            return None
        if len(names) > MAX_NAMES_PER_ENTRY:
            errors.add(line, "properties", f"more than {MAX_NAMES_PER_ENTRY} names")
            return None
        countries = [
            value
            for prop in COUNTRY_PROPERTIES
            for value in entity.properties.get(prop, ())
            if isinstance(value, str)
        ]
        return ListedParty(
            line=line,
            entry_id=entity.id,
            kind=kind,
            names=tuple(names),
            schema=schema,
            countries=tuple(dict.fromkeys(countries)),
            datasets=tuple(entity.datasets),
            caption=(entity.caption or "").strip()[:MAX_NAME_LENGTH] or None,
        )

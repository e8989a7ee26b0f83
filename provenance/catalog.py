"""Entry types: each has a body schema, signing rules and a projection.

The catalog is composed by whoever builds the ledger (the web app adds onboarding's
types to provenance's), so no package reaches into another's tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from provenance.entries import EntryFormatError, Statement

BodyT = TypeVar("BodyT", bound=BaseModel)


class Body(BaseModel):
    """Base for entry bodies: strict types, unknown fields refused, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True, slots=True)
class AppliedEntry(Generic[BodyT]):
    """An entry as projections see it: its place in the log and its validated body."""

    seq: int
    statement: Statement
    body: BodyT
    leaf_hash: bytes

    @property
    def time(self) -> datetime:
        return self.statement.time

    @property
    def actor(self) -> str:
        return self.statement.actor


Projector = Callable[[Session, Sequence[AppliedEntry[Any]]], None]
"""Updates projections for a run of consecutive entries of one type, in log order."""


@dataclass(frozen=True, slots=True)
class EntryType:
    """One kind of entry.

    Attributes:
        name: the ``type`` string, ``area.action``.
        body: the pydantic model its body must match.
        project: updates projection tables in the append's transaction (or ``None``),
            given each run of consecutive entries of this type at once.
        platform_only: only the platform, signing as itself, may write it.
    """

    name: str
    body: type[BaseModel]
    project: Projector | None = None
    platform_only: bool = False

    def parse_body(self, statement: Statement) -> BaseModel:
        """Validate a statement's body against this type's schema.

        Raises:
            EntryFormatError: naming the first offending field, without echoing values.
        """
        try:
            # The model's validator itself: model_validate adds a Python-level layer.
            body: BaseModel = self.body.__pydantic_validator__.validate_python(statement.body)
            return body
        except pydantic.ValidationError as e:
            first = e.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in ("body", *first["loc"]))
            raise EntryFormatError(
                f"{self.name} entry: {where}: {first['msg']}", field=where
            ) from e


class UnknownEntryTypeError(EntryFormatError):
    code = "unknown-entry-type"
    title = "Unknown entry type"


def each(
    project_one: Callable[[Session, AppliedEntry[Any]], None],
) -> Projector:
    """A projector that handles entries one at a time."""

    def project(session: Session, entries: Sequence[AppliedEntry[Any]]) -> None:
        for entry in entries:
            project_one(session, entry)

    return project


@dataclass(frozen=True, slots=True)
class EntryCatalog:
    """The entry types a ledger accepts, and the projection tables they maintain."""

    types: dict[str, EntryType]
    projection_tables: tuple[str, ...] = ()

    @classmethod
    def of(cls, types: Iterable[EntryType], projection_tables: Iterable[str] = ()) -> EntryCatalog:
        by_name: dict[str, EntryType] = {}
        for entry_type in types:
            if entry_type.name in by_name:
                raise ValueError(f"entry type {entry_type.name} is defined twice")
            by_name[entry_type.name] = entry_type
        return cls(by_name, tuple(projection_tables))

    def merge(self, other: EntryCatalog) -> EntryCatalog:
        return EntryCatalog.of(
            [*self.types.values(), *other.types.values()],
            [*self.projection_tables, *other.projection_tables],
        )

    def get(self, name: str) -> EntryType:
        try:
            return self.types[name]
        except KeyError:
            raise UnknownEntryTypeError(f"unknown entry type {name!r}", field="type") from None

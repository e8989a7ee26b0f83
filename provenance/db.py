"""The one declarative base shared by the domain packages, and its column types.

Timestamps are timezone-aware UTC in Python on every database: PostgreSQL stores
``timestamptz``; SQLite stores naive UTC text, and :class:`UTCDateTime` puts the zone
back on the way out and refuses naive values on the way in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, MetaData, Select, String
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC ``datetime`` on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# BigInteger that is still an INTEGER PRIMARY KEY (rowid alias) on SQLite.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

intpk = Annotated[int, mapped_column(BigIntId, primary_key=True, autoincrement=True)]
str64 = Annotated[str, mapped_column(String(64))]
str200 = Annotated[str, mapped_column(String(200))]
hash32 = Annotated[bytes, mapped_column(LargeBinary(32))]


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """Run a block in a transaction that writes, and commit it.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (the engine honours the
    ``sqlite_immediate`` execution option): a transaction that read first and wrote later
    could otherwise fail when another writer commits in between. Elsewhere it is an
    ordinary transaction; PostgreSQL appenders serialise on the ledger head row lock.
    """
    if not session.in_transaction():
        session.connection(execution_options={"sqlite_immediate": True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


class Base(DeclarativeBase):
    """Declarative base for every cardtrace table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        bytes: LargeBinary(),
    }


class DriverSelect:
    """A SELECT compiled once per dialect and run on the driver's own cursor.

    ``Connection.execute`` works out the statement's cache key and the result's metadata
    on every call: for the lookup by key verify runs before every sale, more than the
    database's own work. This runs the
    compiled SQL on the DBAPI cursor of the same connection, and gives each value to the
    column type's result processor (SQLite's dates and booleans, :class:`UTCDateTime`'s
    zone), so the rows equal those ``Connection.execute`` returns. A driver error is
    raised as SQLAlchemy's :class:`~sqlalchemy.exc.DBAPIError`; one that means the
    connection is gone invalidates it and replaces the engine's pool, as SQLAlchemy does.
    """

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._by_dialect: dict[tuple[str, str], _CompiledSelect] = {}

    def rows(self, connection: Connection, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        dialect = connection.dialect
        key = (dialect.name, dialect.driver)
        compiled = self._by_dialect.get(key)
        if compiled is None:
            compiled = self._by_dialect[key] = _CompiledSelect.of(self.statement, dialect)
        driver_connection = connection.connection.driver_connection
        assert driver_connection is not None
        cursor = driver_connection.cursor()
        try:
            cursor.execute(compiled.sql, compiled.parameters(parameters))
            raw = cursor.fetchall()
        except dialect.loaded_dbapi.Error as e:
            gone = dialect.is_disconnect(e, driver_connection, cursor)
            if gone:
                connection.invalidate(e)
                connection.engine.dispose(close=False)
            raise DBAPIError.instance(
                compiled.sql,
                None,
                e,
                dialect.loaded_dbapi.Error,
                connection_invalidated=gone,
                dialect=dialect,
            ) from e
        finally:
            cursor.close()
        processed = compiled.processed
        if not processed:
            return [tuple(row) for row in raw]
        rows = []
        for row in raw:
            values = list(row)
            for i, process in processed:
                values[i] = process(values[i])
            rows.append(tuple(values))
        return rows


@dataclass(frozen=True)
class _CompiledSelect:
    sql: str
    positional: tuple[str, ...] | None
    fixed: dict[str, Any]
    required: frozenset[str]
    binders: Mapping[str, Callable[[Any], Any]]
    processed: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column index, processor)

    @classmethod
    def of(cls, statement: Select[Any], dialect: Dialect) -> _CompiledSelect:
        compiled = statement.compile(dialect=dialect)
        processors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        )
        binders = {
            name: binder
            for bind, name in compiled.bind_names.items()
            if (binder := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        positional = compiled.positiontup
        fixed = {
            name: bind.effective_value
            for bind, name in compiled.bind_names.items()
            if not bind.required
        }
        return cls(
            sql=compiled.string,
            positional=tuple(positional) if dialect.positional and positional else None,
            fixed={n: binders[n](v) if n in binders else v for n, v in fixed.items()},
            required=frozenset(name for bind, name in compiled.bind_names.items() if bind.required),
            binders=binders,
            processed=tuple((i, p) for i, p in enumerate(processors) if p is not None),
        )

    def parameters(self, given: dict[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
        """Raises KeyError: a required parameter is not given."""
        missing = self.required - given.keys()
        if missing:
            raise KeyError(f"no value for the parameter {sorted(missing)[0]!r}")
        merged = dict(self.fixed)
        binders = self.binders
        for name, value in given.items():
            merged[name] = binders[name](value) if name in binders else value
        if self.positional is None:
            return merged
        return tuple(merged[name] for name in self.positional)

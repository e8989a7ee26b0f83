"""The one declarative base shared by the domain packages, and its column types.

Timestamps are timezone-aware UTC in Python on every database: PostgreSQL stores
``timestamptz``; SQLite stores naive UTC text, and :class:`UTCDateTime` puts the zone
back on the way out and refuses naive values on the way in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, MetaData, String
from sqlalchemy.engine import Dialect
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

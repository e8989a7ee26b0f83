"""provenance.db.DriverSelect: the rows Connection.execute gives, from the driver's cursor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine, bindparam, false, literal, select, text, true
from sqlalchemy.exc import DBAPIError

from provenance.db import DriverSelect, UTCDateTime
from provenance.ledger import LedgerEntry
from tests.services import fresh_postgres_database
from webapp.database import make_engine, upgrade

WHEN = datetime(2026, 11, 27, 8, 30, 15, 123456, tzinfo=UTC)

STATEMENT = select(
    literal(WHEN, UTCDateTime()).label("when"),
    literal(None, UTCDateTime()).label("never"),
    true().label("yes"),
    false().label("no"),
    literal(
        b"\x00\xff",
    ).label("raw"),
    bindparam("name").label("name"),
    bindparam("number").label("number"),
    (bindparam("number") + 1).label("next"),
)


def test_rows_are_those_connection_execute_gives(connection: Connection) -> None:
    parameters = {"name": "shop-longmen", "number": 41}
    expected = [tuple(row) for row in connection.execute(STATEMENT, parameters)]
    rows = DriverSelect(STATEMENT).rows(connection, parameters)
    assert rows == expected
    assert rows[0][0] == WHEN and rows[0][0].tzinfo is not None
    assert rows[0][2] is True and rows[0][3] is False
    # A table's rows, several of them, with the same parameter twice.
    table = select(LedgerEntry.seq, LedgerEntry.time).where(
        (LedgerEntry.seq >= bindparam("low")) | (LedgerEntry.seq == bindparam("low"))
    )
    assert DriverSelect(table).rows(connection, {"low": 0}) == [
        tuple(r) for r in connection.execute(table, {"low": 0})
    ]


def test_a_missing_parameter_is_refused(connection: Connection) -> None:
    with pytest.raises(KeyError):
        DriverSelect(STATEMENT).rows(connection, {"name": "x"})


def test_a_driver_error_is_sqlalchemys_and_a_lost_connection_is_invalidated() -> None:
    with fresh_postgres_database() as url:
        engine: Engine = make_engine(url)
        upgrade(engine)
        statement = select(LedgerEntry.seq).where(LedgerEntry.seq == bindparam("seq"))
        with engine.connect() as conn:
            with pytest.raises(DBAPIError) as refused:
                DriverSelect(statement).rows(conn, {"seq": "not a number"})
            assert not refused.value.connection_invalidated
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            with engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                other.commit()
            with pytest.raises(DBAPIError) as lost:
                DriverSelect(statement).rows(conn, {"seq": 1})
            assert lost.value.connection_invalidated
        with engine.connect() as conn:  # a new pool: the next read works
            assert DriverSelect(statement).rows(conn, {"seq": 10**9}) == []
        engine.dispose()

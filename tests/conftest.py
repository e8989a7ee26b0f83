"""Fixtures: a migrated database per backend, a rolled-back session per test, the app.

Every database test runs twice, on SQLite (the embedded default) and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from provenance.ledger import Ledger
from tests.keys import write_key_dir
from tests.ledger_support import NOW, make_ledger
from tests.services import fresh_postgres_database
from webapp import create_app
from webapp.database import make_engine, upgrade


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[URL]:
    if request.param == "sqlite":
        yield make_url(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}")
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of its own, for tests that commit (concurrency, crashes, migrations)."""
    if request.param == "sqlite":
        engine = make_engine(make_url(f"sqlite:///{tmp_path / 'fresh.db'}"))
        yield engine
        engine.dispose()
    else:
        with fresh_postgres_database() as url:
            engine = make_engine(url)
            yield engine
            engine.dispose()


@pytest.fixture(scope="session")
def engine(database_url: URL) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture()
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            outer.rollback()


@pytest.fixture()
def session(connection: Connection) -> Iterator[Session]:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as s:
        yield s


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key_dir(tmp_path_factory.mktemp("keys") / "keys")


@pytest.fixture()
def app(
    database_url: URL,
    connection: Connection,
    key_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Flask:
    for name in ("CARDTRACE_BROKER_URL", "CARDTRACE_RESULT_BACKEND", "CARDTRACE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return create_app(
        {
            "env": "testing",
            "instance_path": tmp_path / "instance",
            "database_url": database_url,
            "key_dir": key_dir,
            "SESSION_FACTORY": lambda: Session(
                bind=connection, join_transaction_mode="create_savepoint"
            ),
            "CLOCK": lambda: NOW,
        }
    )


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def ledger() -> Iterator[Ledger]:
    ledger = make_ledger()
    yield ledger
    ledger.close()


@pytest.fixture()
def genesis(session: Session, ledger: Ledger) -> Ledger:
    """A ledger whose log starts with the platform's registration."""
    assert ledger.ensure_genesis(session, name="cardtrace test", now=NOW)
    return ledger

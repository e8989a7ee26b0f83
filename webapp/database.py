"""Engines, sessions and migrations.

SQLite runs in WAL mode with foreign keys on. pysqlite's own transaction handling is
switched off and SQLAlchemy emits ``BEGIN`` itself, so that savepoints work and a
writer can ask for ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from provenance.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_MMAP_BYTES = 2 << 30
SQLITE_CACHE_KIB = 32 << 10


def make_engine(url: URL, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with cardtrace's connection settings."""
    if url.get_backend_name() == "sqlite":
        database = url.database
        if database and database != ":memory:":
            folder = Path(database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(
                    f"CARDTRACE_DATABASE_URL: cannot create the folder {folder}: {e.strerror}"
                ) from e
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("timeout", 30)
        read_only = kwargs.pop("sqlite_read_only", False)
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine, read_only=read_only)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("connect_timeout", 5)
    # No server-side prepared statements: a generic plan made while a table was nearly
    # empty (a sequential scan) would stay in use as the table grows.
    connect_args.setdefault("prepare_threshold", None)
    return create_engine(url, connect_args=connect_args, **kwargs)


# How long a connection of a read engine (and the plans it prepared) lives.
READ_CONNECTION_SECONDS = 300


def read_engine(url: URL) -> Engine | None:
    """An engine for short reads outside a request's transaction (verify before sale,
    API-key checks), or ``None`` to read through the request's session.

    On PostgreSQL it reads in autocommit, without a ping before each checkout: a read's
    SELECTs are then its only round trips (no ping, BEGIN or ROLLBACK). Nothing is lost:
    in a READ COMMITTED transaction each statement has its own snapshot anyway, and an
    inclusion proof against a checkpoint holds whenever it is read.

    Its statements are prepared on the server: planning the statement of a single verify
    costs the server more than running it (about 0.8 ms against 0.7 ms). A prepared
    statement may settle on a plan made while a table was still small; every plan here
    is a lookup by key, and connections (with their plans) are replaced every
    :data:`READ_CONNECTION_SECONDS`, so such a plan cannot outlive a few minutes. JIT
    compilation is off on these connections: a list of 500 keys in a large store can
    pass the server's cost threshold for it, and compiling then costs tens of
    milliseconds for a statement that runs in a few.

    On SQLite (a database file) it reads in autocommit as well, on connections that
    cannot write (``PRAGMA query_only``): no ``BEGIN``/``ROLLBACK`` around a read, and,
    as on PostgreSQL, each statement reads the latest committed state. An in-memory
    database has no second connection to read it through: ``None``.
    """
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
            return None
        return make_engine(url, isolation_level="AUTOCOMMIT", sqlite_read_only=True)
    if url.get_backend_name() != "postgresql":
        return None
    return make_engine(
        url,
        pool_pre_ping=False,
        pool_recycle=READ_CONNECTION_SECONDS,
        isolation_level="AUTOCOMMIT",
        connect_args={"prepare_threshold": 0, "options": "-c jit=off"},
    )


def _configure_sqlite(engine: Engine, *, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Reads of a large store (a million codes is about 1 GB) go through the OS page
        # cache, mapped, instead of a read() call per page; and each connection keeps
        # 32 MiB of pages (SQLite's default is 2 MiB) across its transactions.
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    if read_only:
        return  # autocommit reads: no transaction to begin

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer asks for the lock up front (Session.connection(execution_options=
        # {"sqlite_immediate": True})): a deferred transaction that read first could
        # not upgrade to a write once another writer had committed in between.
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def describe_db_error(url: URL, error: BaseException) -> str:
    """One line naming the setting and what went wrong, password hidden."""
    shown = url.render_as_string(hide_password=True)
    orig = getattr(error, "orig", None) or error
    reason = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return f"CARDTRACE_DATABASE_URL: cannot use {shown}: {reason}"


def check_connection(engine: Engine) -> None:
    """Raises ConfigError with one clear line if the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, DBAPIError) as e:
        raise ConfigError(describe_db_error(engine.url, e)) from e


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database to ``revision``.

    Returns:
        The revisions before and after.

    Raises:
        ConfigError: the database cannot be reached.
    """
    check_connection(engine)
    before = current_revision(engine)
    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as e:
        raise ConfigError(describe_db_error(engine.url, e)) from e
    return before, current_revision(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)

"""Which outside services the tests may use.

CI exports ``CARDTRACE_TEST_POSTGRES_URL`` and ``CARDTRACE_TEST_REDIS_URL`` and sets
``CARDTRACE_TEST_REQUIRE_SERVICES=1``: then a missing service fails the test. Run by
hand without them, those tests skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

POSTGRES_URL = os.environ.get("CARDTRACE_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("CARDTRACE_TEST_REDIS_URL")
REQUIRED = os.environ.get("CARDTRACE_TEST_REQUIRE_SERVICES") == "1"


def require(name: str, value: str | None) -> str:
    if value:
        return value
    message = f"{name} is not set"
    if REQUIRED:
        pytest.fail(f"{message}, and CARDTRACE_TEST_REQUIRE_SERVICES=1 says it must be")
    pytest.skip(message)


def postgres_url() -> URL:
    url = make_url(require("CARDTRACE_TEST_POSTGRES_URL", POSTGRES_URL))
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def redis_url() -> str:
    return require("CARDTRACE_TEST_REDIS_URL", REDIS_URL)


@contextmanager
def fresh_postgres_database(prefix: str = "cardtrace_t") -> Iterator[URL]:
    """Create an empty PostgreSQL database for this test run and drop it afterwards."""
    server = postgres_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def own_engines_app(
    url: URL, instance: Path, key_dir: Path, clock: Callable[[], datetime]
) -> Iterator[Flask]:
    """The app on ``url`` with its own engines, as in production (the read engine
    included), disposed of on exit; no broker, no result backend."""
    from webapp import create_app
    from webapp.runtime import current_runtime

    saved = {k: os.environ.pop(k) for k in _SERVICE_SETTINGS if k in os.environ}
    try:
        app = create_app(
            {
                "env": "testing",
                "instance_path": instance,
                "database_url": url,
                "key_dir": key_dir,
                "CLOCK": clock,
            }
        )
        yield app
        with app.app_context():
            runtime = current_runtime()
            cache = runtime.key_cache()
            if cache is not None:
                cache.close()
            runtime.engine.dispose()
            reader = runtime.reader()
            if reader is not None:
                reader.dispose()
    finally:
        os.environ.update(saved)


_SERVICE_SETTINGS = ("CARDTRACE_BROKER_URL", "CARDTRACE_RESULT_BACKEND", "CARDTRACE_SECRET_KEY")


def terminate_other_connections(engine: Engine) -> int:
    """End every other connection to ``engine``'s database, as a server restart would;
    returns how many."""
    with engine.connect() as conn:
        dropped: int = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    return dropped

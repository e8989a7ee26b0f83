"""Which outside services the tests may use.

CI exports ``CARDTRACE_TEST_POSTGRES_URL`` and ``CARDTRACE_TEST_REDIS_URL`` and sets
``CARDTRACE_TEST_REQUIRE_SERVICES=1``: then a missing service fails the test. Run by
hand without them, those tests skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
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

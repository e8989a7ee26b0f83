"""Shared pieces of the ledger benchmarks: databases, fixed keys, an entry type, timing.

Every benchmark measures cardtrace against a baseline taken in the same run, because
the machine is shared and noisy: only ratios are comparable between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from provenance.catalog import Body, EntryCatalog, EntryType
from provenance.core import core_catalog
from provenance.db import write_transaction
from provenance.entries import key_id_for, raw_public_key
from provenance.ledger import Ledger, PlatformSigner
from provenance.parties import key_body
from webapp.database import make_engine, upgrade

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
# RFC 8032 section 7.1, TEST 1 secret key: the same fixed platform key the tests use.
PLATFORM_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
ACTOR = "bench-issuer"
NOTE_TYPE = "bench.note"


class NoteBody(Body):
    """A small body, like a typical custody entry's."""

    text: str = Field(max_length=200)
    n: int = 0


def bench_catalog() -> EntryCatalog:
    return core_catalog().merge(EntryCatalog.of([EntryType(NOTE_TYPE, NoteBody)]))


def platform_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(PLATFORM_SEED)


def party_key(name: str) -> Ed25519PrivateKey:
    """A fixed key per party, seeded from its name."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"bench/{name}".encode()).digest())


def make_ledger(**kwargs: Any) -> Ledger:
    return Ledger(bench_catalog(), PlatformSigner(platform_key()), **kwargs)


def note_body(i: int) -> dict[str, Any]:
    return {"text": f"bench note {i:08d}: carton received at depot 4", "n": i}


def prepare_ledger(engine: Engine, ledger: Ledger, actors: Sequence[str] = (ACTOR,)) -> None:
    """Migrate, write the genesis entry and register each actor with its fixed key."""
    upgrade(engine)
    with Session(engine) as session, write_transaction(session):
        ledger.ensure_genesis(session, name="bench", now=NOW)
        for actor in actors:
            body = {
                "party": actor,
                "kind": "issuer",
                "name": f"{actor} Ltd",
                "keys": [key_body(raw_public_key(party_key(actor)), NOW - timedelta(days=1))],
            }
            ledger.append_as_platform(
                session, [ledger.statement("party.register", body, now=NOW)], now=NOW
            )


def actor_key_id(actor: str = ACTOR) -> str:
    return key_id_for(raw_public_key(party_key(actor)))


# --- databases --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Database:
    label: str
    engine: Engine


class Unavailable(Exception):
    """The database server cannot be reached; the benchmark skips it."""


@contextmanager
def sqlite_database(folder: str | None = None) -> Iterator[Database]:
    """A SQLite file in a temporary folder, with cardtrace's settings (WAL, synchronous=NORMAL)."""
    with tempfile.TemporaryDirectory(prefix="cardtrace-bench-", dir=folder) as tmp:
        engine = make_engine(make_url(f"sqlite:///{Path(tmp) / 'ledger.db'}"))
        try:
            yield Database("SQLite", engine)
        finally:
            engine.dispose()


@contextmanager
def postgres_database(server_url: str) -> Iterator[Database]:
    """A fresh PostgreSQL database, created for this run and dropped afterwards.

    Raises:
        Unavailable: the server cannot be reached.
    """
    server = make_url(server_url)
    if server.drivername == "postgresql":
        server = server.set(drivername="postgresql+psycopg")
    name = f"cardtrace_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except (OperationalError, DBAPIError) as e:
            reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
            raise Unavailable(
                f"PostgreSQL at {server.render_as_string(hide_password=True)} is unreachable "
                f"({reason}); skipping PostgreSQL"
            ) from e
        engine = make_engine(server.set(database=name))
        try:
            yield Database("PostgreSQL", engine)
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def open_database(kind: str, args: argparse.Namespace) -> Iterator[Database | None]:
    """The database ``kind`` ("sqlite" or "postgres"), or ``None`` (with a message) if absent."""
    if kind == "sqlite":
        with sqlite_database(args.tmpdir) as db:
            yield db
        return
    try:
        with postgres_database(args.postgres_url) as db:
            yield db
    except Unavailable as e:
        print(f"  {e}", flush=True)
        yield None


def server_version(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    with engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
        buffers = conn.execute(text("SHOW shared_buffers")).scalar_one()
    return f"PostgreSQL {str(version).split()[0]} (shared_buffers {buffers})"


def analyze(engine: Engine) -> None:
    """Collect planner statistics on PostgreSQL, as autovacuum would on a default server.

    Before commit e45567d turned psycopg's prepared statements off, a statement prepared
    while the log was nearly empty kept a generic plan made for an empty table, and the
    replay check scanned ``ledger_entry`` in full on every batch until statistics
    existed (see docs/BENCHMARKS.md). ``--no-analyze`` skips this, to check that nothing
    depends on it.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


class RawTable:
    """A plain table written with the driver's ``executemany``: the floor for inserts."""

    def __init__(self, engine: Engine, name: str = "bench_raw") -> None:
        self.name = name
        self.sqlite = engine.dialect.name == "sqlite"
        self.conn: Any = engine.raw_connection()
        blob = "BLOB" if self.sqlite else "BYTEA"
        cur = self.conn.cursor()
        cur.execute(f"CREATE TABLE {name} (seq BIGINT PRIMARY KEY, hash {blob}, body {blob})")
        self.conn.commit()
        mark = "?" if self.sqlite else "%s"
        marks = ", ".join([mark] * 3)
        # The table name is the caller's constant; the values are bound parameters.
        self._insert = f"INSERT INTO {name} (seq, hash, body) VALUES ({marks})"  # noqa: S608

    def insert(self, rows: list[tuple[int, bytes, bytes]]) -> None:
        """Insert rows in one transaction and commit it."""
        cur = self.conn.cursor()
        if self.sqlite:
            # cardtrace's engine switches pysqlite's implicit transactions off.
            cur.execute("BEGIN IMMEDIATE")
            cur.executemany(self._insert, rows)
            cur.execute("COMMIT")
        else:
            cur.executemany(self._insert, rows)
            self.conn.commit()
        cur.close()

    def close(self) -> None:
        self.conn.close()


# --- command line and output ------------------------------------------------------------


def add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default="sqlite,postgres",
        help="comma-separated databases to run: sqlite, postgres (default: both)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CARDTRACE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="PostgreSQL server; a fresh database is created on it and dropped "
        f"(default: $CARDTRACE_BENCH_POSTGRES_URL or {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument(
        "--tmpdir", default=None, help="folder for the SQLite files (default: the system's)"
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="do not ANALYZE the PostgreSQL database after the first batch (the local server "
        "runs with autovacuum off, so there are then no planner statistics)",
    )


def database_kinds(args: argparse.Namespace) -> list[str]:
    kinds = [k.strip() for k in args.db.split(",") if k.strip()]
    for kind in kinds:
        if kind not in ("sqlite", "postgres"):
            raise SystemExit(f"--db: unknown database {kind!r} (use sqlite, postgres)")
    return kinds


def command_line(module: str) -> str:
    return " ".join([".venv/bin/python -m", module, *sys.argv[1:]])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}, {platform.system()}"


def header(title: str, module: str) -> None:
    print(f"# {title}")
    print(f"command: {command_line(module)}")
    print(f"date:    {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"machine: {machine()}")
    print(flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table, ready to paste into docs/BENCHMARKS.md."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print(flush=True)


def met(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "yes" if ok else "**no**"


def rate(n: float) -> str:
    return f"{n:,.0f}/s"


class Progress:
    """Prints ``label: done/total`` at most every few seconds on long runs."""

    def __init__(self, label: str, total: int, every: float = 5.0) -> None:
        self.label = label
        self.total = total
        self.every = every
        self.start = time.perf_counter()
        self._last = self.start

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self._last >= self.every or done == self.total:
            self._last = now
            elapsed = now - self.start
            print(
                f"  {self.label}: {done:,}/{self.total:,} ({done / elapsed:,.0f}/s, "
                f"{elapsed:.0f} s)",
                file=sys.stderr,
                flush=True,
            )


@dataclass(frozen=True, slots=True)
class Latency:
    """Per-operation latency, in milliseconds."""

    p50: float
    p99: float
    mean: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = sorted(s * 1000 for s in seconds)
        p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
        return cls(statistics.median(ms), p99, statistics.fmean(ms))

    def __str__(self) -> str:
        return f"p50 {self.p50:.3f} ms, p99 {self.p99:.3f} ms, mean {self.mean:.3f} ms"

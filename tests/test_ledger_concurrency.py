"""Several processes appending at once, and a process killed mid-batch, on both databases."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from provenance.audit import audit
from provenance.db import write_transaction
from provenance.ledger import LedgerEntry
from tests.ledger_support import NOW, make_ledger, register_party, test_catalog
from webapp.database import upgrade

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare(engine: Engine, parties: list[str]) -> None:
    upgrade(engine)
    ledger = make_ledger()
    with Session(engine) as session, write_transaction(session):
        ledger.ensure_genesis(session, name="test", now=NOW)
        for party in parties:
            register_party(session, ledger, party, now=NOW)


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def spawn(engine: Engine, party: str, batches: int, size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.append_worker",
            url_of(engine),
            party,
            str(batches),
            str(size),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def count_by_actor(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(
            select(LedgerEntry.actor, func.count()).group_by(LedgerEntry.actor)
        ).all()
    return {actor: n for actor, n in rows}


@pytest.mark.slow
def test_concurrent_appenders_never_fork_or_lose_entries(fresh_engine: Engine) -> None:
    parties = ["alpha", "bravo", "charlie"]
    prepare(fresh_engine, parties)
    workers = [spawn(fresh_engine, p, 8, 40) for p in parties]
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        assert out.split().count("committed") == 8
    counts = count_by_actor(fresh_engine)
    assert all(counts[p] == 8 * 40 for p in parties)
    with Session(fresh_engine) as session:
        report = audit(session, test_catalog())
    assert report.size == 1 + len(parties) + 3 * 8 * 40


@pytest.mark.slow
def test_killed_appender_leaves_whole_batches_only(fresh_engine: Engine) -> None:
    prepare(fresh_engine, ["delta"])
    batch = 1500
    worker = spawn(fresh_engine, "delta", 1000, batch)
    assert worker.stdout is not None
    line = worker.stdout.readline()
    assert line.startswith("committed"), worker.stderr.read() if worker.stderr else ""
    # Kill it somewhere inside a later batch: most of its time is spent inside one.
    time.sleep(random.uniform(0.2, 0.8))
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    written = count_by_actor(fresh_engine).get("delta", 0)
    assert written >= batch
    assert written % batch == 0
    with Session(fresh_engine) as session:
        report = audit(session, test_catalog())
    assert report.size == 2 + written
    # The log is still appendable after the crash.
    ledger = make_ledger()
    with Session(fresh_engine) as session, write_transaction(session):
        register_party(session, ledger, "echo", now=NOW + timedelta(seconds=1))

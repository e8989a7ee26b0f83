"""Parallel processes selling to one buyer against the real Redis: no increment is lost,
and no burst gets through that a serial run would block."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from provenance.risk import RuleSet
from provenance.risk.redis_store import RedisStore
from tests.ledger_support import NOW
from tests.risk_support import Shop, context, make_engine, redis_client
from tests.services import redis_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = 4


@pytest.fixture()
def prefix() -> Iterator[str]:
    client = redis_client()
    name = f"cardtrace-test:{uuid.uuid4().hex}:"
    yield name
    RedisStore(client, prefix=name).reset()
    client.close()


def run_workers(prefix: str, sales: int, rules: str) -> list[int]:
    start_at = time.time() + 3.0
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.risk_worker", redis_url(), prefix, str(worker),
             str(sales), str(start_at), rules],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for worker in range(WORKERS)
    ]  # fmt: skip
    passed = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        passed.append(json.loads(out)["passed"])
    return passed


@pytest.mark.redis
def test_parallel_sales_for_one_buyer_lose_no_increment(prefix: str) -> None:
    sales = 60
    assert run_workers(prefix, sales, "none") == [sales] * WORKERS
    engine = make_engine(RedisStore(redis_client(), prefix=prefix), RuleSet([]))
    features = Shop(engine).look(context("one-buyer", instrument="x", device="y"), NOW).features
    assert features["buyer.count_1h"] == WORKERS * sales + 1
    assert features["buyer.history_count"] == WORKERS * sales
    assert features["buyer.distinct_instruments_24h"] == WORKERS * sales + 1


@pytest.mark.redis
def test_parallel_bursts_let_through_no_more_than_a_serial_run(prefix: str) -> None:
    serial_prefix = prefix + "serial:"
    from provenance.risk.rules import DEFAULT_RULES

    rules = RuleSet([s for s in DEFAULT_RULES if s.id == "burst-buyer"])
    serial = Shop(make_engine(RedisStore(redis_client(), prefix=serial_prefix), rules))
    serial_passed = sum(
        serial.sell(context("one-buyer", instrument=f"c{i}", device=f"d{i}"), NOW).decision.value
        != "block"
        for i in range(WORKERS * 10)
    )
    RedisStore(redis_client(), prefix=serial_prefix).reset()
    assert serial_passed == 5
    assert sum(run_workers(prefix, 10, "burst-buyer")) == serial_passed

"""One process selling to one buyer through the Redis risk state; prints how many passed.

Usage: python -m tests.risk_worker REDIS_URL PREFIX WORKER SALES START_AT RULES
(RULES is ``none`` or ``burst-buyer``).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

import redis

from provenance.risk import RiskDecision, RuleSet
from provenance.risk.redis_store import RedisStore
from provenance.risk.rules import DEFAULT_RULES
from tests.ledger_support import NOW
from tests.risk_support import Shop, context, make_engine


def main(url: str, prefix: str, worker: int, sales: int, start_at: float, rules: str) -> None:
    chosen = [s for s in DEFAULT_RULES if s.id == rules]
    shop = Shop(make_engine(RedisStore(redis.Redis.from_url(url), prefix=prefix), RuleSet(chosen)))
    shop.count = worker * 1_000_000
    while time.time() < start_at:
        time.sleep(0.001)
    passed = 0
    for i in range(sales):
        sale = context("one-buyer", instrument=f"card-{worker}-{i}", device=f"d-{worker}")
        at = NOW + timedelta(milliseconds=worker * sales + i)
        passed += shop.sell(sale, at).decision is not RiskDecision.BLOCK
    print(json.dumps({"passed": passed}))


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
        float(sys.argv[5]),
        sys.argv[6],
    )

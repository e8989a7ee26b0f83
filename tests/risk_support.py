"""Shared material for the risk tests: contexts, a region table, the state stores."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session

from provenance.fingerprints import pseudonym
from provenance.risk import MemoryStore, RiskEngine, RuleSet, SaleContext, SqlStore
from provenance.risk.redis_store import RedisStore
from provenance.risk.regions import CidrRegionTable, parse_csv
from provenance.risk.rules import DEFAULT_RULES
from provenance.risk.store import StateStore
from tests.keys import FINGERPRINT_KEY
from tests.ledger_support import NOW
from tests.services import REQUIRED, redis_url

SHOP = "shop-good"
REGIONS_CSV = """network,region
# test ranges (RFC 5737 and RFC 3849 documentation blocks)
192.0.2.0/24,CN-GD
198.51.100.0/24,CN-BJ
203.0.113.0/25,US-CA
2001:db8::/48,CN-SH
2001:db8:1::/48,DE
"""
GD_IP, BJ_IP, US_IP, SH_IP = "192.0.2.10", "198.51.100.20", "203.0.113.5", "2001:db8::1"


def regions() -> CidrRegionTable:
    return parse_csv(REGIONS_CSV.splitlines())


def buyer(name: str) -> str:
    return pseudonym(FINGERPRINT_KEY, "buyer", name)


def card(name: str, bin: str = "622202", last4: str = "1234") -> dict[str, str]:
    return {
        "fingerprint": pseudonym(FINGERPRINT_KEY, "instrument", name),
        "bin": bin,
        "last4": last4,
    }


def context(
    who: str = "alice",
    *,
    instrument: str | None = "card-alice",
    device: str | None = "phone-alice",
    ip: str | None = GD_IP,
    amount: str = "50.00",
    channel: str = "web",
    region: str | None = None,
) -> SaleContext:
    raw: dict[str, Any] = {"buyer": buyer(who), "amount": amount, "channel": channel}
    if instrument is not None:
        raw["instrument"] = card(instrument)
    if device is not None:
        raw["device"] = device
    if ip is not None:
        raw["ip"] = ip
    if region is not None:
        raw["region"] = region
    return SaleContext.parse(raw)


class Shop:
    """Sells through an engine the way verify and the sale event will: hold, record."""

    def __init__(self, engine: RiskEngine, merchant: str = SHOP) -> None:
        self.engine = engine
        self.merchant = merchant
        self.count = 0

    def sell(self, sale: SaleContext, at: datetime = NOW) -> Any:
        self.count += 1
        ref = f"{self.count:064x}"
        assessment = self.engine.assess(sale, merchant=self.merchant, now=at, hold=ref)
        if assessment.decision.value != "block":
            self.engine.record_sale(sale, merchant=self.merchant, now=at, ref=ref)
        return assessment

    def look(self, sale: SaleContext, at: datetime = NOW) -> Any:
        return self.engine.assess(sale, merchant=self.merchant, now=at)


def make_engine(store: StateStore, rules: RuleSet | None = None) -> RiskEngine:
    return RiskEngine(
        rules=rules or RuleSet(DEFAULT_RULES),
        store=store,
        key=FINGERPRINT_KEY,
        regions=regions(),
    )


def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(redis_url())
    try:
        client.ping()
    except redis.ConnectionError:
        if REQUIRED:
            pytest.fail("Redis is not reachable, and CARDTRACE_TEST_REQUIRE_SERVICES=1")
        pytest.skip("Redis is not reachable")
    return client


@pytest.fixture(name="redis_store")
def redis_store_fixture() -> Iterator[RedisStore]:
    client = redis_client()
    store = RedisStore(client, prefix=f"cardtrace-test:{uuid.uuid4().hex}:")
    yield store
    store.reset()
    client.close()


@pytest.fixture(name="store", params=["memory", "sql", "redis"])
def store_fixture(request: pytest.FixtureRequest, session: Session) -> Iterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sql":
        yield SqlStore(session)
    else:
        yield request.getfixturevalue("redis_store")

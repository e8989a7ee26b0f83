"""The Redis store's velocity windows: the packed per-window state, the departure look-ups
it skips, and the same answers as the in-memory store for any order of steps and times."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import redis

from provenance.risk import MemoryStore
from provenance.risk.context import Pseudonym, SaleFacts, SaleKeys
from provenance.risk.features import Observation, Scope, Window
from provenance.risk.redis_store import RedisStore
from provenance.risk.store import StateStore, _ms
from tests.ledger_support import NOW
from tests.risk_support import redis_store_fixture  # noqa: F401

DAY_MS = 86_400_000
BUYER = "b" * 32


def sale(
    ref: str,
    ms: int,
    units: int = 10,
    *,
    buyer: str = BUYER,
    instrument: str | None = None,
    ip: str | None = None,
    merchant: str = "m",
) -> SaleFacts:
    """A sale ``ms`` milliseconds after NOW."""
    return SaleFacts(
        ref=ref,
        at=NOW + timedelta(milliseconds=ms),
        merchant=merchant,
        keys=SaleKeys(
            buyer=Pseudonym(buyer),
            instrument=Pseudonym(instrument) if instrument else None,
            ip=Pseudonym(ip) if ip else None,
        ),
        amount_units=units,
    )


def buyer_window(store: StateStore, facts: SaleFacts, *, hold: bool = True) -> Window:
    return store.observe(facts, hold=hold).windows[Scope.BUYER]


def window_key(store: RedisStore, scope: Scope = Scope.BUYER, owner: str = BUYER) -> str:
    return f"{store.prefix}w:{scope.value}:{owner}"


def both(redis_store: RedisStore) -> tuple[RedisStore, MemoryStore]:
    return redis_store, MemoryStore()


# --- the boundaries -----------------------------------------------------------------------


def test_a_sale_leaves_the_minute_exactly_60_s_later(redis_store: RedisStore) -> None:
    for store in both(redis_store):
        buyer_window(store, sale("a", 0, 10))
        assert buyer_window(store, sale("b", 59_999, 20), hold=False) == Window(2, 2, 2, 30, 30, 30)
        assert buyer_window(store, sale("c", 60_000, 40)) == Window(1, 2, 2, 40, 50, 50)
        assert buyer_window(store, sale("d", 60_001, 80)) == Window(2, 3, 3, 120, 130, 130)


def test_sales_leave_the_hour_and_the_day_on_their_marks(redis_store: RedisStore) -> None:
    # Twenty sales ten seconds apart write the state; then reads just before and at each mark.
    for store in both(redis_store):
        for i in range(20):
            buyer_window(store, sale(f"s{i}", i * 10_000, 1 + i))
        last = 190_000
        assert buyer_window(store, sale("r1", last + 1, 100), hold=False) == Window(
            7, 21, 21, 100 + sum(range(15, 21)), 100 + 210, 100 + 210
        )
        hour = 3_600_000
        assert buyer_window(store, sale("r2", last + hour - 1, 100), hold=False) == Window(
            1, 2, 21, 100, 120, 310
        )
        assert buyer_window(store, sale("r3", last + hour, 100), hold=False) == Window(
            1, 1, 21, 100, 100, 310
        )
        assert buyer_window(store, sale("r4", DAY_MS - 1, 100), hold=False) == Window(
            1, 1, 21, 100, 100, 310
        )
        assert buyer_window(store, sale("r5", DAY_MS, 100)) == Window(1, 1, 20, 100, 100, 309)
        assert buyer_window(store, sale("r6", last + DAY_MS, 100)) == Window(1, 2, 2, 100, 200, 200)


def test_many_sales_leaving_at_once_all_leave(redis_store: RedisStore) -> None:
    # More than one look-up's worth leave together after a quiet spell.
    for store in both(redis_store):
        for i in range(30):
            buyer_window(store, sale(f"s{i}", i * 1_000, 1))
        buyer_window(store, sale("late", 50_000, 100))
        assert buyer_window(store, sale("t", 89_500, 1000)) == Window(2, 32, 32, 1100, 1130, 1130)
        assert buyer_window(store, sale("u", 110_001, 1000)) == Window(2, 33, 33, 2000, 2130, 2130)


def test_a_sale_older_than_the_stored_boundary_counts_its_own_window(
    redis_store: RedisStore,
) -> None:
    for store in both(redis_store):
        buyer_window(store, sale("a", 0, 10))
        buyer_window(store, sale("b", 120_000, 20))
        # 90 s before the latest sale: its minute is (-30 s, 90 s], with b timed later.
        assert buyer_window(store, sale("c", 30_000, 40)) == Window(3, 3, 3, 70, 70, 70)
        # Later sales see the late one where it belongs.
        assert buyer_window(store, sale("d", 120_500, 80)) == Window(2, 4, 4, 100, 150, 150)
        assert buyer_window(store, sale("e", 150_000, 1)) == Window(3, 5, 5, 101, 151, 151)


def test_a_sale_older_than_a_day_before_the_latest_is_not_counted_later(
    redis_store: RedisStore,
) -> None:
    for store in both(redis_store):
        buyer_window(store, sale("a", 2 * DAY_MS, 10))
        # Its windows hold the later sale too, as a concurrent sale's would.
        assert buyer_window(store, sale("old", 1_000, 20)) == Window(2, 2, 2, 30, 30, 30)
        assert buyer_window(store, sale("b", 2 * DAY_MS + 1, 40)) == Window(2, 2, 2, 50, 50, 50)


def test_releasing_the_oldest_sale_moves_the_next_departure(redis_store: RedisStore) -> None:
    for store in both(redis_store):
        first = sale("a", 0, 10)
        buyer_window(store, first)
        buyer_window(store, sale("b", 10_000, 20))
        store.release(first)
        assert buyer_window(store, sale("c", 65_000, 40)) == Window(2, 2, 2, 60, 60, 60)
        assert buyer_window(store, sale("d", 70_000, 80)) == Window(2, 3, 3, 120, 140, 140)


# --- what Redis holds ----------------------------------------------------------------------


def test_a_windows_state_is_one_string_that_expires_with_its_set(
    redis_store: RedisStore,
) -> None:
    buyer_window(redis_store, sale("a", 0, 10))
    client: redis.Redis = redis_store.client
    key = window_key(redis_store)
    assert client.type(key + "~") == b"string"
    assert len(client.get(key + "~") or b"") == 96
    assert client.exists(key + "#") == 0
    assert 0 < client.pttl(key + "~") <= client.pttl(key) + 5


def test_a_read_writes_nothing(redis_store: RedisStore) -> None:
    buyer_window(redis_store, sale("a", 0, 10), hold=False)
    keys = list(redis_store.client.scan_iter(match=f"{redis_store.prefix}*"))
    assert keys == []


def test_a_read_leaves_the_next_writes_departures_to_it(redis_store: RedisStore) -> None:
    for store in both(redis_store):
        buyer_window(store, sale("a", 0, 10))
        buyer_window(store, sale("b", 30_000, 20))
        assert buyer_window(store, sale("r", 70_000, 1), hold=False) == Window(2, 3, 3, 21, 31, 31)
        assert buyer_window(store, sale("c", 80_000, 40)) == Window(2, 3, 3, 60, 70, 70)
        assert buyer_window(store, sale("d", 100_000, 80)) == Window(2, 4, 4, 120, 150, 150)


def test_without_its_state_a_window_is_counted_from_its_set(redis_store: RedisStore) -> None:
    # A state that expired before its set, or a set written before the state existed.
    buyer_window(redis_store, sale("a", 0, 10))
    buyer_window(redis_store, sale("b", 30_000, 20))
    redis_store.client.delete(window_key(redis_store) + "~")
    assert buyer_window(redis_store, sale("c", 70_000, 40)) == Window(2, 3, 3, 60, 70, 70)
    assert buyer_window(redis_store, sale("d", 95_000, 80)) == Window(2, 4, 4, 120, 150, 150)


def test_trimmed_after_a_day_only_when_a_sale_leaves_the_day(redis_store: RedisStore) -> None:
    client: redis.Redis = redis_store.client
    key = window_key(redis_store)
    for i in range(3):
        buyer_window(redis_store, sale(f"s{i}", i * 1_000, 1))
    buyer_window(redis_store, sale("t", DAY_MS - 1, 1))
    assert client.zcard(key) == 4
    buyer_window(redis_store, sale("u", DAY_MS + 1_000, 1))
    assert client.zcard(key) == 3  # s0 and s1 left the day; the new sale came
    assert buyer_window(redis_store, sale("v", DAY_MS + 1_500, 1)) == Window(3, 3, 4, 3, 3, 4)


# --- the same answers as the in-memory store -----------------------------------------------


def _comparable(observation: Observation | bool | None) -> object:
    # Distinct sets are left out: a Redis set forgets members older than a day that the
    # in-memory one keeps, which a hold and its release can tell apart.
    if isinstance(observation, Observation):
        return (observation.windows, observation.held, observation.history_count)
    return observation


@pytest.mark.parametrize("seed", range(6))
def test_windows_agree_with_the_memory_store_in_any_order(
    redis_store: RedisStore, seed: int
) -> None:
    rng = random.Random(seed)
    memory = MemoryStore()
    sales: list[SaleFacts] = []
    times: list[int] = []
    latest = 0
    compared = 0
    for step in range(250):
        if rng.random() < 0.5 or not sales:
            gap = rng.choice([0, 1, 500, 20_000, 59_999, 60_000, 3_599_999, 3_600_000, DAY_MS])
            if rng.random() < 0.3:  # concurrent sales, replays: timed before the latest
                at = latest - rng.choice([1, 1_000, 60_000, 61_000, 3_600_000, DAY_MS])
            else:
                at = latest + gap
            facts = sale(
                f"{seed}-{step}",
                at,
                rng.choice([1, 10, 12_345, 10**9]),
                buyer=f"{rng.randrange(3):032x}",
                instrument=f"{100 + rng.randrange(3):032x}",
                ip=f"{200 + rng.randrange(2):032x}",
                merchant=f"m{rng.randrange(2)}",
            )
            sales.append(facts)
            times.append(at)
            action = rng.choice(["hold", "hold", "hold", "record", "read"])
        else:
            facts = rng.choice(sales)
            action = rng.choice(["hold", "record", "release", "read"])
        at = _ms(facts.at) - _ms(NOW)
        # Redis drops a window's sales once they are a day older than the latest sale; the
        # in-memory store keeps them a while. A step timed so far back that it would read
        # such a sale is not compared.
        comparable = not any(at - DAY_MS < t <= latest - DAY_MS for t in times)
        latest = max(latest, at)
        answers = []
        for store in (redis_store, memory):
            if action == "hold":
                answers.append(_comparable(store.observe(facts, hold=True)))
            elif action == "read":
                answers.append(_comparable(store.observe(facts, hold=False)))
            elif action == "record":
                answers.append(store.record(facts))
            else:
                answers.append(store.release(facts))
        if comparable:
            compared += 1
            assert answers[0] == answers[1], (step, action, facts.ref)
    assert compared > 100

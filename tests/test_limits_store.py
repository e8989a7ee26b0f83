"""The rate limits' in-process storage: the same counts as ``limits``' memory storage,
swept inline, with no timer thread started per request."""

from __future__ import annotations

import time

import limits
from flask import Flask
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from webapp.accounts.limits_store import SCHEME, SweepingMemoryStorage
from webapp.accounts.web import state


def test_the_app_counts_in_the_sweeping_storage_without_redis(app: Flask) -> None:
    with app.app_context():
        assert app.config["RATELIMIT_STORAGE_URI"] == f"{SCHEME}://"
        assert isinstance(state().limiter.limiter.storage, SweepingMemoryStorage)


def test_limits_hold_in_both_window_kinds() -> None:
    storage = storage_from_string(f"{SCHEME}://")
    assert isinstance(storage, SweepingMemoryStorage)
    three = limits.parse("3/minute")
    for strategy in (FixedWindowRateLimiter(storage), MovingWindowRateLimiter(storage)):
        assert [strategy.hit(three, "key", str(strategy)) for _ in range(4)] == [
            True,
            True,
            True,
            False,
        ]
        assert strategy.get_window_stats(three, "key", str(strategy)).remaining == 0


def test_no_timer_thread_is_started_per_hit_and_expired_counters_are_swept() -> None:
    storage = SweepingMemoryStorage()
    storage.sweep_every = 0.5
    first_timer = storage.timer
    first_timer.join()  # the one sweep the base class schedules when it is made
    for i in range(500):
        storage.incr(f"short-{i % 5}", expiry=0.01)
    assert storage.timer is first_timer and not first_timer.is_alive()
    time.sleep(0.05)
    # Expired, not yet swept: a count is checked against its expiry when read.
    assert "short-1" in storage.storage and storage.get("short-1") == 0
    time.sleep(0.5)
    storage.incr("later", expiry=60)
    assert set(storage.storage) == {"later"}
    assert storage.get("later") == 1

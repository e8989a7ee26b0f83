"""Where the rate limits count when no Redis is configured: in the process.

``limits``' own memory storage frees expired counters from a timer thread, and starts a
new one (10 ms later) whenever none is running: a busy server starts a thread every few
requests, and each start waits for the new thread to be scheduled. Counts never depend
on that sweep (a counter is checked against its expiry whenever it is read), so this
storage sweeps inline instead, at most once a second, from the request that comes due.
"""

from __future__ import annotations

import time
from typing import Any

from limits.storage import MemoryStorage

SCHEME = "cardtrace-memory"


class SweepingMemoryStorage(MemoryStorage):
    """``limits``' memory storage, swept inline at most every :attr:`sweep_every` seconds."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012 (read once, by limits, to register the scheme)
    sweep_every = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._last_sweep = time.monotonic()

    # The base class asks for its sweep through this (name-mangled) method after each
    # change; it is the one place the timer threads are started.
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_every:
            self._last_sweep = now
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]

"""Machine API keys kept in the process on PostgreSQL, dropped the moment they change.

Every request with a key reads the key's row: on PostgreSQL that is a round trip to the
server before the request's own work, as costly as verify's whole read. :class:`KeyCache`
keeps the rows of machine keys (a personal key's standing also depends on its account,
so it is always read) while, and only while, a listener thread of this process is
subscribed to the server's announcements of key changes: migration 0015 has the server
``NOTIFY cardtrace_api_key`` with the key id whenever a key's secret, scopes, party,
limit, expiry or revocation is updated, or the key deleted, by this application or by
anyone else. The listener drops that key on arrival, so a revoked or rotated key stops
working as soon as the server announces the commit (milliseconds); expiry is checked
against the clock on every use.

A read that raced a change is not kept: each read notes the cache's generation first,
and every announcement (and every loss of the listening connection) moves it on. If the
listening connection fails, the cache empties and every check reads the row again until
the listener is back (retried with backoff). The listener is started in the process that
first uses the cache, so a gunicorn worker forked from its master starts its own.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import os
import threading
from datetime import datetime

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from webapp.accounts.apikeys import (
    KEY_RE,
    LiveKey,
    authenticate_key,
    check_standing,
    digest_of,
)
from webapp.accounts.errors import ApiKeyInvalidError

log = logging.getLogger(__name__)

CHANNEL = "cardtrace_api_key"
_RETRY_MAX_S = 30.0


class KeyCache:
    """Rows of live machine keys by key id, each with the digest of its full key."""

    def __init__(self, url: URL, max_keys: int = 10_000) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.max_keys = max_keys
        self._keys: dict[str, tuple[bytes, LiveKey]] = {}
        self._generation = 0
        self._listening = False
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()

    @property
    def listening(self) -> bool:
        """Whether this process is subscribed to key changes (and so keeps keys)."""
        return self._listening

    def wait_listening(self, timeout: float) -> bool:
        """Start the listener if need be and wait until it listens (for tests and warm-up)."""
        self._ensure_listener()
        return self._ready.wait(timeout)

    def check(self, engine: Engine, token: str, *, now: datetime) -> LiveKey:
        """The live key ``token`` is: from the cache, or read through ``engine`` (and kept
        if it is a machine's key).

        Raises:
            as :func:`webapp.accounts.apikeys.authenticate_key`.
        """
        self._ensure_listener()
        match = KEY_RE.fullmatch(token)
        if match is None:
            raise ApiKeyInvalidError("the API key is malformed or unknown")
        key_id = match.group(1)
        digest = digest_of(token)
        with self._lock:
            held = self._keys.get(key_id) if self._listening else None
            generation = self._generation
        if held is not None and hmac.compare_digest(held[0], digest):
            return check_standing(held[1], now=now)
        with engine.connect() as connection:
            key = authenticate_key(connection, token, now=now)
        if key.user_id is None:
            with self._lock:
                if (
                    self._listening
                    and generation == self._generation
                    and (key_id in self._keys or len(self._keys) < self.max_keys)
                ):
                    self._keys[key_id] = (digest, key)
        return key

    def touch(self, key_id: str, at: datetime) -> None:
        """Note that the key's last use was recorded at ``at`` (that column is not
        announced: the kept row would otherwise ask for the write on every request)."""
        with self._lock:
            held = self._keys.get(key_id)
            if held is not None:
                self._keys[key_id] = (held[0], dataclasses.replace(held[1], last_used_at=at))

    def close(self) -> None:
        """Stop listening (within a second) and keep nothing more."""
        self._stop.set()
        with self._lock:
            self._listening = False
            self._keys.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    # --- the listener ---------------------------------------------------------------------

    def _ensure_listener(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            # A new process (or a fork): nothing kept is trusted, and it listens anew.
            self._pid = pid
            self._keys.clear()
            self._listening = False
            self._generation += 1
            self._ready = threading.Event()
            thread = threading.Thread(target=self._listen, name="cardtrace-key-listener")
            thread.daemon = True
            thread.start()

    def _forget(self, key_id: str | None) -> None:
        with self._lock:
            self._generation += 1
            if key_id is None:
                self._keys.clear()
            else:
                self._keys.pop(key_id, None)

    def _listen(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._forget(None)
                    with self._lock:
                        self._listening = not self._stop.is_set()
                    self._ready.set()
                    pause = 1.0
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=1.0):
                            self._forget(notice.payload)
                    return
            except Exception as e:  # a dropped connection, a server restart, ...
                log.warning(
                    "API keys are read on every request until the key listener reconnects (%s)",
                    type(e).__name__,
                )
            with self._lock:
                self._listening = False
                self._generation += 1
                self._keys.clear()
                self._ready.clear()
            self._stop.wait(pause)
            pause = min(pause * 2, _RETRY_MAX_S)

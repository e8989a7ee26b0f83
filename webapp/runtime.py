"""What a running app, worker or command holds: settings, engine, sessions, secrets."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from provenance.errors import ConfigError
from provenance.ledger import Ledger, PlatformSigner
from webapp.accounts.key_cache import KeyCache
from webapp.catalog import build_catalog
from webapp.config import Secrets, Settings, load_secrets
from webapp.database import read_engine


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    make_session: Callable[[], Session]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _secrets: Secrets | None = field(default=None, repr=False)
    _ledger: Ledger | None = field(default=None, repr=False)
    _reader: Engine | None = field(default=None, repr=False)
    _reader_known: bool = field(default=False, repr=False)
    _reader_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _key_cache: KeyCache | None = field(default=None, repr=False)

    def now(self) -> datetime:
        """The platform's clock (tests give the app a fixed one)."""
        return self.clock()

    @property
    def secrets(self) -> Secrets:
        """The platform secrets, loaded on first use.

        Raises:
            ConfigError: they are missing or unusable (the message says how to fix it).
        """
        if self._secrets is None:
            self._secrets = load_secrets(self.settings)
        return self._secrets

    @property
    def ledger(self) -> Ledger:
        """The ledger service, signing as the platform with the log key.

        Raises:
            ConfigError: the platform's secrets are missing or unusable.
        """
        if self._ledger is None:
            signer = PlatformSigner(self.secrets.log_signing_key, origin=self.settings.log_origin)
            self._ledger = Ledger(build_catalog(), signer)
        return self._ledger

    def reader(self) -> Engine | None:
        """The engine short reads outside the request's transaction go through (verify
        before sale, API-key checks; see :func:`webapp.database.read_engine`), or
        ``None`` to read through a session: on an in-memory SQLite database, and where
        the app's sessions are not made from its own engine (tests bind them to one
        connection they roll back, which another engine would not see)."""
        with self._reader_lock:
            if not self._reader_known:
                own = isinstance(self.make_session, sessionmaker) and (
                    self.make_session.kw.get("bind") is self.engine
                )
                self._reader = read_engine(self.settings.database_url) if own else None
                self._reader_known = True
            return self._reader

    def key_cache(self) -> KeyCache | None:
        """Where machine API keys are kept between requests (see
        :mod:`webapp.accounts.key_cache`): on PostgreSQL, when the app reads through its
        own read engine; ``None`` elsewhere (SQLite reads a key in-process)."""
        reader = self.reader()
        if reader is None or reader.dialect.name != "postgresql":
            return None
        with self._reader_lock:
            if self._key_cache is None:
                self._key_cache = KeyCache(self.settings.database_url)
            return self._key_cache

    def secrets_or_none(self) -> Secrets | None:
        try:
            return self.secrets
        except ConfigError:
            return None


def current_runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["cardtrace"]
    return runtime


def db_session() -> Session:
    """The session of the current request or task, closed when its context ends."""
    if "db_session" not in g:
        g.db_session = current_runtime().make_session()
    session: Session = g.db_session
    return session


def close_db_session(_exc: BaseException | None = None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()

"""A test client that calls the JSON API as a machine: with an API key of the platform
holding every scope (the platform's sale system, an importer)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provenance.parties import PLATFORM_PARTY
from tests.ledger_support import NOW
from webapp.accounts.apikeys import MAX_RATE_PER_MINUTE, create_key
from webapp.accounts.roles import Scope
from webapp.runtime import current_runtime


def api_key(
    app: Flask,
    session: Session,
    party: str = PLATFORM_PARTY,
    scopes: frozenset[Scope] = frozenset(Scope),
) -> str:
    """A new API key for ``party`` (the platform by default) with ``scopes``."""
    with app.app_context():
        current_runtime().ledger.ensure_genesis(session, name="test", now=NOW)
        issued = create_key(
            session,
            "tests",
            party,
            scopes,
            now=NOW,
            actor="tests",
            rate_per_minute=MAX_RATE_PER_MINUTE,
        )
        session.flush()
    return issued.token


def machine_client(app: Flask, session: Session, party: str = PLATFORM_PARTY) -> FlaskClient:
    """A test client whose every request carries an API key of ``party`` with every scope."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_key(app, session, party)}"
    return client

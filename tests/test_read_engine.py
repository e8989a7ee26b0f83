"""The app's own engines on PostgreSQL, as in production: the signed-in session's cookie
and API keys are read through the read engine (autocommit, no ping), and a server that
dropped its connections costs one retry, not an error."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from provenance.db import write_transaction
from tests.ledger_support import NOW
from tests.services import fresh_postgres_database, own_engines_app, terminate_other_connections
from tests.test_accounts_support import PASSWORD, enrol
from webapp.accounts.roles import Role
from webapp.accounts.service import create_user
from webapp.database import make_engine, upgrade
from webapp.runtime import current_runtime


def test_a_signed_in_session_is_read_through_the_read_engine_and_survives_dropped_connections(
    tmp_path: Path, key_dir: Path
) -> None:
    with fresh_postgres_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        with Session(engine) as session, write_transaction(session):
            create_user(session, "li.reviewer", "Li", Role.REVIEWER, PASSWORD, now=NOW)
        with own_engines_app(url, tmp_path / "instance", key_dir, lambda: NOW) as app:
            client = app.test_client()
            enrol(client, "li.reviewer", NOW)
            assert client.get("/dashboard").status_code == 200
            with app.app_context():
                assert current_runtime().reader() is not None
            assert terminate_other_connections(engine) >= 1
            page = client.get("/dashboard")
            assert page.status_code == 200, page.get_data(as_text=True)[:500]
            # Without the cookie, the same page sends one to sign in.
            assert app.test_client().get("/dashboard").status_code in (302, 303)
        engine.dispose()

# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Passwords, TOTP secrets, recovery codes and API keys never reach a log, an error or a
database row in clear."""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    PASSWORD,
    SHOP,
    Accounts,
    accounts,
    code_step,
    csrf_token,
    enrol,
    password_step,
    web,
)
from webapp.accounts.apikeys import create_key
from webapp.accounts.roles import Role

TABLES = (
    "account_user",
    "account_recovery_code",
    "account_session",
    "account_ip_throttle",
    "account_event",
    "api_key",
)


def test_no_secret_in_logs_errors_or_rows(
    accounts: Accounts, web: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accounts.create("rev.li", Role.REVIEWER)
    enrolled = enrol(web, "rev.li", accounts.clock())
    web.post("/sign-out", data={"csrf_token": csrf_token(web, "/")})
    wrong_password = "a wrong password typed by mistake"
    bodies = [password_step(web, "rev.li", wrong_password).get_data(as_text=True)]
    # A password typed into the username field is not kept either.
    bodies.append(password_step(web, PASSWORD, PASSWORD).get_data(as_text=True))
    password_step(web, "rev.li")
    bodies.append(code_step(web, enrolled.recovery_codes[0]).get_data(as_text=True))
    token = create_key(
        accounts.session, "till", SHOP, "codes:verify", now=accounts.clock(), actor="t"
    ).token
    bodies.append(
        web.post("/test/verify", headers={"Authorization": f"Bearer {token}"}).get_data(
            as_text=True
        )
    )
    bodies.append(
        web.post("/test/verify", headers={"Authorization": f"Bearer {token}x"}).get_data(
            as_text=True
        )
    )
    secrets = [
        PASSWORD,
        wrong_password,
        enrolled.secret,
        token,
        token[17:],
        *enrolled.recovery_codes,
    ]
    dump = []
    for table in TABLES:
        for row in accounts.session.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
            dump.append(
                " ".join(
                    value.hex() + " " + value.decode("latin-1")
                    if isinstance(value, bytes)
                    else str(value)
                    for value in row
                )
            )
    rows = "\n".join(dump)
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in rows
        assert all(secret not in body for body in bodies)

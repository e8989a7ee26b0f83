"""The officer APIs (onboarding, risk rules, alerts) share one way of knowing who acts."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.personal_keys_support import personal_key
from webapp.accounts.roles import Role

QUEUES = [
    ("/api/v1/onboarding/queue", "cardtrace onboarding"),
    ("/api/v1/risk/rules", "cardtrace risk"),
    ("/api/v1/alerts", "cardtrace alerts"),
]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Basic bGk6cHc=", "Bearer not-a-token-anyone-holds"],
    ids=["no-header", "empty-bearer", "other-scheme", "unknown-token"],
)
@pytest.mark.parametrize(("path", "realm"), QUEUES, ids=["onboarding", "risk", "alerts"])
def test_no_valid_token_is_challenged_with_the_area_realm(
    client: FlaskClient, genesis: None, path: str, realm: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="{realm}"'
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(("path", "realm"), QUEUES, ids=["onboarding", "risk", "alerts"])
def test_a_personal_key_of_a_reading_role_is_let_in(
    app: Flask, client: FlaskClient, session: Session, path: str, realm: str
) -> None:
    token = personal_key(app, session, "qian.auditor", Role.AUDITOR)
    response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()

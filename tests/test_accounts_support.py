"""Shared fixtures and helpers of the accounts and API-key tests (no tests here)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pyotp
import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from tests.ledger_support import NOW, register_party
from webapp.accounts import Scope, api_actor, current_api_actor, require_api_key
from webapp.accounts.roles import Role
from webapp.accounts.service import create_user
from webapp.runtime import current_runtime

SHOP = "shop-one"
OTHER_SHOP = "shop-two"
PASSWORD = "correct horse battery staple"


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, at: datetime = NOW) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Accounts:
    app: Flask
    session: Session
    clock: Clock

    def create(self, username: str, role: Role, party: str | None = None) -> None:
        create_user(
            self.session, username, username.title(), role, PASSWORD, now=self.clock(), party=party
        )


def _probe_endpoints(app: Flask) -> None:
    """Two JSON endpoints guarded the way other blueprints will guard theirs."""

    @require_api_key(Scope.CODES_VERIFY)
    def key_only() -> Response:
        actor = current_api_actor()
        return jsonify({"kind": actor.kind.value, "id": actor.id, "party": actor.party})

    @api_actor(Scope.PARTNERS_NOTICE)
    def either() -> Response:
        actor = current_api_actor()
        return jsonify({"kind": actor.kind.value, "id": actor.id, "party": actor.party})

    app.add_url_rule("/test/verify", "probe_verify", key_only, methods=["GET", "POST"])
    app.add_url_rule("/test/notices", "probe_notices", either, methods=["GET", "POST"])


@pytest.fixture()
def accounts(app: Flask, session: Session) -> Iterator[Accounts]:
    clock = Clock()
    with app.app_context():
        runtime = current_runtime()
        runtime.clock = clock
        runtime.ledger.ensure_genesis(session, name="test", now=NOW)
        register_party(session, runtime.ledger, SHOP, kind="merchant")
        register_party(session, runtime.ledger, OTHER_SHOP, kind="merchant")
        session.flush()
    _probe_endpoints(app)
    yield Accounts(app, session, clock)


@pytest.fixture()
def web(accounts: Accounts) -> FlaskClient:
    return accounts.app.test_client()


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
META_CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
SECRET_RE = re.compile(r'<code class="secret">([A-Z2-7 ]+)</code>')
CODES_RE = re.compile(r"<li><code>([A-Z0-9-]{19})</code></li>")


def csrf_token(client: FlaskClient, path: str = "/sign-in") -> str:
    page = client.get(path).get_data(as_text=True)
    match = META_CSRF_RE.search(page)
    assert match, page
    return match.group(1)


def password_step(client: FlaskClient, username: str, password: str = PASSWORD) -> Response:
    token = csrf_token(client)
    return client.post(
        "/sign-in", data={"csrf_token": token, "username": username, "password": password}
    )


def totp_at(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret).at(at)


@dataclass
class Enrolled:
    secret: str
    recovery_codes: list[str]


def enrol(client: FlaskClient, username: str, at: datetime, password: str = PASSWORD) -> Enrolled:
    """Sign in with the password, enrol TOTP from the page, confirm; returns what it showed."""
    assert password_step(client, username, password).headers["Location"].endswith("/sign-in/enrol")
    page = client.get("/sign-in/enrol").get_data(as_text=True)
    match = SECRET_RE.search(page)
    assert match, page
    secret = match.group(1).replace(" ", "")
    token = CSRF_RE.search(page)
    assert token
    shown = client.post(
        "/sign-in/enrol", data={"csrf_token": token.group(1), "code": totp_at(secret, at)}
    )
    assert shown.status_code == 200, shown.get_data(as_text=True)
    return Enrolled(secret, CODES_RE.findall(shown.get_data(as_text=True)))


def code_step(client: FlaskClient, code: str) -> Response:
    page = client.get("/sign-in/code").get_data(as_text=True)
    token = CSRF_RE.search(page)
    assert token, page
    return client.post("/sign-in/code", data={"csrf_token": token.group(1), "code": code})


def sign_in_as(
    accounts: Accounts,
    client: FlaskClient,
    role: Role,
    username: str | None = None,
    party: str = SHOP,
) -> str:
    """Create an account of ``role`` and sign ``client`` in as it: a merchant (of
    ``party``) with its password, staff with the password and a second factor enrolled
    on the way. Returns the username."""
    username = username or f"{role.value}.one"
    if role is Role.MERCHANT:
        accounts.create(username, role, party=party)
        password_step(client, username)
    else:
        accounts.create(username, role)
        enrol(client, username, accounts.clock())
    return username

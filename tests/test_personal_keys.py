# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Personal API keys on the officer APIs: a key acts exactly as its user signed in would
(the role read at each request, the merchant rule, a disabled account refused); a
machine's key is refused there, and every refusal writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.models import Application
from provenance.cases.models import CaseFile
from provenance.ledger import LedgerEntry
from provenance.risk.rules import RiskRuleVersion
from tests.api_support import api_key
from tests.ledger_support import NOW, register_party
from tests.personal_keys_support import enrol_second_factor, personal_key
from tests.test_accounts_support import SHOP as ACCOUNTS_SHOP
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    Accounts,
    accounts,
    csrf_token,
    enrol,
    web,
)
from webapp.accounts.apikeys import create_personal_key, revoke_key
from webapp.accounts.models import AccountEvent, ApiKey
from webapp.accounts.roles import Role
from webapp.accounts.service import change_role, lock_user, reset_totp
from webapp.officer_auth import SESSION_ROLES
from webapp.runtime import current_runtime

PROBLEM = "application/problem+json"

# Per API blueprint: a read, and a change whose body or target is wrong, so that a
# credential let in gets the service's own answer (not the gate's refusal).
PROBES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "onboarding_api": (
        "/api/v1/onboarding/queue",
        "/api/v1/onboarding/applications/999999/submit",
        None,
    ),
    "analysis_api": ("/api/v1/alerts", "/api/v1/alerts/999999/decision", {}),
    "cases_api": ("/api/v1/cases", "/api/v1/cases/999999/notes", {}),
    "risk_api": ("/api/v1/risk/rules", "/api/v1/risk/rules/check", {}),
}
STAFF = [r for r in Role if r is not Role.MERCHANT]
SHOP = "shop-keys-one"
OTHER_SHOP = "shop-keys-two"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def writes(session: Session) -> tuple[int, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(t)) or 0
        for t in (Application, LedgerEntry, CaseFile, RiskRuleVersion, AccountEvent)
    )


def refused_by_role(response: Any, role: Role) -> bool:
    body = response.get_json() or {}
    return response.status_code == 403 and f"the {role.value} role may not" in body.get(
        "detail", ""
    )


@pytest.mark.parametrize("role", STAFF, ids=[r.value for r in STAFF])
@pytest.mark.parametrize("blueprint", sorted(PROBES))
def test_a_personal_key_may_do_what_its_role_may_through_a_session(
    app: Flask, client: FlaskClient, session: Session, role: Role, blueprint: str
) -> None:
    token = personal_key(app, session, f"{role.value}.key", role)
    readers, writers = SESSION_ROLES[blueprint]
    read, change, body = PROBES[blueprint]
    before = writes(session)

    answer = client.get(read, headers=bearer(token))
    if role in readers:
        assert answer.status_code == 200, answer.get_json()
    else:
        assert refused_by_role(answer, role), answer.get_json()
        assert answer.mimetype == PROBLEM

    answer = client.post(change, headers=bearer(token), json=body)
    if role in writers:
        assert answer.status_code in (404, 422), answer.get_json()
    else:
        assert refused_by_role(answer, role), answer.get_json()
    assert writes(session) == before


@pytest.mark.parametrize("blueprint", sorted(PROBES))
def test_a_machines_key_is_refused_on_the_officer_apis(
    app: Flask, client: FlaskClient, session: Session, blueprint: str
) -> None:
    token = api_key(app, session)
    read, change, body = PROBES[blueprint]
    before = writes(session)
    for answer in (
        client.get(read, headers=bearer(token)),
        client.post(change, headers=bearer(token), json=body),
    ):
        assert answer.status_code == 403
        assert "machine's key" in answer.get_json()["detail"]
        assert token not in answer.get_data(as_text=True)
    assert writes(session) == before


@pytest.mark.parametrize(
    "token",
    ["cto_" + "A" * 43, "cta_" + "B" * 43, "ctk_0123456789ab_" + "C" * 43],
    ids=["officer-token", "applicant-token", "unknown-key"],
)
def test_an_unknown_credential_is_a_401(
    app: Flask, client: FlaskClient, session: Session, token: str
) -> None:
    before = writes(session)
    answer = client.post(
        "/api/v1/onboarding/applications/1/submit", headers=bearer(token), json=None
    )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="cardtrace onboarding"'
    assert writes(session) == before


def _key_id(token: str) -> str:
    return token[4:16]


def test_a_revoked_or_expired_personal_key_is_a_401(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    revoked = personal_key(app, session, "li.reviewer", Role.REVIEWER)
    expiring = personal_key(app, session, "li.reviewer", Role.REVIEWER)
    with app.app_context():
        revoke_key(session, _key_id(revoked), now=NOW, actor="tests")
        key = session.scalars(select(ApiKey).where(ApiKey.key_id == _key_id(expiring))).one()
        key.expires_at = current_runtime().now() - timedelta(seconds=1)
        session.flush()
    before = writes(session)
    for token, code in ((revoked, "api-key-revoked"), (expiring, "api-key-expired")):
        answer = client.get("/api/v1/onboarding/queue", headers=bearer(token))
        assert answer.status_code == 401
        assert answer.get_json()["code"] == code
    assert writes(session) == before


def test_a_disabled_or_locked_users_key_is_a_401(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    token = personal_key(app, session, "li.reviewer", Role.REVIEWER)
    assert client.get("/api/v1/onboarding/queue", headers=bearer(token)).status_code == 200
    with app.app_context():
        lock_user(session, "li.reviewer", now=NOW, actor="tests")
        session.flush()
    before = writes(session)
    answer = client.get("/api/v1/onboarding/queue", headers=bearer(token))
    assert answer.status_code == 401
    assert answer.get_json()["code"] == "api-key-invalid"
    assert "disabled" in answer.get_json()["detail"]
    assert writes(session) == before


def test_a_staff_key_stops_when_its_accounts_second_factor_is_reset(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    token = personal_key(app, session, "li.reviewer", Role.REVIEWER)
    assert client.get("/api/v1/onboarding/queue", headers=bearer(token)).status_code == 200
    with app.app_context():
        reset_totp(session, "li.reviewer", now=NOW, actor="tests")
        session.flush()
    before = writes(session)
    answer = client.get("/api/v1/onboarding/queue", headers=bearer(token))
    assert answer.status_code == 401
    assert answer.get_json()["code"] == "api-key-invalid"
    assert "second factor" in answer.get_json()["detail"]
    assert writes(session) == before
    with app.app_context():
        enrol_second_factor(session, "li.reviewer")
    assert client.get("/api/v1/onboarding/queue", headers=bearer(token)).status_code == 200


def test_a_role_change_takes_effect_on_the_next_request(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    token = personal_key(app, session, "li.reviewer", Role.REVIEWER)
    assert client.get("/api/v1/cases", headers=bearer(token)).status_code == 403
    with app.app_context():
        change_role(session, "li.reviewer", Role.ANALYST, now=NOW, actor="tests")
        session.flush()
    assert client.get("/api/v1/cases", headers=bearer(token)).status_code == 200
    assert (
        refused_by_role(client.get("/api/v1/onboarding/queue", headers=bearer(token)), Role.ANALYST)
        is False
    )
    assert refused_by_role(
        client.post("/api/v1/onboarding/applications/1/submit", headers=bearer(token)),
        Role.ANALYST,
    )


def test_a_personal_key_and_a_session_together_are_refused(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    token = personal_key(app, session, "li.reviewer", Role.REVIEWER)
    with client.session_transaction() as browser:
        browser["sid"] = "x" * 43
    answer = client.get("/api/v1/onboarding/queue", headers=bearer(token))
    assert answer.status_code == 401
    assert "not both" in answer.get_json()["detail"]


@pytest.fixture()
def shops(app: Flask, session: Session) -> None:
    with app.app_context():
        runtime = current_runtime()
        runtime.ledger.ensure_genesis(session, name="test", now=NOW)
        register_party(session, runtime.ledger, SHOP, kind="merchant")
        register_party(session, runtime.ledger, OTHER_SHOP, kind="merchant")
        session.flush()


@pytest.mark.parametrize("blueprint", sorted(PROBES))
def test_a_merchants_key_reaches_no_staff_api(
    app: Flask, client: FlaskClient, session: Session, shops: None, blueprint: str
) -> None:
    token = personal_key(app, session, "shop.one", Role.MERCHANT, party=SHOP)
    read, change, body = PROBES[blueprint]
    before = writes(session)
    assert client.get(read, headers=bearer(token)).status_code == 403
    answer = client.post(change, headers=bearer(token), json=body)
    # The onboarding step names an application: none of the merchant's, so not found.
    assert answer.status_code == (404 if blueprint == "onboarding_api" else 403)
    assert writes(session) == before


def test_on_the_json_api_a_personal_key_has_its_users_role_scopes_not_its_own(
    accounts: Accounts, web: FlaskClient
) -> None:
    """Like a signed-in session: the role's scopes (ROLE_SCOPES) and the user's party."""
    analyst = personal_key(accounts.app, accounts.session, "sun.analyst", Role.ANALYST)
    reviewer = personal_key(accounts.app, accounts.session, "li.reviewer", Role.REVIEWER)
    merchant = personal_key(
        accounts.app, accounts.session, "shop.owner", Role.MERCHANT, party=ACCOUNTS_SHOP
    )
    answer = web.post("/test/notices", headers=bearer(analyst))
    assert answer.status_code == 200
    assert answer.json == {"kind": "user", "id": "sun.analyst", "party": None}
    for token in (reviewer, merchant):
        answer = web.post("/test/notices", headers=bearer(token))
        assert answer.status_code == 403 and answer.get_json()["code"] == "scope-denied"
    # Where only a machine's key is taken (a session is refused), a personal key is too.
    answer = web.post("/test/verify", headers=bearer(merchant))
    assert answer.status_code == 403 and answer.get_json()["code"] == "scope-denied"
    assert "machine's key" in answer.get_json()["detail"]


def test_an_administrator_makes_a_personal_key_on_the_keys_page(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.create("root.admin", Role.ADMINISTRATOR)
    accounts.create("li.reviewer", Role.REVIEWER)
    enrol(web, "root.admin", accounts.clock())
    token = csrf_token(web, "/admin/api-keys")
    before = accounts.session.scalar(select(func.count()).select_from(ApiKey))
    for refused in (
        {"user": "li.reviewer", "party": ACCOUNTS_SHOP},
        {"user": "li.reviewer", "scopes": ["codes:verify"]},
        {"user": "nobody"},
    ):
        answer = web.post("/admin/api-keys", data={"csrf_token": token, "name": "x", **refused})
        assert answer.status_code == 422
        assert "A personal key needs an existing account" in answer.get_data(as_text=True)
    # A staff account without its second factor has no key either.
    early = web.post(
        "/admin/api-keys", data={"csrf_token": token, "name": "laptop", "user": "li.reviewer"}
    )
    assert early.status_code == 422
    assert "enrols TOTP first" in early.get_data(as_text=True)
    assert accounts.session.scalar(select(func.count()).select_from(ApiKey)) == before
    enrol(accounts.app.test_client(), "li.reviewer", accounts.clock())
    created = web.post(
        "/admin/api-keys", data={"csrf_token": token, "name": "laptop", "user": "li.reviewer"}
    )
    assert created.status_code == 201
    page = created.get_data(as_text=True)
    key = page.split('<code class="secret">')[1].split("<")[0]
    assert "personal key" in page and "li.reviewer" in page
    client = accounts.app.test_client()
    assert client.get("/api/v1/onboarding/queue", headers=bearer(key)).status_code == 200
    assert client.get("/api/v1/cases", headers=bearer(key)).status_code == 403


def test_a_personal_keys_last_use_and_rate_limit_on_an_officer_api(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.create("li.reviewer", Role.REVIEWER)
    enrol(accounts.app.test_client(), "li.reviewer", accounts.clock())
    issued = create_personal_key(
        accounts.session, "laptop", "li.reviewer", now=NOW, actor="tests", rate_per_minute=2
    )
    accounts.session.flush()
    token = issued.token
    for _ in range(2):
        assert web.get("/api/v1/onboarding/queue", headers=bearer(token)).status_code == 200
    accounts.session.expire_all()
    assert accounts.session.get(ApiKey, issued.key.id).last_used_at == accounts.clock()  # type: ignore[union-attr]
    limited = web.get("/api/v1/onboarding/queue", headers=bearer(token))
    assert limited.status_code == 429 and limited.get_json()["code"] == "rate-limited"

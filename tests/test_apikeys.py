# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""API keys: shown once and stored hashed, scoped, expiring, revocable, rotatable,
rate-limited per key, last use recorded; and never mixed with a signed-in session."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    OTHER_SHOP,
    SHOP,
    Accounts,
    accounts,
    enrol,
    web,
)
from webapp.accounts.apikeys import create_key, revoke_key, rotate_key
from webapp.accounts.errors import InvalidAccountInputError
from webapp.accounts.models import AccountEvent, ApiKey
from webapp.accounts.roles import Role, Scope

PROBLEM = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_key(accounts: Accounts, scopes: str = "codes:verify", **kwargs: object) -> str:
    return create_key(
        accounts.session,
        "sale system",
        SHOP,
        scopes,
        now=accounts.clock(),
        actor="test",
        **kwargs,  # type: ignore[arg-type]
    ).token


def test_a_key_with_the_scope_acts_for_its_party(accounts: Accounts, web: FlaskClient) -> None:
    token = new_key(accounts)
    response = web.post("/test/verify", headers=bearer(token))
    assert response.status_code == 200
    assert response.json == {"kind": "api-key", "id": token[4:16], "party": SHOP}


def test_only_the_keys_digest_is_stored(accounts: Accounts) -> None:
    token = new_key(accounts)
    row = accounts.session.scalars(select(ApiKey)).one()
    assert row.secret_hash == hashlib.sha256(token.encode()).digest()
    stored = " ".join(str(v) for v in vars(row).values())
    assert token not in stored and token[17:] not in stored


def test_a_key_used_beyond_its_scope_is_refused(accounts: Accounts, web: FlaskClient) -> None:
    token = new_key(accounts, "codes:verify")
    response = web.post("/test/notices", headers=bearer(token))
    assert response.status_code == 403
    assert response.mimetype == PROBLEM
    assert response.json["code"] == "scope-denied"


def test_no_key_is_a_401_with_a_challenge(accounts: Accounts, web: FlaskClient) -> None:
    response = web.post("/test/verify")
    assert response.status_code == 401
    assert response.json["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    [
        "ctk_000000000000_" + "A" * 43,  # well-formed, unknown id
        "ctk_short",
        "cto_an-officer-token",
        "",
    ],
)
def test_an_unknown_or_malformed_key_is_refused(
    accounts: Accounts, web: FlaskClient, token: str
) -> None:
    new_key(accounts)
    response = web.post("/test/verify", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json["code"] in ("api-key-invalid", "unauthenticated")


def test_a_right_id_with_a_wrong_secret_is_refused(accounts: Accounts, web: FlaskClient) -> None:
    token = new_key(accounts)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    response = web.post("/test/verify", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json["code"] == "api-key-invalid"


def test_an_expired_key_is_refused(accounts: Accounts, web: FlaskClient) -> None:
    token = new_key(accounts, expires_at=accounts.clock() + timedelta(days=1))
    assert web.post("/test/verify", headers=bearer(token)).status_code == 200
    accounts.clock.at += timedelta(days=1)
    response = web.post("/test/verify", headers=bearer(token))
    assert response.status_code == 401
    assert response.json["code"] == "api-key-expired"


def test_a_revoked_key_is_refused(accounts: Accounts, web: FlaskClient) -> None:
    token = new_key(accounts)
    revoke_key(accounts.session, token[4:16], now=accounts.clock(), actor="test")
    response = web.post("/test/verify", headers=bearer(token))
    assert response.status_code == 401
    assert response.json["code"] == "api-key-revoked"


def test_rotation_retires_the_old_secret_and_keeps_the_id(
    accounts: Accounts, web: FlaskClient
) -> None:
    old = new_key(accounts)
    new = rotate_key(accounts.session, old[4:16], now=accounts.clock(), actor="test").token
    assert new[4:16] == old[4:16] and new != old
    assert web.post("/test/verify", headers=bearer(old)).json["code"] == "api-key-invalid"
    assert web.post("/test/verify", headers=bearer(new)).status_code == 200


def test_a_revoked_key_cannot_be_rotated(accounts: Accounts) -> None:
    token = new_key(accounts)
    revoke_key(accounts.session, token[4:16], now=accounts.clock(), actor="test")
    with pytest.raises(InvalidAccountInputError):
        rotate_key(accounts.session, token[4:16], now=accounts.clock(), actor="test")


def test_last_use_is_recorded(accounts: Accounts, web: FlaskClient) -> None:
    token = new_key(accounts)
    row = accounts.session.scalars(select(ApiKey)).one()
    assert row.last_used_at is None
    web.post("/test/verify", headers=bearer(token))
    accounts.session.expire_all()
    assert accounts.session.scalars(select(ApiKey)).one().last_used_at == accounts.clock()


def test_each_key_has_its_own_rate_limit(accounts: Accounts, web: FlaskClient) -> None:
    slow = new_key(accounts, rate_per_minute=3)
    other = new_key(accounts, rate_per_minute=3)
    for _ in range(3):
        assert web.post("/test/verify", headers=bearer(slow)).status_code == 200
    limited = web.post("/test/verify", headers=bearer(slow))
    assert limited.status_code == 429
    assert limited.json["code"] == "rate-limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert web.post("/test/verify", headers=bearer(other)).status_code == 200


def test_guessing_keys_is_rate_limited_by_address(accounts: Accounts, web: FlaskClient) -> None:
    accounts.app.config["ACCOUNTS_API_FAILURE_LIMIT"] = "5/minute"
    codes = [
        web.post("/test/verify", headers=bearer("ctk_000000000000_" + "A" * 43)).status_code
        for _ in range(6)
    ]
    assert codes == [401] * 5 + [429]


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("party", {"party": "nobody"}),
        ("scopes", {"scopes": "codes:steal"}),
        ("scopes", {"scopes": ""}),
        ("rate_per_minute", {"rate_per_minute": 0}),
        ("name", {"name": "  "}),
    ],
)
def test_a_bad_key_request_is_refused_naming_the_field(
    accounts: Accounts, field: str, change: dict[str, object]
) -> None:
    args: dict[str, object] = {"name": "k", "party": SHOP, "scopes": "codes:verify"} | change
    with pytest.raises(InvalidAccountInputError) as caught:
        create_key(accounts.session, now=accounts.clock(), actor="test", **args)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert accounts.session.scalars(select(ApiKey)).all() == []


def test_key_changes_are_audited_without_the_secret(accounts: Accounts) -> None:
    token = new_key(accounts)
    rotate_key(accounts.session, token[4:16], now=accounts.clock(), actor="admin")
    revoke_key(accounts.session, token[4:16], now=accounts.clock(), actor="admin")
    events = accounts.session.scalars(select(AccountEvent).order_by(AccountEvent.id)).all()
    assert [e.kind for e in events] == ["api-key-created", "api-key-rotated", "api-key-revoked"]
    assert all(token[17:] not in (e.detail or "") for e in events)


def test_a_key_and_a_signed_in_session_together_are_refused(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.create("ana.lyst", Role.ANALYST)
    enrol(web, "ana.lyst", accounts.clock())
    token = create_key(
        accounts.session,
        "feed",
        OTHER_SHOP,
        "partners:notice",
        now=accounts.clock(),
        actor="test",
    ).token
    for path in ("/test/notices", "/test/verify"):
        response = web.post(path, headers=bearer(token))
        assert response.status_code == 400
        assert response.json["code"] == "mixed-credentials"


def test_a_signed_in_session_needs_the_csrf_header(accounts: Accounts, web: FlaskClient) -> None:
    accounts.create("ana.lyst", Role.ANALYST)
    enrol(web, "ana.lyst", accounts.clock())
    refused = web.get("/test/notices")
    assert refused.status_code == 400 and refused.json["code"] == "csrf-failed"
    page = web.get("/").get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    ok = web.post("/test/notices", headers={"X-CSRFToken": token})
    assert ok.status_code == 200
    assert ok.json == {"kind": "user", "id": "ana.lyst", "party": None}


def test_a_signed_in_role_without_the_operation_is_refused(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.create("rev.iewer", Role.REVIEWER)
    enrol(web, "rev.iewer", accounts.clock())
    page = web.get("/").get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    response = web.post("/test/notices", headers={"X-CSRFToken": token})
    assert response.status_code == 403 and response.json["code"] == "scope-denied"


def test_scopes_are_a_closed_set() -> None:
    assert {s.value for s in Scope} >= {"codes:verify", "entries:append", "partners:notice"}

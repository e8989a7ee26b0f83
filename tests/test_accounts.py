# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Signing in: password then TOTP (or a recovery code), replay refused, back-off after
failures, server-side sessions that rotate at sign-in and end at sign-out or role change,
CSRF on every form, and the audit of it all."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from provenance.ledger import LedgerEntry
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    PASSWORD,
    SHOP,
    Accounts,
    accounts,
    code_step,
    csrf_token,
    enrol,
    password_step,
    totp_at,
    web,
)
from webapp.accounts.errors import InvalidAccountInputError
from webapp.accounts.models import (
    AccountEvent,
    AccountIpThrottle,
    AccountRecoveryCode,
    AccountSession,
    AccountUser,
)
from webapp.accounts.roles import Role
from webapp.accounts.service import TOTP_STEP_S, change_role, create_user

STEP = timedelta(seconds=TOTP_STEP_S)


def events(accounts: Accounts) -> list[str]:
    accounts.session.expire_all()
    rows = accounts.session.scalars(select(AccountEvent).order_by(AccountEvent.id))
    return [row.kind for row in rows]


def user(accounts: Accounts, username: str) -> AccountUser:
    accounts.session.expire_all()
    return accounts.session.scalars(
        select(AccountUser).where(AccountUser.username == username)
    ).one()


def signed_in_as(client: FlaskClient) -> str | None:
    response = client.get("/")
    if response.status_code != 200:
        return None
    page = response.get_data(as_text=True)
    return page.split("<dd>", 1)[1].split("</dd>", 1)[0]


@pytest.fixture()
def reviewer(accounts: Accounts, web: FlaskClient) -> str:
    """A reviewer who has enrolled; the client is signed out again. Returns the secret."""
    accounts.create("rev.li", Role.REVIEWER)
    secret = enrol(web, "rev.li", accounts.clock()).secret
    web.post("/sign-out", data={"csrf_token": csrf_token(web, "/")})
    accounts.clock.at += STEP * 2
    return secret


# --- password and second factor ----------------------------------------------------------


def test_staff_enrol_totp_at_first_sign_in_and_get_recovery_codes_once(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.create("rev.li", Role.REVIEWER)
    enrolled = enrol(web, "rev.li", accounts.clock())
    assert len(enrolled.recovery_codes) == 10
    assert signed_in_as(web) == "rev.li"
    # The page showing them was the only one: they are not on home, nor anywhere stored.
    assert enrolled.recovery_codes[0] not in web.get("/").get_data(as_text=True)
    stored = accounts.session.scalars(select(AccountRecoveryCode.code_hash)).all()
    assert len(stored) == 10
    assert all(code.encode() not in b"".join(stored) for code in enrolled.recovery_codes)


def test_the_enrolment_page_draws_the_qr_code_inline(accounts: Accounts, web: FlaskClient) -> None:
    accounts.create("rev.li", Role.REVIEWER)
    password_step(web, "rev.li")
    page = web.get("/sign-in/enrol").get_data(as_text=True)
    assert "<svg" in page and "otpauth" not in page.split("<svg", 1)[0]
    assert "http://" not in page.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
        "http://www.w3.org/2000/svg", ""
    )


def test_the_totp_secret_is_sealed_at_rest(accounts: Accounts, web: FlaskClient) -> None:
    accounts.create("rev.li", Role.REVIEWER)
    secret = enrol(web, "rev.li", accounts.clock()).secret
    sealed = user(accounts, "rev.li").totp_secret
    assert sealed is not None and secret.encode() not in sealed


def test_password_and_totp_sign_in(accounts: Accounts, web: FlaskClient, reviewer: str) -> None:
    assert password_step(web, "rev.li").headers["Location"].endswith("/sign-in/code")
    assert signed_in_as(web) is None  # the password alone is not enough
    response = code_step(web, totp_at(reviewer, accounts.clock()))
    assert response.status_code == 302
    assert signed_in_as(web) == "rev.li"
    assert events(accounts)[-1] == "sign-in"


def test_a_wrong_password_is_refused_and_recorded(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    response = password_step(web, "rev.li", "not the password at all")
    assert response.status_code == 401
    assert "The username, password or code is wrong." in response.get_data(as_text=True)
    assert events(accounts)[-1] == "sign-in-failed"
    assert user(accounts, "rev.li").failed_attempts == 1


def test_an_unknown_user_gets_the_same_answer(accounts: Accounts, web: FlaskClient) -> None:
    response = password_step(web, "nobody", "whatever password")
    assert response.status_code == 401
    assert "The username, password or code is wrong." in response.get_data(as_text=True)
    row = accounts.session.scalars(select(AccountEvent)).all()[-1]
    assert (row.kind, row.user_id, row.detail) == ("sign-in-failed", None, "unknown account")


def test_a_wrong_totp_code_is_refused(accounts: Accounts, web: FlaskClient, reviewer: str) -> None:
    password_step(web, "rev.li")
    good = totp_at(reviewer, accounts.clock())
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    assert code_step(web, wrong).status_code == 401
    assert signed_in_as(web) is None
    assert events(accounts)[-1] == "second-factor-failed"


def test_a_totp_code_from_too_long_ago_is_refused(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    password_step(web, "rev.li")
    assert code_step(web, totp_at(reviewer, accounts.clock() - STEP * 3)).status_code == 401


def test_a_totp_code_is_not_accepted_twice(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    code = totp_at(reviewer, accounts.clock())
    password_step(web, "rev.li")
    assert code_step(web, code).status_code == 302
    other = accounts.app.test_client()
    password_step(other, "rev.li")
    replay = code_step(other, code)
    assert replay.status_code == 401
    assert signed_in_as(other) is None


def test_a_code_older_than_the_last_accepted_one_is_refused(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    password_step(web, "rev.li")
    assert code_step(web, totp_at(reviewer, accounts.clock() + STEP)).status_code == 302
    other = accounts.app.test_client()
    password_step(other, "rev.li")
    assert code_step(other, totp_at(reviewer, accounts.clock())).status_code == 401


def test_a_recovery_code_works_once(accounts: Accounts, web: FlaskClient) -> None:
    accounts.create("rev.li", Role.REVIEWER)
    codes = enrol(web, "rev.li", accounts.clock()).recovery_codes
    web.post("/sign-out", data={"csrf_token": csrf_token(web, "/")})
    password_step(web, "rev.li")
    assert code_step(web, codes[3].lower().replace("-", "")).status_code == 302
    assert signed_in_as(web) == "rev.li"
    assert "recovery-code-used" in events(accounts)
    other = accounts.app.test_client()
    password_step(other, "rev.li")
    assert code_step(other, codes[3]).status_code == 401
    assert signed_in_as(other) is None


def test_a_merchant_without_totp_signs_in_with_the_password(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.create("shop.owner", Role.MERCHANT, party=SHOP)
    assert password_step(web, "shop.owner").status_code == 302
    assert signed_in_as(web) == "shop.owner"


def test_a_merchant_account_must_name_a_registered_party(accounts: Accounts) -> None:
    for party in (None, "no-such-party"):
        with pytest.raises(InvalidAccountInputError) as caught:
            accounts.create("shop.x", Role.MERCHANT, party=party)
        assert caught.value.field == "party"


@pytest.mark.parametrize("password", ["short", "rev.li"])
def test_weak_passwords_are_refused(accounts: Accounts, password: str) -> None:
    with pytest.raises(InvalidAccountInputError) as caught:
        create_user(accounts.session, "rev.li", "Li", Role.REVIEWER, password, now=accounts.clock())
    assert caught.value.field == "password"


def test_passwords_are_argon2_hashes(accounts: Accounts) -> None:
    accounts.create("rev.li", Role.REVIEWER)
    stored = user(accounts, "rev.li").password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


# --- lockout and back-off ------------------------------------------------------------------


def test_failures_lock_the_account_with_growing_back_off(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    accounts.app.config["ACCOUNTS_SIGN_IN_LIMIT"] = "1000/minute"
    for _ in range(5):
        assert password_step(web, "rev.li", "wrong password!!").status_code == 401
    first = user(accounts, "rev.li").locked_until
    assert first == accounts.clock() + timedelta(seconds=30)
    assert "locked-out" in events(accounts)
    # While locked even the right password is refused, and not checked.
    refused = password_step(web, "rev.li")
    assert refused.status_code == 429
    assert events(accounts)[-1] == "refused-while-locked"
    accounts.clock.at = first
    assert password_step(web, "rev.li", "wrong password!!").status_code == 401
    second = user(accounts, "rev.li").locked_until
    assert second == accounts.clock() + timedelta(seconds=60)
    accounts.clock.at = second
    assert password_step(web, "rev.li").status_code == 302
    assert code_step(web, totp_at(reviewer, accounts.clock())).status_code == 302
    assert user(accounts, "rev.li").failed_attempts == 0


def test_wrong_second_factors_count_towards_the_lockout(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    password_step(web, "rev.li")
    for _ in range(5):
        code_step(web, "000000")
    assert user(accounts, "rev.li").locked_until is not None
    # The pending sign-in ended with the lockout: the code page sends back to sign-in.
    assert web.get("/sign-in/code").status_code == 302


def test_one_address_failing_on_many_accounts_is_backed_off(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.app.config["ACCOUNTS_SIGN_IN_LIMIT"] = "1000/minute"
    for i in range(20):
        password_step(web, f"guess{i}", "wrong password!!")
    accounts.create("rev.li", Role.REVIEWER)
    assert password_step(web, "rev.li").status_code == 429
    assert "locked-out" in events(accounts)


def test_an_administrator_lock_refuses_sign_in_and_ends_sessions(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    from webapp.accounts.service import lock_user, unlock_user

    password_step(web, "rev.li")
    code_step(web, totp_at(reviewer, accounts.clock()))
    lock_user(accounts.session, "rev.li", now=accounts.clock(), actor="admin")
    assert signed_in_as(web) is None
    assert password_step(web, "rev.li").status_code == 401
    unlock_user(accounts.session, "rev.li", now=accounts.clock(), actor="admin")
    assert password_step(web, "rev.li").status_code == 302


# --- rate limits ---------------------------------------------------------------------------


def test_sign_in_posts_are_rate_limited_per_address(accounts: Accounts, web: FlaskClient) -> None:
    accounts.app.config["ACCOUNTS_SIGN_IN_LIMIT"] = "3/minute"
    token = csrf_token(web)
    form = {"csrf_token": token, "username": "x", "password": "y"}
    codes = [web.post("/sign-in", data=form).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert int(web.post("/sign-in", data=form).headers["Retry-After"]) >= 1


@pytest.mark.redis
def test_rate_limits_are_shared_through_redis(accounts: Accounts, session: object) -> None:
    import uuid

    from flask import Flask

    from tests.services import redis_url
    from webapp import create_app

    url = redis_url()
    base = accounts.app
    prefix = f"cardtrace-test-{uuid.uuid4().hex}"

    def app_on_redis() -> Flask:
        app = create_app(
            {
                "env": "testing",
                "instance_path": base.instance_path,
                "database_url": base.extensions["cardtrace"].settings.database_url,
                "key_dir": base.extensions["cardtrace"].settings.key_dir,
                "SESSION_FACTORY": base.extensions["cardtrace"].make_session,
                "RATELIMIT_STORAGE_URI": url,
                "RATELIMIT_KEY_PREFIX": prefix,
                "ACCOUNTS_SIGN_IN_LIMIT": "2/minute",
            }
        )
        return app

    # Two workers (two apps) share one count: the third attempt is refused by either.
    first, second = app_on_redis().test_client(), app_on_redis().test_client()
    for client in (first, second):
        form = {"csrf_token": csrf_token(client), "username": "x", "password": "y"}
        assert client.post("/sign-in", data=form).status_code == 401
    form = {"csrf_token": csrf_token(first), "username": "x", "password": "y"}
    assert first.post("/sign-in", data=form).status_code == 429


# --- sessions ------------------------------------------------------------------------------


def test_the_session_id_changes_at_sign_in_and_the_old_cookie_is_useless(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    # An attacker plants a cookie they know (got by visiting the sign-in page themself).
    attacker = accounts.app.test_client()
    csrf_token(attacker)
    planted = attacker.get_cookie("session")
    assert planted is not None
    web.set_cookie("session", planted.value)
    password_step(web, "rev.li")
    after_password = web.get_cookie("session")
    code_step(web, totp_at(reviewer, accounts.clock()))
    signed = web.get_cookie("session")
    assert signed is not None and after_password is not None
    assert signed.value not in (planted.value, after_password.value)
    assert signed_in_as(web) == "rev.li"
    # Neither the planted cookie nor the one from half-way signs anybody in.
    for value in (planted.value, after_password.value):
        attacker.set_cookie("session", value)
        assert signed_in_as(attacker) is None


def test_sign_out_revokes_the_session_on_the_server(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    password_step(web, "rev.li")
    code_step(web, totp_at(reviewer, accounts.clock()))
    stolen = web.get_cookie("session")
    assert stolen is not None
    web.post("/sign-out", data={"csrf_token": csrf_token(web, "/")})
    assert signed_in_as(web) is None
    replayer = accounts.app.test_client()
    replayer.set_cookie("session", stolen.value)
    assert signed_in_as(replayer) is None
    assert events(accounts)[-1] == "sign-out"


def test_a_role_change_ends_the_sessions_and_is_signed_on_the_ledger(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    from webapp.accounts.ledger import record_role_change
    from webapp.runtime import current_runtime

    password_step(web, "rev.li")
    code_step(web, totp_at(reviewer, accounts.clock()))
    with accounts.app.app_context():
        ledger = current_runtime().ledger
        change_role(
            accounts.session,
            "rev.li",
            Role.APPROVER,
            now=accounts.clock(),
            actor="admin",
            on_change=lambda u, old, new: record_role_change(
                accounts.session,
                ledger,
                account=u.username,
                role=new,
                previous=old,
                by="admin",
                now=accounts.clock(),
            ),
        )
    assert signed_in_as(web) is None
    entry = accounts.session.scalars(
        select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1)
    ).one()
    assert entry.type == "account.role"
    assert "role-changed" in events(accounts)


def test_an_idle_session_expires(accounts: Accounts, web: FlaskClient, reviewer: str) -> None:
    password_step(web, "rev.li")
    code_step(web, totp_at(reviewer, accounts.clock()))
    accounts.clock.at += timedelta(minutes=20)
    assert signed_in_as(web) == "rev.li"
    accounts.clock.at += timedelta(minutes=20)
    assert signed_in_as(web) == "rev.li"  # the visit 20 minutes in kept it alive
    accounts.clock.at += timedelta(minutes=31)
    assert signed_in_as(web) is None


def test_session_cookies_are_secure_httponly_and_lax(accounts: Accounts, web: FlaskClient) -> None:
    response = web.get("/sign-in")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_sign_in_without_the_right_csrf_token_is_refused_and_writes_nothing(
    accounts: Accounts, web: FlaskClient, reviewer: str, token: str | None
) -> None:
    csrf_token(web)
    before = events(accounts)
    sessions = accounts.session.scalar(select(func.count()).select_from(AccountSession))
    form = {"username": "rev.li", "password": PASSWORD}
    if token is not None:
        form["csrf_token"] = token
    response = web.post("/sign-in", data=form)
    assert response.status_code == 400
    assert 'data-code="csrf-failed"' in response.get_data(as_text=True)
    assert events(accounts) == before
    assert accounts.session.scalar(select(func.count()).select_from(AccountSession)) == sessions


def test_an_admin_form_with_another_sessions_token_is_refused(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.create("root.admin", Role.ADMINISTRATOR)
    enrol(web, "root.admin", accounts.clock())
    other = accounts.app.test_client()
    foreign = csrf_token(other)
    response = web.post(
        "/admin/accounts",
        data={
            "csrf_token": foreign,
            "username": "evil",
            "display_name": "Evil",
            "role": "administrator",
            "password": "x" * 20,
        },
    )
    assert response.status_code == 400
    assert (
        accounts.session.scalars(select(AccountUser).where(AccountUser.username == "evil")).first()
        is None
    )


# --- pages and roles -----------------------------------------------------------------------


def test_pages_need_a_sign_in(accounts: Accounts, web: FlaskClient) -> None:
    for path in ("/", "/admin/accounts", "/admin/api-keys"):
        response = web.get(path)
        assert response.status_code == 302
        assert "/sign-in" in response.headers["Location"]


def test_admin_pages_refuse_other_roles(accounts: Accounts, web: FlaskClient) -> None:
    accounts.create("rev.li", Role.REVIEWER)
    enrol(web, "rev.li", accounts.clock())
    for path in ("/admin/accounts", "/admin/api-keys"):
        assert web.get(path).status_code == 403


def test_an_administrator_creates_a_user_and_changes_roles(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.create("root.admin", Role.ADMINISTRATOR)
    enrol(web, "root.admin", accounts.clock())
    token = csrf_token(web, "/admin/accounts")
    created = web.post(
        "/admin/accounts",
        data={
            "csrf_token": token,
            "username": "ana.lyst",
            "display_name": "Ana",
            "role": "analyst",
            "password": "a long enough password",
            "language": "zh_CN",
        },
    )
    assert created.status_code == 302
    changed = web.post(
        "/admin/accounts/ana.lyst/role", data={"csrf_token": token, "role": "auditor"}
    )
    assert changed.status_code == 302
    assert user(accounts, "ana.lyst").role == "auditor"
    own = web.post("/admin/accounts/root.admin/role", data={"csrf_token": token, "role": "auditor"})
    assert own.status_code == 422
    assert user(accounts, "root.admin").role == "administrator"


def test_an_administrator_creates_rotates_and_revokes_api_keys(
    accounts: Accounts, web: FlaskClient
) -> None:
    accounts.create("root.admin", Role.ADMINISTRATOR)
    enrol(web, "root.admin", accounts.clock())
    token = csrf_token(web, "/admin/api-keys")
    created = web.post(
        "/admin/api-keys",
        data={"csrf_token": token, "name": "till", "party": SHOP, "scopes": ["codes:verify"]},
    )
    assert created.status_code == 201
    key = created.get_data(as_text=True).split('<code class="secret">')[1].split("<")[0]
    assert web.get("/admin/api-keys").get_data(as_text=True).count(key) == 0
    key_id = key[4:16]
    rotated = web.post(f"/admin/api-keys/{key_id}/rotate", data={"csrf_token": token})
    new_key = rotated.get_data(as_text=True).split('<code class="secret">')[1].split("<")[0]
    assert new_key != key and new_key[4:16] == key_id
    assert (
        web.post(f"/admin/api-keys/{key_id}/revoke", data={"csrf_token": token}).status_code == 302
    )
    client = accounts.app.test_client()
    refused = client.post("/test/verify", headers={"Authorization": f"Bearer {new_key}"})
    assert refused.json["code"] == "api-key-revoked"


# --- the client's address ------------------------------------------------------------------


def _failed_sign_in_ip(client: FlaskClient, accounts: Accounts) -> str | None:
    token = csrf_token(client)
    client.post(
        "/sign-in",
        data={"csrf_token": token, "username": "x", "password": "y"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    accounts.session.expire_all()
    return accounts.session.scalars(
        select(AccountEvent.ip).order_by(AccountEvent.id.desc()).limit(1)
    ).one()


def test_a_forwarded_address_is_ignored_without_a_trusted_proxy(
    accounts: Accounts, web: FlaskClient
) -> None:
    # Otherwise anyone could reset the per-address back-off by inventing the header.
    assert _failed_sign_in_ip(web, accounts) == "127.0.0.1"


def test_behind_a_trusted_proxy_the_clients_address_counts(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webapp import create_app

    base = accounts.app.extensions["cardtrace"]
    monkeypatch.setenv("CARDTRACE_PROXY_HOPS", "1")
    app = create_app(
        {
            "env": "testing",
            "instance_path": accounts.app.instance_path,
            "database_url": base.settings.database_url,
            "key_dir": base.settings.key_dir,
            "SESSION_FACTORY": base.make_session,
        }
    )
    assert _failed_sign_in_ip(app.test_client(), accounts) == "203.0.113.9"


def test_an_unknown_username_backs_off_like_a_real_one(
    accounts: Accounts, web: FlaskClient, reviewer: str
) -> None:
    accounts.app.config["ACCOUNTS_SIGN_IN_LIMIT"] = "1000/minute"
    answers = {
        name: [password_step(web, name, "wrong password!!").status_code for _ in range(6)]
        for name in ("rev.li", "no.such.user")
    }
    assert answers["rev.li"] == answers["no.such.user"] == [401] * 5 + [429]
    # What was typed as an unknown username is not stored.
    rows = accounts.session.scalars(select(AccountIpThrottle.ip)).all()
    assert all("no.such.user" not in row for row in rows)


def test_a_merchant_may_enrol_totp_and_then_needs_it(accounts: Accounts, web: FlaskClient) -> None:
    accounts.create("shop.owner", Role.MERCHANT, party=SHOP)
    password_step(web, "shop.owner")
    other = accounts.app.test_client()
    password_step(other, "shop.owner")  # a second session, begun with the password alone
    page = web.get("/account/second-factor").get_data(as_text=True)
    secret = page.split('<code class="secret">')[1].split("<")[0].replace(" ", "")
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    shown = web.post(
        "/account/second-factor",
        data={"csrf_token": token, "code": totp_at(secret, accounts.clock())},
    )
    assert shown.status_code == 200 and shown.get_data(as_text=True).count("<li><code>") == 10
    assert signed_in_as(web) == "shop.owner"
    assert signed_in_as(other) is None
    web.post("/sign-out", data={"csrf_token": csrf_token(web, "/")})
    assert password_step(web, "shop.owner").headers["Location"].endswith("/sign-in/code")

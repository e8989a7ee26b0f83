"""The demo's last step: one account per role, printed with what signing in needs; and the
demo command that ends by serving them (or not, with --no-serve)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.parties import Party
from tests.codes_support import PENDING_SHOP, SHOP, build_chain
from tests.ledger_support import NOW
from tests.processes import run
from tests.test_accounts_support import PASSWORD, code_step, password_step, totp_at
from webapp.accounts.models import AccountUser
from webapp.accounts.roles import Role
from webapp.accounts.service import create_user
from webapp.demo_accounts import DemoAccounts, demo_username, run_accounts_demo
from webapp.runtime import current_runtime

ACCOUNT_RE = re.compile(r"^  (demo\.[a-z]+) +([a-z]+)")
PASSWORD_RE = re.compile(r"^      password: +(\S+)$")
SECRET_RE = re.compile(r"^      TOTP secret: ([A-Z2-7]+) ")


def printed(lines: list[str]) -> dict[str, dict[str, str]]:
    """What the terminal showed for each account: role, password and TOTP secret."""
    shown: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in lines:
        if match := ACCOUNT_RE.match(line):
            current = shown.setdefault(match.group(1), {"role": match.group(2)})
        elif match := PASSWORD_RE.match(line):
            current["password"] = match.group(1)
        elif match := SECRET_RE.match(line):
            current["secret"] = match.group(1)
    return shown


@pytest.fixture()
def demo_app(app: Flask, session: Session) -> Flask:
    """The app over a supply chain with one approved shop holding codes."""
    with app.app_context():
        build_chain(session, current_runtime().ledger)
        session.commit()
    return app


def account_step(app: Flask) -> tuple[DemoAccounts, dict[str, dict[str, str]]]:
    lines: list[str] = []
    accounts = run_accounts_demo(app, lines.append)
    return accounts, printed(lines)


def users(session: Session) -> dict[str, AccountUser]:
    return {u.username: u for u in session.scalars(select(AccountUser))}


def password_matches(user: AccountUser, password: str) -> bool:
    try:
        return PasswordHasher().verify(user.password_hash, password)
    except VerificationError:
        return False


def test_the_demo_makes_one_account_per_role_and_prints_it(
    demo_app: Flask, session: Session
) -> None:
    accounts, shown = account_step(demo_app)
    assert set(shown) == {demo_username(r) for r in Role}
    assert {name: s["role"] for name, s in shown.items()} == {demo_username(r): r for r in Role}
    made = users(session)
    for name, seen in shown.items():
        assert made[name].role == seen["role"]
        assert password_matches(made[name], seen["password"])
        staff = Role(seen["role"]).is_staff
        assert ("secret" in seen) is staff
        assert (made[name].totp_confirmed_at is not None) is staff
    assert not accounts.not_ours


def test_the_demo_merchant_is_bound_to_an_approved_merchant(
    demo_app: Flask, session: Session
) -> None:
    account_step(demo_app)
    merchant = users(session)[demo_username(Role.MERCHANT)]
    assert merchant.party == SHOP
    party = session.get(Party, SHOP)
    assert party is not None and (party.kind, party.status) == ("merchant", "approved")


def test_no_password_or_secret_is_kept_in_clear(demo_app: Flask, session: Session) -> None:
    _, shown = account_step(demo_app)
    made = users(session)
    for name, seen in shown.items():
        stored = f"{made[name].password_hash}|{made[name].totp_secret!r}"
        assert seen["password"] not in stored
        assert "secret" not in seen or seen["secret"].encode() not in made[name].totp_secret  # type: ignore[operator]


def test_running_it_again_neither_fails_nor_duplicates(demo_app: Flask, session: Session) -> None:
    _, first = account_step(demo_app)
    _, second = account_step(demo_app)
    made = users(session)
    assert sorted(made) == sorted(second) == sorted(first)
    for name in first:
        assert second[name]["password"] != first[name]["password"]
        assert password_matches(made[name], second[name]["password"])
        assert not password_matches(made[name], first[name]["password"])
        # An authenticator app set up from the first run goes on working.
        assert second[name].get("secret") == first[name].get("secret")


def test_a_printed_staff_account_signs_in_with_password_and_totp(demo_app: Flask) -> None:
    _, shown = account_step(demo_app)
    reviewer = shown[demo_username(Role.REVIEWER)]
    web = demo_app.test_client()
    response = password_step(web, "demo.reviewer", reviewer["password"])
    assert response.headers["Location"].endswith("/sign-in/code")
    assert code_step(web, totp_at(reviewer["secret"], NOW)).status_code == 302
    home = web.get("/")
    assert home.status_code == 200
    assert "demo.reviewer" in home.get_data(as_text=True)


def test_the_printed_merchant_signs_in_with_its_password(demo_app: Flask) -> None:
    _, shown = account_step(demo_app)
    web = demo_app.test_client()
    merchant = shown[demo_username(Role.MERCHANT)]
    response = password_step(web, "demo.merchant", merchant["password"])
    assert response.status_code == 302
    assert web.get("/").status_code == 200


def test_an_account_the_demo_did_not_create_is_left_alone(
    demo_app: Flask, session: Session
) -> None:
    create_user(session, "demo.auditor", "Real Auditor", Role.AUDITOR, PASSWORD, now=NOW)
    session.commit()
    before = users(session)["demo.auditor"].password_hash
    accounts, shown = account_step(demo_app)
    assert accounts.not_ours == ["demo.auditor"]
    assert "demo.auditor" not in shown
    after = users(session)["demo.auditor"]
    assert after.password_hash == before and after.totp_secret is None


def test_an_account_an_administrator_called_demo_created_is_not_the_demos(
    demo_app: Flask, session: Session
) -> None:
    create_user(session, "demo", "Demo Admin", Role.ADMINISTRATOR, PASSWORD, now=NOW)
    create_user(
        session, "demo.analyst", "Real Analyst", Role.ANALYST, PASSWORD, now=NOW, actor="demo"
    )
    session.commit()
    accounts, _ = account_step(demo_app)
    assert accounts.not_ours == ["demo.analyst"]


def test_a_demo_merchant_whose_shop_was_suspended_moves_to_an_approved_one(
    demo_app: Flask, session: Session
) -> None:
    account_step(demo_app)
    with demo_app.app_context():
        ledger = current_runtime().ledger
        for shop, status in ((PENDING_SHOP, "approved"), (SHOP, "suspended")):
            body = {"party": shop, "status": status, "reason": "demo"}
            ledger.append_as_platform(
                session, [ledger.statement("party.status", body, now=NOW)], now=NOW
            )
        session.commit()
    account_step(demo_app)
    assert users(session)[demo_username(Role.MERCHANT)].party == PENDING_SHOP


def test_demo_with_no_serve_returns_and_keeps_no_secret_in_the_instance(tmp_path: Path) -> None:
    assert run(["init"], tmp_path).returncode == 0
    result = run(["demo", "--scale", "0.001", "--no-serve"], tmp_path)
    assert result.returncode == 0, result.stderr
    shown = printed(result.stdout.splitlines())
    assert set(shown) == {demo_username(r) for r in Role}
    assert "Ctrl-C" not in result.stdout
    clear = [s["password"] for s in shown.values()] + [
        s["secret"] for s in shown.values() if "secret" in s
    ]
    for path in (tmp_path / "instance").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not [c for c in clear if c.encode() in content], path

# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Code lookup page: verdicts, reasons, custody, embedded proofs that verify, the PIN
kept out of pages, links and the database, bad input, and who may open it."""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.db import Base
from provenance.ledger import LedgerEntry
from provenance.merkle import verify_inclusion
from tests.codes_support import (
    ISSUER,
    PENDING_SHOP,
    PRODUCT,
    SHOP,
    Chain,
    build_chain,
    fp,
    pin,
    serial,
)
from tests.ledger_support import NOW
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    PASSWORD,
    Accounts,
    accounts,
    csrf_token,
    enrol,
    sign_in_as,
    web,
)
from webapp.accounts.roles import Role
from webapp.runtime import current_runtime

ALLOWED = (Role.MERCHANT, Role.REVIEWER, Role.APPROVER, Role.ANALYST, Role.AUDITOR)
PROOF_DATA_RE = re.compile(
    r'<script type="application/json" id="proof-data">(.*?)</script>', re.DOTALL
)


@pytest.fixture()
def chain(accounts: Accounts, session: Session) -> Chain:
    with accounts.app.app_context():
        built = build_chain(session, current_runtime().ledger)
        session.flush()
        return built


def checkpoint(accounts: Accounts, session: Session) -> None:
    with accounts.app.app_context():
        current_runtime().ledger.issue_checkpoint(session, now=NOW)
        session.flush()


def sign_in(accounts: Accounts, client: FlaskClient, role: Role, party: str = SHOP) -> None:
    username = f"{role.value}.one"
    sign_in_as(accounts, client, role, username, party=party)


def raw(i: int, **overrides: str) -> dict[str, str]:
    return {"issuer": ISSUER, "product": PRODUCT, "serial": serial(i), "pin": pin(i), **overrides}


def look_up(client: FlaskClient, **fields: str) -> Any:
    token = csrf_token(client, "/codes")
    return client.post("/codes", data={"csrf_token": token, **fields})


def decision(page: str) -> str:
    found = re.search(r'id="verdict" data-decision="([a-z]+)"', page)
    assert found, page
    return found.group(1)


def reason_codes(page: str) -> list[str]:
    return re.findall(r'<li data-code="([a-z-]+)"', page)


def proof_data(page: str) -> dict[str, Any]:
    found = PROOF_DATA_RE.search(page)
    assert found, page
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def row_count(session: Session) -> dict[str, int]:
    return {
        table.name: session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


# --- verdicts ------------------------------------------------------------------------


def test_a_shops_own_listed_code_is_allowed(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.MERCHANT)
    response = look_up(web, **raw(0))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert decision(page) == "allow"
    assert reason_codes(page) == []
    assert 'id="custody"' in page
    for kind in ("batch.codes", "batch.issue", "code.transfer", "code.list"):
        assert f"<code>{kind}</code>" in page
    assert fp(0).hex() in page


def test_a_code_another_shop_holds_is_blocked_with_its_reason(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.MERCHANT, party=PENDING_SHOP)
    page = look_up(web, **raw(0)).get_data(as_text=True)
    assert decision(page) == "block"
    assert reason_codes(page) == ["custody-break", "merchant-not-approved"]
    assert "The selling merchant does not hold this code" in page


def test_reasons_are_shown_in_chinese_for_a_chinese_reader(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    web.post("/language", data={"csrf_token": csrf_token(web, "/codes"), "language": "zh_CN"})
    page = look_up(web, merchant=PENDING_SHOP, **raw(0)).get_data(as_text=True)
    assert decision(page) == "block"
    assert "销售商户并不持有该卡密" in page
    assert "The selling merchant does not hold this code" not in page


def test_an_unknown_code_is_blocked_as_of_unknown_origin(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.REVIEWER)
    page = look_up(web, merchant=SHOP, **raw(0, serial="99990000")).get_data(as_text=True)
    assert decision(page) == "block"
    assert reason_codes(page) == ["unknown-origin"]
    assert "The ledger holds no custody record of this code." in page


def test_a_known_serial_with_another_pin_is_named(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.MERCHANT)
    page = look_up(web, **raw(0, pin="123412341234")).get_data(as_text=True)
    assert reason_codes(page) == ["same-serial-different-pin"]


def test_staff_choose_the_merchant_and_a_merchant_is_always_itself(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.MERCHANT)
    # A merchant naming another party still verifies as its own.
    page = look_up(web, merchant=PENDING_SHOP, **raw(0)).get_data(as_text=True)
    assert decision(page) == "allow"
    assert 'name="merchant"' not in page


def test_staff_see_the_merchants_to_choose_from(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.APPROVER)
    page = web.get("/codes").get_data(as_text=True)
    assert f'<option value="{SHOP}">' in page and f'<option value="{ISSUER}">' not in page
    assert decision(look_up(web, merchant=SHOP, **raw(1)).get_data(as_text=True)) == "allow"


def test_lookup_by_fingerprint_in_a_link(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.AUDITOR)
    response = web.get(f"/codes?fingerprint={fp(2).hex()}&merchant={SHOP}")
    assert response.status_code == 200
    assert decision(response.get_data(as_text=True)) == "allow"
    b64 = base64.urlsafe_b64encode(fp(12)).decode().rstrip("=")
    page = look_up(web, fingerprint=b64, merchant=SHOP).get_data(as_text=True)
    assert reason_codes(page) == ["custody-break"]


def test_staff_links_lead_to_the_ledger_and_a_merchants_do_not(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    page = look_up(web, merchant=SHOP, **raw(0)).get_data(as_text=True)
    assert 'href="/ledger/entries/' in page
    other = accounts.app.test_client()
    sign_in(accounts, other, Role.MERCHANT)
    page = look_up(other, **raw(0)).get_data(as_text=True)
    assert 'href="/ledger/entries/' not in page


# --- proofs ------------------------------------------------------------------------------


def test_the_embedded_proofs_verify_against_the_checkpoint(
    accounts: Accounts, chain: Chain, session: Session, web: FlaskClient
) -> None:
    checkpoint(accounts, session)
    sign_in(accounts, web, Role.MERCHANT)
    page = look_up(web, **raw(0)).get_data(as_text=True)
    data = proof_data(page)
    with accounts.app.app_context():
        latest = current_runtime().ledger.latest_checkpoint(session)
        assert latest is not None
    assert data["checkpoint"]["size"] == latest.size
    assert base64.b64decode(data["checkpoint"]["root"]) == latest.root
    assert data["checkpoint"]["origin"] == latest.note.split("\n")[0]
    custody = [int(s) for s in re.findall(r'<tr data-seq="(\d+)">\s*<td>#', page)]
    assert [item["seq"] for item in data["inclusion"]] == sorted(set(custody))
    root = base64.b64decode(data["checkpoint"]["root"])
    for item in data["inclusion"]:
        verify_inclusion(
            base64.b64decode(item["leaf_hash"]),
            item["seq"],
            item["size"],
            [base64.b64decode(h) for h in item["proof"]],
            root,
        )
        stored = session.scalar(select(LedgerEntry.leaf_hash).where(LedgerEntry.seq == item["seq"]))
        assert stored == base64.b64decode(item["leaf_hash"])
    assert 'id="verify-proofs"' in page and "js/codes.js" in page
    assert html.escape(latest.note.split("\n")[0]) in page


def test_entries_after_the_checkpoint_are_listed_as_pending(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.MERCHANT)
    page = look_up(web, **raw(0)).get_data(as_text=True)
    assert 'id="pending"' in page and 'id="proof-data"' not in page


def test_the_page_holds_no_inline_code(
    accounts: Accounts, chain: Chain, session: Session, web: FlaskClient
) -> None:
    checkpoint(accounts, session)
    sign_in(accounts, web, Role.MERCHANT)
    page = look_up(web, **raw(0)).get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL)
    for attributes, body in scripts:
        assert 'type="application/json"' in attributes or (
            'src="' in attributes and not body.strip()
        )
    assert " style=" not in page and not re.search(r"\son[a-z]+=", page)


# --- the PIN -----------------------------------------------------------------------------


def test_the_pin_is_never_echoed_nor_stored(
    accounts: Accounts, chain: Chain, session: Session, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.MERCHANT)
    before = row_count(session)
    secret = pin(3)
    for fields in (raw(3), raw(3, serial="bad serial!"), raw(3, product="nope")):
        response = look_up(web, **fields)
        page = response.get_data(as_text=True)
        assert secret not in page
        assert secret not in response.headers.get("Location", "")
    session.expire_all()
    assert row_count(session) == before
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            assert all(secret not in str(value) for value in row)


def test_a_pin_in_a_link_is_refused_and_not_repeated(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.MERCHANT)
    response = web.get(f"/codes?issuer={ISSUER}&product={PRODUCT}&serial={serial(0)}&pin={pin(0)}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert pin(0) not in page and 'id="verdict"' not in page
    assert "A PIN is never sent in a link" in page


def test_the_pin_field_is_a_password_field_left_empty(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.MERCHANT)
    page = look_up(web, **raw(0)).get_data(as_text=True)
    field = re.search(r'<input id="pin"[^>]*>', page)
    assert field and 'type="password"' in field.group(0) and "value=" not in field.group(0)
    assert f'value="{serial(0)}"' in page  # the other fields are filled in again


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({}, 400, "Give the code (issuer, product, serial and PIN) or its fingerprint."),
        ({"issuer": ISSUER, "serial": "1"}, 400, "A code needs its issuer, product, serial"),
        ({**raw(0), "fingerprint": "ab" * 32}, 400, "Give either the code or its fingerprint"),
        ({"fingerprint": "zz" * 32}, 422, "A fingerprint is 64 hex digits"),
        ({"fingerprint": "abcd"}, 422, "A fingerprint is 64 hex digits"),
        ({"fingerprint": "a" * 65}, 422, "A fingerprint is 64 hex digits"),
        (raw(0, issuer="ghost-issuer"), 422, "No issuer of that name is registered."),
        (raw(0, product="acme-cards.nothing"), 422, "That issuer has registered no such"),
        (raw(0, serial="88 00/01"), 422, "The serial must be letters and digits"),
        (raw(0, pin="12*34"), 422, "The PIN must be letters and digits"),
    ],
)
def test_bad_input_is_a_clear_error(
    accounts: Accounts,
    chain: Chain,
    session: Session,
    web: FlaskClient,
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    sign_in(accounts, web, Role.REVIEWER)
    before = row_count(session)
    response = look_up(web, merchant=SHOP, **fields)
    assert response.status_code == status
    page = response.get_data(as_text=True)
    assert 'id="lookup-error"' in page and message in page
    assert 'id="verdict"' not in page
    session.expire_all()
    assert row_count(session) == before


@pytest.mark.parametrize(
    ("merchant", "status"), [("", 400), ("no-such-shop", 422), (ISSUER, 422), ("x" * 70, 422)]
)
def test_staff_must_name_a_registered_merchant(
    accounts: Accounts, chain: Chain, web: FlaskClient, merchant: str, status: int
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    response = look_up(web, merchant=merchant, **raw(0))
    assert response.status_code == status
    page = response.get_data(as_text=True)
    assert 'id="lookup-error"' in page and 'id="verdict"' not in page


def test_typed_text_is_escaped(accounts: Accounts, chain: Chain, web: FlaskClient) -> None:
    sign_in(accounts, web, Role.ANALYST)
    xss = '"><script>alert(1)</script>'
    page = look_up(web, merchant=xss, issuer=xss, product="p", serial="1", pin="2").get_data(
        as_text=True
    )
    assert "<script>alert(1)" not in page
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_lookup_without_a_csrf_token_is_refused(
    accounts: Accounts, chain: Chain, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.MERCHANT)
    response = web.post("/codes", data=raw(0))
    assert response.status_code in (400, 403)
    assert pin(0) not in response.get_data(as_text=True)


# --- roles -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_or_may_not_look_up(
    accounts: Accounts, chain: Chain, web: FlaskClient, role: Role
) -> None:
    sign_in(accounts, web, role)
    allowed = role in ALLOWED
    assert web.get("/codes").status_code == (200 if allowed else 403)
    fields = raw(0) if role is Role.MERCHANT else {**raw(0), "merchant": SHOP}
    token = csrf_token(web, "/")
    response = web.post("/codes", data={"csrf_token": token, **fields})
    assert response.status_code == (200 if allowed else 403)
    if allowed:
        assert decision(response.get_data(as_text=True)) == "allow"
    nav = web.get("/").get_data(as_text=True)
    assert ('href="/codes"' in nav) is allowed


def test_signed_out_visitors_are_sent_to_sign_in(accounts: Accounts, web: FlaskClient) -> None:
    response = web.get("/codes")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]

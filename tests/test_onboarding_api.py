"""The onboarding API: bad input refused by field with nothing written, identities from
the credential only (a personal API key or a session), four eyes through every endpoint,
and suspension seen by verify at once."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.documents import MAX_DOCUMENT_BYTES
from merchant_onboarding.models import Application, Blob, Document
from provenance.ledger import LedgerEntry
from provenance.parties import Party
from tests.api_support import api_key
from tests.codes_support import SHOP, build_chain, serial
from tests.codes_support import pin as code_pin
from tests.ledger_support import NOW, register_party
from tests.onboarding_support import (
    BANK_ACCOUNT,
    ApplicationPayload,
    credit_code,
    id_number,
    pdf,
    png,
    registered,
    wrong_check_digit,
)
from tests.personal_keys_support import onboarding_officer_keys, personal_key, promote
from tests.screening_support import import_csv
from webapp.accounts.roles import Role
from webapp.runtime import current_runtime

PROBLEM = "application/problem+json"
BASE = "/api/v1/onboarding"


@pytest.fixture()
def genesis(app: Flask, session: Session) -> None:
    with app.app_context():
        current_runtime().ledger.ensure_genesis(session, name="test", now=NOW)
        session.flush()


@pytest.fixture()
def tokens(app: Flask, session: Session, genesis: None) -> dict[str, str]:
    return onboarding_officer_keys(app, session)


def merchant_key(client: FlaskClient, session: Session, merchant: str) -> str:
    """A personal key of an account of ``merchant`` (registered as a merchant party)."""
    app = client.application
    with app.app_context():
        ledger = current_runtime().ledger
        ledger.ensure_genesis(session, name="test", now=NOW)
        if session.get(Party, merchant) is None:
            register_party(session, ledger, merchant, kind="merchant")
            session.flush()
    return personal_key(app, session, f"owner.{merchant}", Role.MERCHANT, party=merchant)


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def post(client: FlaskClient, path: str, token: str | None = None, **kw: Any) -> Any:
    return client.post(BASE + path, headers=auth(token), **kw)


def counts(session: Session) -> tuple[int, int, int, int]:
    return tuple(  # type: ignore[return-value]
        session.scalar(select(func.count()).select_from(t)) or 0
        for t in (Application, Document, Blob, LedgerEntry)
    )


def open_draft(client: FlaskClient, session: Session, payload: dict[str, Any]) -> Any:
    """Post ``payload`` as its merchant's account (through a personal key)."""
    token = merchant_key(client, session, payload["merchant"])
    return post(client, "/applications", token, json=payload)


def create(client: FlaskClient, session: Session, **overrides: Any) -> tuple[int, str]:
    """A draft, and the personal key of its merchant's account."""
    payload = ApplicationPayload(**overrides)
    token = merchant_key(client, session, payload["merchant"])
    response = post(client, "/applications", token, json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"], token


def upload(
    client: FlaskClient,
    app_id: int,
    token: str,
    content: bytes,
    name: str = "agreement.pdf",
    kind: str = "clearing_agreement",
) -> Any:
    return post(
        client,
        f"/applications/{app_id}/documents",
        token,
        data={"kind": kind, "file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def submitted(client: FlaskClient, session: Session, **overrides: Any) -> tuple[int, str]:
    payload = ApplicationPayload(**overrides)
    registered(session, payload)
    session.flush()
    app_id, token = create(client, session, **payload)
    assert upload(client, app_id, token, pdf(payload["merchant"])).status_code == 201
    answer = post(client, f"/applications/{app_id}/submit", token)
    assert answer.status_code == 200, answer.get_json()
    return app_id, token


def approved(client: FlaskClient, session: Session, tokens: dict[str, str], **kw: Any) -> int:
    app_id, _ = submitted(client, session, **kw)
    steps: list[tuple[str, str, dict[str, Any] | None]] = [
        ("review", "li.reviewer", None),
        ("recommendation", "li.reviewer", {"recommendation": "approve", "reasons": ["ok"]}),
        ("decision", "wang.approver", {"decision": "approve", "reasons": ["ok"]}),
    ]
    for step, officer, body in steps:
        response = post(client, f"/applications/{app_id}/{step}", tokens[officer], json=body)
        assert response.status_code == 200, response.get_json()
    return app_id


# --- applications in, masked out ----------------------------------------------------------


def test_creating_an_application_returns_it_masked_and_the_merchants_own(
    client: FlaskClient, session: Session, genesis: None
) -> None:
    payload = ApplicationPayload()
    response = open_draft(client, session, payload)
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"]["state"] == "draft" and "applicant_token" not in body
    assert body["entity"]["legal_rep_id_number"] == (
        payload["legal_rep_id_number"][:3] + "*" * 11 + payload["legal_rep_id_number"][-4:]
    )
    assert body["payments"]["bank_account"] == "6222***********0123"
    text = response.get_data(as_text=True)
    assert payload["legal_rep_id_number"] not in text and BANK_ACCOUNT not in text
    row = session.get(Application, body["id"])
    assert row is not None and row.bank_account_sealed is not None
    assert BANK_ACCOUNT.encode() not in row.bank_account_sealed
    assert row.merchant == payload["merchant"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"credit_code": wrong_check_digit(credit_code())}, "credit_code"),
        ({"legal_rep_id_number": wrong_check_digit(id_number())}, "legal_rep_id_number"),
        (
            {
                "owners": [
                    {"name": "王芳", "share": "50", "id_number": wrong_check_digit(id_number(7))}
                ]
            },
            "owners.0.id_number",
        ),
        ({"bank_account": "62-22 02 12x"}, "bank_account"),
        ({"domain": "not a domain"}, "domain"),
        ({"fund_custody": "under the mattress"}, "fund_custody"),
        ({"favourite_colour": "red"}, "favourite_colour"),
        ({"merchant": "Shop With Spaces"}, "merchant"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    client: FlaskClient, session: Session, genesis: None, overrides: dict[str, Any], field: str
) -> None:
    token = merchant_key(client, session, "shop-bad-input")
    before = counts(session)
    payload = ApplicationPayload(**overrides)
    response = post(client, "/applications", token, json=payload)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["field"] == field
    assert field in body["detail"]
    for secret in (payload.get("legal_rep_id_number"), payload.get("bank_account")):
        assert secret is None or secret not in response.get_data(as_text=True)
    assert counts(session) == before


def test_a_wrong_check_digit_is_called_a_wrong_check_digit(
    client: FlaskClient, session: Session, genesis: None
) -> None:
    payload = ApplicationPayload(credit_code=wrong_check_digit(credit_code()))
    detail = open_draft(client, session, payload).get_json()["detail"]
    assert "check digit is wrong" in detail


def test_a_duplicate_credit_code_is_refused_and_writes_nothing(
    client: FlaskClient, session: Session, genesis: None
) -> None:
    code = credit_code()
    create(client, session, credit_code=code)
    payload = ApplicationPayload(credit_code=code)
    token = merchant_key(client, session, payload["merchant"])
    before = counts(session)
    response = post(client, "/applications", token, json=payload)
    assert response.status_code == 409
    body = response.get_json()
    assert body["code"] == "duplicate-credit-code" and body["field"] == "credit_code"
    assert counts(session) == before


def test_a_credit_code_may_apply_again_after_a_rejection(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    code = credit_code()
    app_id, _ = submitted(client, session, credit_code=code)
    post(client, f"/applications/{app_id}/review", tokens["li.reviewer"])
    post(
        client,
        f"/applications/{app_id}/recommendation",
        tokens["li.reviewer"],
        json={"recommendation": "reject", "reasons": ["fake licence"]},
    )
    response = post(
        client,
        f"/applications/{app_id}/decision",
        tokens["wang.approver"],
        json={"decision": "reject", "reasons": ["fake licence"]},
    )
    assert response.get_json()["status"]["state"] == "rejected"
    create(client, session, credit_code=code)


# --- documents --------------------------------------------------------------------------


def test_an_oversized_document_is_refused_and_writes_nothing(
    client: FlaskClient, session: Session, genesis: None
) -> None:
    app_id, token = create(client, session)
    before = counts(session)
    big = pdf() + b"0" * MAX_DOCUMENT_BYTES
    response = upload(client, app_id, token, big)
    assert response.status_code == 413
    assert response.get_json()["code"] == "document-too-large"
    assert response.get_json()["field"] == "file"
    assert counts(session) == before


@pytest.mark.parametrize(
    "content",
    [
        b"<html><body>licence</body></html>",
        b"MZ\x90\x00\x03\x00\x00\x00 a program",
        b"PK\x03\x04 an archive",
        b"%PDF-1.7 but never ends",
    ],
)
def test_a_disguised_document_is_refused_whatever_its_name(
    client: FlaskClient, session: Session, genesis: None, content: bytes
) -> None:
    app_id, token = create(client, session)
    before = counts(session)
    response = upload(client, app_id, token, content, name="business-licence.pdf")
    assert response.status_code == 422
    assert response.get_json()["code"] == "document-type"
    assert response.get_json()["field"] == "file"
    assert counts(session) == before


def test_a_document_is_stored_by_sha256_with_the_type_its_bytes_prove(
    client: FlaskClient, session: Session, genesis: None
) -> None:
    import hashlib

    app_id, token = create(client, session)
    content = png()
    response = upload(client, app_id, token, content, name="scan.pdf", kind="id_scan")
    assert response.status_code == 201
    document = response.get_json()["documents"][0]
    assert document["media_type"] == "image/png"
    assert document["sha256"] == hashlib.sha256(content).hexdigest()
    assert document["size"] == len(content)


def test_a_document_form_with_an_unknown_field_is_refused(
    client: FlaskClient, session: Session, genesis: None
) -> None:
    app_id, token = create(client, session)
    response = post(
        client,
        f"/applications/{app_id}/documents",
        token,
        data={"kind": "id_scan", "note": "x", "file": (io.BytesIO(png()), "a.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and response.get_json()["field"] == "note"


def test_a_document_form_with_a_nameless_part_is_refused_and_writes_nothing(
    client: FlaskClient, session: Session, genesis: None
) -> None:
    app_id, token = create(client, session)
    before = counts(session)
    body = (
        b"--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n"
        b'--B\r\nContent-Disposition: form-data; name="kind"\r\n\r\nid_scan\r\n--B--\r\n'
    )
    response = post(
        client,
        f"/applications/{app_id}/documents",
        token,
        data=body,
        content_type="multipart/form-data; boundary=B",
    )
    assert response.status_code == 422 and response.get_json()["code"] == "invalid-input"
    assert counts(session) == before


# --- who acts ---------------------------------------------------------------------------


def test_officer_steps_need_a_credential(
    client: FlaskClient, session: Session, genesis: None
) -> None:
    app_id, _ = submitted(client, session)
    before = counts(session)
    response = post(client, f"/applications/{app_id}/review")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert post(client, f"/applications/{app_id}/review", "cto_forged").status_code == 401
    assert counts(session) == before


def test_creating_needs_a_merchant_account_of_the_applying_party(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    payload = ApplicationPayload()
    other_shop = merchant_key(client, session, "shop-someone-else")
    before = counts(session)
    assert post(client, "/applications", json=payload).status_code == 401
    assert post(client, "/applications", tokens["li.reviewer"], json=payload).status_code == 403
    refused = post(client, "/applications", other_shop, json=payload)
    assert refused.status_code == 403 and refused.get_json()["code"] == "forbidden"
    assert counts(session) == before


def test_a_merchant_cannot_do_an_officers_step(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    app_id, applicant = submitted(client, session)
    for step, body in (
        ("review", None),
        ("recommendation", {"recommendation": "approve", "reasons": ["me"]}),
        ("decision", {"decision": "approve", "reasons": ["me"]}),
        ("suspend", {"reasons": ["me"]}),
    ):
        response = post(client, f"/applications/{app_id}/{step}", applicant, json=body)
        assert response.status_code == 403, step
    assert client.get(f"{BASE}/queue", headers=auth(applicant)).status_code == 403


def test_a_merchant_reaches_no_other_merchants_application_by_any_path(
    client: FlaskClient, session: Session, genesis: None
) -> None:
    mine, token = create(client, session)
    theirs, _ = create(client, session)
    assert client.get(f"{BASE}/applications/{mine}", headers=auth(token)).status_code == 200
    before = counts(session)
    document = {"kind": "id_scan", "file": (io.BytesIO(png()), "a.png")}
    answers = {"answers": {"1": "x"}}
    for method, path, kw in (
        ("GET", "", {}),
        ("PATCH", "", {"json": {"registered_address": "北京市海淀区"}}),
        ("POST", "/documents", {"data": document, "content_type": "multipart/form-data"}),
        ("POST", "/submit", {}),
        ("POST", "/answers", {"json": answers}),
        ("POST", "/checks", {}),
        ("GET", "/hits", {}),
        ("POST", "/hits/1/decision", {"json": {"decision": "clear", "reasons": ["x"]}}),
        ("POST", "/review", {}),
        ("POST", "/suspend", {"json": {"reasons": ["x"]}}),
    ):
        response = client.open(
            f"{BASE}/applications/{theirs}{path}", method=method, headers=auth(token), **kw
        )
        assert response.status_code == 404, (method, path, response.get_json())
        assert response.get_json()["code"] == "application-not-found"
        assert str(theirs) in response.get_json()["detail"]
    assert counts(session) == before


def test_no_request_field_can_name_the_acting_officer(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    app_id, _ = submitted(client, session)
    post(client, f"/applications/{app_id}/review", tokens["li.reviewer"])
    post(
        client,
        f"/applications/{app_id}/recommendation",
        tokens["li.reviewer"],
        json={"recommendation": "approve", "reasons": ["ok"]},
    )
    for field in ("by", "officer", "actor"):
        response = post(
            client,
            f"/applications/{app_id}/decision",
            tokens["li.reviewer"],
            json={"decision": "approve", "reasons": ["ok"], field: "wang.approver"},
        )
        assert response.status_code == 422 and response.get_json()["field"] == field


def test_four_eyes_through_the_api(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    app_id, _ = submitted(client, session)
    both = tokens["chen.officer"]
    post(client, f"/applications/{app_id}/review", both)
    post(
        client,
        f"/applications/{app_id}/recommendation",
        both,
        json={"recommendation": "approve", "reasons": ["ok"]},
    )
    promote(session)  # the reviewer who recommended is now an approver
    before = counts(session)
    response = post(
        client,
        f"/applications/{app_id}/decision",
        both,
        json={"decision": "approve", "reasons": ["ok"]},
    )
    assert response.status_code == 409 and response.get_json()["code"] == "four-eyes"
    assert counts(session) == before
    reviewer_decides = post(
        client,
        f"/applications/{app_id}/decision",
        tokens["li.reviewer"],
        json={"decision": "approve", "reasons": ["ok"]},
    )
    assert reviewer_decides.status_code == 403
    ok = post(
        client,
        f"/applications/{app_id}/decision",
        tokens["wang.approver"],
        json={"decision": "approve", "reasons": ["ok"]},
    )
    assert ok.status_code == 200 and ok.get_json()["status"]["state"] == "approved"


def test_an_officer_who_amended_an_application_cannot_approve_it(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    app_id, _ = submitted(client, session)
    both = tokens["chen.officer"]
    post(client, f"/applications/{app_id}/review", tokens["li.reviewer"])
    amended = client.patch(
        f"{BASE}/applications/{app_id}",
        headers=auth(both),
        json={"registered_address": "北京市海淀区中关村大街1号"},
    )
    assert amended.status_code == 200
    post(
        client,
        f"/applications/{app_id}/recommendation",
        tokens["li.reviewer"],
        json={"recommendation": "approve", "reasons": ["ok"]},
    )
    promote(session)  # the reviewer who amended is now an approver
    response = post(
        client,
        f"/applications/{app_id}/decision",
        both,
        json={"decision": "approve", "reasons": ["ok"]},
    )
    assert response.status_code == 409 and response.get_json()["code"] == "own-change"


def test_reinstatement_through_the_api_needs_two_officers(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    app_id = approved(client, session, tokens)
    both = tokens["chen.officer"]
    post(client, f"/applications/{app_id}/suspend", both, json={"reasons": ["alert 9"]})
    post(
        client,
        f"/applications/{app_id}/recommendation",
        both,
        json={"recommendation": "reinstate", "reasons": ["cleared"]},
    )
    promote(session)  # the reviewer who recommended is now an approver
    alone = post(client, f"/applications/{app_id}/reinstate", both, json={"reasons": ["cleared"]})
    assert alone.status_code == 409 and alone.get_json()["code"] == "four-eyes"
    second = post(
        client,
        f"/applications/{app_id}/reinstate",
        tokens["wang.approver"],
        json={"reasons": ["ok"]},
    )
    assert second.status_code == 200 and second.get_json()["status"]["state"] == "approved"


def test_an_invalid_transition_is_a_conflict(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    app_id, _ = create(client, session)
    response = post(client, f"/applications/{app_id}/review", tokens["li.reviewer"])
    assert response.status_code == 409
    assert response.get_json()["code"] == "invalid-transition"


# --- questions, queue, history ------------------------------------------------------------


def test_questions_and_answers_go_round_the_loop(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    app_id, applicant = submitted(client, session)
    post(client, f"/applications/{app_id}/review", tokens["li.reviewer"])
    asked = post(
        client,
        f"/applications/{app_id}/questions",
        tokens["li.reviewer"],
        json={"questions": ["Who holds the customer funds?"]},
    )
    assert asked.get_json()["status"]["state"] == "needs_information"
    question = asked.get_json()["questions"][0]
    answered = post(
        client,
        f"/applications/{app_id}/answers",
        applicant,
        json={"answers": {str(question["id"]): "银联商务, agreement attached."}},
    )
    body = answered.get_json()
    assert body["status"]["state"] == "in_review"
    assert body["questions"][0]["answer"] == "银联商务, agreement attached."
    assert [h["action"] for h in body["history"]] == [
        "create",
        "submit",
        "start_review",
        "request_information",
        "answer",
    ]
    assert body["checks"][0]["run"] == 2


def test_the_queue_lists_waiting_applications_with_their_age(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    import_csv(session, "id,name,kind\nP9,Nobody Listed Here,person\n")
    app_id, _ = submitted(client, session)
    response = client.get(f"{BASE}/queue", headers=auth(tokens["li.reviewer"]))
    assert response.status_code == 200
    [item] = response.get_json()["applications"]
    assert item["id"] == app_id and item["state"] == "submitted"
    assert item["waiting_seconds"] == 0 and item["risk_level"] == "low"


# --- suspension reaches verify-before-sale at once ----------------------------------------


def _verify(client: FlaskClient, key: str) -> dict[str, Any]:
    code = {"issuer": "acme-cards", "product": "acme-cards.game-100", "serial": serial(0)}
    code["pin"] = code_pin(0)
    response = client.post(
        "/api/v1/codes/verify",
        json={"merchant": SHOP, "code": code},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def test_a_suspended_merchant_is_blocked_by_verify_in_the_same_request_cycle(
    app: Flask, client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    with app.app_context():
        build_chain(session, current_runtime().ledger)
        session.flush()
    app_id = approved(client, session, tokens, merchant=SHOP)
    sale_system = api_key(app, session)
    assert _verify(client, sale_system)["decision"] == "allow"
    response = post(
        client,
        f"/applications/{app_id}/suspend",
        tokens["li.reviewer"],
        json={"reasons": ["alert"]},
    )
    assert response.status_code == 200
    verdict = _verify(client, sale_system)
    assert verdict["decision"] == "block"
    assert "merchant-suspended" in {r["code"] for r in verdict["reasons"]}


def test_no_secret_reaches_the_logs(
    client: FlaskClient, session: Session, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    payload = ApplicationPayload()
    token = merchant_key(client, session, payload["merchant"])
    post(client, "/applications", token, json=payload)
    post(client, "/applications", token, json={**payload, "credit_code": credit_code()})
    for secret in (payload["legal_rep_id_number"], BANK_ACCOUNT, token, *tokens.values()):
        assert secret not in caplog.text

"""The cases API: officers only, each action a ledger entry, problem+json refusals that
write nothing."""

from __future__ import annotations

import io
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.codes_support import SHOP, build_chain
from tests.test_analysis_alerts import entries


def _setup(client: FlaskClient, session: Session) -> dict[str, str]:
    from tests.personal_keys_support import personal_key
    from webapp.accounts.roles import Role
    from webapp.runtime import current_runtime

    with client.application.app_context():
        build_chain(session, current_runtime().ledger)
    token = personal_key(client.application, session, "li.investigator", Role.ANALYST)
    return {"Authorization": f"Bearer {token}"}


def test_api_opens_and_works_a_case(client: FlaskClient, session: Session) -> None:
    auth = _setup(client, session)
    opened = client.post("/api/v1/cases", json={"title": "Shop selling stolen codes"}, headers=auth)
    assert opened.status_code == 201, opened.get_json()
    case: dict[str, Any] = opened.get_json()
    assert case["status"] == "open" and case["opened_by"] == "li.investigator"
    number = case["id"]
    added = client.post(
        f"/api/v1/cases/{number}/members",
        json={
            "members": [{"kind": "merchant", "value": SHOP}, {"kind": "buyer", "value": "ab" * 16}]
        },
        headers=auth,
    )
    assert added.status_code == 200, added.get_json()
    assert {m["kind"] for m in added.get_json()["members"]} == {"merchant", "buyer"}
    assigned = client.post(
        f"/api/v1/cases/{number}/assignment", json={"assignee": "wang.analyst"}, headers=auth
    )
    assert assigned.get_json()["assignee"] == "wang.analyst"
    noted = client.post(
        f"/api/v1/cases/{number}/notes", json={"text": "called the shop"}, headers=auth
    )
    assert noted.status_code == 201
    attached = client.post(
        f"/api/v1/cases/{number}/attachments",
        data={"file": (io.BytesIO(b"%PDF-1.4 receipt"), "收据.pdf")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert attached.status_code == 201, attached.get_json()
    assert attached.get_json()["attachments"][0]["name"] == "收据.pdf"
    moved = client.post(
        f"/api/v1/cases/{number}/status", json={"status": "under_investigation"}, headers=auth
    )
    assert moved.get_json()["status"] == "under_investigation"
    shown = client.get(f"/api/v1/cases/{number}", headers=auth).get_json()
    assert [e["action"] for e in shown["timeline"]] == [
        "open",
        "add",
        "assign",
        "note",
        "attach",
        "status",
    ]
    assert shown["ledger_seqs"] == [e["seq"] for e in shown["timeline"]]
    related = client.get(f"/api/v1/cases/{number}/entries", headers=auth).get_json()
    assert set(shown["ledger_seqs"]) <= set(related["seqs"])
    listed = client.get("/api/v1/cases?status=under_investigation", headers=auth).get_json()
    assert [c["id"] for c in listed["cases"]] == [number]


def test_api_refuses_without_a_token(client: FlaskClient, session: Session) -> None:
    _setup(client, session)
    size = entries(session)
    refused = client.post("/api/v1/cases", json={"title": "x"})
    assert refused.status_code == 401 and "Bearer" in refused.headers["WWW-Authenticate"]
    assert client.get("/api/v1/cases").status_code == 401
    assert entries(session) == size


def test_api_refusals_are_problems_and_write_nothing(client: FlaskClient, session: Session) -> None:
    auth = _setup(client, session)
    number = client.post("/api/v1/cases", json={"title": "t"}, headers=auth).get_json()["id"]
    size = entries(session)
    cases = [
        ("status", {"status": "reported"}, 409, "case-transition"),
        ("status", {"status": "closed"}, 422, "bad-case-input"),
        ("members", {"members": [{"kind": "buyer", "value": "Zhang San"}]}, 422, "bad-case-input"),
        ("members", {"members": [{"kind": "merchant", "value": "nobody"}]}, 422, "bad-case-input"),
        ("members", {"members": []}, 422, "invalid-input"),
        ("notes", {"text": "x", "by": "someone.else"}, 422, "invalid-input"),
        ("assignment", {"assignee": "Not An Id"}, 422, "bad-case-input"),
    ]
    for path, body, status, code in cases:
        response = client.post(f"/api/v1/cases/{number}/{path}", json=body, headers=auth)
        assert response.status_code == status, (path, body, response.get_json())
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["code"] == code, (path, body)
    missing = client.get("/api/v1/cases/99999", headers=auth)
    assert missing.status_code == 404 and missing.get_json()["code"] == "case-not-found"
    no_file = client.post(f"/api/v1/cases/{number}/attachments", data={}, headers=auth)
    assert no_file.status_code == 422
    assert entries(session) == size

"""Screening through the onboarding API and CLI: the check, the hits, officers' decisions."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.models import HitDecision
from provenance.ledger import LedgerEntry
from tests.onboarding_support import id_number
from tests.personal_keys_support import onboarding_officer_keys, promote
from tests.screening_support import import_csv
from tests.test_onboarding_api import BASE, PROBLEM, auth, post, submitted

WATCHLIST = """id,name,kind,aliases,countries,note
E1,北京黑石贸易有限公司,entity,Beijing Heishi Trading Co Ltd,cn,
P1,王磊,person,Wang Lei,cn,
"""
LISTED: dict[str, Any] = {
    "legal_name": "北京黑石贸易（集团）有限公司",
    "legal_rep_name": "王　磊",
    "owners": [{"name": "王　磊", "share": "100.00", "id_number": id_number(2)}],
}


@pytest.fixture()
def tokens(app: Flask, session: Session) -> dict[str, str]:
    return onboarding_officer_keys(app, session)


def counts(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
        session.scalar(select(func.count()).select_from(HitDecision)) or 0,
    )


@pytest.fixture()
def in_review(client: FlaskClient, session: Session, tokens: dict[str, str]) -> int:
    import_csv(session, WATCHLIST, name="demo-sanctions")
    app_id, _ = submitted(client, session, **LISTED)
    assert post(client, f"/applications/{app_id}/review", tokens["li.reviewer"]).status_code == 200
    return app_id


def hits(client: FlaskClient, app_id: int, token: str) -> dict[str, dict[str, Any]]:
    response = client.get(f"{BASE}/applications/{app_id}/hits", headers=auth(token))
    assert response.status_code == 200, response.get_json()
    return {h["entry_id"]: h for h in response.get_json()["hits"]}


def test_without_a_list_the_api_shows_the_application_not_screened(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    app_id, _ = submitted(client, session)
    body = client.get(
        f"{BASE}/applications/{app_id}", headers=auth(tokens["li.reviewer"])
    ).get_json()
    [check] = [c for c in body["checks"] if c["name"] == "screening"]
    assert (check["result"], check["summary"]) == (
        "warn",
        "not screened: no watch list has been imported",
    )
    assert body["screening_hits"] == []
    assert {c["rule"]: c["points"] for c in body["risk"]["contributions"]}["screening"] == 20


def test_the_api_shows_each_party_screened_and_the_hits(
    client: FlaskClient, session: Session, tokens: dict[str, str], in_review: int
) -> None:
    body = client.get(
        f"{BASE}/applications/{in_review}", headers=auth(tokens["li.reviewer"])
    ).get_json()
    checks = [c for c in body["checks"] if c["name"] == "screening"]
    assert [(c["evidence"]["party"]["roles"], c["result"]) for c in checks] == [
        (["entity"], "fail"),
        (["legal_rep", "owner"], "fail"),
    ]
    rep_hit = checks[1]["evidence"]["hits"][0]
    assert rep_hit["entry_id"] == "P1" and rep_hit["score"] == 100.0
    assert {"width", "whitespace"} <= set(rep_hit["normalisations"])
    assert checks[1]["extract_date"] == "2026-11-20"
    shown = {h["entry_id"]: h for h in body["screening_hits"]}
    assert shown["P1"]["status"] == "open" and shown["P1"]["party"]["name"] == "王　磊"
    assert shown["E1"]["watchlist"] == "demo-sanctions" and shown["E1"]["source"] == "tests"


def test_a_reviewer_clears_hits_and_another_officer_approves(
    client: FlaskClient, session: Session, tokens: dict[str, str], in_review: int
) -> None:
    recommend = {"recommendation": "approve", "reasons": ["ok"]}
    assert (
        post(
            client,
            f"/applications/{in_review}/recommendation",
            tokens["li.reviewer"],
            json=recommend,
        ).status_code
        == 200
    )
    blocked = post(
        client,
        f"/applications/{in_review}/decision",
        tokens["wang.approver"],
        json={"decision": "approve", "reasons": ["ok"]},
    )
    assert blocked.status_code == 409 and blocked.get_json()["code"] == "screening-hit-open"
    for hit in hits(client, in_review, tokens["li.reviewer"]).values():
        response = post(
            client,
            f"/applications/{in_review}/hits/{hit['id']}/decision",
            tokens["chen.officer"],
            json={"decision": "clear", "reasons": ["different person: other ID number"]},
        )
        assert response.status_code == 200, response.get_json()
    shown = hits(client, in_review, tokens["li.reviewer"])
    assert {h["status"] for h in shown.values()} == {"cleared"}
    assert shown["P1"]["decision"]["by"] == "chen.officer"
    promote(session)  # the reviewer who cleared the hits is now an approver
    own = post(
        client,
        f"/applications/{in_review}/decision",
        tokens["chen.officer"],
        json={"decision": "approve", "reasons": ["ok"]},
    )
    assert own.status_code == 409 and own.get_json()["code"] == "own-clearance"
    approved = post(
        client,
        f"/applications/{in_review}/decision",
        tokens["wang.approver"],
        json={"decision": "approve", "reasons": ["ok"]},
    )
    assert approved.status_code == 200 and approved.get_json()["status"]["state"] == "approved"


def test_a_confirmed_hit_refuses_approval_through_the_api(
    client: FlaskClient, session: Session, tokens: dict[str, str], in_review: int
) -> None:
    shown = hits(client, in_review, tokens["li.reviewer"])
    path = f"/applications/{in_review}/hits/{shown['P1']['id']}/decision"
    body = {"decision": "confirm", "reasons": ["same ID number as the listing"]}
    assert post(client, path, tokens["li.reviewer"], json=body).status_code == 200
    path = f"/applications/{in_review}/hits/{shown['E1']['id']}/decision"
    assert (
        post(client, path, tokens["li.reviewer"], json={**body, "decision": "clear"}).status_code
        == 200
    )
    recommend = {"recommendation": "approve", "reasons": ["ok"]}
    post(client, f"/applications/{in_review}/recommendation", tokens["li.reviewer"], json=recommend)
    response = post(
        client,
        f"/applications/{in_review}/decision",
        tokens["wang.approver"],
        json={"decision": "approve", "reasons": ["ok"]},
    )
    assert response.status_code == 409
    assert response.get_json()["code"] == "screening-hit-confirmed"


@pytest.mark.parametrize(
    ("token", "body", "status", "code", "field"),
    [
        ("li.reviewer", {"decision": "clear"}, 422, "invalid-input", "reasons"),
        ("li.reviewer", {"decision": "clear", "reasons": []}, 422, "invalid-input", "reasons"),
        (
            "li.reviewer",
            {"decision": "dismiss", "reasons": ["x"]},
            422,
            "invalid-input",
            "decision",
        ),
        (
            "li.reviewer",
            {"decision": "clear", "reasons": ["x"], "by": "wang.approver"},
            422,
            "invalid-input",
            "by",
        ),
        ("wang.approver", {"decision": "clear", "reasons": ["x"]}, 403, "forbidden", None),
        (None, {"decision": "clear", "reasons": ["x"]}, 401, "unauthenticated", None),
    ],
)
def test_a_bad_hit_decision_is_refused_naming_the_field_and_nothing_written(
    client: FlaskClient,
    session: Session,
    tokens: dict[str, str],
    in_review: int,
    token: str | None,
    body: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    hit_id = hits(client, in_review, tokens["li.reviewer"])["P1"]["id"]
    before = counts(session)
    response = post(
        client,
        f"/applications/{in_review}/hits/{hit_id}/decision",
        tokens[token] if token else None,
        json=body,
    )
    assert response.status_code == status, response.get_json()
    assert response.content_type == PROBLEM
    problem = response.get_json()
    assert problem["code"] == code and problem.get("field") == field
    assert counts(session) == before


def test_an_unknown_hit_is_404_naming_the_hit(
    client: FlaskClient, session: Session, tokens: dict[str, str], in_review: int
) -> None:
    before = counts(session)
    response = post(
        client,
        f"/applications/{in_review}/hits/999999/decision",
        tokens["li.reviewer"],
        json={"decision": "clear", "reasons": ["x"]},
    )
    assert response.status_code == 404
    assert response.get_json()["code"] == "hit-not-found"
    assert response.get_json()["field"] == "hit"
    assert counts(session) == before


def test_a_decided_hit_is_not_decided_again(
    client: FlaskClient, session: Session, tokens: dict[str, str], in_review: int
) -> None:
    hit_id = hits(client, in_review, tokens["li.reviewer"])["P1"]["id"]
    path = f"/applications/{in_review}/hits/{hit_id}/decision"
    assert (
        post(
            client, path, tokens["li.reviewer"], json={"decision": "clear", "reasons": ["x"]}
        ).status_code
        == 200
    )
    before = counts(session)
    again = post(
        client, path, tokens["chen.officer"], json={"decision": "confirm", "reasons": ["y"]}
    )
    assert again.status_code == 409 and again.get_json()["code"] == "hit-decided"
    assert counts(session) == before


def test_the_applicant_cannot_see_or_decide_hits(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    import_csv(session, WATCHLIST, name="demo-sanctions")
    app_id, applicant = submitted(client, session, **LISTED)
    own = client.get(f"{BASE}/applications/{app_id}", headers=auth(applicant)).get_json()
    assert own["screening_hits"] == [] and own["risk"] is None
    assert "screening" not in {c["name"] for c in own["checks"]}
    assert (
        client.get(f"{BASE}/applications/{app_id}/hits", headers=auth(applicant)).status_code == 403
    )
    response = post(
        client,
        f"/applications/{app_id}/hits/1/decision",
        applicant,
        json={"decision": "clear", "reasons": ["x"]},
    )
    assert response.status_code == 403

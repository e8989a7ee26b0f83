"""The risk API: officers by personal API key, rule versions refused with their position and nothing
written, four eyes, backtests."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.ledger import LedgerEntry
from tests.codes_support import SHOP, build_chain, sale_body
from tests.ledger_support import NOW
from tests.personal_keys_support import personal_key
from webapp.accounts.roles import Role
from webapp.runtime import current_runtime

BASE = "/api/v1/risk"
PROBLEM = "application/problem+json"


@pytest.fixture()
def tokens(app: Flask, session: Session) -> dict[str, str]:
    with app.app_context():
        current_runtime().ledger.ensure_genesis(session, name="test", now=NOW)
    # An analyst writes rules; approvers write and approve them (never their own).
    return {
        username: personal_key(app, session, username, role)
        for username, role in (
            ("li.analyst", Role.ANALYST),
            ("wang.approver", Role.APPROVER),
            ("chen.approver", Role.APPROVER),
        )
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rule(**changes: Any) -> dict[str, Any]:
    body = {
        "rule": "burst-buyer",
        "condition": "buyer.count_1m >= 3",
        "action": "block",
        "reason": "burst-buyer",
        "en": "Too many purchases in a minute.",
        "zh": "一分钟内购买次数过多。",
    }
    body.update(changes)
    return body


def entries(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def test_rules_need_a_credential(client: FlaskClient, tokens: dict[str, str]) -> None:
    response = client.get(f"{BASE}/rules")
    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthenticated"
    assert client.get(f"{BASE}/rules", headers=auth("cto_forged")).status_code == 401


def test_the_shipped_rules_are_listed_as_version_0(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    body = client.get(f"{BASE}/rules", headers=auth(tokens["li.analyst"])).get_json()
    assert {r["rule"] for r in body["rules"]} >= {"burst-buyer", "instrument-stolen"}
    assert {r["version"] for r in body["rules"]} == {0}
    assert body["pending"] == []


@pytest.mark.parametrize(
    "changes,code,field,line,column",
    [
        ({"condition": "buyer.count_1m >= "}, "rule-syntax", "condition", 1, 18),
        (
            {"condition": "buyer.count_1m >= 3 &&\n buyer.sppeed > 1"},
            "unknown-feature",
            "condition",
            2,
            8,
        ),
        ({"condition": "buyer.count_1m >= 'many'"}, "rule-type", "condition", 1, 16),
        ({"action": "shadowban"}, "unknown-action", "action", None, None),
        ({"zh": "English only"}, "bad-rule", "zh", None, None),
        ({"by": "wang.approver"}, "bad-rule", "by", None, None),
    ],
)
def test_a_bad_rule_is_refused_with_its_position_and_nothing_written(
    client: FlaskClient,
    session: Session,
    tokens: dict[str, str],
    changes: dict[str, Any],
    code: str,
    field: str,
    line: int | None,
    column: int | None,
) -> None:
    before = entries(session)
    response = client.post(
        f"{BASE}/rules", json=rule(**changes), headers=auth(tokens["li.analyst"])
    )
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert (problem["code"], problem["field"]) == (code, field)
    assert (problem.get("line"), problem.get("column")) == (line, column)
    assert entries(session) == before


def test_check_answers_without_saving(
    client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    before = entries(session)
    ok = client.post(
        f"{BASE}/rules/check",
        json={"condition": "instrument.tainted || buyer.count_1m > 4"},
        headers=auth(tokens["li.analyst"]),
    )
    assert ok.get_json() == {"ok": True, "features": ["buyer.count_1m", "instrument.tainted"]}
    bad = client.post(
        f"{BASE}/rules/check", json={"condition": "nope"}, headers=auth(tokens["li.analyst"])
    )
    assert bad.status_code == 422 and bad.get_json()["code"] == "unknown-feature"
    assert entries(session) == before


def test_four_eyes_through_the_api(client: FlaskClient, tokens: dict[str, str]) -> None:
    created = client.post(f"{BASE}/rules", json=rule(), headers=auth(tokens["chen.approver"]))
    assert created.status_code == 201
    assert (created.get_json()["version"], created.get_json()["status"]) == (1, "pending")
    url = f"{BASE}/rules/burst-buyer/versions/1/approve"
    own = client.post(url, headers=auth(tokens["chen.approver"]))
    assert (own.status_code, own.get_json()["code"]) == (409, "four-eyes")
    analyst = client.post(url, headers=auth(tokens["li.analyst"]))
    assert analyst.status_code == 403
    approved = client.post(url, headers=auth(tokens["wang.approver"]))
    assert approved.status_code == 200
    assert (approved.get_json()["status"], approved.get_json()["approved_by"]) == (
        "active",
        "wang.approver",
    )
    listed = client.get(f"{BASE}/rules", headers=auth(tokens["li.analyst"])).get_json()
    burst = next(r for r in listed["rules"] if r["rule"] == "burst-buyer")
    assert (burst["version"], burst["condition"]) == (1, "buyer.count_1m >= 3")
    history = client.get(f"{BASE}/rules/burst-buyer/versions", headers=auth(tokens["li.analyst"]))
    assert [v["status"] for v in history.get_json()["versions"]] == ["active"]


def test_a_shadow_version_is_saved_with_its_mode(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    created = client.post(
        f"{BASE}/rules",
        json=rule(rule="trial-web", mode="shadow"),
        headers=auth(tokens["li.analyst"]),
    )
    assert created.get_json()["mode"] == "shadow"


def test_backtest_of_a_pending_version(
    app: Flask, client: FlaskClient, session: Session, tokens: dict[str, str]
) -> None:
    with app.app_context():
        chain = build_chain(session, current_runtime().ledger)
        for i in range(4):
            chain.append(session, SHOP, "code.sale", sale_body(i, instrument="card-1"))
    client.post(
        f"{BASE}/rules",
        json=rule(
            rule="instrument-many-buyers",
            condition="instrument.distinct_buyers_24h >= 2",
            reason="instrument-many-buyers",
        ),
        headers=auth(tokens["li.analyst"]),
    )
    response = client.post(
        f"{BASE}/backtest",
        json={"rule": "instrument-many-buyers", "version": 1},
        headers=auth(tokens["li.analyst"]),
    )
    report = response.get_json()
    assert report["totals"] == {
        "sales": 4,
        "blocked_current": 2,
        "blocked_candidate": 3,
        "newly_blocked": 1,
        "no_longer_blocked": 0,
    }
    assert report["rows"][0]["merchant"] == SHOP


def test_backtest_of_an_unknown_version_is_not_found(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    response = client.post(
        f"{BASE}/backtest",
        json={"rule": "burst-buyer", "version": 9},
        headers=auth(tokens["li.analyst"]),
    )
    assert response.status_code == 404


def test_backtest_of_a_version_beyond_any_row_id_is_invalid_input(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    response = client.post(
        f"{BASE}/backtest",
        json={"rule": "burst-buyer", "version": 2**31},
        headers=auth(tokens["li.analyst"]),
    )
    assert response.status_code == 422 and response.get_json()["field"] == "version"


def test_approving_a_version_beyond_any_row_is_not_found(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    response = client.post(
        f"{BASE}/rules/burst-buyer/versions/{2**31}/approve",
        headers=auth(tokens["wang.approver"]),
    )
    assert response.status_code == 404

"""Verify before sale with a sale context: one verdict of code and risk, the sale event
feeding the risk state, partner notices tainting at once, decisions becoming alerts.

Every test runs on SQLite and PostgreSQL, each with the SQL risk store (the embedded
default) and with Redis (``CARDTRACE_REDIS_URL``).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.analysis.alerts import RISK_TYPOLOGY
from provenance.analysis.models import Alert
from provenance.entries import format_time
from provenance.ledger import LedgerEntry
from provenance.risk import MemoryStore, rebuild_state
from provenance.risk.rules import approve_rule, propose_rule
from provenance.risk.store import RiskSale, RiskShadowHit
from tests.api_support import machine_client
from tests.codes_support import (
    ISSUER,
    PARTNER,
    PRODUCT,
    SHOP,
    Chain,
    b64,
    build_chain,
    fp,
    person,
    pin,
    serial,
)
from tests.ledger_support import NOW
from tests.risk_support import GD_IP, card, redis_client
from tests.services import redis_url
from webapp.api_risk import live_risk
from webapp.runtime import current_runtime

STOLEN_PAN = "4111 1111 1111 1111"


@pytest.fixture(params=["sql-store", "redis-store"])
def risk_app(request: pytest.FixtureRequest, app: Flask) -> Iterator[Flask]:
    """The app with its risk state in the database, or in Redis under a fresh prefix."""
    if request.param == "redis-store":
        client = redis_client()
        cardtrace = app.extensions["cardtrace"]
        cardtrace.settings = cardtrace.settings.with_overrides(redis_url=redis_url())
        app.config["RISK_REDIS_PREFIX"] = f"cardtrace-test:{uuid.uuid4().hex}:"
        live = live_risk(app)
        assert live.redis_store is not None
        yield app
        live.redis_store.reset()
        client.close()
    else:
        assert live_risk(app).redis_store is None
        yield app


@pytest.fixture()
def chain(risk_app: Flask, session: Session) -> Chain:
    with risk_app.app_context():
        built = build_chain(session, current_runtime().ledger)
        session.flush()
        return built


@pytest.fixture()
def web(risk_app: Flask, session: Session) -> FlaskClient:
    """The platform's sale system: an API key with every scope."""
    return machine_client(risk_app, session)


def context(
    who: str = "alice",
    *,
    instrument: str = "card-alice",
    device: str = "phone-alice",
    amount: str = "100.00",
    **more: Any,
) -> dict[str, Any]:
    return {
        "buyer": person("buyer", who),
        "instrument": card(instrument),
        "device": device,
        "ip": GD_IP,
        "amount": amount,
        **more,
    }


def code(i: int) -> dict[str, str]:
    return {"issuer": ISSUER, "product": PRODUCT, "serial": serial(i), "pin": pin(i)}


def verify(web: FlaskClient, i: int, ctx: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"merchant": SHOP, "code": code(i)}
    if ctx is not None:
        body["context"] = ctx
    response = web.post("/api/v1/codes/verify", json=body)
    assert response.status_code == 200, response.get_json()
    answer: dict[str, Any] = response.get_json()
    return answer


def sale_entry(i: int, who: str, instrument: str, device: str, amount: str) -> dict[str, Any]:
    """The code.sale body with the pseudonyms the context stands for."""
    return {
        "code": b64(fp(i)),
        "buyer": person("buyer", who),
        "instrument": card(instrument)["fingerprint"],
        "device": person("device", device),
        "ip": person("ip", GD_IP),
        "amount": amount,
        "currency": "CNY",
    }


def post_entries(web: FlaskClient, *signed: Any) -> Any:
    body = {
        "entries": [
            {"entry": s.statement.to_json(), "sig": base64.b64encode(s.signature).decode()}
            for s in signed
        ]
    }
    response = web.post("/api/v1/entries", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def buy(
    web: FlaskClient,
    chain: Chain,
    i: int,
    who: str = "alice",
    instrument: str = "card-alice",
    device: str = "phone-alice",
    amount: str = "100.00",
) -> dict[str, Any]:
    """Verify with the sale's context; if allowed, the shop sells and posts the sale."""
    answer = verify(web, i, context(who, instrument=instrument, device=device, amount=amount))
    if answer["decision"] != "block":
        sale = sale_entry(i, who, instrument, device, amount)
        post_entries(web, chain.signed(SHOP, "code.sale", sale))
    return answer


def codes_of(answer: dict[str, Any]) -> list[str]:
    return [r["code"] for r in answer["reasons"]]


def count(session: Session, model: Any) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


# --- one answer ---------------------------------------------------------------------------


def test_without_a_context_the_answer_is_the_codes_alone(chain: Chain, web: FlaskClient) -> None:
    answer = verify(web, 0, None)
    assert answer["decision"] == "allow"
    assert "risk" not in answer


def test_with_a_context_the_risk_step_answers_in_the_same_verdict(
    chain: Chain, web: FlaskClient
) -> None:
    answer = verify(web, 0, context())
    assert answer["decision"] == "allow"
    assert answer["risk"] == {"decision": "allow", "reasons": [], "shadow": []}
    assert answer["code"]["holder"] == SHOP


def test_code_reasons_come_first_then_risk_reasons_and_the_worse_decision_wins(
    session: Session, chain: Chain, web: FlaskClient
) -> None:
    notice = {
        "kind": "instrument",
        "pseudonym": card("card-stolen")["fingerprint"],
        "reported_at": format_time(NOW),
        "reason": "cardholder reported fraud",
    }
    post_entries(web, chain.signed(PARTNER, "payment.stolen", notice))
    # Code 12 never reached the shop (custody break: block), and the card is stolen.
    answer = verify(web, 12, context(instrument="card-stolen"))
    assert answer["decision"] == "block"
    assert codes_of(answer) == ["custody-break", "instrument-stolen"]
    stolen = answer["reasons"][1]
    assert stolen["rule"] == "instrument-stolen"
    assert stolen["message"] == "This payment card was reported stolen."
    assert stolen["message_zh"] == "该支付卡已被报告为被盗卡。"
    # The code is refused, so the sale is not held in the risk state.
    held = session.scalar(select(func.count()).select_from(RiskSale))
    assert held == 0 or live_risk_is_redis(web)


def live_risk_is_redis(web: FlaskClient) -> bool:
    return live_risk(web.application).redis_store is not None


def test_a_burst_is_blocked_in_the_middle_with_its_reasons(chain: Chain, web: FlaskClient) -> None:
    decisions = [buy(web, chain, i) for i in range(7)]
    assert [d["decision"] for d in decisions] == ["allow"] * 4 + ["block"] * 3
    fifth = decisions[4]
    assert codes_of(fifth) == ["burst-instrument"]
    assert fifth["reasons"][0]["message"] == (
        "This payment card was used too many times in a short time."
    )
    assert fifth["reasons"][0]["message_zh"] == "该支付卡在短时间内使用次数过多。"
    assert fifth["code"]["state"] == "listed"


def test_a_couple_sharing_one_card_is_not_blocked(chain: Chain, web: FlaskClient) -> None:
    answers = [
        buy(web, chain, i, who=who, instrument="card-family")
        for i, who in enumerate(["wei", "fang", "wei", "fang"])
    ]
    assert [a["decision"] for a in answers] == ["allow"] * 4


def test_batch_verify_assesses_each_item_as_a_sale_in_order(chain: Chain, web: FlaskClient) -> None:
    body = {
        "merchant": SHOP,
        "context": context(),
        "items": [{"code": code(i)} for i in range(6)],
    }
    response = web.post("/api/v1/codes/verify-batch", json=body)
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["decision"] for r in results] == ["allow"] * 4 + ["block"] * 2
    assert codes_of(results[4]) == ["burst-instrument"]


# --- bad context ---------------------------------------------------------------------------


PAN_IN_FINGERPRINT = {**context(), "instrument": {**card("x"), "fingerprint": STOLEN_PAN}}


@pytest.mark.parametrize(
    ("ctx", "status_code", "field"),
    [
        (PAN_IN_FINGERPRINT, "card-number-refused", "context.instrument.fingerprint"),
        ({**context(), "device": "4111111111111111"}, "card-number-refused", "context.device"),
        ({**context(), "amount": "-5"}, "bad-sale-context", "context.amount"),
        ({**context(), "cvv": "123"}, "bad-sale-context", "context.cvv"),
        ({**context(), "buyer": "alice"}, "bad-sale-context", "context.buyer"),
    ],
)
def test_a_bad_context_is_refused_with_nothing_written(
    session: Session,
    chain: Chain,
    web: FlaskClient,
    ctx: dict[str, Any],
    status_code: str,
    field: str,
) -> None:
    before = (count(session, LedgerEntry), count(session, RiskSale), count(session, Alert))
    response = web.post(
        "/api/v1/codes/verify", json={"merchant": SHOP, "code": code(0), "context": ctx}
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == status_code
    assert problem["field"] == field
    assert "4111" not in response.get_data(as_text=True)
    assert (count(session, LedgerEntry), count(session, RiskSale), count(session, Alert)) == before


def test_a_full_card_number_in_a_batch_item_is_refused(chain: Chain, web: FlaskClient) -> None:
    body = {
        "merchant": SHOP,
        "items": [{"code": code(0)}, {"code": code(1), "context": PAN_IN_FINGERPRINT}],
    }
    response = web.post("/api/v1/codes/verify-batch", json=body)
    assert response.status_code == 422
    assert response.get_json()["field"] == "items.1.context.instrument.fingerprint"


# --- the sale event feeds the state ---------------------------------------------------------


def test_recorded_sales_give_the_state_a_rebuild_from_the_ledger_gives(
    risk_app: Flask, session: Session, chain: Chain, web: FlaskClient
) -> None:
    for i in range(3):
        buy(web, chain, i, amount=f"{10 * (i + 1)}.00")
    probe = context(amount="500.00")
    with risk_app.app_context():
        from provenance.risk import SaleContext

        live = live_risk()
        engine = live.engine(session)
        sale = SaleContext.parse(probe)
        now = NOW + timedelta(seconds=1)
        live_features = engine.assess(sale, merchant=SHOP, now=now).features
        rebuilt = MemoryStore()
        assert rebuild_state(session, rebuilt, since=NOW - timedelta(days=1)) == 3
        replayed = engine.with_store(rebuilt).assess(sale, merchant=SHOP, now=now).features
    assert live_features["buyer.history_count"] == 3
    ignore = {"buyer.previous_region", "buyer.region_changed"}  # the ledger has no regions
    assert {k: v for k, v in live_features.items() if k not in ignore} == {
        k: v for k, v in replayed.items() if k not in ignore
    }


def test_a_stolen_card_notice_blocks_the_next_verify(
    session: Session, chain: Chain, web: FlaskClient
) -> None:
    assert buy(web, chain, 0, instrument="card-soon-stolen")["decision"] == "allow"
    notice = {
        "kind": "instrument",
        "pseudonym": card("card-soon-stolen")["fingerprint"],
        "reported_at": format_time(NOW),
        "reason": "cardholder reported fraud",
    }
    post_entries(web, chain.signed(PARTNER, "payment.stolen", notice))
    answer = verify(web, 1, context(instrument="card-soon-stolen"))
    assert answer["decision"] == "block"
    assert codes_of(answer) == ["instrument-stolen"]


def test_a_device_taint_sends_the_next_sale_to_review(chain: Chain, web: FlaskClient) -> None:
    notice = {
        "kind": "device",
        "pseudonym": person("device", "phone-mule"),
        "reason": "device seen in an account takeover",
    }
    post_entries(web, chain.signed(PARTNER, "risk.taint", notice))
    answer = verify(web, 0, context(device="phone-mule"))
    assert answer["decision"] == "review"
    assert codes_of(answer) == ["device-reported"]


# --- decisions become alerts ---------------------------------------------------------------


def risk_alerts(session: Session) -> list[Alert]:
    return list(session.scalars(select(Alert).where(Alert.typology == RISK_TYPOLOGY)))


def test_a_block_opens_one_alert_and_repeats_are_counted_on_it(
    session: Session, chain: Chain, web: FlaskClient
) -> None:
    opened_before = session.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.type == "alert.open")
    )
    decisions = [buy(web, chain, i) for i in range(7)]
    assert [d["decision"] for d in decisions][4:] == ["block"] * 3
    alerts = risk_alerts(session)
    assert len(alerts) == 1
    [alert] = alerts
    assert alert.subject_kind == "instrument"
    assert alert.subject == card("card-alice")["fingerprint"]
    assert alert.runs == 3
    assert alert.status == "new"
    assert alert.evidence["graph"]["rule"] == "burst-instrument"
    assert {e["target"] for e in alert.evidence["edges"]} == {
        f"code:{fp(i).hex()}" for i in (4, 5, 6)
    }
    opened_after = session.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.type == "alert.open")
    )
    assert opened_after == (opened_before or 0) + 1


def test_an_allowed_sale_opens_no_alert(session: Session, chain: Chain, web: FlaskClient) -> None:
    buy(web, chain, 0)
    assert risk_alerts(session) == []


def test_a_shadow_rule_is_reported_and_recorded_but_not_enforced(
    risk_app: Flask, session: Session, chain: Chain, web: FlaskClient
) -> None:
    with risk_app.app_context():
        ledger = current_runtime().ledger
        draft = {
            "rule": "big-spender",
            "condition": "sale.amount >= 100.0",
            "action": "block",
            "reason": "big-spender",
            "en": "A large purchase.",
            "zh": "大额购买。",
            "mode": "shadow",
        }
        propose_rule(session, ledger, draft, officer="li.author", now=NOW)
        approve_rule(session, ledger, "big-spender", 1, officer="wang.approver", now=NOW)
        session.flush()
    answer = verify(web, 0, context(amount="100.00"))
    assert answer["decision"] == "allow"
    assert answer["reasons"] == []
    assert [r["code"] for r in answer["risk"]["shadow"]] == ["big-spender"]
    [hit] = session.scalars(select(RiskShadowHit)).all()
    assert (hit.rule, hit.version, hit.action, hit.ref) == ("big-spender", 1, "block", fp(0).hex())
    assert risk_alerts(session) == []

"""The ledger is the source of truth: rebuilding every projection gives the same state."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.codes import Code, CodeBatch, CodeEvent, Product, StolenPayment
from provenance.entries import format_time
from provenance.ledger import rebuild_projections
from provenance.parties import Party, PartyKey
from tests.codes_support import ISSUER, PARTNER, SHOP, b64, build_chain, fp, person, sale_body
from tests.ledger_support import NOW
from webapp.runtime import current_runtime

TABLES = (Party, PartyKey, Product, CodeBatch, Code, CodeEvent, StolenPayment)


def snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    state = {}
    for model in TABLES:
        table = model.__table__  # type: ignore[attr-defined]
        rows = session.execute(select(table).order_by(*table.primary_key.columns)).all()
        state[table.name] = [tuple(row) for row in rows]
    return state


def test_rebuilding_projections_gives_the_same_state(app: Flask, session: Session) -> None:
    with app.app_context():
        ledger = current_runtime().ledger
        chain = build_chain(session, ledger)
        chain.append(session, SHOP, "code.sale", sale_body(0, instrument="bad-card"))
        chain.append(session, SHOP, "code.sale", sale_body(1))
        chain.append(session, ISSUER, "code.redeem", {"code": b64(fp(1))})
        chain.append(session, ISSUER, "code.void", {"codes": [b64(fp(2))], "reason": "recall"})
        chain.platform(session, "code.freeze", {"codes": [b64(fp(3))], "reason": "look"})
        report = {
            "kind": "instrument",
            "pseudonym": person("instrument", "bad-card"),
            "reported_at": format_time(NOW),
            "reason": "stolen",
        }
        chain.append(session, PARTNER, "payment.stolen", report)
        chain.platform(
            session, "party.status", {"party": SHOP, "status": "suspended", "reason": "x"}
        )
        session.flush()
        before = snapshot(session)
        assert len(before["code"]) == 20 and any(row for row in before["stolen_payment"])
        session.expire_all()
        replayed = rebuild_projections(session, ledger.catalog)
        session.flush()
        session.expire_all()
        assert replayed > 0
        assert snapshot(session) == before

"""Alerts API: list, show and decide the ledger analysis's alerts.

Who acts comes only from the credential, a signed-in session or a personal API key
(:mod:`webapp.officer_auth`): staff read alerts, analysts decide them. Each decision is a
ledger entry.
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from merchant_onboarding.officers import Actor
from provenance.analysis.alerts import alert_json, decide, get_alert, list_alerts, notes_of
from provenance.db import write_transaction
from provenance.errors import ValidationError
from webapp.officer_auth import bearer_officer, init_officer_auth
from webapp.openapi import (
    JSON_OBJECT,
    PERSONAL,
    SHORT_TEXT,
    WHOLE_NUMBER,
    AlertList,
    Query,
    api_doc,
)
from webapp.runtime import current_runtime, db_session
from webapp.validation import parse_body

bp = Blueprint("analysis_api", __name__, url_prefix="/api/v1/alerts")


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["triaged", "dismissed", "escalated"]
    assignee: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


def _actor() -> Actor:
    return bearer_officer("work alerts")


init_officer_auth(bp, "cardtrace alerts")


@bp.get("")
@api_doc(
    query=[
        Query("status", SHORT_TEXT),
        Query("typology", SHORT_TEXT),
        Query("limit", WHOLE_NUMBER),
    ],
    auth=[PERSONAL],
    responses={200: AlertList},
)
def index() -> Response:
    """Alerts, strongest first; ``?status=``, ``?typology=``, ``?limit=`` (1-1000)."""
    _actor()
    raw_limit = request.args.get("limit", "100")
    if not raw_limit.isdigit():
        raise ValidationError("limit must be a whole number", field="limit")
    alerts = list_alerts(
        db_session(),
        status=request.args.get("status"),
        typology=request.args.get("typology"),
        limit=int(raw_limit),
    )
    return jsonify({"alerts": [alert_json(a, evidence=False) for a in alerts]})


@bp.get("/<int:alert_id>")
@api_doc(auth=[PERSONAL], responses={200: JSON_OBJECT})
def show(alert_id: int) -> Response:
    """One alert with its evidence subgraph (node-link JSON) and notes."""
    _actor()
    session = db_session()
    alert = get_alert(session, alert_id)
    return jsonify(alert_json(alert, notes_of(session, alert)))


@bp.post("/<int:alert_id>/decision")
@api_doc(body=DecisionRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def decision(alert_id: int) -> Response:
    """Triage, dismiss or escalate, as the acting analyst."""
    actor = _actor()
    body = parse_body(DecisionRequest)
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        alert = decide(
            session,
            runtime.ledger,
            alert_id,
            body.status,
            officer=actor.id,
            assignee=body.assignee,
            note=body.note,
            now=runtime.now(),
        )
        document = alert_json(alert, notes_of(session, alert))
    return jsonify(document)

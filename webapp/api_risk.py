"""Real-time risk API: rules, their versions, four-eyes approval, shadow mode, backtests.

Who acts comes only from the credential, a signed-in session or a personal API key
(:mod:`webapp.officer_auth`): analysts, approvers and auditors read; analysts and
approvers propose a rule version; an approver other than its author approves it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from werkzeug.exceptions import UnsupportedMediaType

from merchant_onboarding.officers import Actor, Role
from provenance.db import write_transaction
from provenance.entries import format_time
from provenance.errors import NotFoundError, ValidationError
from provenance.risk import backtest, ledger_sales, load_rules
from provenance.risk.errors import RuleError
from provenance.risk.language import check_condition
from provenance.risk.live import LiveRisk
from provenance.risk.rules import (
    DEFAULT_RULES,
    RiskRuleVersion,
    RuleSpec,
    active_specs,
    approve_rule,
    get_version,
    propose_rule,
    versions,
)
from webapp.errors import Problem, problem_response
from webapp.officer_auth import bearer_officer, init_officer_auth
from webapp.openapi import JSON_OBJECT, PERSONAL, api_doc
from webapp.routing import MAX_INT32
from webapp.runtime import current_runtime, db_session
from webapp.validation import parse_body

bp = Blueprint("risk_api", __name__, url_prefix="/api/v1/risk")
TOTALS = ("sales", "blocked_current", "blocked_candidate", "newly_blocked", "no_longer_blocked")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckRequest(_Request):
    condition: str = Field(max_length=2000)


class BacktestRequest(_Request):
    rule: str = Field(max_length=64)
    version: int = Field(ge=0, le=MAX_INT32)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


REDIS_PREFIX = "cardtrace:risk:"


def live_risk(app: Flask | None = None) -> LiveRisk:
    """The app's risk engine and state feed, made on first use.

    ``CARDTRACE_REDIS_URL`` set: the state lives in Redis under the key prefix
    ``RISK_REDIS_PREFIX`` (app config, default ``cardtrace:risk:``); unset: in the
    database, through the session of each request or task.

    Raises:
        ConfigError: the platform's secrets are missing.
    """
    app = app or current_app
    found: LiveRisk | None = app.extensions.get("cardtrace.risk")
    if found is None:
        runtime = app.extensions["cardtrace"]
        redis_store = None
        if runtime.settings.redis_url is not None:
            import redis

            from provenance.risk.redis_store import RedisStore

            client = redis.Redis.from_url(
                runtime.settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
            )
            prefix = app.config.get("RISK_REDIS_PREFIX", REDIS_PREFIX)
            redis_store = RedisStore(client, prefix=prefix)
        found = LiveRisk(key=runtime.secrets.fingerprint_key, redis_store=redis_store)
        app.extensions["cardtrace.risk"] = found
    return found


def _actor() -> Actor:
    return bearer_officer("manage risk rules")


init_officer_auth(bp, "cardtrace risk")


@bp.errorhandler(RuleError)
def _bad_rule(error: RuleError) -> Response:
    response = problem_response(Problem(422, error.code, error.title, error.message, error.field))
    if error.line is not None:
        body = response.get_json()
        body.update(line=error.line, column=error.column)
        response.set_data(jsonify(body).get_data())
    return response


def spec_json(spec: RuleSpec) -> dict[str, Any]:
    return {
        "rule": spec.id,
        "version": spec.version,
        "condition": spec.condition,
        "action": spec.action.value,
        "mode": spec.mode.value,
        "reason": spec.reason,
        "en": spec.en,
        "zh": spec.zh,
    }


def version_json(row: RiskRuleVersion) -> dict[str, Any]:
    return spec_json(row.spec()) | {
        "status": row.status,
        "author": row.author,
        "proposed_at": format_time(row.proposed_at),
        "proposed_seq": row.proposed_seq,
        "approved_by": row.approved_by,
        "approved_at": format_time(row.approved_at) if row.approved_at else None,
        "approved_seq": row.approved_seq,
    }


@bp.get("/rules")
@api_doc(auth=[PERSONAL], responses={200: JSON_OBJECT})
def list_rules() -> Response:
    """The rules in force (shipped defaults are version 0) and the versions awaiting approval."""
    _actor()
    session = db_session()
    pending = [version_json(v) for v in versions(session) if v.status == "pending"]
    return jsonify({"rules": [spec_json(s) for s in active_specs(session)], "pending": pending})


@bp.get("/rules/<rule>/versions")
@api_doc(auth=[PERSONAL], responses={200: JSON_OBJECT})
def rule_versions(rule: str) -> Response:
    _actor()
    return jsonify({"versions": [version_json(v) for v in versions(db_session(), rule)]})


@bp.post("/rules/check")
@api_doc(body=CheckRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def check() -> Response:
    """Check a condition without saving anything."""
    _actor()
    body = parse_body(CheckRequest)
    checked = check_condition(body.condition)
    return jsonify({"ok": True, "features": sorted(checked.features)})


@bp.post("/rules")
@api_doc(body_schema=JSON_OBJECT, auth=[PERSONAL], responses={201: JSON_OBJECT})
def propose() -> tuple[Response, int]:
    """Propose a new version of a rule; it waits for a second officer's approval."""
    actor = _actor()
    if not request.is_json:
        raise UnsupportedMediaType("send the request body as application/json")
    raw = request.get_json(silent=True)
    if not isinstance(raw, dict):
        raise ValidationError("the request body must be a JSON object", field="body")
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        row = propose_rule(session, runtime.ledger, raw, officer=actor.id, now=runtime.now())
        document = version_json(row)
    return jsonify(document), 201


@bp.post(f"/rules/<rule>/versions/<int(max={MAX_INT32}):version>/approve")
@api_doc(body_required=False, auth=[PERSONAL], responses={200: JSON_OBJECT})
def approve(rule: str, version: int) -> Response:
    actor = _actor()
    actor.require_role(Role.APPROVER, "approve a risk rule")
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        row = approve_rule(
            session, runtime.ledger, rule, version, officer=actor.id, now=runtime.now()
        )
        document = version_json(row)
    live_risk().forget()
    return jsonify(document)


@bp.post("/backtest")
@api_doc(body=BacktestRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def run_backtest() -> Response:
    """Replay the ledger's sales with one rule version in place of the rule's current one."""
    _actor()
    body = parse_body(BacktestRequest)
    session = db_session()
    current = load_rules(session)
    if body.version == 0:
        candidate_spec = next((s for s in DEFAULT_RULES if s.id == body.rule), None)
        if candidate_spec is None:
            raise NotFoundError(f"no shipped rule {body.rule}")
    else:
        candidate_spec = get_version(session, body.rule, body.version).spec()
    rows = backtest(
        ledger_sales(session, since=body.since, until=body.until),
        current=current,
        candidate=current.replace(candidate_spec),
    )
    totals = {
        key: sum(getattr(row, key) for row in rows)
        for key in (
            "sales",
            "blocked_current",
            "blocked_candidate",
            "newly_blocked",
            "no_longer_blocked",
        )
    }
    return jsonify(
        {
            "rule": body.rule,
            "version": body.version,
            "totals": totals,
            "rows": [row.to_json() for row in rows],
        }
    )

"""Pages: real-time risk rules (see :mod:`webapp.pages`).

The rules in force and their versions; writing a rule or a new version (the service's
checker refuses a bad one with the position of the error, shown under the field and
marked in the condition); trying a draft on a sample sale with the engine's own
evaluation; backtesting a version as a task with progress; and approval by a second
officer (the service refuses the author's own approval, and the page says so).

Analysts and approvers write, try, backtest and approve; the auditor reads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from provenance.db import write_transaction
from provenance.errors import NotFoundError
from provenance.risk.engine import RiskDecision, evaluate
from provenance.risk.errors import FourEyesError, RuleError, RuleStateError
from provenance.risk.features import FEATURES, FeatureType
from provenance.risk.rules import (
    DEFAULT_RULES,
    RiskRuleVersion,
    RuleAction,
    RuleMode,
    RuleSet,
    RuleSpec,
    active_specs,
    approve_rule,
    load_rules,
    parse_draft,
    propose_rule,
    versions,
)
from provenance.risk.store import RiskShadowHit
from webapp.accounts.errors import ForbiddenError
from webapp.accounts.i18n import current_language
from webapp.accounts.roles import Role
from webapp.accounts.web import login_required
from webapp.pages.common import current_role, current_user, page
from webapp.pages.tasks import launch, show_progress
from webapp.runtime import current_runtime, db_session
from webapp.task_runs import RunKind, RunState, get_run, runs_of

bp = Blueprint("pages_rules", __name__)

READ = (Role.ANALYST, Role.APPROVER, Role.AUDITOR)
WRITE = (Role.ANALYST, Role.APPROVER)
DRAFT_FIELDS = ("rule", "condition", "action", "reason", "en", "zh", "mode")

ACTION_LABELS = {RuleAction.REVIEW.value: _l("Review"), RuleAction.BLOCK.value: _l("Block")}
MODE_LABELS = {
    RuleMode.ENFORCE.value: _l("Enforce"),
    RuleMode.SHADOW.value: _l("Shadow (recorded, never enforced)"),
    RuleMode.OFF.value: _l("Off (retire the rule)"),
}
STATUS_LABELS = {
    "pending": _l("Awaiting approval"),
    "active": _l("In force"),
    "superseded": _l("Superseded"),
    "shipped": _l("Shipped default"),
}
DECISION_LABELS = {
    RiskDecision.ALLOW.value: _l("Allow"),
    RiskDecision.REVIEW.value: _l("Review"),
    RiskDecision.BLOCK.value: _l("Block"),
}
# The checker's refusals by code; the service's own sentence is shown beside as detail.
RULE_ERRORS = {
    "rule-syntax": _l("The condition is not valid: check its syntax."),
    "unknown-feature": _l("The condition names a feature that does not exist."),
    "unknown-function": _l("The condition calls a function that does not exist."),
    "rule-type": _l("The condition combines or compares values of the wrong type."),
    "unknown-action": _l("The action must be review or block."),
}
FIELD_ERRORS = {
    "rule": _l("The rule's id: 2-64 lower-case letters, digits or dashes, starting with a letter."),
    "reason": _l(
        "The reason code: 2-64 lower-case letters, digits or dashes, starting with a letter."
    ),
    "condition": _l("The condition must be 1-2000 characters."),
    "en": _l("The English sentence must be 1-300 characters."),
    "zh": _l("The Chinese sentence must be 1-300 characters, written in Chinese."),
    "mode": _l("The mode must be enforce, shadow or off."),
    "action": _l("The action must be review or block."),
    "version": _l("Choose a version of the rule."),
    "since": _l("Give the first day as a date (YYYY-MM-DD)."),
    "until": _l("Give the day after the last as a date (YYYY-MM-DD), after the first day."),
}
SAMPLE_PREFIX = "sample."
# The word the checker's position starts (a feature or function name), marked whole.
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _writer() -> None:
    """Refuse the auditor (read-only) any action."""
    if current_role() not in WRITE:
        raise ForbiddenError("the auditor reads the rules; only analysts and approvers act")


def _approver() -> None:
    """Only an approver approves a rule version (as through the API), never its author."""
    if current_role() is not Role.APPROVER:
        raise ForbiddenError("only an approver may approve a rule version")


# --- the condition's error, marked -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceLine:
    number: int
    before: str
    marked: str
    after: str


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str
    detail: str | None = None
    line: int | None = None
    column: int | None = None
    source: tuple[SourceLine, ...] = ()


def _marked_source(condition: str, line: int, column: int) -> tuple[SourceLine, ...]:
    """The condition by line, the character at (line, column) set apart to be marked."""
    lines = []
    for number, text in enumerate(condition.split("\n"), start=1):
        if number == line:
            at = max(0, min(column - 1, len(text)))
            token = _TOKEN.match(text, at)
            end = token.end() if token else at + 1
            marked = text[at:end] or " "
            lines.append(SourceLine(number, text[:at], marked, text[end:]))
        else:
            lines.append(SourceLine(number, text, "", ""))
    return tuple(lines)


def rule_error(error: RuleError, condition: str) -> FieldError:
    field = error.field or "condition"
    message = RULE_ERRORS.get(error.code) or FIELD_ERRORS.get(field.split(".")[0])
    source: tuple[SourceLine, ...] = ()
    if error.line is not None and error.column is not None:
        source = _marked_source(condition, error.line, error.column)
    return FieldError(
        field if field in DRAFT_FIELDS else "condition",
        str(message or _("The rule was refused.")),
        error.message,
        error.line,
        error.column,
        source,
    )


# --- the sample sale ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleFeature:
    name: str
    kind: str
    value: Any


def _feature_default(kind: FeatureType) -> Any:
    return {FeatureType.INT: 0, FeatureType.DOUBLE: 0.0, FeatureType.BOOL: False}.get(kind, "")


def sample_features(form: Any) -> tuple[dict[str, Any], list[SampleFeature], FieldError | None]:
    """The sample sale's features from the form (each missing one at its default)."""
    values: dict[str, Any] = {}
    shown: list[SampleFeature] = []
    error: FieldError | None = None
    for name, (kind, _description) in FEATURES.items():
        raw = form.get(SAMPLE_PREFIX + name) if form is not None else None
        value = _feature_default(kind)
        if kind is FeatureType.BOOL:
            value = raw is not None and raw not in ("", "0", "false")
        elif raw not in (None, ""):
            try:
                if kind is FeatureType.INT:
                    value = int(raw)
                    if abs(value) > 2**62:
                        raise ValueError(raw)
                elif kind is FeatureType.DOUBLE:
                    value = float(raw)
                    if not math.isfinite(value):
                        raise ValueError(raw)
                else:
                    value = str(raw)[:64]
            except ValueError:
                if error is None:
                    message = (
                        _("%(feature)s must be a whole number.", feature=name)
                        if kind is FeatureType.INT
                        else _("%(feature)s must be a number.", feature=name)
                    )
                    error = FieldError("sample", message)
                value = raw
        values[name] = value
        shown.append(SampleFeature(name, kind.value, value))
    return values, shown, error


@dataclass(frozen=True, slots=True)
class Trial:
    """What a draft decides on the sample sale, alone and among the rules in force."""

    mode: str
    fired: bool
    failed: bool
    decision_now: str
    decision_with: str
    reasons_with: tuple[Any, ...]
    shadow_with: tuple[Any, ...]


def try_draft(spec: RuleSpec, features: dict[str, Any]) -> Trial:
    """Run the engine's evaluation (:func:`provenance.risk.engine.evaluate`)."""
    alone = RuleSet([RuleSpec(**{**_spec_fields(spec), "mode": RuleMode.ENFORCE})])
    decision, reasons, _shadow = evaluate(alone, features)
    failed = any(r.code == "rule-error" for r in reasons)
    current = load_rules(db_session())
    decision_now, _r, _s = evaluate(current, features)
    decision_with, reasons_with, shadow_with = evaluate(current.replace(spec), features)
    return Trial(
        spec.mode.value,
        decision is not RiskDecision.ALLOW and not failed,
        failed,
        decision_now.value,
        decision_with.value,
        reasons_with,
        shadow_with,
    )


def _spec_fields(spec: RuleSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "version": spec.version,
        "condition": spec.condition,
        "action": spec.action,
        "reason": spec.reason,
        "en": spec.en,
        "zh": spec.zh,
        "mode": spec.mode,
    }


# --- the pages -----------------------------------------------------------------------------


def _shadow_hits() -> dict[str, int]:
    rows = db_session().execute(
        select(RiskShadowHit.rule, func.count()).group_by(RiskShadowHit.rule)
    )
    return {rule: int(count) for rule, count in rows}


def _index(status: int = 200, error: str | None = None) -> Response:
    session = db_session()
    all_versions = versions(session)
    return page(
        "pages/rules/index.html",
        status=status,
        active=active_specs(session),
        pending=[v for v in all_versions if v.status == "pending"],
        in_force={v.rule: v for v in all_versions if v.status == "active"},
        shadow_hits=_shadow_hits(),
        can_write=current_role() in WRITE,
        can_approve=current_role() is Role.APPROVER,
        me=current_user().username,
        error=error,
        labels=_labels(),
        backtests=runs_of(session, current_user().username, RunKind.BACKTEST, limit=5),
    )


def _labels() -> dict[str, Any]:
    return {
        "action": ACTION_LABELS,
        "mode": MODE_LABELS,
        "status": STATUS_LABELS,
        "decision": DECISION_LABELS,
    }


@bp.get("/rules")
@login_required(*READ)
def rules() -> Response:
    return _index()


def _history(rule: str) -> tuple[RuleSpec | None, list[RiskRuleVersion], RuleSpec | None]:
    session = db_session()
    shipped = next((s for s in DEFAULT_RULES if s.id == rule), None)
    rows = list(versions(session, rule))
    active = next((s for s in active_specs(session) if s.id == rule), None)
    return shipped, rows, active


def _rule_page(rule: str, status: int = 200, error: str | None = None, **extra: Any) -> Response:
    shipped, rows, active = _history(rule)
    if shipped is None and not rows:
        raise NotFoundError(f"no rule {rule}")
    choices = ([0] if shipped is not None else []) + [row.version for row in rows]
    return page(
        "pages/rules/rule.html",
        status=status,
        rule=rule,
        shipped=shipped,
        rows=list(reversed(rows)),
        active=active,
        shadow_hits=_shadow_hits().get(rule, 0),
        can_write=current_role() in WRITE,
        can_approve=current_role() is Role.APPROVER,
        me=current_user().username,
        error=error,
        labels=_labels(),
        version_choices=list(reversed(choices)),
        backtest_form=extra.pop("backtest_form", {}),
        backtest_error=extra.pop("backtest_error", None),
        **extra,
    )


@bp.get("/rules/<rule>/versions")
@login_required(*READ)
def rule_versions(rule: str) -> Response:
    return _rule_page(rule)


def _editor(
    status: int = 200,
    form: dict[str, str] | None = None,
    error: FieldError | None = None,
    samples: list[SampleFeature] | None = None,
    trial: Trial | None = None,
) -> Response:
    if samples is None:
        samples = sample_features(None)[1]
    return page(
        "pages/rules/editor.html",
        status=status,
        form=form or {"mode": RuleMode.ENFORCE.value, "action": RuleAction.REVIEW.value},
        error=error,
        samples=samples,
        trial=trial,
        labels=_labels(),
        actions=[a.value for a in RuleAction],
        modes=[m.value for m in RuleMode],
        zh=current_language() == "zh_CN",
    )


@bp.get("/rules/new")
@login_required(*WRITE)
def new_rule() -> Response:
    """A blank draft, or (``?rule=``) a new version of a rule, starting from its current one."""
    rule = request.args.get("rule", "")
    if not rule:
        return _editor()
    _shipped, _rows, active = _history(rule)
    if active is None:
        latest = list(versions(db_session(), rule))
        if not latest:
            raise NotFoundError(f"no rule {rule}")
        active = latest[-1].spec()
    form = {
        "rule": active.id,
        "condition": active.condition,
        "action": active.action.value,
        "reason": active.reason,
        "en": active.en,
        "zh": active.zh,
        "mode": active.mode.value,
    }
    return _editor(form=form)


@bp.post("/rules/new")
@login_required(*WRITE)
def propose() -> ResponseReturnValue:
    """Try the draft on the sample sale (``intent=try``), or propose it."""
    # As the service reads it: trimmed, and a browser's CRLF line ends as LF (positions).
    form = {name: request.form.get(name, "").replace("\r\n", "\n").strip() for name in DRAFT_FIELDS}
    raw: dict[str, Any] = dict(form)
    session, runtime = db_session(), current_runtime()
    _values, samples, _sample_error = sample_features(request.form)
    try:
        draft = parse_draft(raw)
    except RuleError as e:
        return _editor(422, form, rule_error(e, form["condition"]), samples)
    if request.form.get("intent") == "try":
        features, samples, sample_error = sample_features(request.form)
        if sample_error is not None:
            return _editor(422, form, sample_error, samples)
        spec = RuleSpec(
            draft.rule,
            0,
            draft.condition,
            draft.action,
            draft.reason,
            draft.en,
            draft.zh,
            draft.mode,
        )
        return _editor(200, form, None, samples, try_draft(spec, features))
    session.rollback()
    try:
        with write_transaction(session):
            row = propose_rule(
                session, runtime.ledger, raw, officer=current_user().username, now=runtime.now()
            )
            rule, version = row.rule, row.version
    except RuleError as e:  # the projector repeats the checks
        return _editor(422, form, rule_error(e, form["condition"]), samples)
    except RuleStateError:
        error = FieldError("rule", _("Someone saved a version of this rule meanwhile: try again."))
        return _editor(409, form, error, samples)
    flash(
        _(
            "Version %(version)d of %(rule)s is saved. It takes effect once a different "
            "officer approves it.",
            version=version,
            rule=rule,
        ),
        "success",
    )
    return redirect(url_for("pages_rules.rule_versions", rule=rule), code=303)


@bp.post("/rules/<rule>/versions/<int(max=2147483647):version>/approve")
@login_required(*READ)
def approve(rule: str, version: int) -> ResponseReturnValue:
    _approver()
    session, runtime = db_session(), current_runtime()
    session.rollback()
    try:
        with write_transaction(session):
            approve_rule(
                session,
                runtime.ledger,
                rule,
                version,
                officer=current_user().username,
                now=runtime.now(),
            )
    except FourEyesError:
        message = _(
            "You wrote version %(version)d of %(rule)s: a different officer must approve it.",
            version=version,
            rule=rule,
        )
        return _rule_page(rule, 409, message)
    except RuleStateError:
        message = _(
            "Version %(version)d of %(rule)s cannot be approved: it is no longer awaiting "
            "approval, or a newer version is in force.",
            version=version,
            rule=rule,
        )
        return _rule_page(rule, 409, message)
    from webapp.api_risk import live_risk

    live_risk().forget()
    flash(
        _("Version %(version)d of %(rule)s is approved and in force.", version=version, rule=rule),
        "success",
    )
    return redirect(url_for("pages_rules.rule_versions", rule=rule), code=303)


def _day(raw: str, field: str) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
    except ValueError as e:
        raise _BadBacktest(field) from e


class _BadBacktest(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


@bp.post("/rules/backtest")
@login_required(*READ)
def start_backtest() -> ResponseReturnValue:
    """Backtest a version as a task; its progress page links to the result."""
    _writer()
    form = {
        name: request.form.get(name, "").strip() for name in ("rule", "version", "since", "until")
    }
    rule = form["rule"]
    session = db_session()
    shipped, rows, _active = _history(rule)
    if shipped is None and not rows:
        raise NotFoundError(f"no rule {rule}")
    try:
        if not form["version"].isdigit():
            raise _BadBacktest("version")
        version = int(form["version"])
        known = {row.version for row in rows} | ({0} if shipped is not None else set())
        if version not in known:
            raise _BadBacktest("version")
        since, until = _day(form["since"], "since"), _day(form["until"], "until")
        if since is not None and until is not None and until <= since:
            raise _BadBacktest("until")
    except _BadBacktest as e:
        return _rule_page(
            rule,
            422,
            backtest_form=form,
            backtest_error=FieldError(e.field, str(FIELD_ERRORS[e.field])),
        )
    params = {
        "rule": rule,
        "version": version,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    session.rollback()
    return show_progress(launch(RunKind.BACKTEST, params))


# --- the backtest's result ---------------------------------------------------------------

CHART_HEIGHT = 160
CHART_BAR = 10
CHART_GAP = 8


@dataclass(frozen=True, slots=True)
class DayBars:
    day: date
    x: int
    sales: int
    blocked_current: int
    blocked_candidate: int
    y_current: int
    h_current: int
    y_candidate: int
    h_candidate: int


def _sum_by(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        group = totals.setdefault(row[key], {key: row[key]})
        for name, value in row.items():
            if isinstance(value, int) and name != key:
                group[name] = group.get(name, 0) + value
    return [totals[k] for k in sorted(totals)]


def chart_bars(by_day: list[dict[str, Any]]) -> tuple[list[DayBars], int, int]:
    """Bars by day, blocked now beside would block (SVG coordinates, presentation only)."""
    top = max([1, *(max(d["blocked_current"], d["blocked_candidate"]) for d in by_day)])
    bars = []
    step = 2 * CHART_BAR + CHART_GAP
    for i, d in enumerate(by_day):
        h_now = round(CHART_HEIGHT * d["blocked_current"] / top)
        h_new = round(CHART_HEIGHT * d["blocked_candidate"] / top)
        bars.append(
            DayBars(
                d["day"],
                CHART_GAP + i * step,
                d["sales"],
                d["blocked_current"],
                d["blocked_candidate"],
                CHART_HEIGHT - h_now,
                h_now,
                CHART_HEIGHT - h_new,
                h_new,
            )
        )
    return bars, max(CHART_GAP + len(bars) * step, 120), top


@bp.get("/rules/backtests/<run_id>")
@login_required(*READ)
def backtest_result(run_id: str) -> ResponseReturnValue:
    run = get_run(db_session(), run_id, viewer=current_user().username)
    if run.kind != RunKind.BACKTEST.value:
        raise NotFoundError(f"no backtest {run_id}")
    result = run.outcome()
    if run.run_state is not RunState.DONE or result is None:
        return redirect(url_for("pages_tasks.progress", run_id=run.id))
    by_day = [{**d, "day": date.fromisoformat(d["day"])} for d in _sum_by(result["rows"], "day")]
    by_merchant = _sum_by(result["rows"], "merchant")
    bars, width, top = chart_bars(by_day)
    return page(
        "pages/rules/backtest.html",
        run=run,
        result=result,
        by_day=by_day,
        by_merchant=by_merchant,
        bars=bars,
        chart_width=width,
        chart_height=CHART_HEIGHT,
        chart_top=top,
        bar_width=CHART_BAR,
        params=run.parameters(),
    )

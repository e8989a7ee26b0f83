"""Pages: alerts (see :mod:`webapp.pages`).

``/alerts`` lists the analysis's alerts, strongest first, filtered by status, typology,
severity, assignee and subject, with the counts by severity, a page at a time.
``/alerts/<id>`` shows one: typology, score, severity, subject, the status history read
back from the ledger, the notes, and the evidence subgraph, which ``graph.js`` draws with
Cytoscape.js from the node-link JSON in the ``alert-evidence`` script block.

An analyst works alerts with the forms of the detail page, which call the services the
JSON API calls: ``POST /alerts/<id>/decision`` (``status`` triaged with an ``assignee``,
dismissed with a ``note`` giving the reason, escalated) and ``POST /alerts/<id>/notes``.
Each is one ledger entry. Reviewers, approvers and auditors read without forms; a POST
from them is refused (403).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal, format_percent
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.analysis.alerts import (
    RISK_TYPOLOGY,
    SEVERITIES,
    AlertInputError,
    AlertNotFoundError,
    AlertStatus,
    AlertTransitionError,
    alert_history,
    count_alerts,
    decide,
    get_alert,
    list_alerts,
    note_alert,
    notes_of,
)
from provenance.analysis.findings import Typology
from provenance.analysis.ledger_graph import NodeKind
from provenance.analysis.models import Alert
from provenance.db import write_transaction
from webapp.accounts.models import AccountUser
from webapp.accounts.roles import Role
from webapp.accounts.web import login_required
from webapp.analysis import latest_status, proposes_suspension
from webapp.pages.common import READERS, current_role, current_user, page
from webapp.runtime import current_runtime, db_session

bp = Blueprint("pages_alerts", __name__)

PAGE_SIZE = 25

STATUS_LABELS = {
    AlertStatus.NEW.value: _l("New"),
    AlertStatus.TRIAGED.value: _l("Triaged"),
    AlertStatus.DISMISSED.value: _l("Dismissed"),
    AlertStatus.ESCALATED.value: _l("Escalated"),
}
SEVERITY_LABELS = {
    "high": _l("High"),
    "medium": _l("Medium"),
    "low": _l("Low"),
}
TYPOLOGY_LABELS = {
    Typology.FAN_OUT.value: _l("Fan-out"),
    Typology.FAN_IN.value: _l("Fan-in"),
    Typology.SCATTER_GATHER.value: _l("Scatter-gather"),
    Typology.GATHER_SCATTER.value: _l("Gather-scatter"),
    Typology.STACKED_CHAIN.value: _l("Stacked chain"),
    Typology.CYCLE.value: _l("Resale cycle"),
    Typology.BURST.value: _l("High-frequency burst"),
    Typology.SHARED_ATTRIBUTE_RING.value: _l("Ring sharing devices, instruments or IPs"),
    Typology.RISK_PROPAGATION.value: _l("Risk propagated from known-bad parties"),
    Typology.STOLEN_PAYMENT_TAINT.value: _l("Stolen-payment taint"),
    Typology.DOUBLE_SALE.value: _l("Duplicate sale"),
    Typology.SAME_SERIAL_DIFFERENT_PIN.value: _l("Same serial, different PIN"),
    Typology.UNKNOWN_ORIGIN.value: _l("Unknown origin"),
    RISK_TYPOLOGY: _l("Real-time risk rule"),
}
# The kinds of node the evidence holds, as the graph's legend and side panel name them.
NODE_KIND_LABELS = {
    NodeKind.PARTY.value: _l("Party"),
    "merchant": _l("Merchant"),
    NodeKind.BUYER.value: _l("Buyer account"),
    NodeKind.INSTRUMENT.value: _l("Payment instrument"),
    NodeKind.PAYMENT_REF.value: _l("Payment reference"),
    "card": _l("Payment instrument"),
    NodeKind.DEVICE.value: _l("Device"),
    NodeKind.IP.value: _l("IP address"),
    NodeKind.PRODUCT.value: _l("Product"),
    NodeKind.BATCH.value: _l("Batch"),
    NodeKind.CODE.value: _l("Card code"),
    "serial": _l("Card serial"),
}
EDGE_KIND_LABELS = {
    "sold": _l("sold"),
    "bought": _l("bought"),
    "paid_with": _l("paid with"),
    "used": _l("used"),
    "holds": _l("holds"),
    "contains": _l("contains"),
    "sale-attempt": _l("sale attempt"),
}
# Attribute names the side panel shows (others are shown as they are named).
ATTRIBUTE_LABELS = {
    "id": _l("Identifier"),
    "kind": _l("Kind"),
    "name": _l("Name"),
    "origin": _l("Origin"),
    "serial": _l("Serial"),
    "product": _l("Product"),
    "amount": _l("Amount"),
    "time": _l("Time"),
    "at": _l("Time"),
    "seq": _l("Ledger entry"),
    "merchant": _l("Merchant"),
    "decision": _l("Decision"),
    "version": _l("Rule version"),
}
STEP_LABELS = {
    "alert.open": _l("Opened by the analysis"),
    "alert.decide": _l("Decision"),
    "alert.note": _l("Note added"),
}
# What the service's input errors mean, by field, for the page.
FIELD_MESSAGES = {
    "status": _l("Choose a status: new, triaged, dismissed or escalated."),
    "typology": _l("Unknown typology."),
    "severity": _l("Choose a severity: high, medium or low."),
    "assignee": _l(
        "An assignee is an officer's username: 2-64 lower-case letters, digits, '.', '_' or '-'."
    ),
    "subject": _l("The subject filter is 1-100 characters."),
    "note": _l("Write a note of 1-2000 characters."),
    "officer": _l("Your username cannot sign alert decisions."),
    "page": _l("The page must be a whole number from 1."),
}
DONE_MESSAGES = {
    AlertStatus.TRIAGED.value: _l("Alert triaged."),
    AlertStatus.DISMISSED.value: _l("Alert dismissed."),
    AlertStatus.ESCALATED.value: _l("Alert escalated."),
}
DECISIONS = (AlertStatus.TRIAGED.value, AlertStatus.DISMISSED.value, AlertStatus.ESCALATED.value)
FILTERS = ("status", "typology", "severity", "assignee", "subject")


def _label(labels: dict[str, Any], value: str | None) -> str:
    if value is None:
        return ""
    label = labels.get(value)
    return str(label) if label is not None else value


def _input_message(error: AlertInputError) -> str:
    text = FIELD_MESSAGES.get(error.field or "")
    return str(text) if text is not None else error.message


def _may_act() -> bool:
    return current_role() is Role.ANALYST


def _context() -> dict[str, Any]:
    """What every alerts template uses to name statuses, severities and typologies."""
    return {
        "status_label": lambda v: _label(STATUS_LABELS, v),
        "severity_label": lambda v: _label(SEVERITY_LABELS, v),
        "typology_label": lambda v: _label(TYPOLOGY_LABELS, v),
        "kind_label": lambda v: _label(NODE_KIND_LABELS, v),
        "step_label": lambda v: _label(STEP_LABELS, v),
        "score_label": lambda v: format_percent(v, "#,##0%"),
    }


# --- the list -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    alerts: list[Alert]
    counts: dict[tuple[str, str], int]
    page: int
    pages: int
    total: int


def _filters() -> dict[str, str]:
    """The filters the query string sets (blank fields left out)."""
    found = {}
    for name in FILTERS:
        value = request.args.get(name, "").strip()
        if value:
            found[name] = value
    return found


def _page_number() -> int:
    raw = request.args.get("page", "1").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise AlertInputError("page must be a whole number from 1", field="page")
    return int(raw)


def _listing(session: Session, filters: dict[str, str], number: int) -> Listing:
    counts = count_alerts(session, **filters)
    total = sum(counts.values())
    pages = max(1, ceil(total / PAGE_SIZE))
    number = min(number, pages)
    alerts = list_alerts(session, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE, **filters)
    return Listing(alerts, counts, number, pages, total)


def _page_url(filters: dict[str, str], number: int) -> str:
    values: dict[str, Any] = {**filters, "page": number}
    return url_for("pages_alerts.alerts", **values)


def _severity_url(filters: dict[str, str], severity: str) -> str:
    values: dict[str, Any] = {**filters, "severity": severity}
    return url_for("pages_alerts.alerts", **values)


@bp.get("/alerts")
@login_required(*READERS)
def alerts() -> ResponseReturnValue:
    """The alerts, strongest first, a page at a time; 400 on an unknown filter value."""
    session = db_session()
    filters = _filters()
    error = None
    try:
        listing = _listing(session, filters, _page_number())
    except AlertInputError as e:
        error = _input_message(e)
        listing = Listing([], {}, 1, 1, 0)
    by_severity = {
        s: sum(n for (severity, _status), n in listing.counts.items() if severity == s)
        for s in SEVERITIES
    }
    return page(
        "pages/alerts/list.html",
        400 if error else 200,
        error=error,
        listing=listing,
        filters=filters,
        by_severity={s: format_decimal(n) for s, n in by_severity.items()},
        total_label=format_decimal(listing.total),
        statuses=[s.value for s in AlertStatus],
        severities=SEVERITIES,
        typologies=list(TYPOLOGY_LABELS),
        previous_url=_page_url(filters, listing.page - 1) if listing.page > 1 else None,
        next_url=_page_url(filters, listing.page + 1) if listing.page < listing.pages else None,
        page_label=_(
            "Page %(page)s of %(pages)s",
            page=format_decimal(listing.page),
            pages=format_decimal(listing.pages),
        ),
        severity_url=lambda s: _severity_url(filters, s),
        mine_url=url_for("pages_alerts.alerts", assignee=current_user().username)
        if _may_act()
        else None,
        **_context(),
    )


# --- one alert ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proposal:
    """A high alert about a merchant proposes its suspension (see :mod:`webapp.analysis`)."""

    merchant: str
    application_id: int | None
    state: str | None


def _proposal(session: Session, alert: Alert) -> Proposal | None:
    if not proposes_suspension(alert):
        return None
    status = latest_status(session, alert.subject)
    if status is None:
        return Proposal(alert.subject, None, None)
    return Proposal(alert.subject, status.application_id, status.state)


def _analysts(session: Session) -> list[str]:
    """Usernames an alert may be assigned to (the form's suggestions)."""
    return list(
        session.scalars(
            select(AccountUser.username)
            .where(AccountUser.role == Role.ANALYST.value, AccountUser.disabled_at.is_(None))
            .order_by(AccountUser.username)
        )
    )


def _detail(alert_id: int, status: int = 200, **extra: Any) -> Response:
    session = db_session()
    try:
        alert = get_alert(session, alert_id)
    except AlertNotFoundError:
        return _not_found()
    may_act = _may_act()
    return page(
        "pages/alerts/detail.html",
        status,
        alert=alert,
        notes=notes_of(session, alert),
        history=alert_history(session, alert),
        evidence=alert.evidence,
        graph_labels={
            "kinds": {k: str(v) for k, v in NODE_KIND_LABELS.items()},
            "edges": {k: str(v) for k, v in EDGE_KIND_LABELS.items()},
            "attributes": {k: str(v) for k, v in ATTRIBUTE_LABELS.items()},
        },
        proposal=_proposal(session, alert),
        may_act=may_act,
        decisions=_allowed(alert) if may_act else [],
        analysts=_analysts(session) if may_act else [],
        me=current_user().username,
        runs_label=format_decimal(alert.runs),
        **_context(),
        **extra,
    )


def _allowed(alert: Alert) -> list[str]:
    """The decisions the alert's status still allows (the service checks them again)."""
    if alert.status == AlertStatus.NEW.value:
        return list(DECISIONS)
    if alert.status == AlertStatus.TRIAGED.value:
        return [AlertStatus.DISMISSED.value, AlertStatus.ESCALATED.value]
    return []


def _not_found() -> Response:
    return page(
        "accounts/error.html",
        404,
        code="alert-not-found",
        message=_("No such alert."),
    )


@bp.get("/alerts/<int:alert_id>")
@login_required(*READERS)
def detail(alert_id: int) -> ResponseReturnValue:
    return _detail(alert_id)


def _note_field() -> str | None:
    note = request.form.get("note", "").strip()
    return note or None


@bp.post("/alerts/<int:alert_id>/decision")
@login_required(Role.ANALYST)
def decision(alert_id: int) -> ResponseReturnValue:
    """Triage (with an assignee), dismiss (with a reason) or escalate, as the analyst."""
    status = request.form.get("status", "")
    note = _note_field()
    assignee = request.form.get("assignee", "").strip() or None
    form = {"status": status, "note": note or "", "assignee": assignee or ""}
    if status not in DECISIONS:
        return _refused(alert_id, 422, str(FIELD_MESSAGES["status"]), form)
    if status == AlertStatus.DISMISSED.value and note is None:
        return _refused(alert_id, 422, _("A dismissal needs a reason."), form)
    if status == AlertStatus.TRIAGED.value and assignee is None:
        return _refused(alert_id, 422, _("Choose who works the alert."), form)
    session, runtime = db_session(), current_runtime()
    try:
        with write_transaction(session):
            decide(
                session,
                runtime.ledger,
                alert_id,
                status,
                officer=current_user().username,
                assignee=assignee,
                note=note,
                now=runtime.now(),
            )
    except AlertNotFoundError:
        return _not_found()
    except AlertInputError as e:
        return _refused(alert_id, 422, _input_message(e), form)
    except AlertTransitionError:
        return _refused(alert_id, 409, _("The alert's status no longer allows that."), form)
    flash(str(DONE_MESSAGES[status]), "success")
    return redirect(url_for("pages_alerts.detail", alert_id=alert_id), 303)


@bp.post("/alerts/<int:alert_id>/notes")
@login_required(Role.ANALYST)
def add_note(alert_id: int) -> ResponseReturnValue:
    """Add a note (an ``alert.note`` ledger entry), whatever the alert's status."""
    note = _note_field()
    form = {"status": "", "note": note or "", "assignee": ""}
    if note is None:
        return _refused(alert_id, 422, str(FIELD_MESSAGES["note"]), form, "note")
    session, runtime = db_session(), current_runtime()
    try:
        with write_transaction(session):
            note_alert(
                session,
                runtime.ledger,
                alert_id,
                note,
                officer=current_user().username,
                now=runtime.now(),
            )
    except AlertNotFoundError:
        return _not_found()
    except AlertInputError as e:
        return _refused(alert_id, 422, _input_message(e), form, "note")
    flash(_("Note added."), "success")
    return redirect(url_for("pages_alerts.detail", alert_id=alert_id), 303)


def _refused(
    alert_id: int, status: int, message: str, form: dict[str, str], which: str = "decision"
) -> Response:
    """The detail page again, with the error next to the form that was sent."""
    return _detail(alert_id, status, error=message, error_form=which, form=form)

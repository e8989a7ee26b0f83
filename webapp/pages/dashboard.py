"""Pages: dashboard (see :mod:`webapp.pages`).

``/dashboard`` is every staff member's first page: the officers' review queue with how
long each application waits, the alerts by severity and status, the re-reviews due, the
suspended merchants and the latest signed checkpoint. Each block links to the page that
works it (``/applications``, ``/alerts``, ``/ledger/checkpoints``). The figures come from
the services the API reads: the onboarding queue, the alert counts and the ledger.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, current_app, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal, format_timedelta
from flask_babel import lazy_gettext as _l

from merchant_onboarding.workflow import QueueItem, State
from provenance.analysis.alerts import SEVERITIES, AlertStatus, count_alerts
from webapp.accounts.web import login_required
from webapp.onboarding import onboarding_service
from webapp.pages.alerts import SEVERITY_LABELS, STATUS_LABELS
from webapp.pages.common import READERS, STAFF, current_role, page
from webapp.runtime import current_runtime, db_session

bp = Blueprint("pages_dashboard", __name__)

SHOWN = 10  # rows each list shows; its page has the rest
# An application waiting longer than this is marked overdue in the queue.
OVERDUE = timedelta(days=5)

STATE_LABELS = {
    State.SUBMITTED.value: _l("Submitted"),
    State.IN_REVIEW.value: _l("In review"),
    State.NEEDS_INFORMATION.value: _l("Needs information"),
    State.APPROVED.value: _l("Approved"),
    State.SUSPENDED.value: _l("Suspended"),
}


def link(endpoint: str, fallback: str, **values: Any) -> str:
    """``url_for(endpoint)`` when that page exists, else the plain path."""
    if endpoint in current_app.view_functions:
        return url_for(endpoint, **values)
    return fallback


@dataclass(frozen=True, slots=True)
class Row:
    """One application as a dashboard list shows it."""

    application_id: int
    merchant: str
    legal_name: str
    state: str
    state_label: str
    since: datetime
    age: str
    overdue: bool
    due: datetime | None
    url: str


def _row(item: QueueItem, due: datetime | None = None) -> Row:
    state = item.state.value
    return Row(
        application_id=item.application_id,
        merchant=item.merchant,
        legal_name=item.legal_name,
        state=state,
        state_label=str(STATE_LABELS.get(state, state)),
        since=item.since,
        age=format_timedelta(item.waiting, granularity="minute"),
        overdue=item.waiting >= OVERDUE,
        due=due,
        url=f"/applications/{item.application_id}",
    )


@bp.get("/dashboard")
@login_required(*STAFF)
def dashboard() -> ResponseReturnValue:
    session, runtime = db_session(), current_runtime()
    now = runtime.now()
    service = onboarding_service()
    queue = service.queue(session, now=now)
    approved = service.queue(session, now=now, states=[State.APPROVED])
    due = [i for i in approved if i.review_due]
    suspended = service.queue(session, now=now, states=[State.SUSPENDED])
    counts = count_alerts(session)
    statuses = [s.value for s in AlertStatus]
    matrix = [
        (
            severity,
            str(SEVERITY_LABELS[severity]),
            [(status, format_decimal(counts.get((severity, status), 0))) for status in statuses],
            format_decimal(sum(counts.get((severity, s), 0) for s in statuses)),
        )
        for severity in SEVERITIES
    ]
    open_alerts = sum(
        n for (_, status), n in counts.items() if status in (AlertStatus.NEW, AlertStatus.TRIAGED)
    )
    checkpoint = runtime.ledger.latest_checkpoint(session)
    # The administrator sees the figures but may not open the officers' pages.
    reads = current_role() in READERS
    return page(
        "pages/dashboard/dashboard.html",
        queue=[_row(i) for i in queue[:SHOWN]],
        queue_count=format_decimal(len(queue)),
        oldest=format_timedelta(queue[0].waiting, granularity="minute") if queue else None,
        reviews_due=[_row(i, i.expires_at) for i in due[:SHOWN]],
        reviews_due_count=format_decimal(len(due)),
        suspended=[_row(i) for i in suspended[:SHOWN]],
        suspended_count=format_decimal(len(suspended)),
        alert_matrix=matrix,
        alert_statuses=[(s, str(STATUS_LABELS[s])) for s in statuses],
        status_totals=[
            format_decimal(sum(counts.get((sev, s), 0) for sev in SEVERITIES)) for s in statuses
        ],
        open_alerts=format_decimal(open_alerts),
        alerts_url=link("pages_alerts.alerts", "/alerts"),
        alert_url=lambda **filters: link("pages_alerts.alerts", "/alerts", **filters),
        applications_url=link("pages_applications.queue", "/applications"),
        checkpoints_url=link("pages_ledger.checkpoints", "/ledger/checkpoints"),
        reads=reads,
        checkpoint=checkpoint,
        # The note's first line is the origin it was signed for (tlog-checkpoint).
        checkpoint_origin=checkpoint.note.split("\n", 1)[0] if checkpoint else None,
        checkpoint_size=format_decimal(checkpoint.size) if checkpoint else None,
        checkpoint_root=base64.b64encode(checkpoint.root).decode("ascii") if checkpoint else None,
    )

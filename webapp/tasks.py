"""The Celery app and cardtrace's tasks.

Embedded default (no ``CARDTRACE_BROKER_URL``): tasks run in-process, eagerly, with the
same code a worker runs. With a broker: a real worker (``cardtrace worker``) runs them.
Tasks take ids and small scalars, re-read state, and call one service.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import Celery, Task, shared_task
from flask import Flask
from sqlalchemy import text

from provenance.db import write_transaction
from webapp.runtime import close_db_session, current_runtime, db_session


def init_celery(app: Flask) -> Celery:
    settings = app.extensions["cardtrace"].settings

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                try:
                    return self.run(*args, **kwargs)
                finally:
                    close_db_session()

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=settings.broker_url or "memory://",
        result_backend=settings.result_backend,
        task_always_eager=settings.embedded_tasks,
        task_eager_propagates=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        result_expires=3600,
        beat_schedule=beat_schedule(settings.checkpoint_interval_s),
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def beat_schedule(checkpoint_interval_s: int) -> dict[str, dict[str, Any]]:
    """Periodic work for ``cardtrace beat``."""
    return {
        "issue-checkpoint": {
            "task": "cardtrace.issue_checkpoint",
            "schedule": float(checkpoint_interval_s),
        },
        "onboarding-schedule": {
            "task": "cardtrace.onboarding_schedule",
            "schedule": 3600.0,
        },
        "analyze-ledger": {
            "task": "cardtrace.analyze_ledger",
            "schedule": 3600.0,
        },
    }


@shared_task(name="cardtrace.ping", acks_late=True)  # type: ignore[untyped-decorator]
def ping() -> dict[str, Any]:
    """Prove a worker can run a task against the store: returns where it ran."""
    session = db_session()
    session.execute(text("SELECT 1"))
    runtime = current_runtime()
    return {
        "database": runtime.engine.dialect.name,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }


@shared_task(name="cardtrace.issue_checkpoint", acks_late=True)  # type: ignore[untyped-decorator]
def issue_checkpoint() -> dict[str, Any]:
    """Sign the current tree head (does nothing new if the latest checkpoint covers it)."""
    session = db_session()
    with write_transaction(session):
        checkpoint = current_runtime().ledger.issue_checkpoint(session, now=current_runtime().now())
    return {"size": checkpoint.size, "root": checkpoint.root.hex()}


@shared_task(name="cardtrace.onboarding_schedule", acks_late=True)  # type: ignore[untyped-decorator]
def onboarding_schedule() -> dict[str, Any]:
    """Suspend merchants whose approval expired and start due re-reviews (idempotent)."""
    from webapp.onboarding import onboarding_service

    session = db_session()
    with write_transaction(session):
        report = onboarding_service().run_schedule(session, now=current_runtime().now())
    return {
        "reviews_started": report.reviews_started,
        "suspended_expired": report.suspended_expired,
    }


@shared_task(name="cardtrace.analyze_ledger", acks_late=True)  # type: ignore[untyped-decorator]
def analyze_ledger() -> dict[str, Any]:
    """Analyse the entries appended since the last run and record alerts (idempotent: a
    run with nothing new reads nothing and opens no alert twice)."""
    from webapp.analysis import analyse_ledger
    from webapp.onboarding import onboarding_service

    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        done = analyse_ledger(session, runtime.ledger, onboarding_service(), now=runtime.now())
    return {
        "entries_read": done.run.entries_read,
        "last_seq": done.run.last_seq,
        "findings": done.run.findings,
        "opened": len(done.run.opened),
        "refreshed": len(done.run.refreshed),
        "proposals": [
            {"alert": p.alert_id, "merchant": p.merchant, "outcome": p.outcome.value}
            for p in done.proposals
        ],
    }


@shared_task(name="cardtrace.risk_alerts", acks_late=True)  # type: ignore[untyped-decorator]
def risk_alerts(hits: list[dict[str, Any]]) -> dict[str, Any]:
    """Turn the risk rules' review and block decisions of some sales into alerts.

    Idempotent enough to be retried: a repeat lands on the alert already open for the
    same rule and subject (its count of decisions grows, no second alert opens).
    """
    from provenance.analysis.alerts import record_risk_hits
    from provenance.risk.live import RiskHit

    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        report = record_risk_hits(
            session, runtime.ledger, [RiskHit.from_json(h) for h in hits], now=runtime.now()
        )
    return {"opened": len(report.opened), "refreshed": len(report.refreshed)}

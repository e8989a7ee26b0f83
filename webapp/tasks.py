"""The Celery app and cardtrace's tasks.

Embedded default (no ``CARDTRACE_BROKER_URL``): tasks run in-process, eagerly, with the
same code a worker runs. With a broker: a real worker (``cardtrace worker``) runs them.
Tasks take ids and small scalars, re-read state, and call one service.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import zipfile
from pathlib import Path
from typing import Any

from celery import Celery, Task, shared_task
from flask import Flask
from sqlalchemy import text

from provenance.db import write_transaction
from webapp.runtime import close_db_session, current_runtime, db_session

log = logging.getLogger(__name__)


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


@shared_task(name="cardtrace.export_evidence", acks_late=True)  # type: ignore[untyped-decorator]
def export_evidence(export_id: str) -> dict[str, Any]:
    """Write the evidence package of an API export, record its export on the ledger (as
    ``cardtrace evidence export`` does), and zip it for download.

    Idempotent: a finished or failed export is left alone; a redelivered one that had
    recorded its custody entry is not recorded twice. A refusal or a crash marks the
    export failed with a reason fit to show (never an exception's text, which could hold
    paths or secrets); it is not raised, so an in-process run cannot fail its request.
    """
    from provenance.errors import CardtraceError
    from webapp.api_cases import ExportFailure, ExportState, evidence_exports
    from webapp.cli_evidence import export_evidence as export

    exports = evidence_exports()
    status = exports.read(export_id)
    if status.state in (ExportState.DONE, ExportState.FAILED):
        return status.model_dump(mode="json")
    session, runtime = db_session(), current_runtime()
    package_dir = exports.package_dir(export_id)

    def step(name: str, state: str) -> None:
        for s in status.steps:
            if s.name == name:
                s.state = state
        status.state = ExportState.RUNNING
        exports.write(status)

    try:
        if status.custody_seq is None:
            step("package", "running")
            if package_dir.exists():
                shutil.rmtree(package_dir)  # a half-written package from a lost worker
            done = export(
                session,
                runtime,
                status.case,
                package_dir,
                officer=status.requested_by,
                recipient=status.recipient,
                language=status.language,
            )
            status.package_sha256 = done.package.package_sha256
            status.custody_seq = done.custody_seq
            step("package", "done")
        step("archive", "running")
        name = f"case-{status.case}-evidence-{export_id[:8]}"
        archive = exports.directory(export_id) / f"{name}.zip"
        status.archive_sha256, status.size = _zip_directory(package_dir, archive, top=name)
        status.archive_name = archive.name
        step("archive", "done")
        status.state = ExportState.DONE
    except CardtraceError as e:
        status.state = ExportState.FAILED
        status.failure = ExportFailure(code=e.code, detail=str(e))
    except Exception:
        log.exception("evidence export %s failed", export_id)
        status.state = ExportState.FAILED
        status.failure = ExportFailure(
            code="internal-error", detail="the export failed; the server log says why"
        )
    exports.write(status)
    return status.model_dump(mode="json")


def _zip_directory(source: Path, archive: Path, *, top: str) -> tuple[str, int]:
    """Zip ``source`` under the folder ``top`` (files in a stable order); written aside
    and renamed, so a reader never sees half an archive.

    Returns:
        The archive's SHA-256 (hex) and size.
    """
    partial = archive.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            zf.write(path, f"{top}/{path.relative_to(source).as_posix()}")
    digest = hashlib.sha256()
    with open(partial, "rb") as f:
        while block := f.read(1 << 16):
            digest.update(block)
    os.replace(partial, archive)
    return digest.hexdigest(), archive.stat().st_size

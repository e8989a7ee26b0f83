"""Long operations started from the pages, and their progress.

A run is one row of ``task_run``: who started it, its state, how far it got (``done`` of
``total``), a message code and, when finished, its result. The Celery task updates the
row through short sessions of its own, committed at once, so the page sees progress
whether the task runs in-process (the embedded default, Celery eager) or on a worker
(``CARDTRACE_BROKER_URL`` set); the run's id is the Celery task's id.

The tasks take the run's id, re-read what it asks for, and call one service: a rule's
backtest (:func:`provenance.risk.backtest`, as the risk API and CLI call it), one
ledger analysis run (:func:`webapp.analysis.analyse_ledger`, as the periodic task does),
a case's evidence export (the ``cardtrace.export_evidence`` task of the cases API,
whose own status file says which step runs: the run reads it for its progress), or a
CSV import of issuance, transfers or sales (the :mod:`provenance.imports` functions
the ``cardtrace codes import`` command calls, on a file uploaded to the instance folder).
A run already finished or failed is left alone, so a redelivered task does nothing.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from celery import Task, shared_task
from sqlalchemy import String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from provenance.db import Base, write_transaction
from provenance.errors import CardtraceError, NotFoundError
from webapp.runtime import current_runtime, db_session

log = logging.getLogger(__name__)

RUN_ID_LENGTH = 32


class RunKind(StrEnum):
    BACKTEST = "backtest"
    ANALYSIS = "analysis"
    EXPORT = "evidence-export"
    IMPORT = "code-import"


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunState.DONE, RunState.FAILED)


class RunStep(StrEnum):
    """What a run is doing: the page shows each as a translated message."""

    QUEUED = "queued"
    COUNTING = "counting-sales"
    REPLAYING = "replaying-sales"
    ANALYSING = "analysing-ledger"
    PACKAGING = "writing-package"
    ARCHIVING = "zipping-package"
    READING = "counting-rows"
    IMPORTING = "importing-rows"
    FINISHED = "finished"
    FAILED = "failed"


class TaskRun(Base):
    __tablename__ = "task_run"

    id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The account username of whoever started it: only they (or an administrator) see it.
    started_by: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    step: Mapped[str] = mapped_column(String(32))
    done: Mapped[int]
    total: Mapped[int | None]
    # JSON: what the run was asked (a backtest's rule, version and days).
    params: Mapped[str] = mapped_column(Text)
    # JSON: the result once done.
    result: Mapped[str | None] = mapped_column(Text)
    # A failure's error code (never an exception's text).
    failure: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @property
    def run_state(self) -> RunState:
        return RunState(self.state)

    def parameters(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.params)
        return loaded

    def outcome(self) -> dict[str, Any] | None:
        if self.result is None:
            return None
        loaded: dict[str, Any] = json.loads(self.result)
        return loaded


class RunNotFoundError(NotFoundError):
    code = "task-not-found"
    title = "No such task"


def create_run(
    session: Session, kind: RunKind, *, started_by: str, params: dict[str, Any], now: datetime
) -> TaskRun:
    """A queued run (the caller commits, then starts it with :func:`start`)."""
    run = TaskRun(
        id=secrets.token_hex(RUN_ID_LENGTH // 2),
        kind=kind.value,
        started_by=started_by,
        state=RunState.QUEUED.value,
        step=RunStep.QUEUED.value,
        done=0,
        total=None,
        params=json.dumps(params, sort_keys=True),
        result=None,
        failure=None,
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, run_id: str, *, viewer: str | None) -> TaskRun:
    """The run ``run_id``, if ``viewer`` started it (``None``: anyone's, for administrators).

    Raises:
        RunNotFoundError: no such run, or another user's (its id says nothing).
    """
    run = session.get(TaskRun, run_id) if len(run_id) == RUN_ID_LENGTH else None
    if run is None or (viewer is not None and run.started_by != viewer):
        raise RunNotFoundError(f"no task {run_id[:40]!r}")
    return run


def runs_of(session: Session, username: str, kind: RunKind, limit: int = 10) -> list[TaskRun]:
    """The user's latest runs of one kind, newest first."""
    query = (
        select(TaskRun)
        .where(TaskRun.started_by == username, TaskRun.kind == kind.value)
        .order_by(TaskRun.created_at.desc(), TaskRun.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def start(kind: RunKind, run_id: str) -> None:
    """Hand the run to Celery: in-process when tasks are embedded, else to a worker.

    Call it after the run's row is committed. An in-process run has finished (or failed)
    when this returns; a failure is recorded on the row, never raised.
    """
    task: Task = TASKS[kind]
    if task.app.conf.task_always_eager:
        task.apply((run_id,), task_id=run_id)
        return
    try:
        task.apply_async((run_id,), task_id=run_id)
    except Exception:  # the broker is down: say so on the run rather than fail the page
        log.exception("task %s could not be queued", run_id)
        _update(run_id, state=RunState.FAILED, step=RunStep.FAILED, failure="not-queued")


def _update(run_id: str, **changes: Any) -> None:
    """Write progress in a transaction of its own, committed at once (readers see it)."""
    runtime = current_runtime()
    session = runtime.make_session()
    try:
        with write_transaction(session):
            run = session.get(TaskRun, run_id)
            if run is None:
                return
            for name, value in changes.items():
                setattr(run, name, value.value if isinstance(value, StrEnum) else value)
            run.updated_at = runtime.now()
    finally:
        session.close()


def _claim(run_id: str) -> TaskRun | None:
    """The run to work on, or None if it is unknown or already finished."""
    run = db_session().get(TaskRun, run_id)
    if run is None or run.run_state.finished:
        return None
    return run


def _finish(run_id: str, result: dict[str, Any], done: int, total: int) -> None:
    _update(
        run_id,
        state=RunState.DONE,
        step=RunStep.FINISHED,
        done=done,
        total=total,
        result=json.dumps(result, sort_keys=True),
    )


def _fail(run_id: str, error: BaseException) -> None:
    if isinstance(error, CardtraceError):
        code = error.code
    else:
        log.exception("task %s failed", run_id, exc_info=error)
        code = "internal-error"
    _update(run_id, state=RunState.FAILED, step=RunStep.FAILED, failure=code[:64])


# --- the backtest ----------------------------------------------------------------------

BACKTEST_TOTALS = (
    "sales",
    "blocked_current",
    "blocked_candidate",
    "review_current",
    "review_candidate",
    "newly_blocked",
    "no_longer_blocked",
)


def _counted(sales: Iterable[Any], run_id: str, total: int) -> Iterator[Any]:
    """The sales, with the run's ``done`` moved about fifty times along the way."""
    every = max(1, total // 50)
    for done, facts in enumerate(sales, start=1):
        yield facts
        if done % every == 0:
            _update(run_id, done=min(done, total))


def _backtest(run_id: str) -> dict[str, Any]:
    from provenance.ledger import LedgerEntry
    from provenance.risk import backtest, ledger_sales, load_rules
    from provenance.risk.live import SALE_TYPE
    from provenance.risk.rules import DEFAULT_RULES, get_version

    run = _claim(run_id)
    if run is None:
        return {}
    params = run.parameters()
    session = db_session()
    since = datetime.fromisoformat(params["since"]) if params.get("since") else None
    until = datetime.fromisoformat(params["until"]) if params.get("until") else None
    session.rollback()  # the claim's read ends; progress is written beside it
    _update(run_id, state=RunState.RUNNING, step=RunStep.COUNTING)
    try:
        count = select(func.count()).select_from(LedgerEntry).where(LedgerEntry.type == SALE_TYPE)
        if since is not None:
            count = count.where(LedgerEntry.time >= since)
        if until is not None:
            count = count.where(LedgerEntry.time < until)
        total = int(session.scalar(count) or 0)
        _update(run_id, step=RunStep.REPLAYING, total=total)
        current = load_rules(session)
        rule, version = params["rule"], int(params["version"])
        if version == 0:
            spec = next((s for s in DEFAULT_RULES if s.id == rule), None)
            if spec is None:
                raise NotFoundError(f"no shipped rule {rule}")
        else:
            spec = get_version(session, rule, version).spec()
        rows = backtest(
            _counted(ledger_sales(session, since=since, until=until), run_id, total),
            current=current,
            candidate=current.replace(spec),
        )
        session.rollback()
    except Exception as e:  # recorded on the run; an in-process run must not fail its page
        session.rollback()
        _fail(run_id, e)
        return {"state": RunState.FAILED.value}
    result = {
        "rule": rule,
        "version": version,
        "totals": {key: sum(getattr(row, key) for row in rows) for key in BACKTEST_TOTALS},
        "rows": [row.to_json() for row in rows],
    }
    _finish(run_id, result, total, total)
    return {"state": RunState.DONE.value}


@shared_task(name="cardtrace.rule_backtest", acks_late=True)  # type: ignore[untyped-decorator]
def rule_backtest(run_id: str) -> dict[str, Any]:
    """Replay the ledger's sales with one rule version in place of the rule's current one."""
    return _backtest(run_id)


# --- the ledger analysis -----------------------------------------------------------------


def _analysis(run_id: str) -> dict[str, Any]:
    from webapp.analysis import analyse_ledger
    from webapp.onboarding import onboarding_service

    if _claim(run_id) is None:
        return {}
    session, runtime = db_session(), current_runtime()
    session.rollback()
    _update(run_id, state=RunState.RUNNING, step=RunStep.ANALYSING, total=1)
    try:
        with write_transaction(session):
            done = analyse_ledger(session, runtime.ledger, onboarding_service(), now=runtime.now())
            result = {
                "entries_read": done.run.entries_read,
                "last_seq": done.run.last_seq,
                "findings": done.run.findings,
                "opened": len(done.run.opened),
                "refreshed": len(done.run.refreshed),
                "proposals": len(done.proposals),
            }
    except Exception as e:  # recorded on the run; an in-process run must not fail its page
        _fail(run_id, e)
        return {"state": RunState.FAILED.value}
    _finish(run_id, result, 1, 1)
    return {"state": RunState.DONE.value}


@shared_task(name="cardtrace.analysis_run", acks_late=True)  # type: ignore[untyped-decorator]
def analysis_run(run_id: str) -> dict[str, Any]:
    """One incremental ledger analysis run, started by an analyst from the pages."""
    return _analysis(run_id)


# --- the evidence export -------------------------------------------------------------------


def _export(run_id: str) -> dict[str, Any]:
    from webapp.api_cases import ExportState, evidence_exports
    from webapp.tasks import export_evidence

    run = _claim(run_id)
    if run is None:
        return {}
    export_id = str(run.parameters()["export"])
    db_session().rollback()
    _update(run_id, state=RunState.RUNNING, step=RunStep.PACKAGING, total=2)
    try:
        export_evidence(export_id)  # records its own failure on its status, never raises
        status = evidence_exports().read(export_id)
    except Exception as e:  # recorded on the run; an in-process run must not fail its page
        _fail(run_id, e)
        return {"state": RunState.FAILED.value}
    if status.state is not ExportState.DONE:
        code = status.failure.code if status.failure else "internal-error"
        _update(run_id, state=RunState.FAILED, step=RunStep.FAILED, failure=code[:64])
        return {"state": RunState.FAILED.value}
    result = {
        "export": export_id,
        "case": status.case,
        "archive_name": status.archive_name,
        "archive_sha256": status.archive_sha256,
        "package_sha256": status.package_sha256,
        "size": status.size,
        "custody_seq": status.custody_seq,
    }
    _finish(run_id, result, 2, 2)
    return {"state": RunState.DONE.value}


@shared_task(name="cardtrace.evidence_export_run", acks_late=True)  # type: ignore[untyped-decorator]
def evidence_export_run(run_id: str) -> dict[str, Any]:
    """A case's evidence export started from the pages (see the cases API's export)."""
    return _export(run_id)


# --- the code import ------------------------------------------------------------------------

# What each kind of file must hold in its header (as ``cardtrace codes import`` checks it):
# transfers and sales also name each code, by fingerprint or issuer, product, serial, pin.
_UPLOAD_RE = re.compile(r"[0-9a-f]{32}")


def import_uploads() -> Path:
    """Where uploaded import files wait for their run: ``<instance>/imports``. A worker
    on another machine must share the instance folder, as it does for evidence exports."""
    return Path(current_runtime().settings.instance_path) / "imports"


def import_upload_path(upload: str) -> Path:
    """The stored file of upload ``upload`` (a random id, never a name from the client).

    Raises:
        NotFoundError: ``upload`` is not an upload id.
    """
    if not _UPLOAD_RE.fullmatch(upload):
        raise NotFoundError("no such upload")
    return import_uploads() / f"{upload}.csv"


class UploadMissingError(NotFoundError):
    code = "upload-missing"
    title = "The uploaded file is gone"


def _code_import(run_id: str) -> dict[str, Any]:
    run = _claim(run_id)
    if run is None:
        return {}
    params = run.parameters()
    db_session().rollback()
    try:
        path = import_upload_path(str(params.get("upload", "")))
    except NotFoundError as e:
        _fail(run_id, e)
        return {"state": RunState.FAILED.value}
    try:
        return _import_file(run_id, params, path)
    finally:
        # The file holds raw PINs: it goes as soon as the run has ended, either way.
        path.unlink(missing_ok=True)


def _import_file(run_id: str, params: dict[str, Any], path: Path) -> dict[str, Any]:
    from provenance import imports
    from webapp.api_risk import live_risk

    kind = str(params["kind"])
    session, runtime = db_session(), current_runtime()
    _update(run_id, state=RunState.RUNNING, step=RunStep.READING)
    # On SQLite the import holds the one write lock until it commits: progress written
    # from another connection would wait for it, so there the count moves at the end only.
    live = session.get_bind().dialect.name != "sqlite"
    try:
        if not path.is_file():
            raise UploadMissingError(f"the upload of task {run_id} is gone")
        with path.open(encoding="utf-8-sig", newline="") as f:
            total = imports.count_rows(f)
        _update(run_id, step=RunStep.IMPORTING, total=total)

        def progress(rows: int) -> None:
            if live:
                _update(run_id, done=min(rows, total))

        expires = params.get("expires")
        with path.open(encoding="utf-8-sig", newline="") as f, write_transaction(session):
            report = imports.import_csv(
                session,
                runtime.ledger,
                kind,
                f,
                fingerprint_key=runtime.secrets.fingerprint_key,
                signers=imports.Signers(runtime.ledger.platform),
                now=runtime.now(),
                expires_at=(
                    datetime.fromisoformat(str(expires)).replace(tzinfo=UTC) if expires else None
                ),
                progress=progress,
                on_append=live_risk().entries_appended if kind == "sales" else None,
            )
    except imports.ImportFailedError as e:
        result = {
            "kind": kind,
            "bad_lines": e.total,
            "errors": [
                {"line": error.line, "field": error.field, "message": str(error.message)}
                for error in e.errors
            ],
        }
        _update(
            run_id,
            state=RunState.FAILED,
            step=RunStep.FAILED,
            failure=e.code,
            result=json.dumps(result, sort_keys=True),
        )
        return {"state": RunState.FAILED.value}
    except Exception as e:  # recorded on the run; an in-process run must not fail its page
        _fail(run_id, e)
        return {"state": RunState.FAILED.value}
    result = {
        "kind": kind,
        "rows": report.rows,
        "entries": report.entries,
        "batches": report.batches,
    }
    _finish(run_id, result, report.rows, report.rows)
    return {"state": RunState.DONE.value}


@shared_task(name="cardtrace.code_import_run", acks_late=True)  # type: ignore[untyped-decorator]
def code_import_run(run_id: str) -> dict[str, Any]:
    """Import an uploaded CSV of issuance, transfers or sales, all or nothing, every
    entry signed by the platform on its party's behalf (as ``cardtrace codes import``
    signs for a party whose key it was not given)."""
    return _code_import(run_id)


TASKS: dict[RunKind, Task] = {
    RunKind.BACKTEST: rule_backtest,
    RunKind.ANALYSIS: analysis_run,
    RunKind.EXPORT: evidence_export_run,
    RunKind.IMPORT: code_import_run,
}

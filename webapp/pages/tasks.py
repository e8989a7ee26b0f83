"""Pages: the progress of long operations (see :mod:`webapp.pages`).

``/tasks/<id>`` shows one run (state, done of total, what it is doing, a link to the
result once finished); ``progress.js`` polls ``/tasks/<id>.json`` every second. Only
whoever started the run, or an administrator, sees it: anyone else gets 404.
``/tasks/analysis`` lets an analyst start a ledger analysis run.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal, format_percent
from flask_babel import lazy_gettext as _l

from provenance.db import write_transaction
from webapp.accounts.roles import Role
from webapp.accounts.web import login_required
from webapp.pages.common import STAFF, current_role, current_user, page
from webapp.runtime import current_runtime, db_session
from webapp.task_runs import RunKind, RunState, TaskRun, create_run, get_run, runs_of, start

bp = Blueprint("pages_tasks", __name__)

KIND_LABELS = {
    RunKind.BACKTEST.value: _l("Rule backtest"),
    RunKind.ANALYSIS.value: _l("Ledger analysis run"),
}
STATE_LABELS = {
    RunState.QUEUED.value: _l("Queued"),
    RunState.RUNNING.value: _l("Running"),
    RunState.DONE.value: _l("Finished"),
    RunState.FAILED.value: _l("Failed"),
}
STEP_LABELS = {
    "queued": _l("Waiting for a worker."),
    "counting-sales": _l("Counting the sales to replay."),
    "replaying-sales": _l("Replaying the recorded sales."),
    "analysing-ledger": _l("Analysing the ledger's new entries."),
    "finished": _l("Done."),
    "failed": _l("The task failed."),
}
FAILURE_LABELS = {
    "not-found": _l("What the task was asked for no longer exists."),
    "not-queued": _l("The task could not be queued: the worker's broker is unreachable."),
    "internal-error": _l("The task failed; the server log says why."),
}


def _viewer() -> str | None:
    """Whose runs the signed-in user may see (None: an administrator sees every run)."""
    return None if current_role() is Role.ADMINISTRATOR else current_user().username


def visible_run(run_id: str) -> TaskRun:
    """The run, if the signed-in user may see it.

    Raises:
        RunNotFoundError: no such run, or someone else's (404).
    """
    return get_run(db_session(), run_id, viewer=_viewer())


def result_url(run: TaskRun) -> str | None:
    """Where a finished run's result is shown."""
    if run.run_state is not RunState.DONE:
        return None
    if run.kind == RunKind.BACKTEST.value:
        return url_for("pages_rules.backtest_result", run_id=run.id)
    return url_for("pages_tasks.analysis")


def status_json(run: TaskRun) -> dict[str, Any]:
    """What the progress page shows, as progress.js reads it."""
    total = run.total
    fraction = run.done / total if total else (1.0 if run.run_state is RunState.DONE else 0.0)
    failure = None
    if run.failure is not None:
        failure = str(FAILURE_LABELS.get(run.failure, FAILURE_LABELS["internal-error"]))
    return {
        "id": run.id,
        "kind": run.kind,
        "state": run.state,
        "state_label": str(STATE_LABELS[run.state]),
        "finished": run.run_state.finished,
        "done": run.done,
        "total": total,
        "done_label": format_decimal(run.done),
        "total_label": format_decimal(total) if total is not None else "",
        "percent": round(fraction * 100),
        "percent_label": format_percent(fraction),
        "step": run.step,
        "message": str(STEP_LABELS.get(run.step, "")),
        "failure": run.failure,
        "failure_message": failure,
        "result_url": result_url(run),
    }


@bp.get("/tasks/<run_id>")
@login_required(*STAFF)
def progress(run_id: str) -> Response:
    run = visible_run(run_id)
    return page(
        "pages/tasks/progress.html",
        run=run,
        task=status_json(run),
        kind_label=KIND_LABELS[run.kind],
    )


@bp.get("/tasks/<run_id>.json")
@login_required(*STAFF)
def progress_json(run_id: str) -> Response:
    response = jsonify(status_json(visible_run(run_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/tasks/analysis")
@login_required(Role.ANALYST)
def analysis() -> Response:
    runs = runs_of(db_session(), current_user().username, RunKind.ANALYSIS)
    return page(
        "pages/tasks/analysis.html",
        runs=[(run, status_json(run), run.outcome()) for run in runs],
        state_labels=STATE_LABELS,
    )


@bp.post("/tasks/analysis")
@login_required(Role.ANALYST)
def start_analysis() -> ResponseReturnValue:
    """Start one ledger analysis run and show its progress."""
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        run = create_run(
            session,
            RunKind.ANALYSIS,
            started_by=current_user().username,
            params={},
            now=runtime.now(),
        )
        run_id = run.id
    session.close()  # the read ends before the task writes (SQLite: one writer)
    start(RunKind.ANALYSIS, run_id)
    return redirect(url_for("pages_tasks.progress", run_id=run_id), code=303)

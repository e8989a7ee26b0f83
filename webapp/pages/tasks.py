"""Pages: the progress of long operations (see :mod:`webapp.pages`).

``/tasks/<id>`` shows one run (state, done of total, what it is doing, a link to the
result once finished); ``progress.js`` polls ``/tasks/<id>.json`` every second. Only
whoever started the run, or an administrator, sees it: anyone else gets 404.
``/tasks/analysis`` lets an analyst start a ledger analysis run, and ``/tasks/evidence``
a case's evidence export (its archive is downloaded from ``/tasks/<id>/archive``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal, format_percent
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from provenance.cases.service import get_case
from provenance.db import write_transaction
from provenance.errors import CardtraceError, NotFoundError
from webapp.accounts.roles import Role
from webapp.accounts.web import login_required
from webapp.pages.common import STAFF, current_role, current_user, page
from webapp.runtime import current_runtime, db_session
from webapp.task_runs import RunKind, RunState, TaskRun, create_run, get_run, runs_of, start

bp = Blueprint("pages_tasks", __name__)

KIND_LABELS = {
    RunKind.BACKTEST.value: _l("Rule backtest"),
    RunKind.ANALYSIS.value: _l("Ledger analysis run"),
    RunKind.EXPORT.value: _l("Evidence export"),
    RunKind.IMPORT.value: _l("Code import"),
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
    "writing-package": _l("Writing the evidence package."),
    "zipping-package": _l("Zipping the package for download."),
    "counting-rows": _l("Reading the file's rows."),
    "importing-rows": _l("Importing the rows."),
    "finished": _l("Done."),
    "failed": _l("The task failed."),
}
FAILURE_LABELS = {
    "not-found": _l("What the task was asked for no longer exists."),
    "not-queued": _l("The task could not be queued: the worker's broker is unreachable."),
    "internal-error": _l("The task failed; the server log says why."),
    "case-not-found": _l("The case no longer exists."),
    "import-failed": _l("The file has bad lines: nothing was imported. The report names them."),
    "upload-missing": _l("The uploaded file is gone; upload it again."),
}
LANGUAGE_CHOICES = (("zh", _l("Chinese")), ("en", _l("English")))


def _viewer() -> str | None:
    """Whose runs the signed-in user may see (None: an administrator sees every run)."""
    return None if current_role() is Role.ADMINISTRATOR else current_user().username


def launch(kind: RunKind, params: dict[str, Any]) -> str:
    """Record a run of ``kind`` started by the signed-in user, start its task, and return
    the run's id (the session is closed first: the task writes through its own)."""
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        run = create_run(
            session, kind, started_by=current_user().username, params=params, now=runtime.now()
        )
        run_id = run.id
    session.close()  # the read ends before the task writes (SQLite: one writer)
    start(kind, run_id)
    return run_id


def show_progress(run_id: str) -> ResponseReturnValue:
    return redirect(url_for("pages_tasks.progress", run_id=run_id), code=303)


def visible_run(run_id: str) -> TaskRun:
    """The run, if the signed-in user may see it.

    Raises:
        RunNotFoundError: no such run, or someone else's (404).
    """
    return get_run(db_session(), run_id, viewer=_viewer())


def result_url(run: TaskRun) -> str | None:
    """Where a finished run's result is shown (a code import's report, failed or not)."""
    if run.kind == RunKind.IMPORT.value and run.result is not None:
        return url_for("pages_imports.report", run_id=run.id)
    if run.run_state is not RunState.DONE:
        return None
    if run.kind == RunKind.BACKTEST.value:
        return url_for("pages_rules.backtest_result", run_id=run.id)
    if run.kind == RunKind.EXPORT.value:
        return url_for("pages_tasks.archive", run_id=run.id)
    return url_for("pages_tasks.analysis")


def _export_progress(run: TaskRun) -> tuple[int, str]:
    """A running export's steps done, and the step running, from the export's own status."""
    from webapp.api_cases import evidence_exports

    try:
        status = evidence_exports().read(str(run.parameters()["export"]))
    except CardtraceError:
        return run.done, run.step
    done = sum(step.state == "done" for step in status.steps)
    running = next((step.name for step in status.steps if step.state == "running"), None)
    names = {"package": "writing-package", "archive": "zipping-package"}
    return done, names.get(running or "", run.step)


def status_json(run: TaskRun) -> dict[str, Any]:
    """What the progress page shows, as progress.js reads it."""
    total, done, step = run.total, run.done, run.step
    if run.kind == RunKind.EXPORT.value and run.run_state is RunState.RUNNING:
        done, step = _export_progress(run)
    fraction = done / total if total else (1.0 if run.run_state is RunState.DONE else 0.0)
    failure = None
    if run.failure is not None:
        failure = str(FAILURE_LABELS.get(run.failure, FAILURE_LABELS["internal-error"]))
    return {
        "id": run.id,
        "kind": run.kind,
        "state": run.state,
        "state_label": str(STATE_LABELS[run.state]),
        "finished": run.run_state.finished,
        "done": done,
        "total": total,
        "done_label": format_decimal(done),
        "total_label": format_decimal(total) if total is not None else "",
        "percent": round(fraction * 100),
        "percent_label": format_percent(fraction),
        "step": step,
        "message": str(STEP_LABELS.get(step, "")),
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
    return show_progress(launch(RunKind.ANALYSIS, {}))


def _evidence_form(
    status: int = 200,
    form: dict[str, str] | None = None,
    error: str | None = None,
    field: str | None = None,
) -> Response:
    runs = runs_of(db_session(), current_user().username, RunKind.EXPORT)
    return page(
        "pages/tasks/evidence.html",
        status=status,
        form=form or {"lang": "zh"},
        error=error,
        field=field,
        languages=LANGUAGE_CHOICES,
        runs=[(run, status_json(run), run.parameters()) for run in runs],
    )


@bp.get("/tasks/evidence")
@login_required(Role.ANALYST)
def evidence() -> Response:
    return _evidence_form()


@bp.post("/tasks/evidence")
@login_required(Role.ANALYST)
def start_evidence() -> ResponseReturnValue:
    """Export a case's evidence package (recorded on the ledger by this officer, for the
    recipient, as the cases API and CLI record it) and show its progress."""
    from pydantic import ValidationError as InputError

    from webapp.api_cases import EvidenceRequest, evidence_exports

    form = {name: request.form.get(name, "").strip() for name in ("case", "recipient", "lang")}
    if not form["case"].isdigit() or len(form["case"]) > 9:
        return _evidence_form(422, form, _("Give the case's number."), "case")
    try:
        body = EvidenceRequest.model_validate(
            {"recipient": form["recipient"], "lang": form["lang"]}
        )
    except InputError as e:
        field = str(e.errors()[0]["loc"][0])
        message = (
            _("Choose the report's language.")
            if field == "lang"
            else _("The recipient: one line of 1-200 characters.")
        )
        return _evidence_form(422, form, message, field)
    session, runtime = db_session(), current_runtime()
    case_id = int(form["case"])
    try:
        get_case(session, case_id)
    except NotFoundError:
        return _evidence_form(422, form, _("There is no case %(case)d.", case=case_id), "case")
    session.rollback()
    username = current_user().username
    export = evidence_exports().create(
        case_id, officer=username, recipient=body.recipient, language=body.lang, now=runtime.now()
    )
    return show_progress(launch(RunKind.EXPORT, {"export": export.id, "case": case_id}))


@bp.get("/tasks/<run_id>/archive")
@login_required(*STAFF)
def archive(run_id: str) -> Response:
    """A finished evidence export's zip, for whoever started it (or an administrator)."""
    from webapp.api_cases import evidence_exports

    run = visible_run(run_id)
    result = run.outcome()
    if run.kind != RunKind.EXPORT.value or result is None or not result.get("archive_name"):
        raise NotFoundError(f"no archive for task {run_id}")
    name = str(result["archive_name"])
    path = evidence_exports().directory(str(result["export"])) / name
    response = send_file(path, mimetype="application/zip", as_attachment=True, download_name=name)
    response.headers["X-Package-SHA256"] = str(result["package_sha256"])
    return response

# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Pages: progress of long operations. The analysis run as a task, its progress page and
JSON, who may see a task, a failed task, and a run queued for a real worker."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from provenance.db import write_transaction
from provenance.ledger import LedgerEntry
from tests.codes_support import build_chain
from tests.processes import cardtrace_command, clean_env, run, stop
from tests.services import redis_url
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    PASSWORD,
    SHOP,
    Accounts,
    accounts,
    csrf_token,
    enrol,
    web,
)
from tests.test_pages_rules import other_client, post, sign_in
from webapp import create_app
from webapp.accounts.roles import Role
from webapp.pages.tasks import status_json
from webapp.runtime import current_runtime, db_session
from webapp.task_runs import RunKind, TaskRun, create_run, get_run, rule_backtest

RUN_RE = re.compile(r"/tasks/([0-9a-f]{32})$")


def run_count(accounts: Accounts) -> int:
    return int(accounts.session.scalar(select(func.count()).select_from(TaskRun)) or 0)


def queued_run(accounts: Accounts, username: str, **params: object) -> str:
    with accounts.app.app_context():
        run = create_run(
            accounts.session,
            RunKind.BACKTEST,
            started_by=username,
            params=dict(params),
            now=accounts.clock(),
        )
        accounts.session.flush()
        return run.id


@pytest.mark.parametrize("role", list(Role))
def test_only_analysts_start_an_analysis_run(
    accounts: Accounts, web: FlaskClient, role: Role
) -> None:
    sign_in(accounts, web, role)
    allowed = role is Role.ANALYST
    assert web.get("/tasks/analysis").status_code == (200 if allowed else 403)
    started = post(web, "/tasks/analysis", {})
    assert started.status_code == (303 if allowed else 403)
    assert run_count(accounts) == (1 if allowed else 0)


def test_an_analysis_run_shows_its_progress_and_result(
    accounts: Accounts, web: FlaskClient
) -> None:
    with accounts.app.app_context():
        build_chain(accounts.session, current_runtime().ledger)
    sign_in(accounts, web, Role.ANALYST)
    form = web.get("/tasks/analysis").get_data(as_text=True)
    assert 'id="analysis-form"' in form and 'id="run-analysis"' in form
    started = post(web, "/tasks/analysis", {})
    match = RUN_RE.search(started.headers["Location"])
    assert match
    run_id = match.group(1)

    status = web.get(f"/tasks/{run_id}.json")
    assert status.headers["Cache-Control"] == "no-store"
    body = status.get_json()
    assert body["state"] == "done" and body["finished"] is True
    assert (body["done"], body["total"], body["percent"]) == (1, 1, 100)
    assert body["result_url"] == "/tasks/analysis" and body["message"] == "Done."

    page = web.get(f"/tasks/{run_id}").get_data(as_text=True)
    assert f'data-status-url="/tasks/{run_id}.json"' in page
    assert 'src="/static/js/progress.js"' in page and "<script>" not in page
    assert 'id="task-state"' in page and "Finished" in page

    run = accounts.session.get(TaskRun, run_id)
    assert run is not None and run.started_by == "analyst.one"
    outcome = run.outcome()
    assert outcome is not None and outcome["entries_read"] > 0
    listing = web.get("/tasks/analysis").get_data(as_text=True)
    assert 'id="analysis-runs"' in listing and f"/tasks/{run_id}" in listing


def test_a_task_is_seen_only_by_whoever_started_it_or_an_administrator(
    accounts: Accounts, web: FlaskClient
) -> None:
    owner = sign_in(accounts, web, Role.ANALYST)
    run_id = queued_run(accounts, owner, rule="burst-buyer", version=0)
    assert web.get(f"/tasks/{run_id}").status_code == 200
    assert web.get(f"/tasks/{run_id}.json").status_code == 200
    for role in (Role.ANALYST, Role.APPROVER, Role.AUDITOR, Role.REVIEWER):
        other = other_client(accounts, role, "other")
        assert other.get(f"/tasks/{run_id}").status_code == 404
        assert other.get(f"/tasks/{run_id}.json").status_code == 404
    admin = other_client(accounts, Role.ADMINISTRATOR, "boss")
    assert admin.get(f"/tasks/{run_id}.json").status_code == 200
    merchant = other_client(accounts, Role.MERCHANT, "shop")
    assert merchant.get(f"/tasks/{run_id}.json").status_code == 403


def test_an_unknown_task_is_not_found(accounts: Accounts, web: FlaskClient) -> None:
    sign_in(accounts, web, Role.ANALYST)
    for run_id in ("0" * 32, "nope", "x" * 200):
        assert web.get(f"/tasks/{run_id}").status_code == 404
        assert web.get(f"/tasks/{run_id}.json").status_code == 404


def test_nobody_signed_in_is_sent_to_sign_in(accounts: Accounts, web: FlaskClient) -> None:
    run_id = queued_run(accounts, "analyst.one", rule="burst-buyer", version=0)
    response = web.get(f"/tasks/{run_id}.json")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_a_queued_task_shows_it_waits(accounts: Accounts, web: FlaskClient) -> None:
    owner = sign_in(accounts, web, Role.ANALYST)
    run_id = queued_run(accounts, owner, rule="burst-buyer", version=0)
    body = web.get(f"/tasks/{run_id}.json").get_json()
    assert (body["state"], body["finished"], body["done"], body["total"]) == (
        "queued",
        False,
        0,
        None,
    )
    assert body["result_url"] is None and body["message"] == "Waiting for a worker."
    page = web.get(f"/tasks/{run_id}").get_data(as_text=True)
    assert 'data-state="queued"' in page and "Queued" in page


def test_a_failed_task_says_so_and_a_redelivery_changes_nothing(
    accounts: Accounts, web: FlaskClient
) -> None:
    owner = sign_in(accounts, web, Role.ANALYST)
    run_id = queued_run(accounts, owner, rule="burst-buyer", version=7)
    with accounts.app.app_context():
        rule_backtest.apply((run_id,), task_id=run_id)
    body = web.get(f"/tasks/{run_id}.json").get_json()
    assert (body["state"], body["failure"]) == ("failed", "not-found")
    assert body["failure_message"] == "What the task was asked for no longer exists."
    assert body["result_url"] is None
    assert web.get(f"/rules/backtests/{run_id}").status_code == 302
    with accounts.app.app_context():
        rule_backtest.apply((run_id,), task_id=run_id)
    assert web.get(f"/tasks/{run_id}.json").get_json() == body


def test_with_a_worker_the_run_is_queued_and_its_page_polls(
    accounts: Accounts, web: FlaskClient
) -> None:
    celery = accounts.app.extensions["celery"]
    sign_in(accounts, web, Role.ANALYST)
    celery.conf.task_always_eager = False
    try:
        started = post(web, "/tasks/analysis", {})
    finally:
        celery.conf.task_always_eager = True
    match = RUN_RE.search(started.headers["Location"])
    assert match
    body = web.get(f"/tasks/{match.group(1)}.json").get_json()
    assert body["state"] == "queued" and body["finished"] is False
    page = web.get(f"/tasks/{match.group(1)}").get_data(as_text=True)
    assert 'data-state="queued"' in page and 'src="/static/js/progress.js"' in page


# --- evidence export ---------------------------------------------------------------------


def build_a_case(accounts: Accounts) -> int:
    from tests.cases_support import build_case

    with accounts.app.app_context():
        return build_case(accounts.session, current_runtime().ledger).id


@pytest.mark.parametrize("role", list(Role))
def test_only_analysts_export_evidence_from_the_pages(
    accounts: Accounts, web: FlaskClient, role: Role
) -> None:
    sign_in(accounts, web, role)
    allowed = role is Role.ANALYST
    assert web.get("/tasks/evidence").status_code == (200 if allowed else 403)
    refused = post(web, "/tasks/evidence", {"case": "1", "recipient": "x", "lang": "en"})
    assert refused.status_code == (422 if allowed else 403)  # no case 1 here
    assert run_count(accounts) == 0


def test_an_evidence_export_runs_with_progress_and_its_archive_downloads(
    accounts: Accounts, web: FlaskClient
) -> None:
    from provenance.ledger import LedgerEntry

    case_id = build_a_case(accounts)
    owner = sign_in(accounts, web, Role.ANALYST)
    form = web.get("/tasks/evidence").get_data(as_text=True)
    assert 'id="evidence-form"' in form
    started = post(
        web, "/tasks/evidence", {"case": str(case_id), "recipient": "某市公安局", "lang": "zh"}
    )
    assert started.status_code == 303
    match = RUN_RE.search(started.headers["Location"])
    assert match
    run_id = match.group(1)
    body = web.get(f"/tasks/{run_id}.json").get_json()
    assert (body["state"], body["done"], body["total"]) == ("done", 2, 2)
    assert body["result_url"] == f"/tasks/{run_id}/archive"
    archive = web.get(f"/tasks/{run_id}/archive")
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    assert archive.data[:2] == b"PK"
    run = accounts.session.get(TaskRun, run_id)
    assert run is not None
    outcome = run.outcome()
    assert outcome is not None
    entry = accounts.session.scalars(
        select(LedgerEntry).where(LedgerEntry.seq == outcome["custody_seq"])
    ).one()
    body_on_ledger = json.loads(entry.record)["entry"]["body"]
    assert entry.type == "case.export" and body_on_ledger["by"] == owner
    assert body_on_ledger["recipient"] == "某市公安局" and body_on_ledger["case"] == case_id
    assert archive.headers["X-Package-SHA256"] == body_on_ledger["package_sha256"]
    other = other_client(accounts, Role.ANALYST, "other")
    assert other.get(f"/tasks/{run_id}/archive").status_code == 404
    listing = web.get("/tasks/evidence").get_data(as_text=True)
    assert 'id="evidence-runs"' in listing and f"/tasks/{run_id}/archive" in listing


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"case": "abc"}, "case"),
        ({"case": "999999"}, "case"),
        ({"recipient": ""}, "recipient"),
        ({"recipient": "two\nlines"}, "recipient"),
        ({"lang": "fr"}, "lang"),
    ],
)
def test_a_bad_export_request_is_refused_and_nothing_starts(
    accounts: Accounts, web: FlaskClient, fields: dict[str, str], field: str
) -> None:
    case_id = build_a_case(accounts)
    sign_in(accounts, web, Role.ANALYST)
    before = accounts.session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
    data = {"case": str(case_id), "recipient": "partner", "lang": "en"} | fields
    response = post(web, "/tasks/evidence", data)
    assert response.status_code == 422
    assert f'id="error-{field}"' in response.get_data(as_text=True)
    assert run_count(accounts) == 0
    assert accounts.session.scalar(select(func.count()).select_from(LedgerEntry)) == before


def test_a_running_export_shows_the_step_its_status_names(
    accounts: Accounts, web: FlaskClient
) -> None:
    from webapp.api_cases import ExportState, evidence_exports

    owner = sign_in(accounts, web, Role.ANALYST)
    with accounts.app.app_context():
        exports = evidence_exports()
        export = exports.create(
            7, officer=owner, recipient="partner", language="en", now=accounts.clock()
        )
        export.steps[0].state, export.steps[1].state = "done", "running"
        export.state = ExportState.RUNNING
        exports.write(export)
        run = create_run(
            accounts.session,
            RunKind.EXPORT,
            started_by=owner,
            params={"export": export.id, "case": 7},
            now=accounts.clock(),
        )
        run.state, run.total = "running", 2
        accounts.session.flush()
        run_id = run.id
    body = web.get(f"/tasks/{run_id}.json").get_json()
    assert (body["state"], body["done"], body["total"], body["percent"]) == ("running", 1, 2, 50)
    assert body["message"] == "Zipping the package for download."
    assert web.get(f"/tasks/{run_id}/archive").status_code == 404


# --- a real worker -------------------------------------------------------------------------


def test_a_run_on_a_real_worker_shows_its_progress_to_the_web_app(tmp_path: Path) -> None:
    """The worker (on Redis) writes the run's progress; the web app, another process,
    reads it from the database as its progress page does."""
    broker = redis_url()
    env = {"CARDTRACE_BROKER_URL": broker, "CARDTRACE_INSTANCE": str(tmp_path / "instance")}
    assert run(["init"], tmp_path, **env).returncode == 0
    queue = f"cardtrace-test-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [
            *cardtrace_command(),
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=tmp_path,
        env=clean_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app = create_app({"broker_url": broker, "instance_path": tmp_path / "instance"})
        with app.app_context():
            session = db_session()
            with write_transaction(session):
                run_id = create_run(
                    session,
                    RunKind.ANALYSIS,
                    started_by="analyst.one",
                    params={},
                    now=current_runtime().now(),
                ).id
            session.close()
            app.extensions["celery"].send_task(
                "cardtrace.analysis_run", args=[run_id], task_id=run_id, queue=queue
            ).get(timeout=150)
            with app.test_request_context():
                status = status_json(get_run(db_session(), run_id, viewer="analyst.one"))
    finally:
        stop(worker)
    assert (status["state"], status["done"], status["total"]) == ("done", 1, 1)
    assert status["result_url"] == "/tasks/analysis"

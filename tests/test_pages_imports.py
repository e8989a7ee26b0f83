# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Pages: CSV imports of codes as tasks. An issuance then a sales import with their
progress and report, a bad line failing the whole file, every refused upload writing
nothing, the stored upload deleted after the run, administrators only, and no PIN left
in the task table or the logs."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from provenance.codes import Code, CodeBatch
from provenance.ledger import LedgerEntry
from tests.codes_support import ISSUER, PRODUCT, SHOP, Chain, build_chain, fp, pin, serial
from tests.ledger_support import NOW
from tests.risk_support import context
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    Accounts,
    accounts,
    csrf_token,
    sign_in_as,
    web,
)
from webapp.accounts.roles import Role
from webapp.runtime import current_runtime
from webapp.task_runs import TaskRun, code_import_run, import_uploads

RUN_RE = re.compile(r"/tasks/([0-9a-f]{32})$")
ADMIN = "administrator.one"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.fixture()
def chain(accounts: Accounts) -> Chain:
    with accounts.app.app_context():
        return build_chain(accounts.session, current_runtime().ledger)


@pytest.fixture()
def admin(accounts: Accounts, web: FlaskClient, chain: Chain) -> FlaskClient:
    sign_in_as(accounts, web, Role.ADMINISTRATOR, ADMIN)
    return web


def upload(
    client: FlaskClient,
    content: bytes,
    kind: str = "issuance",
    *,
    name: str = "codes.csv",
    csrf: bool = True,
    fields: dict[str, str] | None = None,
) -> Any:
    data: dict[str, Any] = {"kind": kind, "file": (_stream(content), name), **(fields or {})}
    if csrf:
        data["csrf_token"] = csrf_token(client, "/imports")
    return client.post("/imports", data=data, content_type="multipart/form-data")


def _stream(content: bytes) -> Any:
    import io

    return io.BytesIO(content)


def issuance_csv(batch: str, numbers: range) -> str:
    lines = ["batch,product,serial,pin"]
    lines += [f"{batch},{PRODUCT},{serial(i)},{pin(i)}" for i in numbers]
    return "\n".join(lines) + "\n"


def sales_csv(numbers: range, who: str = "web-buyer") -> str:
    lines = ["merchant,buyer,amount,currency,issuer,product,serial,pin,instrument,device"]
    lines += [
        f"{SHOP},{who},100.00,CNY,{ISSUER},{PRODUCT},{serial(i)},{pin(i)},tok-{i},phone-1"
        for i in numbers
    ]
    return "\n".join(lines) + "\n"


def entries(accounts: Accounts) -> int:
    return int(accounts.session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def runs(accounts: Accounts) -> int:
    return int(accounts.session.scalar(select(func.count()).select_from(TaskRun)) or 0)


def uploads_left(accounts: Accounts) -> list[Path]:
    with accounts.app.app_context():
        directory = import_uploads()
    return sorted(directory.iterdir()) if directory.exists() else []


def run_id_of(response: Any) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)
    match = RUN_RE.search(response.headers["Location"])
    assert match
    return match.group(1)


def task_run_dump(accounts: Accounts) -> str:
    """Every column of every task run, as text."""
    rows = accounts.session.execute(text("SELECT * FROM task_run")).all()
    return "\n".join(" ".join(str(value) for value in row) for row in rows)


# --- a successful import ---------------------------------------------------------------------


def test_an_issuance_then_a_sales_import_run_with_progress_and_report(
    accounts: Accounts, admin: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    form = admin.get("/imports").get_data(as_text=True)
    assert 'id="import-form"' in form and 'enctype="multipart/form-data"' in form
    assert 'name="key"' not in form  # the page never takes a private key
    before = entries(accounts)

    issued = upload(
        admin,
        issuance_csv("web-1", range(100, 112)).encode(),
        "issuance",
        fields={"expires": "2027-12-31"},
    )
    run_id = run_id_of(issued)
    status = admin.get(f"/tasks/{run_id}.json").get_json()
    assert (status["state"], status["done"], status["total"], status["percent"]) == (
        "done",
        12,
        12,
        100,
    )
    assert status["result_url"] == f"/imports/{run_id}"
    progress = admin.get(f"/tasks/{run_id}").get_data(as_text=True)
    assert "Code import" in progress and 'src="/static/js/progress.js"' in progress
    report = admin.get(f"/imports/{run_id}").get_data(as_text=True)
    assert '<dd id="import-rows">12</dd>' in report and "web-1" in report
    batch = accounts.session.get(CodeBatch, "web-1")
    assert batch is not None and batch.count == 12 and batch.origin == "issuer-on-behalf"
    run = accounts.session.get(TaskRun, run_id)
    assert run is not None and run.started_by == ADMIN
    outcome = run.outcome()
    assert outcome == {"kind": "issuance", "rows": 12, "entries": 2, "batches": ["web-1"]}
    assert entries(accounts) == before + 2
    issue = accounts.session.scalars(
        select(LedgerEntry).where(LedgerEntry.type == "batch.issue").order_by(LedgerEntry.seq)
    ).all()[-1]
    body = json.loads(issue.record)["entry"]["body"]
    assert body["expires_at"].startswith("2027-12-31T00:00:00")

    sold = upload(admin, sales_csv(range(3)).encode(), "sales")
    sales_run = run_id_of(sold)
    status = admin.get(f"/tasks/{sales_run}.json").get_json()
    assert (status["state"], status["done"], status["total"]) == ("done", 3, 3)
    assert accounts.session.get(TaskRun, sales_run).outcome() == {  # type: ignore[union-attr]
        "kind": "sales",
        "rows": 3,
        "entries": 3,
        "batches": [],
    }
    for i in range(3):
        assert accounts.session.get(Code, fp(i)).state == "sold"  # type: ignore[union-attr]
    with accounts.app.app_context():
        from webapp.api_risk import live_risk

        engine = live_risk().engine(accounts.session)
        features = engine.assess(
            context("web-buyer"), merchant=SHOP, now=NOW + timedelta(seconds=1)
        ).features
    assert features["buyer.history_count"] == 3  # the live risk state saw the sales

    assert uploads_left(accounts) == []
    listing = admin.get("/imports").get_data(as_text=True)
    assert 'id="import-runs"' in listing and f"/imports/{sales_run}" in listing
    stored, logged = task_run_dump(accounts), caplog.text
    for i in [*range(100, 112), *range(3)]:
        assert pin(i) not in stored and pin(i) not in logged


def test_with_a_worker_the_upload_waits_for_the_run_and_a_redelivery_changes_nothing(
    accounts: Accounts, admin: FlaskClient
) -> None:
    celery = accounts.app.extensions["celery"]
    celery.conf.task_always_eager = False
    try:
        run_id = run_id_of(upload(admin, issuance_csv("web-2", range(200, 203)).encode()))
    finally:
        celery.conf.task_always_eager = True
    assert admin.get(f"/tasks/{run_id}.json").get_json()["state"] == "queued"
    assert len(uploads_left(accounts)) == 1
    before = entries(accounts)
    with accounts.app.app_context():
        code_import_run.apply((run_id,), task_id=run_id)
    status = admin.get(f"/tasks/{run_id}.json").get_json()
    assert (status["state"], status["done"], status["total"]) == ("done", 3, 3)
    assert uploads_left(accounts) == []
    with accounts.app.app_context():
        code_import_run.apply((run_id,), task_id=run_id)
    assert admin.get(f"/tasks/{run_id}.json").get_json() == status
    assert entries(accounts) == before + 2


# --- a bad line fails the whole file --------------------------------------------------------


def test_a_bad_line_fails_the_run_with_its_number_and_nothing_is_written(
    accounts: Accounts, admin: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lines = issuance_csv("web-3", range(300, 306)).splitlines()
    lines[3] = f"web-3,{PRODUCT},{serial(302)},12"  # line 4: a PIN too short
    # Line 6 shifted one column: its PIN lands in the product column; neither the
    # import's message nor the report repeats it.
    lines[5] = f"web-3,{pin(304)},{serial(304)},{PRODUCT}"
    before, codes = entries(accounts), accounts.session.scalar(select(func.count(Code.fingerprint)))

    run_id = run_id_of(upload(admin, ("\n".join(lines) + "\n").encode()))
    status = admin.get(f"/tasks/{run_id}.json").get_json()
    assert (status["state"], status["failure"]) == ("failed", "import-failed")
    assert status["result_url"] == f"/imports/{run_id}"
    assert "nothing was imported" in status["failure_message"]
    run = accounts.session.get(TaskRun, run_id)
    assert run is not None
    outcome = run.outcome()
    assert outcome is not None and outcome["bad_lines"] == 2
    assert [(e["line"], e["field"]) for e in outcome["errors"]] == [(4, "pin"), (6, "product")]
    assert outcome["errors"][0]["message"] == f"pin must be 8-16 characters for {PRODUCT}"
    assert outcome["errors"][1]["message"] == "this line's product is not registered"
    assert pin(304) not in json.dumps(outcome)
    report = admin.get(f"/imports/{run_id}").get_data(as_text=True)
    assert 'id="import-errors"' in report and "<td>4</td>" in report and "<td>6</td>" in report
    assert "2 bad lines: nothing was imported." in report

    assert entries(accounts) == before
    assert accounts.session.scalar(select(func.count(Code.fingerprint))) == codes
    assert accounts.session.get(CodeBatch, "web-3") is None
    assert uploads_left(accounts) == []
    stored, logged = task_run_dump(accounts), caplog.text
    for i in range(300, 306):
        assert pin(i) not in stored and pin(i) not in logged
    assert pin(304) not in report


def test_a_sale_of_a_code_nobody_holds_fails_the_run(
    accounts: Accounts, admin: FlaskClient
) -> None:
    before = entries(accounts)
    run_id = run_id_of(upload(admin, sales_csv(range(17, 18)).encode(), "sales"))
    run = accounts.session.get(TaskRun, run_id)
    assert run is not None and run.state == "failed" and run.failure == "import-failed"
    assert [e["line"] for e in run.outcome()["errors"]] == [2]  # type: ignore[index]
    assert entries(accounts) == before
    assert uploads_left(accounts) == []


# --- refused uploads ---------------------------------------------------------------------------


REFUSALS: dict[str, tuple[bytes, str, dict[str, str], int, str]] = {
    "binary renamed .csv": (PNG + b"\x00" * 64, "issuance", {}, 422, "not CSV text"),
    "latin-1 text": (
        "batch,product,serial,pin\nlot-é,x,1,2\n".encode("latin-1"),
        "issuance",
        {},
        422,
        "not UTF-8 text",
    ),
    "utf-16 text": (
        "batch,product,serial,pin\n".encode("utf-16"),
        "issuance",
        {},
        422,
        "not CSV text",
    ),
    "empty": (b"", "issuance", {}, 422, "The file is empty."),
    "missing columns": (
        b"batch,product,serial\nb,p,1\n",
        "issuance",
        {},
        422,
        "lacks the column(s): pin",
    ),
    "sales without currency": (
        b"merchant,buyer,amount,fingerprint\n",
        "sales",
        {},
        422,
        "lacks the column(s): currency",
    ),
    "unknown kind": (
        b"batch,product,serial,pin\n",
        "refunds",
        {},
        422,
        "Choose what the file holds",
    ),
    "bad expiry": (
        b"batch,product,serial,pin\n",
        "issuance",
        {"expires": "31/12/2027"},
        422,
        "YYYY-MM-DD",
    ),
    "expiry on sales": (
        b"merchant,buyer,amount,currency\n",
        "sales",
        {"expires": "2027-12-31"},
        422,
        "issuance only",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_upload_says_why_and_writes_nothing(
    accounts: Accounts, admin: FlaskClient, case: str
) -> None:
    content, kind, fields, status, message = REFUSALS[case]
    before = entries(accounts)
    response = upload(admin, content, kind, fields=fields)
    page = response.get_data(as_text=True)
    assert response.status_code == status
    assert message in page and 'role="alert"' in page
    assert runs(accounts) == 0 and entries(accounts) == before
    assert uploads_left(accounts) == []


def test_a_file_over_the_limit_is_refused(accounts: Accounts, admin: FlaskClient) -> None:
    accounts.app.config["IMPORT_MAX_BYTES"] = 1024
    before = entries(accounts)
    content = issuance_csv("web-4", range(400, 460)).encode()
    assert len(content) > 1024
    response = upload(admin, content)
    assert response.status_code == 413
    assert "The file is larger than the limit of 1 KB." in response.get_data(as_text=True)
    assert runs(accounts) == 0 and entries(accounts) == before
    assert uploads_left(accounts) == []


def test_a_request_over_the_limit_is_refused_before_it_is_read(
    accounts: Accounts, admin: FlaskClient
) -> None:
    accounts.app.config["IMPORT_MAX_BYTES"] = 1024
    response = upload(admin, b"batch,product,serial,pin\n" + b"x" * 200_000)
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "larger than the limit of 1 KB" in page and 'id="import-form"' in page
    assert runs(accounts) == 0 and uploads_left(accounts) == []


def test_the_limit_defaults_to_fifty_megabytes_above_the_apps_own(
    accounts: Accounts, admin: FlaskClient
) -> None:
    assert "at most 50 MB" in admin.get("/imports").get_data(as_text=True)
    app_limit = accounts.app.config["MAX_CONTENT_LENGTH"]
    content = b"batch,product,serial\n" + b"x" * (app_limit + 1024 * 1024)
    response = upload(admin, content)  # read in full: refused for its header, not its size
    assert response.status_code == 422
    assert "lacks the column(s): pin" in response.get_data(as_text=True)
    assert runs(accounts) == 0 and uploads_left(accounts) == []


def test_an_upload_without_the_csrf_token_writes_nothing(
    accounts: Accounts, admin: FlaskClient
) -> None:
    before = entries(accounts)
    response = upload(admin, issuance_csv("web-5", range(500, 502)).encode(), csrf=False)
    assert response.status_code == 400
    assert runs(accounts) == 0 and entries(accounts) == before
    assert uploads_left(accounts) == []


# --- who may import ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMINISTRATOR])
def test_only_an_administrator_imports(
    accounts: Accounts, web: FlaskClient, chain: Chain, role: Role
) -> None:
    sign_in_as(accounts, web, role)
    assert web.get("/imports").status_code == 403
    token = csrf_token(web, "/")
    data: dict[str, Any] = {"csrf_token": token, "kind": "issuance"}
    data["file"] = (_stream(issuance_csv("web-6", range(600, 602)).encode()), "codes.csv")
    response = web.post("/imports", data=data, content_type="multipart/form-data")
    assert response.status_code == 403
    assert runs(accounts) == 0 and uploads_left(accounts) == []
    home = web.get("/", follow_redirects=True).get_data(as_text=True)
    assert "</nav>" in home and 'href="/imports"' not in home


def test_nobody_signed_in_is_sent_to_sign_in(accounts: Accounts, web: FlaskClient) -> None:
    response = web.get("/imports")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_the_administrator_finds_the_page_in_the_navigation(admin: FlaskClient) -> None:
    assert 'href="/imports"' in admin.get("/imports").get_data(as_text=True)


def test_the_report_of_another_kind_of_task_is_not_found(
    accounts: Accounts, admin: FlaskClient
) -> None:
    from webapp.task_runs import RunKind, create_run

    with accounts.app.app_context():
        run = create_run(
            accounts.session, RunKind.ANALYSIS, started_by=ADMIN, params={}, now=accounts.clock()
        )
        accounts.session.flush()
        run_id = run.id
    assert admin.get(f"/imports/{run_id}").status_code == 404
    assert admin.get("/imports/" + "0" * 32).status_code == 404


def test_the_run_counts_its_rows_as_it_imports_them(accounts: Accounts, admin: FlaskClient) -> None:
    """Every thousand rows the run's ``done`` moves (PostgreSQL; on SQLite the import
    holds the one write lock, so the count moves at the end only)."""
    from sqlalchemy import event

    written: list[int] = []

    def watch(_run: Any, value: Any, *_: Any) -> None:
        if value:
            written.append(value)

    event.listen(TaskRun.done, "set", watch)
    try:
        run_id = run_id_of(upload(admin, issuance_csv("web-7", range(1000, 3100)).encode()))
    finally:
        event.remove(TaskRun.done, "set", watch)
    status = admin.get(f"/tasks/{run_id}.json").get_json()
    assert (status["state"], status["done"], status["total"]) == ("done", 2100, 2100)
    if accounts.session.connection().dialect.name == "sqlite":
        assert written == [2100]
    else:
        assert written == [1000, 2000, 2100]

"""The onboarding CLI (staff act as a named account, four eyes hold) and the re-review beat
task."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from merchant_onboarding.applications import ApplicationInput
from merchant_onboarding.documents import DocumentKind, check_document
from merchant_onboarding.officers import Actor, ActorKind, Role
from merchant_onboarding.workflow import Recommendation
from provenance.db import write_transaction
from tests.cli_support import add_account, fresh_instance, run
from tests.ledger_support import NOW
from tests.onboarding_support import (
    BANK_ACCOUNT,
    ApplicationPayload,
    enterprise_extract,
    enterprise_record,
    pdf,
)
from webapp import create_app
from webapp.onboarding import onboarding_service
from webapp.runtime import current_runtime, db_session


@pytest.fixture()
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fresh_instance(tmp_path, monkeypatch)


def submitted_application(payload: dict[str, Any]) -> int:
    with create_app().app_context():
        service, session = onboarding_service(), db_session()
        now = current_runtime().now()
        with write_transaction(session):
            created = service.create(session, ApplicationInput.model_validate(payload), now=now)
            app_id = created.application.id
            applicant = Actor.applicant(app_id)
            service.add_document(
                session,
                app_id,
                DocumentKind.CLEARING_AGREEMENT,
                check_document(pdf(), "a.pdf"),
                actor=applicant,
                now=now,
            )
            service.submit(session, app_id, actor=applicant, now=now)
    return app_id


def test_officers_decide_through_the_cli_with_four_eyes(instance: Path) -> None:
    reviewer, approver, both = (
        add_account("li", "reviewer"),
        add_account("wang", "approver"),
        add_account("chen", "reviewer"),
    )
    payload = ApplicationPayload()
    extract = instance / "enterprises.json"
    extract.write_bytes(enterprise_extract(enterprise_record(payload)))
    imported = run("onboarding", "registry-import", str(extract), "--kind", "enterprise")
    assert "1 records from 企查查 export, extract of 2026-11-01" in imported.output
    app_id = submitted_application(payload)

    assert f"#{app_id}" in run("onboarding", "queue").output
    assert "in_review" in run("onboarding", "review", str(app_id), as_user=reviewer).output
    run("onboarding", "recommend", str(app_id), "approve", "--reason", "ok", as_user=both)
    # The reviewer who recommended becomes an approver: still not the one who decides.
    assert run("accounts", "role", both, "approver").exit_code == 0
    alone = run("onboarding", "decide", str(app_id), "approve", "--reason", "ok", as_user=both)
    assert alone.exit_code == 2 and "a different officer must approve" in alone.output
    no_role = run(
        "onboarding", "decide", str(app_id), "approve", "--reason", "ok", as_user=reviewer
    )
    assert no_role.exit_code == 2 and "approver role" in no_role.output
    decided = run(
        "onboarding", "decide", str(app_id), "approve", "--reason", "ok", as_user=approver
    )
    assert decided.exit_code == 0 and "approved (by wang)" in decided.output

    shown = json.loads(run("onboarding", "show", str(app_id)).output)
    assert shown["status"]["state"] == "approved"
    assert shown["payments"]["bank_account"] == "6222***********0123"
    assert BANK_ACCOUNT not in json.dumps(shown)


def test_an_unknown_or_missing_account_does_nothing(instance: Path) -> None:
    unknown = run("onboarding", "review", "1", as_user="nobody")
    assert unknown.exit_code == 2 and "no active account 'nobody'" in unknown.output
    missing = run("onboarding", "review", "1")
    assert missing.exit_code == 2 and "--as USERNAME" in missing.output


def test_an_account_whose_role_may_not_act_does_nothing(instance: Path) -> None:
    add_account("zhou", "auditor")
    result = run("onboarding", "suspend", "1", "--reason", "x", as_user="zhou")
    assert result.exit_code == 2 and "the auditor role may not" in result.output
    add_account("li", "reviewer")
    assert run("accounts", "lock", "li").exit_code == 0
    locked = run("onboarding", "review", "1", as_user="li")
    assert locked.exit_code == 2 and "no active account 'li'" in locked.output


def test_a_bad_registry_line_is_named(instance: Path) -> None:
    extract = instance / "icp.csv"
    extract.write_text("icp_number,domain,holder_name,holder_kind\n京ICP备12345678号,,x,企业\n")
    result = run(
        "onboarding", "registry-import", str(extract), "--kind", "icp",
        "--source", "MIIT", "--date", "2026-11-01",
    )  # fmt: skip
    assert result.exit_code == 2 and "line 2: domain" in result.output


def test_the_beat_task_starts_due_re_reviews_once(app: Flask, session: Session) -> None:
    from webapp.tasks import beat_schedule, onboarding_schedule

    with app.app_context():
        long_ago = NOW - timedelta(days=181)
        current_runtime().ledger.ensure_genesis(session, name="test", now=long_ago)
        service = onboarding_service()
        officer_r = Actor(ActorKind.OFFICER, "li", frozenset({Role.REVIEWER}))
        officer_a = Actor(ActorKind.OFFICER, "wang", frozenset({Role.APPROVER}))
        created = service.create(
            session, ApplicationInput.model_validate(ApplicationPayload()), now=long_ago
        )
        app_id = created.application.id
        applicant = Actor.applicant(app_id)
        service.add_document(
            session,
            app_id,
            DocumentKind.CLEARING_AGREEMENT,
            check_document(pdf(), "a.pdf"),
            actor=applicant,
            now=long_ago,
        )
        service.submit(session, app_id, actor=applicant, now=long_ago)
        service.start_review(session, app_id, actor=officer_r, now=long_ago)
        service.recommend(
            session, app_id, Recommendation.APPROVE, ["ok"], actor=officer_r, now=long_ago
        )
        service.approve(session, app_id, ["ok"], actor=officer_a, now=long_ago)
        session.flush()
        first = onboarding_schedule.delay().get(timeout=10)
        again = onboarding_schedule.delay().get(timeout=10)
    assert first == {"reviews_started": [app_id], "suspended_expired": []}
    assert again == {"reviews_started": [], "suspended_expired": []}
    assert beat_schedule(60)["onboarding-schedule"]["task"] == "cardtrace.onboarding_schedule"

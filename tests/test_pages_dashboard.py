# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""The dashboard: the review queue with ages, alerts by severity and status, re-reviews
due, suspended merchants and the latest checkpoint, each figure as the services give it;
every staff role may open it, a merchant may not."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from babel.dates import format_datetime, format_timedelta
from flask.testing import FlaskClient

from merchant_onboarding.applications import ApplicationInput
from merchant_onboarding.documents import DocumentKind, check_document
from merchant_onboarding.officers import Actor, ActorKind
from merchant_onboarding.officers import Role as OfficerRole
from merchant_onboarding.workflow import Recommendation
from provenance.analysis.alerts import count_alerts, decide, list_alerts, record_findings
from provenance.analysis.findings import Typology
from tests.ledger_support import NOW, register_party
from tests.onboarding_support import ApplicationPayload, pdf, registered
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    PASSWORD,
    SHOP,
    Accounts,
    accounts,
    csrf_token,
    enrol,
    sign_in_as,
    web,
)
from tests.test_pages_alerts import finding
from webapp.accounts.roles import Role
from webapp.onboarding import onboarding_service
from webapp.runtime import current_runtime

REVIEWER = Actor(ActorKind.OFFICER, "li.reviewer", frozenset({OfficerRole.REVIEWER}))
APPROVER = Actor(ActorKind.OFFICER, "wang.approver", frozenset({OfficerRole.APPROVER}))
# Past the re-review interval (180 days) of an approval given at NOW.
LATER = NOW + timedelta(days=200)
STAFF_ROLES = [r for r in Role if r.is_staff]


def signed_in(accounts: Accounts, role: Role) -> FlaskClient:
    client = accounts.app.test_client()
    username = f"{role.value}.one"
    sign_in_as(accounts, client, role, username)
    return client


@dataclass
class Office:
    submitted: int
    in_review: int
    approved: int
    suspended: int
    draft: int


def _application(accounts: Accounts, merchant: str, target: str) -> int:
    """An application of ``merchant`` brought to ``target`` through the service at NOW."""
    session = accounts.session
    with accounts.app.app_context():
        service = onboarding_service()
        register_party(session, current_runtime().ledger, merchant, kind="merchant")
        payload = ApplicationPayload(merchant=merchant)
        registered(session, payload)
        app_id = service.create(session, ApplicationInput.model_validate(payload), now=NOW)
        app_id_ = app_id.application.id
        if target == "draft":
            return app_id_
        applicant = Actor.applicant(app_id_)
        service.add_document(
            session,
            app_id_,
            DocumentKind.CLEARING_AGREEMENT,
            check_document(pdf(merchant), "agreement.pdf"),
            actor=applicant,
            now=NOW,
        )
        service.submit(session, app_id_, actor=applicant, now=NOW)
        if target == "submitted":
            return app_id_
        service.start_review(session, app_id_, actor=REVIEWER, now=NOW)
        if target == "in_review":
            return app_id_
        service.recommend(
            session, app_id_, Recommendation.APPROVE, ["fine"], actor=REVIEWER, now=NOW
        )
        service.approve(session, app_id_, ["fine"], actor=APPROVER, now=NOW)
        if target == "suspended":
            service.suspend(session, app_id_, ["alert"], actor=REVIEWER, now=NOW)
        session.flush()
        return app_id_


@pytest.fixture()
def office(accounts: Accounts) -> Office:
    built = Office(
        submitted=_application(accounts, "shop-waiting", "submitted"),
        in_review=_application(accounts, "shop-reviewed", "in_review"),
        approved=_application(accounts, "shop-approved", "approved"),
        suspended=_application(accounts, "shop-suspended", "suspended"),
        draft=_application(accounts, "shop-draft", "draft"),
    )
    with accounts.app.app_context():
        ledger = current_runtime().ledger
        record_findings(
            accounts.session,
            ledger,
            [
                finding("shop-x", 0.95, typology=Typology.STOLEN_PAYMENT_TAINT),
                finding("shop-y", 0.9),
                finding("b" * 32, 0.7, kind="buyer"),
                finding("c" * 32, 0.2, kind="buyer", typology=Typology.BURST),
            ],
            now=NOW,
        )
        [first, *_] = list_alerts(accounts.session)
        decide(accounts.session, ledger, first.id, "escalated", officer="an.analyst", now=NOW)
        ledger.issue_checkpoint(accounts.session, now=NOW)
    accounts.session.flush()
    accounts.clock.at = LATER
    return built


def section(page: str, element_id: str) -> str:
    match = re.search(rf'<section class="card" id="{element_id}">(.*?)</section>', page, re.S)
    assert match, page
    return match.group(1)


def ids_in(block: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-application-id="(\d+)"', block)]


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_every_staff_role_opens_the_dashboard(accounts: Accounts, role: Role) -> None:
    client = signed_in(accounts, role)
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert 'id="no-checkpoint"' in response.get_data(as_text=True)


def test_a_merchant_is_refused(accounts: Accounts) -> None:
    assert signed_in(accounts, Role.MERCHANT).get("/dashboard").status_code == 403


def test_a_visitor_is_sent_to_sign_in(web: FlaskClient) -> None:
    assert "/sign-in" in web.get("/dashboard").headers["Location"]


def test_the_queue_shows_the_waiting_applications_with_their_ages(
    accounts: Accounts, office: Office
) -> None:
    page = signed_in(accounts, Role.REVIEWER).get("/dashboard").get_data(as_text=True)
    block = section(page, "review-queue")
    with accounts.app.app_context():
        queue = onboarding_service().queue(accounts.session, now=LATER)
    assert ids_in(block) == [i.application_id for i in queue]
    assert ids_in(block) == [office.submitted, office.in_review]
    assert re.search(r'id="queue-count">2<', block)
    assert f'href="/applications/{office.submitted}"' in block
    age = format_timedelta(LATER - NOW, granularity="minute", locale="en")
    assert f'class="overdue" title="{format_datetime(NOW, locale="en")}">{age}<' in block
    assert 'href="/applications"' in block


def test_re_reviews_due_and_suspended_merchants(accounts: Accounts, office: Office) -> None:
    page = signed_in(accounts, Role.APPROVER).get("/dashboard").get_data(as_text=True)
    assert ids_in(section(page, "reviews-due")) == [office.approved]
    assert re.search(r'id="reviews-due-count">1<', page)
    suspended = section(page, "suspended-merchants")
    assert ids_in(suspended) == [office.suspended]
    assert re.search(r'id="suspended-count">1<', suspended)


def test_alerts_by_severity_and_status_match_the_counts(accounts: Accounts, office: Office) -> None:
    page = signed_in(accounts, Role.ANALYST).get("/dashboard").get_data(as_text=True)
    block = section(page, "alerts-summary")
    counts = count_alerts(accounts.session)
    shown = {
        (severity, status): int(n)
        for severity, row in re.findall(r'<tr data-severity="(\w+)">(.*?)</tr>', block, re.S)
        for status, n in re.findall(r'data-status="(\w+)"><a href="[^"]*">(\d+)</a>', row)
    }
    assert {k: v for k, v in shown.items() if v} == counts
    assert counts == {
        ("high", "escalated"): 1,
        ("high", "new"): 1,
        ("medium", "new"): 1,
        ("low", "new"): 1,
    }
    assert re.search(r'id="open-alerts">3<', block)
    assert 'href="/alerts?severity=high&amp;status=new"' in block


def test_the_latest_checkpoint_is_shown(accounts: Accounts, office: Office) -> None:
    page = signed_in(accounts, Role.AUDITOR).get("/dashboard").get_data(as_text=True)
    block = section(page, "latest-checkpoint")
    with accounts.app.app_context():
        ledger = current_runtime().ledger
        checkpoint = ledger.latest_checkpoint(accounts.session)
        origin = ledger.platform.origin
    assert checkpoint is not None
    assert f'id="checkpoint-origin">{origin}<' in block
    assert f'id="checkpoint-size">{checkpoint.size:,}<' in block
    assert base64.b64encode(checkpoint.root).decode() in block
    assert 'href="/ledger/checkpoints"' in block


def test_the_administrator_sees_figures_without_officers_links(
    accounts: Accounts, office: Office
) -> None:
    page = signed_in(accounts, Role.ADMINISTRATOR).get("/dashboard").get_data(as_text=True)
    assert ids_in(section(page, "review-queue")) == [office.submitted, office.in_review]
    assert 'href="/applications' not in page and 'href="/alerts' not in page


def test_figures_ages_and_dates_follow_the_language(accounts: Accounts, office: Office) -> None:
    client = signed_in(accounts, Role.REVIEWER)
    token = csrf_token(client, "/dashboard")
    client.post("/language", data={"csrf_token": token, "language": "zh_CN", "next": "/"})
    page = client.get("/dashboard").get_data(as_text=True)
    age = format_timedelta(LATER - NOW, granularity="minute", locale="zh_CN")
    assert f">{age}<" in section(page, "review-queue")
    with accounts.app.app_context():
        checkpoint = current_runtime().ledger.latest_checkpoint(accounts.session)
    assert checkpoint is not None
    signed = format_datetime(checkpoint.issued_at, locale="zh_CN")
    assert f'id="checkpoint-time">{signed}<' in page

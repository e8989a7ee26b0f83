# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Officers' application pages: the queue and the file, each action through its form
with the service's effect on the ledger, four eyes refused on the page, roles, CSRF and
stored XSS."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.applications import ApplicationInput
from merchant_onboarding.documents import DocumentKind, check_document
from merchant_onboarding.hits import hits_of
from merchant_onboarding.models import HitDecision, Question, Status
from merchant_onboarding.officers import Actor, ActorKind
from merchant_onboarding.officers import Role as OfficerRole
from merchant_onboarding.workflow import Onboarding, Recommendation, State, history
from provenance.ledger import LedgerEntry
from tests.ledger_support import NOW
from tests.onboarding_support import BANK_ACCOUNT, ApplicationPayload, pdf, registered
from tests.screening_support import import_csv
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    CSRF_RE,
    PASSWORD,
    SHOP,
    Accounts,
    accounts,
    code_step,
    csrf_token,
    enrol,
    password_step,
    sign_in_as,
    totp_at,
    web,
)
from webapp.accounts.roles import Role
from webapp.accounts.service import change_role
from webapp.onboarding import onboarding_service

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTRIBUTE = '"><img src=x onerror=alert(1)>'
XSS = XSS_SCRIPT + XSS_ATTRIBUTE
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"

REVIEWER = Actor(ActorKind.OFFICER, "li.reviewer", frozenset({OfficerRole.REVIEWER}))
APPROVER = Actor(ActorKind.OFFICER, "wang.approver", frozenset({OfficerRole.APPROVER}))


# --- helpers shared with the merchant pages' tests -----------------------------------------


def service_of(accounts: Accounts) -> Onboarding:
    with accounts.app.app_context():
        return onboarding_service()


def signed_in(accounts: Accounts, role: Role, username: str | None = None) -> FlaskClient:
    """A new client signed in as a new account of ``role`` (staff enrol a second factor)."""
    client = accounts.app.test_client()
    username = username or f"{role.value}.one"
    sign_in_as(accounts, client, role, username)
    return client


def token_of(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, page
    return match.group(1)


def draft(accounts: Accounts, merchant: str = SHOP, **overrides: Any) -> tuple[int, dict[str, Any]]:
    payload = ApplicationPayload(merchant=merchant, **overrides)
    registered(accounts.session, payload)
    created = service_of(accounts).create(
        accounts.session, ApplicationInput.model_validate(payload), now=accounts.clock()
    )
    return created.application.id, payload


def submitted(accounts: Accounts, merchant: str = SHOP, **overrides: Any) -> int:
    app_id, payload = draft(accounts, merchant, **overrides)
    service = service_of(accounts)
    applicant = Actor.applicant(app_id)
    service.add_document(
        accounts.session,
        app_id,
        DocumentKind.CLEARING_AGREEMENT,
        check_document(pdf(payload["merchant"]), "agreement.pdf"),
        actor=applicant,
        now=accounts.clock(),
    )
    service.submit(accounts.session, app_id, actor=applicant, now=accounts.clock())
    accounts.session.flush()
    return app_id


def in_review(accounts: Accounts, **overrides: Any) -> int:
    app_id = submitted(accounts, **overrides)
    service_of(accounts).start_review(
        accounts.session, app_id, actor=REVIEWER, now=accounts.clock()
    )
    return app_id


def approved(accounts: Accounts, **overrides: Any) -> int:
    app_id = in_review(accounts, **overrides)
    service = service_of(accounts)
    at = accounts.clock()
    service.recommend(
        accounts.session, app_id, Recommendation.APPROVE, ["fine"], actor=REVIEWER, now=at
    )
    service.approve(accounts.session, app_id, ["fine"], actor=APPROVER, now=at)
    return app_id


def state_of(session: Session, app_id: int) -> str:
    session.expire_all()
    status = session.get(Status, app_id)
    assert status is not None
    return status.state


def ledger_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def assert_escaped(page: str) -> None:
    assert XSS_SCRIPT not in page and "<img src=x" not in page
    assert XSS_ESCAPED in page


@pytest.fixture()
def reviewer(accounts: Accounts) -> FlaskClient:
    return signed_in(accounts, Role.REVIEWER, "li.reviewer")


@pytest.fixture()
def approver(accounts: Accounts) -> FlaskClient:
    return signed_in(accounts, Role.APPROVER, "wang.approver")


@pytest.fixture()
def clock_back(accounts: Accounts) -> Iterator[None]:
    yield
    accounts.clock.at = NOW


# --- the queue ------------------------------------------------------------------------------


def test_the_queue_shows_each_waiting_application_with_its_age_and_risk(
    accounts: Accounts, clock_back: None
) -> None:
    app_id = submitted(accounts, legal_name="北京排队科技有限公司")
    accounts.clock.at = NOW + timedelta(days=3)
    reviewer = signed_in(accounts, Role.REVIEWER)
    response = reviewer.get("/applications")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    row = re.search(rf'<tr data-application="{app_id}">(.*?)</tr>', page, re.S)
    assert row, page
    assert "北京排队科技有限公司" in row.group(1) and "3 days" in row.group(1)
    assert 'data-state="submitted"' in row.group(1) and "data-risk=" in row.group(1)


def test_the_queue_speaks_the_readers_language(accounts: Accounts, clock_back: None) -> None:
    submitted(accounts)
    accounts.clock.at = NOW + timedelta(days=3)
    reviewer = signed_in(accounts, Role.REVIEWER)
    token = token_of(reviewer, "/applications")
    reviewer.post("/language", data={"csrf_token": token, "language": "zh_CN", "next": "/"})
    page = reviewer.get("/applications").get_data(as_text=True)
    assert "3天" in page


def test_the_queue_lists_re_reviews_that_are_due(accounts: Accounts, clock_back: None) -> None:
    app_id = approved(accounts)
    page = signed_in(accounts, Role.REVIEWER).get("/applications").get_data(as_text=True)
    assert f'href="/applications/{app_id}"' not in page
    accounts.clock.at = NOW + timedelta(days=181)
    page = signed_in(accounts, Role.REVIEWER, "zhao.reviewer").get("/applications")
    page = page.get_data(as_text=True)
    due = page.split('id="reviews-due"', 1)
    assert len(due) == 2 and f'data-application="{app_id}"' in due[1]


def test_the_queue_filters_by_state(accounts: Accounts, reviewer: FlaskClient) -> None:
    waiting = submitted(accounts)
    drafted, _ = draft(accounts, "shop-two")
    page = reviewer.get("/applications?state=draft").get_data(as_text=True)
    assert f'data-application="{drafted}"' in page
    assert f'data-application="{waiting}"' not in page
    page = reviewer.get("/applications").get_data(as_text=True)
    assert f'data-application="{waiting}"' in page and f'data-application="{drafted}"' not in page
    assert (
        reviewer.get("/applications?state=all").get_data(as_text=True).count("data-application=")
        == 2
    )


def test_an_unknown_state_filter_is_a_bad_request(
    accounts: Accounts, reviewer: FlaskClient
) -> None:
    response = reviewer.get("/applications?state=%3Cscript%3E")
    assert response.status_code == 400
    assert "<script>" not in response.get_data(as_text=True)


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_each_role_reads_and_acts_only_as_it_may(accounts: Accounts, role: Role) -> None:
    app_id = submitted(accounts)
    client = signed_in(accounts, role)
    reader = role in (Role.REVIEWER, Role.APPROVER, Role.ANALYST, Role.AUDITOR)
    for path in ("/applications", f"/applications/{app_id}"):
        assert client.get(path).status_code == (200 if reader else 403)
    token = token_of(client, "/")
    before = ledger_size(accounts.session)
    response = client.post(f"/applications/{app_id}/review", data={"csrf_token": token})
    if role is Role.REVIEWER:
        assert response.status_code == 303
        assert state_of(accounts.session, app_id) == "in_review"
    else:
        assert response.status_code == 403
        assert state_of(accounts.session, app_id) == "submitted"
        assert ledger_size(accounts.session) == before


@pytest.mark.parametrize("role", [Role.ANALYST, Role.AUDITOR])
def test_read_only_roles_see_no_action_form(accounts: Accounts, role: Role) -> None:
    app_id = in_review(accounts)
    client = signed_in(accounts, role)
    page = client.get(f"/applications/{app_id}").get_data(as_text=True)
    assert 'method="post" action="/applications/' not in page
    assert 'id="actions"' not in page


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("suspend", {"reasons": "x"}),
        ("terminate", {"reasons": "x"}),
        ("questions", {"questions": "why?"}),
        ("recommendation", {"recommendation": "approve", "reasons": "x"}),
        ("decision", {"decision": "approve", "reasons": "x"}),
        ("checks", {}),
        ("hits/1/decision", {"decision": "clear", "reasons": "x"}),
    ],
)
def test_the_auditor_may_post_nothing(accounts: Accounts, path: str, data: dict[str, str]) -> None:
    app_id = approved(accounts)
    client = signed_in(accounts, Role.AUDITOR)
    before = ledger_size(accounts.session)
    token = token_of(client, "/")
    response = client.post(f"/applications/{app_id}/{path}", data={"csrf_token": token, **data})
    assert response.status_code == 403
    assert ledger_size(accounts.session) == before


def test_a_reviewer_may_not_approve(accounts: Accounts, reviewer: FlaskClient) -> None:
    app_id = in_review(accounts)
    page = reviewer.get(f"/applications/{app_id}").get_data(as_text=True)
    assert 'id="form-decide"' not in page
    token = token_of(reviewer, f"/applications/{app_id}")
    response = reviewer.post(
        f"/applications/{app_id}/decision",
        data={"csrf_token": token, "decision": "approve", "reasons": "looks fine"},
    )
    assert response.status_code == 403
    assert state_of(accounts.session, app_id) == "in_review"


def test_an_unknown_application_is_404(accounts: Accounts, reviewer: FlaskClient) -> None:
    assert reviewer.get("/applications/999999").status_code == 404
    token = token_of(reviewer, "/applications")
    response = reviewer.post("/applications/999999/review", data={"csrf_token": token})
    assert response.status_code == 404
    app_id = in_review(accounts)
    response = reviewer.post(
        f"/applications/{app_id}/hits/999999/decision",
        data={"csrf_token": token, "decision": "clear", "reasons": "x"},
    )
    assert response.status_code == 404
    assert "No such screening hit" in response.get_data(as_text=True)


# --- the file ---------------------------------------------------------------------------------


def test_the_file_shows_facts_masked_checks_risk_documents_and_timeline(
    accounts: Accounts, reviewer: FlaskClient
) -> None:
    app_id = submitted(accounts)
    page = reviewer.get(f"/applications/{app_id}").get_data(as_text=True)
    service = service_of(accounts)
    application = service.status(accounts.session, app_id)
    assert application.state == "submitted"
    assert "6222***********0123" in page and BANK_ACCOUNT not in page
    checks = re.findall(r'<tr data-check="([a-z_]+)">(.*?)</tr>', page, re.S)
    assert {name for name, _ in checks} >= {"credit_code", "icp_filing", "screening"}
    for _name, row in checks:
        assert re.search(r'data-result="(pass|warn|fail)"', row)
        assert "Evidence" in row
    assert re.search(r'<tr data-rule="screening">', page)
    assert 'id="documents"' in page and pdf(SHOP) and "agreement.pdf" in page
    from hashlib import sha256

    assert sha256(pdf(SHOP)).hexdigest() in page
    assert re.findall(r'data-action="([a-z_]+)"', page) == ["create", "submit"]
    seqs = [h.seq for h in history(accounts.session, app_id)]
    assert all(f'href="/ledger/entries/{seq}"' in page for seq in seqs)


def test_the_file_never_shows_a_clear_id_number(accounts: Accounts, reviewer: FlaskClient) -> None:
    app_id, payload = draft(accounts)
    page = reviewer.get(f"/applications/{app_id}").get_data(as_text=True)
    clear = payload["legal_rep_id_number"]
    assert clear not in page and clear[:3] + "*" * 11 + clear[-4:] in page
    assert payload["owners"][0]["id_number"] not in page


# --- actions ----------------------------------------------------------------------------------


def _post(client: FlaskClient, app_id: int, step: str, **data: str) -> Any:
    token = token_of(client, f"/applications/{app_id}")
    return client.post(f"/applications/{app_id}/{step}", data={"csrf_token": token, **data})


def test_a_reviewer_recommends_and_a_different_approver_approves(
    accounts: Accounts, reviewer: FlaskClient, approver: FlaskClient
) -> None:
    app_id = submitted(accounts)
    assert _post(reviewer, app_id, "review").status_code == 303
    response = _post(
        reviewer, app_id, "recommendation", recommendation="approve", reasons="clean\nregistered"
    )
    assert response.status_code == 303
    response = _post(approver, app_id, "decision", decision="approve", reasons="agreed")
    assert response.status_code == 303
    assert state_of(accounts.session, app_id) == "approved"
    steps = [(h.action, h.by, h.reasons) for h in history(accounts.session, app_id)][2:]
    assert steps == [
        ("start_review", "li.reviewer", ["review started"]),
        ("recommend_approve", "li.reviewer", ["clean", "registered"]),
        ("approve", "wang.approver", ["agreed"]),
    ]
    page = approver.get(response.headers["Location"]).get_data(as_text=True)
    assert "Application approved." in page and 'data-state="approved"' in page
    assert re.findall(r'data-action="([a-z_]+)"', page)[-1] == "approve"


def test_the_same_person_cannot_recommend_and_approve(accounts: Accounts, clock_back: None) -> None:
    """An officer who recommended, later given the approver's role, is refused by four
    eyes: the page says why (409) and nothing is written."""
    app_id = in_review(accounts)
    client = accounts.app.test_client()
    accounts.create("zhou.officer", Role.REVIEWER)
    enrolled = enrol(client, "zhou.officer", accounts.clock())
    response = _post(client, app_id, "recommendation", recommendation="approve", reasons="ok")
    assert response.status_code == 303
    change_role(
        accounts.session, "zhou.officer", Role.APPROVER, now=accounts.clock(), actor="root.admin"
    )
    accounts.clock.at = NOW + timedelta(minutes=2)
    assert password_step(client, "zhou.officer").status_code == 302
    assert code_step(client, totp_at(enrolled.secret, accounts.clock())).status_code == 302
    before = ledger_size(accounts.session)
    response = _post(client, app_id, "decision", decision="approve", reasons="me again")
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert 'data-code="four-eyes"' in page and "a different officer must decide" in page.lower()
    assert state_of(accounts.session, app_id) == "in_review"
    assert ledger_size(accounts.session) == before


def test_an_approval_without_a_recommendation_is_refused_on_the_page(
    accounts: Accounts, approver: FlaskClient
) -> None:
    app_id = in_review(accounts)
    before = ledger_size(accounts.session)
    response = _post(approver, app_id, "decision", decision="approve", reasons="quick")
    assert response.status_code == 409
    assert 'data-code="recommendation-missing"' in response.get_data(as_text=True)
    assert ledger_size(accounts.session) == before


def test_a_decision_without_reasons_is_refused_and_nothing_written(
    accounts: Accounts, reviewer: FlaskClient
) -> None:
    app_id = in_review(accounts)
    before = ledger_size(accounts.session)
    response = _post(reviewer, app_id, "recommendation", recommendation="approve", reasons=" \n ")
    assert response.status_code == 422
    assert "Reasons" in response.get_data(as_text=True)
    response = _post(reviewer, app_id, "recommendation", recommendation="maybe", reasons="x")
    assert response.status_code == 422
    assert ledger_size(accounts.session) == before


def test_a_reviewer_asks_questions(accounts: Accounts, reviewer: FlaskClient) -> None:
    app_id = in_review(accounts)
    response = _post(reviewer, app_id, "questions", questions="Who holds the funds?\nSince when?")
    assert response.status_code == 303
    assert state_of(accounts.session, app_id) == "needs_information"
    asked = accounts.session.scalars(select(Question.text).where(Question.application_id == app_id))
    assert list(asked) == ["Who holds the funds?", "Since when?"]
    empty = _post(reviewer, app_id, "questions", questions="")
    assert empty.status_code in (409, 422)


def test_suspend_reinstate_and_terminate(
    accounts: Accounts, reviewer: FlaskClient, approver: FlaskClient
) -> None:
    app_id = approved(accounts)
    assert _post(reviewer, app_id, "suspend", reasons="chargebacks").status_code == 303
    assert state_of(accounts.session, app_id) == "suspended"
    response = _post(
        reviewer, app_id, "recommendation", recommendation="reinstate", reasons="resolved"
    )
    assert response.status_code == 303
    assert _post(approver, app_id, "reinstate", reasons="agreed").status_code == 303
    assert state_of(accounts.session, app_id) == "approved"
    assert _post(approver, app_id, "terminate", reasons="closed").status_code == 303
    assert state_of(accounts.session, app_id) == "terminated"


def test_a_reviewer_clears_and_confirms_screening_hits(
    accounts: Accounts, reviewer: FlaskClient, approver: FlaskClient
) -> None:
    import_csv(accounts.session)
    app_id = in_review(accounts)
    views = hits_of(accounts.session, app_id)
    assert views, "张伟 is on the test list"
    page = reviewer.get(f"/applications/{app_id}").get_data(as_text=True)
    for view in views:
        row = re.search(rf'<tr data-hit="{view.hit.id}">(.*?)</tr>', page, re.S)
        assert row and view.hit.watchlist in row.group(1) and view.hit.matched_name in row.group(1)
        assert "Clear: a false positive" in row.group(1)
    first = views[0].hit.id
    response = _post(reviewer, app_id, f"hits/{first}/decision", decision="clear", reasons="dob")
    assert response.status_code == 303
    decision = accounts.session.get(HitDecision, first)
    assert decision is not None and decision.decision == "cleared" and decision.by == "li.reviewer"
    again = _post(reviewer, app_id, f"hits/{first}/decision", decision="confirm", reasons="x")
    assert again.status_code == 409
    assert 'data-code="hit-decided"' in again.get_data(as_text=True)
    page = approver.get(f"/applications/{app_id}").get_data(as_text=True)
    assert "hit_cleared" in page and "Clear: a false positive" not in page


# --- CSRF ---------------------------------------------------------------------------------------

POSTS = [
    ("review", {}),
    ("checks", {}),
    ("questions", {"questions": "why?"}),
    ("recommendation", {"recommendation": "approve", "reasons": "x"}),
    ("decision", {"decision": "reject", "reasons": "x"}),
    ("suspend", {"reasons": "x"}),
    ("reinstate", {"reasons": "x"}),
    ("terminate", {"reasons": "x"}),
    ("hits/1/decision", {"decision": "clear", "reasons": "x"}),
]


@pytest.mark.parametrize(("path", "data"), POSTS)
@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_post_without_the_csrf_token_is_refused_and_nothing_written(
    accounts: Accounts, path: str, data: dict[str, str], token: str | None
) -> None:
    app_id = submitted(accounts)
    client = signed_in(accounts, Role.REVIEWER)
    before = ledger_size(accounts.session)
    form = dict(data) if token is None else {"csrf_token": token, **data}
    response = client.post(f"/applications/{app_id}/{path}", data=form)
    assert response.status_code == 400
    assert 'data-code="csrf-failed"' in response.get_data(as_text=True)
    assert ledger_size(accounts.session) == before
    assert state_of(accounts.session, app_id) == "submitted"


# --- stored XSS -------------------------------------------------------------------------------


def test_free_text_from_merchants_and_officers_is_escaped_on_every_officer_page(
    accounts: Accounts, reviewer: FlaskClient, approver: FlaskClient
) -> None:
    import_csv(accounts.session)
    app_id = submitted(
        accounts, legal_name="北京" + XSS, registered_address=XSS, legal_rep_name="李" + XSS
    )
    assert _post(reviewer, app_id, "review").status_code == 303
    hit = hits_of(accounts.session, app_id)[0].hit.id
    response = _post(reviewer, app_id, f"hits/{hit}/decision", decision="clear", reasons=XSS)
    assert response.status_code == 303
    assert _post(reviewer, app_id, "questions", questions=XSS).status_code == 303
    service_of(accounts).answer(
        accounts.session,
        app_id,
        {_question(accounts, app_id): XSS},
        actor=Actor.applicant(app_id),
        now=accounts.clock(),
    )
    response = _post(reviewer, app_id, "recommendation", recommendation="reject", reasons=XSS)
    assert response.status_code == 303
    for client in (reviewer, approver):
        for path in ("/applications", "/applications?state=all", f"/applications/{app_id}"):
            page = client.get(path).get_data(as_text=True)
            assert_escaped(page)
    page = approver.get(f"/applications/{app_id}").get_data(as_text=True)
    assert page.count(XSS_ESCAPED) >= 7


def _question(accounts: Accounts, app_id: int) -> int:
    found = accounts.session.scalars(
        select(Question.id).where(Question.application_id == app_id)
    ).first()
    assert found is not None
    return found


def test_an_escaped_error_never_echoes_raw_input(accounts: Accounts, approver: FlaskClient) -> None:
    app_id = in_review(accounts)
    response = _post(approver, app_id, "decision", decision=XSS, reasons=XSS)
    assert response.status_code == 422
    assert XSS_SCRIPT not in response.get_data(as_text=True)
    assert state_of(accounts.session, app_id) == State.IN_REVIEW.value

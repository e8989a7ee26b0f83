# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""A merchant's own application pages: fill in, upload (type read from the content),
submit, answer; only its own applications (another merchant's id is 404 everywhere);
never the screening hits or the officers' notes; CSRF and stored XSS."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.documents import MAX_DOCUMENT_BYTES
from merchant_onboarding.models import Application, Blob, Document, Question
from merchant_onboarding.workflow import Recommendation
from provenance.ledger import LedgerEntry
from tests.onboarding_support import (
    BANK_ACCOUNT,
    credit_code,
    id_number,
    pdf,
    png,
    wrong_check_digit,
)
from tests.screening_support import import_csv
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    OTHER_SHOP,
    PASSWORD,
    SHOP,
    Accounts,
    accounts,
    csrf_token,
    web,
)
from tests.test_pages_applications import (
    APPROVER,
    REVIEWER,
    XSS,
    XSS_SCRIPT,
    assert_escaped,
    draft,
    in_review,
    service_of,
    signed_in,
    state_of,
    submitted,
    token_of,
)
from webapp.accounts.roles import Role


def counts(session: Session) -> tuple[int, int, int, int]:
    session.expire_all()
    return tuple(  # type: ignore[return-value]
        session.scalar(select(func.count()).select_from(t)) or 0
        for t in (Application, Document, Blob, LedgerEntry)
    )


def form(**overrides: str) -> dict[str, str]:
    """Every field of the application form, filled in validly."""
    fields = {
        "legal_name": "上海星河电子商务有限公司",
        "credit_code": credit_code(),
        "legal_rep_name": "王芳",
        "legal_rep_id_number": id_number(7),
        "registered_address": "上海市浦东新区世纪大道100号",
        "domain": "xinghe.example.cn",
        "icp_number": "沪ICP备20261126号-1",
        "payment_licence": "",
        "clearing_institution": "银联商务股份有限公司",
        "fund_custody": "licensed_institution",
        "user_agreement_url": "https://xinghe.example.cn/terms",
        "privacy_policy_url": "https://xinghe.example.cn/privacy",
        "bank_name": "招商银行上海分行",
        "bank_account": BANK_ACCOUNT,
        "owner_name_0": "王芳",
        "owner_share_0": "70",
        "owner_id_number_0": id_number(8),
        "owner_name_1": "李强",
        "owner_share_1": "30",
    }
    fields.update(overrides)
    return fields


@pytest.fixture()
def merchant(accounts: Accounts) -> FlaskClient:
    return signed_in(accounts, Role.MERCHANT, "shop.owner")


def other_merchant(accounts: Accounts) -> FlaskClient:
    client = accounts.app.test_client()
    accounts.create("other.owner", Role.MERCHANT, party=OTHER_SHOP)
    client.post(
        "/sign-in",
        data={"csrf_token": csrf_token(client), "username": "other.owner", "password": PASSWORD},
    )
    return client


def create(client: FlaskClient, **overrides: str) -> Any:
    token = token_of(client, "/merchant/applications/new")
    return client.post("/merchant/applications", data={"csrf_token": token, **form(**overrides)})


def created_id(response: Any) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[-1])


def upload(
    client: FlaskClient, app_id: int, content: bytes, name: str = "licence.pdf", **extra: Any
) -> Any:
    token = token_of(client, f"/merchant/applications/{app_id}")
    data = {"csrf_token": token, "kind": "clearing_agreement", **extra}
    data["file"] = (io.BytesIO(content), name)
    return client.post(
        f"/merchant/applications/{app_id}/documents", data=data, content_type="multipart/form-data"
    )


def post(client: FlaskClient, app_id: int, step: str, **data: str) -> Any:
    token = token_of(client, f"/merchant/applications/{app_id}")
    return client.post(
        f"/merchant/applications/{app_id}/{step}", data={"csrf_token": token, **data}
    )


# --- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_only_a_merchant_opens_the_merchant_pages(accounts: Accounts, role: Role) -> None:
    app_id, _ = draft(accounts)
    client = signed_in(accounts, role)
    allowed = role is Role.MERCHANT
    for path in (
        "/merchant",
        "/merchant/applications/new",
        f"/merchant/applications/{app_id}",
        f"/merchant/applications/{app_id}/edit",
    ):
        assert client.get(path).status_code == (200 if allowed else 403), path
    if not allowed:
        before = counts(accounts.session)
        token = token_of(client, "/")
        response = client.post(
            f"/merchant/applications/{app_id}/submit", data={"csrf_token": token}
        )
        assert response.status_code == 403 and counts(accounts.session) == before


def test_the_overview_lists_only_the_merchants_own_applications(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    own, _ = draft(accounts, legal_name="我的公司")
    other, _ = draft(accounts, OTHER_SHOP, legal_name="别人的公司")
    page = merchant.get("/merchant").get_data(as_text=True)
    assert f'data-application="{own}"' in page and "我的公司" in page
    assert f'data-application="{other}"' not in page and "别人的公司" not in page
    assert 'id="new-application"' not in page


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "", {}),
        ("GET", "/edit", {}),
        ("POST", "", {"legal_name": "Mine now"}),
        ("POST", "/submit", {}),
        ("POST", "/answers", {"answer_1": "x"}),
    ],
)
def test_another_merchants_application_is_404_on_every_route(
    accounts: Accounts, merchant: FlaskClient, method: str, path: str, data: dict[str, str]
) -> None:
    theirs = submitted(accounts, OTHER_SHOP)
    before = counts(accounts.session)
    token = token_of(merchant, "/merchant")
    url = f"/merchant/applications/{theirs}{path}"
    response = merchant.open(url, method=method, data={"csrf_token": token, **data})
    assert response.status_code == 404
    assert counts(accounts.session) == before
    missing = merchant.open(
        f"/merchant/applications/999999{path}", method=method, data={"csrf_token": token, **data}
    )
    assert missing.status_code == 404


def test_another_merchants_application_takes_no_upload(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    theirs, _ = draft(accounts, OTHER_SHOP)
    token = token_of(merchant, "/merchant")
    before = counts(accounts.session)
    response = merchant.post(
        f"/merchant/applications/{theirs}/documents",
        data={"csrf_token": token, "kind": "other", "file": (io.BytesIO(pdf()), "x.pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 404 and counts(accounts.session) == before


# --- the draft -----------------------------------------------------------------------------


def test_a_merchant_fills_in_and_saves_a_draft(accounts: Accounts, merchant: FlaskClient) -> None:
    filled = form()
    app_id = created_id(create(merchant, **filled))
    application = accounts.session.get(Application, app_id)
    assert application is not None and application.merchant == SHOP
    assert application.legal_name == filled["legal_name"]
    assert (
        application.domain == "xinghe.example.cn"
        and application.fund_custody == "licensed_institution"
    )
    assert application.bank_account_masked == "6222***********0123"
    assert state_of(accounts.session, app_id) == "draft"
    page = merchant.get(f"/merchant/applications/{app_id}").get_data(as_text=True)
    assert filled["legal_rep_id_number"] not in page and BANK_ACCOUNT not in page
    assert "李强" in page and "30.00%" in page
    edit = merchant.get(f"/merchant/applications/{app_id}/edit").get_data(as_text=True)
    assert filled["legal_rep_id_number"] not in edit and BANK_ACCOUNT not in edit
    assert 'value="上海市浦东新区世纪大道100号"' in edit


def test_saving_again_changes_what_was_typed_and_keeps_the_sealed_fields(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    app_id = created_id(create(merchant))
    edit = merchant.get(f"/merchant/applications/{app_id}/edit").get_data(as_text=True)
    assert 'name="owner_name_1"' in edit
    application = accounts.session.get(Application, app_id)
    assert application is not None
    sealed = application.bank_account_sealed
    token = token_of(merchant, f"/merchant/applications/{app_id}/edit")
    changed = form(
        registered_address="上海市黄浦区南京东路1号",
        credit_code=application.credit_code,
        legal_rep_id_number="",
        bank_account="",
        owner_id_number_0="",
        owner_share_0="70.00",
        owner_share_1="30.00",
    )
    response = merchant.post(
        f"/merchant/applications/{app_id}", data={"csrf_token": token, **changed}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    accounts.session.expire_all()
    application = accounts.session.get(Application, app_id)
    assert application is not None
    assert application.registered_address == "上海市黄浦区南京东路1号"
    assert application.bank_account_sealed == sealed
    from merchant_onboarding.applications import owners_of

    owners = owners_of(accounts.session, app_id)
    assert [o.name for o in owners] == ["王芳", "李强"] and owners[0].id_masked is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("credit_code", wrong_check_digit(credit_code(900))),
        ("legal_rep_id_number", wrong_check_digit(id_number(9))),
        ("domain", "not a domain"),
        ("user_agreement_url", "javascript:alert(1)"),
        ("bank_account", "12ab"),
        ("owner_share_0", "170"),
        ("legal_name", ""),
    ],
)
def test_a_bad_field_is_refused_by_name_and_nothing_is_written(
    accounts: Accounts, merchant: FlaskClient, field: str, value: str
) -> None:
    before = counts(accounts.session)
    response = create(merchant, **{field: value})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="form-error"' in page
    assert f'data-field="{field.removeprefix("owner_").split("_0")[0]}' in page or (
        field.startswith("owner_") and 'data-field="owners' in page
    )
    assert counts(accounts.session) == before
    assert XSS_SCRIPT not in page


def test_a_second_live_application_is_refused(accounts: Accounts, merchant: FlaskClient) -> None:
    created_id(create(merchant))
    before = counts(accounts.session)
    response = create(merchant)
    assert response.status_code == 409
    assert 'data-code="duplicate-merchant"' in response.get_data(as_text=True)
    assert counts(accounts.session) == before


# --- documents -------------------------------------------------------------------------------


def test_a_document_is_uploaded_and_listed_with_its_digest(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    app_id = created_id(create(merchant))
    response = upload(merchant, app_id, png(3), "scan.png", kind="id_scan")
    assert response.status_code == 303
    [document] = accounts.session.scalars(select(Document).where(Document.application_id == app_id))
    assert document.media_type == "image/png" and document.kind == "id_scan"
    page = merchant.get(f"/merchant/applications/{app_id}").get_data(as_text=True)
    assert document.sha256.hex() in page and "scan.png" in page


@pytest.mark.parametrize(
    "content",
    [
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64,
        b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64,
        b"<!doctype html><html><script>alert(1)</script></html>",
        b"",
    ],
    ids=["windows-executable", "elf-executable", "html", "empty"],
)
def test_a_file_disguised_as_a_pdf_is_refused_and_nothing_stored(
    accounts: Accounts, merchant: FlaskClient, content: bytes
) -> None:
    app_id = created_id(create(merchant))
    before = counts(accounts.session)
    response = upload(merchant, app_id, content, "licence.pdf")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="action-error"' in page and XSS_SCRIPT not in page
    if content:
        assert "not its name" in page
    assert counts(accounts.session) == before


def test_a_document_over_the_limit_is_refused_and_nothing_stored(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    app_id = created_id(create(merchant))
    before = counts(accounts.session)
    big = pdf() + b"\0" * MAX_DOCUMENT_BYTES
    response = upload(merchant, app_id, big, "big.pdf")
    assert response.status_code == 413
    assert 'data-code="document-too-large"' in response.get_data(as_text=True)
    assert counts(accounts.session) == before


def test_an_upload_without_a_type_or_file_is_refused(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    app_id = created_id(create(merchant))
    before = counts(accounts.session)
    assert upload(merchant, app_id, pdf(), kind="passport").status_code == 422
    token = token_of(merchant, f"/merchant/applications/{app_id}")
    response = merchant.post(
        f"/merchant/applications/{app_id}/documents",
        data={"csrf_token": token, "kind": "other"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and counts(accounts.session) == before


# --- submit, answer, status ------------------------------------------------------------------


def test_an_incomplete_draft_says_what_is_missing_and_stays_a_draft(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    app_id = created_id(create(merchant, domain="", bank_name=""))
    page = merchant.get(f"/merchant/applications/{app_id}").get_data(as_text=True)
    assert 'id="missing"' in page and "Shop domain" in page
    before = counts(accounts.session)
    response = post(merchant, app_id, "submit")
    assert response.status_code == 422
    assert state_of(accounts.session, app_id) == "draft"
    assert counts(accounts.session) == before


def test_a_merchant_submits_answers_and_sees_the_decision(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    app_id = created_id(create(merchant))
    assert upload(merchant, app_id, pdf("clearing")).status_code == 303
    assert post(merchant, app_id, "submit").status_code == 303
    assert state_of(accounts.session, app_id) == "submitted"
    service = service_of(accounts)
    at = accounts.clock()
    service.start_review(accounts.session, app_id, actor=REVIEWER, now=at)
    service.request_information(
        accounts.session, app_id, ["Who holds the funds?"], actor=REVIEWER, now=at
    )
    page = merchant.get(f"/merchant/applications/{app_id}").get_data(as_text=True)
    assert "Who holds the funds?" in page and 'id="form-answers"' in page
    [question] = accounts.session.scalars(select(Question).where(Question.application_id == app_id))
    response = post(merchant, app_id, "answers", **{f"answer_{question.id}": "银联商务"})
    assert response.status_code == 303
    assert state_of(accounts.session, app_id) == "in_review"
    accounts.session.refresh(question)
    assert question.answer == "银联商务"
    service.recommend(
        accounts.session,
        app_id,
        Recommendation.APPROVE,
        ["INTERNAL-NOTE-1"],
        actor=REVIEWER,
        now=at,
    )
    service.approve(accounts.session, app_id, ["INTERNAL-NOTE-2"], actor=APPROVER, now=at)
    page = merchant.get(f"/merchant/applications/{app_id}").get_data(as_text=True)
    assert 'data-state="approved"' in page and 'data-action="approve"' in page
    assert "INTERNAL-NOTE" not in page and "li.reviewer" not in page
    assert "recommend_approve" not in page


def test_empty_answers_are_refused(accounts: Accounts, merchant: FlaskClient) -> None:
    app_id = in_review(accounts)
    service_of(accounts).request_information(
        accounts.session, app_id, ["Why?"], actor=REVIEWER, now=accounts.clock()
    )
    before = counts(accounts.session)
    response = post(merchant, app_id, "answers")
    assert response.status_code == 422
    assert state_of(accounts.session, app_id) == "needs_information"
    assert counts(accounts.session) == before


def test_the_merchant_never_sees_screening_hits_or_the_risk_score(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    import_csv(accounts.session)
    app_id = in_review(accounts)
    service = service_of(accounts)
    from merchant_onboarding.hits import HitOutcome, hits_of

    views = hits_of(accounts.session, app_id)
    assert views
    service.decide_hit(
        accounts.session,
        app_id,
        views[0].hit.id,
        HitOutcome.CLEARED,
        ["HIT-REASON"],
        actor=REVIEWER,
        now=accounts.clock(),
    )
    page = merchant.get(f"/merchant/applications/{app_id}").get_data(as_text=True)
    for hidden in (
        "test-sanctions",
        "HIT-REASON",
        "hit_cleared",
        views[0].hit.entry_id,
        "data-risk",
        "data-check",
    ):
        assert hidden not in page, hidden


# --- CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("", {"legal_name": "Changed"}),
        ("/submit", {}),
        ("/answers", {"answer_1": "x"}),
        ("/documents", {"kind": "other"}),
    ],
)
@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_merchant_post_without_the_csrf_token_is_refused_and_nothing_written(
    accounts: Accounts, merchant: FlaskClient, path: str, data: dict[str, Any], token: str | None
) -> None:
    app_id, _ = draft(accounts)
    before = counts(accounts.session)
    body: dict[str, Any] = dict(data) if token is None else {"csrf_token": token, **data}
    if path == "/documents":
        body["file"] = (io.BytesIO(pdf()), "ok.pdf")
    response = merchant.post(f"/merchant/applications/{app_id}{path}", data=body)
    assert response.status_code == 400
    assert 'data-code="csrf-failed"' in response.get_data(as_text=True)
    assert counts(accounts.session) == before
    assert state_of(accounts.session, app_id) == "draft"
    new = merchant.post("/merchant/applications", data={**form(), "csrf_token": token or ""})
    assert new.status_code == 400 and counts(accounts.session) == before


# --- stored XSS ------------------------------------------------------------------------------


def test_free_text_is_escaped_on_every_merchant_page(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    app_id = created_id(
        create(
            merchant,
            legal_name="星河" + XSS,
            registered_address=XSS,
            legal_rep_name="王" + XSS,
            clearing_institution=XSS,
            bank_name=XSS,
            owner_name_1=XSS,
        )
    )
    assert upload(merchant, app_id, pdf(), XSS + ".pdf").status_code == 303
    assert post(merchant, app_id, "submit").status_code == 303
    service = service_of(accounts)
    at = accounts.clock()
    service.start_review(accounts.session, app_id, actor=REVIEWER, now=at)
    service.request_information(accounts.session, app_id, [XSS], actor=REVIEWER, now=at)
    [question] = accounts.session.scalars(select(Question).where(Question.application_id == app_id))
    assert post(merchant, app_id, "answers", **{f"answer_{question.id}": XSS}).status_code == 303
    for path in (
        "/merchant",
        f"/merchant/applications/{app_id}",
        f"/merchant/applications/{app_id}/edit",
    ):
        assert_escaped(merchant.get(path).get_data(as_text=True))
    officer = signed_in(accounts, Role.REVIEWER)
    for path in ("/applications", f"/applications/{app_id}"):
        assert_escaped(officer.get(path).get_data(as_text=True))


def test_a_refused_form_shows_what_was_typed_escaped(
    accounts: Accounts, merchant: FlaskClient
) -> None:
    response = create(merchant, registered_address=XSS, credit_code="bad")
    assert response.status_code == 422
    assert_escaped(response.get_data(as_text=True))

# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Opening an application's documents from the pages: the officers' file and the
merchant's own application. The bytes served are the bytes uploaded, as a sandboxed
attachment under the stored name; the staff roles that read the file may open them, a
merchant only its own (anything else 404); a tampered blob is refused with an error
page, never served; every opening is recorded in the account audit."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchant_onboarding.documents import DocumentKind, check_document
from merchant_onboarding.models import Blob, Document
from merchant_onboarding.officers import Actor
from merchant_onboarding.protect import Purpose
from tests.onboarding_support import pdf, png
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    OTHER_SHOP,
    SHOP,
    Accounts,
    accounts,
    web,
)
from tests.test_pages_applications import draft, service_of, signed_in
from webapp.accounts.models import AccountEvent, AccountUser
from webapp.accounts.roles import Role

CHINESE_NAME = "营业执照（副本）.pdf"
READER_ROLES = (Role.REVIEWER, Role.APPROVER, Role.ANALYST, Role.AUDITOR)


def with_document(
    accounts: Accounts,
    merchant: str = SHOP,
    content: bytes | None = None,
    name: str = CHINESE_NAME,
) -> tuple[int, int, bytes]:
    """A draft of ``merchant`` with one uploaded document: (application id, document id,
    the uploaded bytes)."""
    app_id, payload = draft(accounts, merchant)
    content = content if content is not None else pdf(f"licence of {payload['merchant']}")
    row = service_of(accounts).add_document(
        accounts.session,
        app_id,
        DocumentKind.BUSINESS_LICENCE,
        check_document(content, name),
        actor=Actor.applicant(app_id),
        now=accounts.clock(),
    )
    accounts.session.flush()
    return app_id, row.id, content


def staff_url(app_id: int, doc_id: int) -> str:
    return f"/applications/{app_id}/documents/{doc_id}"


def merchant_url(app_id: int, doc_id: int) -> str:
    return f"/merchant/applications/{app_id}/documents/{doc_id}"


def viewed(session: Session) -> list[tuple[str | None, str | None]]:
    """The recorded document openings: (username, detail)."""
    session.expire_all()
    rows = session.execute(
        select(AccountUser.username, AccountEvent.detail)
        .join(AccountUser, AccountUser.id == AccountEvent.user_id, isouter=True)
        .where(AccountEvent.kind == "document-viewed")
        .order_by(AccountEvent.id)
    )
    return [(username, detail) for username, detail in rows]


def tamper(session: Session, doc_id: int, sealed: bytes | None = None) -> None:
    """Overwrite the stored sealed content (by default, flip one bit of it)."""
    document = session.get(Document, doc_id)
    assert document is not None
    blob = session.get(Blob, document.sha256)
    assert blob is not None
    blob.sealed = sealed if sealed is not None else blob.sealed[:-1] + bytes([blob.sealed[-1] ^ 1])
    session.flush()


# --- what is served ----------------------------------------------------------------------


def test_officer_gets_the_uploaded_bytes(accounts: Accounts) -> None:
    app_id, doc_id, content = with_document(accounts)
    response = signed_in(accounts, Role.REVIEWER).get(staff_url(app_id, doc_id))
    assert response.status_code == 200
    assert response.get_data() == content


def test_download_headers(accounts: Accounts) -> None:
    app_id, doc_id, content = with_document(accounts)
    response = signed_in(accounts, Role.REVIEWER).get(staff_url(app_id, doc_id))
    headers = response.headers
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Length"] == str(len(content))
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Security-Policy"].split(";")[0].strip() == "sandbox"
    disposition = headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    # RFC 6266 §4.3 / RFC 5987 §3.2: the UTF-8 name percent-encoded in filename*, and an
    # ASCII-only fallback in filename.
    assert f"filename*=UTF-8''{quote(CHINESE_NAME)}" in disposition
    assert disposition.encode("ascii")


def test_png_is_served_as_png(accounts: Accounts) -> None:
    app_id, doc_id, content = with_document(accounts, content=png(3), name="scan.png")
    response = signed_in(accounts, Role.AUDITOR).get(staff_url(app_id, doc_id))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.get_data() == content
    assert "filename=scan.png" in response.headers["Content-Disposition"]


def test_detail_page_links_each_document(accounts: Accounts) -> None:
    app_id, doc_id, _ = with_document(accounts)
    page = signed_in(accounts, Role.ANALYST).get(f"/applications/{app_id}").get_data(as_text=True)
    assert f'href="{staff_url(app_id, doc_id)}"' in page


def test_merchant_page_links_each_document(accounts: Accounts) -> None:
    app_id, doc_id, _ = with_document(accounts)
    client = signed_in(accounts, Role.MERCHANT, "shop.owner")
    page = client.get(f"/merchant/applications/{app_id}").get_data(as_text=True)
    assert f'href="{merchant_url(app_id, doc_id)}"' in page


def test_content_never_reaches_the_logs(
    accounts: Accounts, caplog: pytest.LogCaptureFixture
) -> None:
    secret = pdf("身份证 110105198001010011")
    app_id, doc_id, _ = with_document(accounts, content=secret)
    with caplog.at_level(logging.DEBUG):
        assert signed_in(accounts, Role.REVIEWER).get(staff_url(app_id, doc_id)).status_code == 200
    assert "110105198001010011" not in caplog.text


# --- who may open it ------------------------------------------------------------------------


@pytest.mark.parametrize("role", READER_ROLES)
def test_staff_readers_may_open(accounts: Accounts, role: Role) -> None:
    app_id, doc_id, content = with_document(accounts)
    response = signed_in(accounts, role).get(staff_url(app_id, doc_id))
    assert response.status_code == 200
    assert response.get_data() == content


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.MERCHANT])
def test_others_are_forbidden_on_the_staff_route(accounts: Accounts, role: Role) -> None:
    app_id, doc_id, content = with_document(accounts)
    response = signed_in(accounts, role).get(staff_url(app_id, doc_id))
    assert response.status_code == 403
    assert content not in response.get_data()
    assert viewed(accounts.session) == []


@pytest.mark.parametrize("url", [staff_url, merchant_url])
def test_nobody_is_sent_to_sign_in(accounts: Accounts, web: FlaskClient, url: object) -> None:
    app_id, doc_id, content = with_document(accounts)
    response = web.get(url(app_id, doc_id))  # type: ignore[operator]
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]
    assert content not in response.get_data()


@pytest.mark.parametrize("role", READER_ROLES)
def test_staff_cannot_use_the_merchant_route(accounts: Accounts, role: Role) -> None:
    app_id, doc_id, _ = with_document(accounts)
    assert signed_in(accounts, role).get(merchant_url(app_id, doc_id)).status_code == 403


def test_merchant_gets_its_own_document(accounts: Accounts) -> None:
    app_id, doc_id, content = with_document(accounts)
    response = signed_in(accounts, Role.MERCHANT, "shop.owner").get(merchant_url(app_id, doc_id))
    assert response.status_code == 200
    assert response.get_data() == content
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"].startswith("sandbox")
    assert f"filename*=UTF-8''{quote(CHINESE_NAME)}" in response.headers["Content-Disposition"]


def test_merchant_gets_404_for_another_merchants_document(accounts: Accounts) -> None:
    with_document(accounts)
    theirs, their_doc, content = with_document(accounts, OTHER_SHOP)
    response = signed_in(accounts, Role.MERCHANT, "shop.owner").get(merchant_url(theirs, their_doc))
    assert response.status_code == 404
    assert content not in response.get_data()
    assert viewed(accounts.session) == []


def test_merchant_gets_404_for_another_applications_document_under_its_own_id(
    accounts: Accounts,
) -> None:
    mine, _, _ = with_document(accounts)
    _, their_doc, content = with_document(accounts, OTHER_SHOP)
    response = signed_in(accounts, Role.MERCHANT, "shop.owner").get(merchant_url(mine, their_doc))
    assert response.status_code == 404
    assert content not in response.get_data()
    assert viewed(accounts.session) == []


def test_staff_get_404_for_a_document_of_another_application(accounts: Accounts) -> None:
    first, _, _ = with_document(accounts)
    _, other_doc, content = with_document(accounts, OTHER_SHOP)
    response = signed_in(accounts, Role.REVIEWER).get(staff_url(first, other_doc))
    assert response.status_code == 404
    assert 'data-code="not-found"' in response.get_data(as_text=True)
    assert content not in response.get_data()


def test_unknown_application_or_document_is_404(accounts: Accounts) -> None:
    app_id, doc_id, _ = with_document(accounts)
    client = signed_in(accounts, Role.REVIEWER)
    assert client.get(staff_url(app_id + 1000, doc_id)).status_code == 404
    assert client.get(staff_url(app_id, doc_id + 1000)).status_code == 404


# --- damaged content --------------------------------------------------------------------------


@pytest.mark.parametrize("url", [staff_url, merchant_url])
def test_tampered_blob_is_refused_not_served(accounts: Accounts, url: object) -> None:
    app_id, doc_id, content = with_document(accounts)
    tamper(accounts.session, doc_id)
    role = Role.REVIEWER if url is staff_url else Role.MERCHANT
    client = signed_in(accounts, role, "shop.owner" if role is Role.MERCHANT else None)
    response = client.get(url(app_id, doc_id))  # type: ignore[operator]
    body = response.get_data(as_text=True)
    assert response.status_code == 409
    assert response.mimetype == "text/html"
    assert 'data-code="document-unreadable"' in body
    assert "may have been altered" in body
    assert "Traceback" not in body
    assert content not in response.get_data()
    assert "Content-Disposition" not in response.headers
    assert viewed(accounts.session) == []


def test_content_sealed_for_another_file_is_refused(accounts: Accounts) -> None:
    """A validly sealed blob of other bytes opens, but does not match the SHA-256."""
    app_id, doc_id, content = with_document(accounts)
    other = pdf("a forged licence")
    sealed = service_of(accounts).personal_data.seal(Purpose.DOCUMENT, other)
    tamper(accounts.session, doc_id, sealed)
    response = signed_in(accounts, Role.APPROVER).get(staff_url(app_id, doc_id))
    assert response.status_code == 409
    assert 'data-code="document-unreadable"' in response.get_data(as_text=True)
    assert other not in response.get_data()
    assert content not in response.get_data()
    assert viewed(accounts.session) == []


def test_stored_media_type_outside_the_accepted_ones_is_refused(accounts: Accounts) -> None:
    app_id, doc_id, content = with_document(accounts)
    document = accounts.session.get(Document, doc_id)
    assert document is not None
    document.media_type = "text/html"
    accounts.session.flush()
    response = signed_in(accounts, Role.REVIEWER).get(staff_url(app_id, doc_id))
    assert response.status_code == 409
    assert response.mimetype == "text/html"
    assert 'data-code="document-media-type"' in response.get_data(as_text=True)
    assert content not in response.get_data()


# --- the audit --------------------------------------------------------------------------------


def test_each_opening_is_recorded(accounts: Accounts) -> None:
    app_id, doc_id, _ = with_document(accounts)
    signed_in(accounts, Role.AUDITOR).get(staff_url(app_id, doc_id))
    signed_in(accounts, Role.MERCHANT, "shop.owner").get(merchant_url(app_id, doc_id))
    detail = f"application {app_id} document {doc_id}"
    assert viewed(accounts.session) == [("auditor.one", detail), ("shop.owner", detail)]

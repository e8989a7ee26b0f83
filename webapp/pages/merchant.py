"""Pages: a merchant's own applications (see :mod:`webapp.pages`).

A merchant account acts for one party (:func:`~webapp.pages.common.merchant_party`) and
sees only the applications whose ``merchant`` is that party: any other id answers 404,
the same as an id that does not exist. Having checked that, the page acts as the
application's applicant (:meth:`Actor.applicant`), the identity the API's applicant
token stands for. The merchant fills in and saves a draft, uploads documents (their type
read from the content), submits, answers the officers' questions and follows the
status. Screening results, the risk score, the automated checks and the officers'
recommendations and reasons are never shown here: telling an applicant that they match
a watch list would tip them off.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pydantic
from flask import Blueprint, Response, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from merchant_onboarding.applications import (
    MAX_OWNERS,
    ApplicationChanges,
    ApplicationInput,
    FundCustody,
    missing_for_submission,
    owners_of,
)
from merchant_onboarding.documents import MAX_DOCUMENT_BYTES, DocumentKind, check_document
from merchant_onboarding.errors import ApplicationNotFoundError, PermissionDeniedError
from merchant_onboarding.models import Application, Owner
from merchant_onboarding.officers import Actor
from merchant_onboarding.workflow import (
    FINAL_STATES,
    Action,
    Onboarding,
    State,
    documents,
    history,
    questions,
)
from provenance.db import write_transaction
from provenance.errors import CardtraceError, NotFoundError, ValidationError
from webapp.accounts.errors import AccountsError, ForbiddenError
from webapp.accounts.roles import Role
from webapp.accounts.web import login_required
from webapp.api_onboarding import AnswersRequest
from webapp.onboarding import onboarding_service
from webapp.pages.applications import (
    FIELD_HINTS,
    document_download,
    error_text,
    form_error,
    not_found_page,
    refusal_status,
    template_helpers,
)
from webapp.pages.common import merchant_party, page
from webapp.runtime import current_runtime, db_session

bp = Blueprint("pages_merchant", __name__)
bp.context_processor(template_helpers)
bp.errorhandler(NotFoundError)(not_found_page)

# Form fields shown as typed and sent as typed; blank clears an optional one.
TEXT_FIELDS = (
    "legal_name",
    "credit_code",
    "legal_rep_name",
    "registered_address",
    "domain",
    "icp_number",
    "payment_licence",
    "clearing_institution",
    "fund_custody",
    "user_agreement_url",
    "privacy_policy_url",
    "bank_name",
)
# Sealed on the server and never shown back: blank keeps the stored value.
SEALED_FIELDS = ("legal_rep_id_number", "bank_account")
OWNER_ROWS = 3

# The steps a merchant sees in the timeline: the workflow's own transitions, never the
# officers' recommendations or screening decisions, and never their reasons.
MERCHANT_TIMELINE = frozenset(a.value for a in Action)
EDITABLE = (State.DRAFT, State.NEEDS_INFORMATION)

# One applicant step: the service, the request's session, the applicant, the time.
Applicant = Callable[[Onboarding, Session, Actor, datetime], object]


def _service_now() -> tuple[Onboarding, Session, datetime]:
    return onboarding_service(), db_session(), current_runtime().now()


def own_application(session: Session, application_id: int) -> Application:
    """The signed-in merchant's application.

    Raises:
        ApplicationNotFoundError: no such application, or another merchant's (the same
            answer, so ids cannot be probed).
    """
    application = session.get(Application, application_id)
    if application is None or application.merchant != merchant_party():
        raise ApplicationNotFoundError(f"no application {application_id}")
    return application


def _applicant(session: Session, application_id: int) -> Actor:
    own_application(session, application_id)
    return Actor.applicant(application_id)


# --- reading ------------------------------------------------------------------------------


@bp.get("/merchant")
@login_required(Role.MERCHANT)
def overview() -> ResponseReturnValue:
    service, session, now = _service_now()
    party = merchant_party()
    rows = list(
        session.scalars(
            select(Application).where(Application.merchant == party).order_by(Application.id)
        )
    )
    listed = [(a, service.status(session, a.id)) for a in rows]
    live = any(State(s.state) not in FINAL_STATES for _, s in listed)
    return page(
        "pages/merchant/overview.html",
        applications=listed,
        party=party,
        can_apply=not live,
        now=now,
    )


def _detail_context(session: Session, application: Application) -> dict[str, Any]:
    service = onboarding_service()
    status = service.status(session, application.id)
    state = State(status.state)
    owners = owners_of(session, application.id)
    return {
        "application": application,
        "status_row": status,
        "state": state,
        "owners": owners,
        "documents": documents(session, application.id),
        "questions": questions(session, application.id),
        "timeline": [h for h in history(session, application.id) if h.action in MERCHANT_TIMELINE],
        "missing": missing_for_submission(application, len(owners)) if state is State.DRAFT else [],
        "editable": state in EDITABLE,
        "kinds": list(DocumentKind),
        "now": current_runtime().now(),
    }


def _detail(application_id: int, status: int = 200, **extra: Any) -> Response:
    session = db_session()
    application = own_application(session, application_id)
    return page(
        "pages/merchant/detail.html", status, **_detail_context(session, application), **extra
    )


@bp.get("/merchant/applications/<int:application_id>")
@login_required(Role.MERCHANT)
def detail(application_id: int) -> ResponseReturnValue:
    return _detail(application_id)


@bp.get("/merchant/applications/<int:application_id>/documents/<int:document_id>")
@login_required(Role.MERCHANT)
def download_document(application_id: int, document_id: int) -> ResponseReturnValue:
    """A document of the merchant's own application (any other is 404)."""
    session = db_session()
    own_application(session, application_id)
    return document_download(session, application_id, document_id)


# --- the application form -----------------------------------------------------------------


def _owner_rows(form: MultiDict[str, str]) -> list[dict[str, str]]:
    rows = []
    for i in range(MAX_OWNERS):
        name = form.get(f"owner_name_{i}", "").strip()
        share = form.get(f"owner_share_{i}", "").strip()
        id_number = form.get(f"owner_id_number_{i}", "").strip()
        if name or share or id_number:
            rows.append({"name": name, "share": share, "id_number": id_number})
    return rows


def _owners_unchanged(rows: list[dict[str, str]], owners: list[Owner]) -> bool:
    """The form shows the stored owners back (their ID numbers blank): unchanged names
    and shares with no ID number typed leave them, and their sealed ID numbers, alone."""
    if len(rows) != len(owners) or any(r["id_number"] for r in rows):
        return False
    for row, owner in zip(rows, owners, strict=True):
        try:
            share_bp = round(float(row["share"]) * 100)
        except ValueError:
            return False
        if row["name"] != owner.name or share_bp != owner.share_bp:
            return False
    return True


def _values(
    form: MultiDict[str, str], application: Application | None, owners: list[Owner]
) -> dict[str, Any]:
    """What the form sets: typed fields, cleared optional ones, sealed ones only when
    typed, and the owners when they changed."""
    values: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        typed = form.get(name, "").strip()
        if typed:
            values[name] = typed
        elif application is not None and getattr(application, name) not in (None, ""):
            values[name] = None
    for name in SEALED_FIELDS:
        typed = form.get(name, "").strip()
        if typed:
            values[name] = typed
    rows = _owner_rows(form)
    if application is None:
        if rows:
            values["owners"] = [_owner_value(r) for r in rows]
    elif not _owners_unchanged(rows, owners):
        values["owners"] = [_owner_value(r) for r in rows]
    return values


def _owner_value(row: dict[str, str]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "share": row["share"] or "0",
        "id_number": row["id_number"] or None,
    }


def _form_page(
    application: Application | None,
    status: int = 200,
    *,
    form: MultiDict[str, str] | None = None,
    error: CardtraceError | None = None,
) -> Response:
    session = db_session()
    owners = owners_of(session, application.id) if application is not None else []
    rows: list[dict[str, Any]]
    if form is not None:
        rows = list(_owner_rows(form))
    else:
        rows = [
            {"name": o.name, "share": f"{o.share_bp / 100:.2f}", "masked": o.id_masked}
            for o in owners
        ]
    blank = max(1, OWNER_ROWS - len(rows))
    rows = (rows + [{"name": "", "share": ""}] * blank)[:MAX_OWNERS]
    current: dict[str, str] = {}
    for name in TEXT_FIELDS:
        stored = getattr(application, name, None) if application is not None else None
        current[name] = form.get(name, "") if form is not None else (stored or "")
    field = str(getattr(error, "field", "") or "").split(".")[0] if error else ""
    return page(
        "pages/merchant/form.html",
        status,
        application=application,
        values=current,
        owner_rows=rows,
        custody=list(FundCustody),
        error=error_text(error) if error else None,
        error_field=field,
        error_code=error.code if error else None,
        hints=FIELD_HINTS,
    )


@bp.get("/merchant/applications/new")
@login_required(Role.MERCHANT)
def new_application() -> ResponseReturnValue:
    merchant_party()
    return _form_page(None)


@bp.post("/merchant/applications")
@login_required(Role.MERCHANT)
def create_application() -> ResponseReturnValue:
    service, session, now = _service_now()
    values = _values(request.form, None, [])
    values["merchant"] = merchant_party()
    try:
        fields = ApplicationInput.model_validate(values)
    except pydantic.ValidationError as e:
        return _form_page(None, 422, form=request.form, error=form_error(e))
    try:
        with write_transaction(session):
            created = service.create(session, fields, now=now)
            application_id = created.application.id
    except (AccountsError, NotFoundError):
        raise
    except CardtraceError as e:
        return _form_page(None, refusal_status(e), form=request.form, error=e)
    flash(str(_l("Draft saved. Upload your documents, then submit.")), "info")
    return redirect(url_for("pages_merchant.detail", application_id=application_id), 303)


@bp.get("/merchant/applications/<int:application_id>/edit")
@login_required(Role.MERCHANT)
def edit_application(application_id: int) -> ResponseReturnValue:
    return _form_page(own_application(db_session(), application_id))


@bp.post("/merchant/applications/<int:application_id>")
@login_required(Role.MERCHANT)
def save_application(application_id: int) -> ResponseReturnValue:
    service, session, now = _service_now()
    application = own_application(session, application_id)
    values = _values(request.form, application, owners_of(session, application_id))
    try:
        changes = ApplicationChanges.model_validate(values)
    except pydantic.ValidationError as e:
        return _form_page(application, 422, form=request.form, error=form_error(e))
    try:
        with write_transaction(session):
            actor = _applicant(session, application_id)
            service.update(session, application_id, changes, actor=actor, now=now)
    except PermissionDeniedError as e:
        raise ForbiddenError(e.message) from e
    except (AccountsError, NotFoundError):
        raise
    except CardtraceError as e:
        return _form_page(
            own_application(session, application_id), refusal_status(e), form=request.form, error=e
        )
    flash(str(_l("Application saved.")), "info")
    return redirect(url_for("pages_merchant.detail", application_id=application_id), 303)


# --- documents, submission, answers ---------------------------------------------------------


def _step(application_id: int, run: Applicant, done: Any) -> ResponseReturnValue:
    service, session, now = _service_now()
    try:
        with write_transaction(session):
            actor = _applicant(session, application_id)
            run(service, session, actor, now)
    except PermissionDeniedError as e:
        raise ForbiddenError(e.message) from e
    except (AccountsError, NotFoundError):
        raise
    except CardtraceError as e:
        return _detail(application_id, refusal_status(e), error=error_text(e), error_code=e.code)
    flash(str(done), "info")
    return redirect(url_for("pages_merchant.detail", application_id=application_id), 303)


@bp.post("/merchant/applications/<int:application_id>/documents")
@login_required(Role.MERCHANT)
def upload_document(application_id: int) -> ResponseReturnValue:
    own_application(db_session(), application_id)
    try:
        kind = DocumentKind(request.form.get("kind", ""))
    except ValueError:
        error = ValidationError("kind: choose the document's type", field="kind")
        return _detail(application_id, 422, error=error_text(error), error_code=error.code)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        error = ValidationError("file: choose a file", field="file")
        return _detail(application_id, 422, error=error_text(error), error_code=error.code)
    content = upload.stream.read(MAX_DOCUMENT_BYTES + 1)
    try:
        document = check_document(content, upload.filename)
    except CardtraceError as e:
        status = 413 if e.code == "document-too-large" else refusal_status(e)
        return _detail(application_id, status, error=error_text(e), error_code=e.code)
    return _step(
        application_id,
        lambda s, db, actor, now: s.add_document(
            db, application_id, kind, document, actor=actor, now=now
        ),
        _l("Document uploaded."),
    )


@bp.post("/merchant/applications/<int:application_id>/submit")
@login_required(Role.MERCHANT)
def submit(application_id: int) -> ResponseReturnValue:
    return _step(
        application_id,
        lambda s, db, actor, now: s.submit(db, application_id, actor=actor, now=now),
        _l("Application submitted. An officer will review it."),
    )


@bp.post("/merchant/applications/<int:application_id>/answers")
@login_required(Role.MERCHANT)
def answer(application_id: int) -> ResponseReturnValue:
    own_application(db_session(), application_id)
    typed: dict[int, str] = {}
    for key, value in request.form.items():
        if key.startswith("answer_") and key[7:].isdigit() and value.strip():
            typed[int(key[7:])] = value.strip()
    try:
        answers = AnswersRequest(answers=typed).answers
    except pydantic.ValidationError as e:
        error = form_error(e)
        error.field = "answers"
        return _detail(application_id, 422, error=error_text(error), error_code=error.code)
    return _step(
        application_id,
        lambda s, db, actor, now: s.answer(db, application_id, answers, actor=actor, now=now),
        _l("Answers sent."),
    )

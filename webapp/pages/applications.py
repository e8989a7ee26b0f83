"""Pages: the officers' review of merchant applications (see :mod:`webapp.pages`).

The queue and each application's file: entity facts (masked as the service masks them),
the automated checks with their evidence, the screening hits to clear or confirm, the
risk score rule by rule, the documents (each served as a download once its content
matches its SHA-256, every opening recorded in the account audit), the questions and
the decision timeline read from the ledger's projection. Each action is a form that
calls the onboarding service as the signed-in officer
(:func:`~webapp.pages.common.officer_actor`); the service enforces roles and four eyes,
and the page shows its refusal.

Reviewers and approvers act; analysts and auditors read (no forms, every POST 403);
merchants and administrators get 403.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
from flask import Blueprint, Response, flash, redirect, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from merchant_onboarding.applications import FundCustody, get_application, owners_of
from merchant_onboarding.checks import CheckName
from merchant_onboarding.documents import DocumentKind
from merchant_onboarding.errors import PermissionDeniedError
from merchant_onboarding.hits import HitStatus, hits_of
from merchant_onboarding.risk import RiskLevel
from merchant_onboarding.workflow import (
    FINAL_STATES,
    HIT_DECISION_STATES,
    OPEN_STATES,
    RECOMMENDABLE,
    Onboarding,
    Recommendation,
    State,
    documents,
    history,
    latest_checks,
    questions,
)
from provenance.db import write_transaction
from provenance.errors import CardtraceError, NotFoundError, ValidationError
from webapp.accounts.errors import AccountsError, ForbiddenError
from webapp.accounts.roles import Role
from webapp.accounts.service import EventKind, record
from webapp.accounts.web import client_ip, login_required
from webapp.api_onboarding import HIT_OUTCOMES, QuestionsRequest, ReasonsRequest
from webapp.errors import status_for
from webapp.onboarding import onboarding_service
from webapp.pages.common import (
    OFFICERS,
    READERS,
    current_role,
    current_user,
    officer_actor,
    page,
)
from webapp.runtime import current_runtime, db_session

bp = Blueprint("pages_applications", __name__)

# --- labels shared with the merchant's pages ---------------------------------------------

STATE_LABELS = {
    State.DRAFT: _l("Draft"),
    State.SUBMITTED: _l("Submitted"),
    State.IN_REVIEW: _l("In review"),
    State.NEEDS_INFORMATION: _l("Needs information"),
    State.APPROVED: _l("Approved"),
    State.REJECTED: _l("Rejected"),
    State.SUSPENDED: _l("Suspended"),
    State.TERMINATED: _l("Terminated"),
}

ACTION_LABELS = {
    "create": _l("Application created"),
    "submit": _l("Submitted"),
    "start_review": _l("Review started"),
    "request_information": _l("Information requested"),
    "answer": _l("Questions answered"),
    "approve": _l("Approved"),
    "reject": _l("Rejected"),
    "suspend": _l("Suspended"),
    "reinstate": _l("Reinstated"),
    "terminate": _l("Terminated"),
    "recommend_approve": _l("Recommended to approve"),
    "recommend_reject": _l("Recommended to reject"),
    "recommend_reinstate": _l("Recommended to reinstate"),
    "hit_cleared": _l("Screening hit cleared"),
    "hit_confirmed": _l("Screening hit confirmed"),
}

CHECK_LABELS = {
    CheckName.CREDIT_CODE: _l("Unified social credit code"),
    CheckName.LEGAL_REP_ID: _l("Legal representative's ID number"),
    CheckName.ENTERPRISE_REGISTRY: _l("Enterprise registry"),
    CheckName.ICP_FILING: _l("ICP filing"),
    CheckName.DOMAIN: _l("Shop domain"),
    CheckName.PAYMENT_LICENCE: _l("Payment licence or clearing agreement"),
    CheckName.FUND_CUSTODY: _l("Fund custody"),
    CheckName.POLICIES: _l("Published user agreement and privacy policy"),
    CheckName.REUSE: _l("Re-use of bank account or documents"),
    CheckName.SCREENING: _l("Watch-list screening"),
}

RESULT_LABELS = {"pass": _l("Pass"), "warn": _l("Warn"), "fail": _l("Fail")}

RISK_LABELS = {
    RiskLevel.LOW: _l("Low"),
    RiskLevel.MEDIUM: _l("Medium"),
    RiskLevel.HIGH: _l("High"),
}

KIND_LABELS = {
    DocumentKind.BUSINESS_LICENCE: _l("Business licence"),
    DocumentKind.PAYMENT_LICENCE: _l("Payment licence"),
    DocumentKind.CLEARING_AGREEMENT: _l("Clearing agreement"),
    DocumentKind.CUSTODY_AGREEMENT: _l("Fund custody agreement"),
    DocumentKind.ID_SCAN: _l("ID scan"),
    DocumentKind.ICP_FILING: _l("ICP filing"),
    DocumentKind.OTHER: _l("Other"),
}

CUSTODY_LABELS = {
    FundCustody.LICENSED_INSTITUTION: _l("Held by a licensed payment institution"),
    FundCustody.BANK_CUSTODY: _l("Bank custody (escrow) account"),
    FundCustody.MERCHANT_ACCOUNT: _l("Collected into the merchant's own account"),
    FundCustody.PLATFORM_POOLED: _l("Pooled by the platform"),
}

HIT_STATUS_LABELS = {
    HitStatus.OPEN: _l("Open"),
    HitStatus.CLEARED: _l("Cleared"),
    HitStatus.CONFIRMED: _l("Confirmed"),
}

RECOMMENDATION_LABELS = {
    Recommendation.APPROVE: _l("Approve"),
    Recommendation.REJECT: _l("Reject"),
    Recommendation.REINSTATE: _l("Reinstate"),
}

PARTY_LABELS = {
    "entity": _l("Legal entity"),
    "person": _l("Person"),
    "legal_rep": _l("Legal representative"),
    "owner": _l("Beneficial owner"),
}

FIELD_LABELS = {
    "merchant": _l("Merchant"),
    "legal_name": _l("Legal name"),
    "credit_code": _l("Unified social credit code"),
    "legal_rep_name": _l("Legal representative"),
    "legal_rep_id_number": _l("Legal representative's ID number"),
    "registered_address": _l("Registered address"),
    "domain": _l("Shop domain"),
    "icp_number": _l("ICP filing number"),
    "payment_licence": _l("Payment licence number"),
    "clearing_institution": _l("Clearing institution"),
    "fund_custody": _l("Fund custody"),
    "user_agreement_url": _l("User agreement URL"),
    "privacy_policy_url": _l("Privacy policy URL"),
    "owners": _l("Beneficial owners"),
    "bank_name": _l("Bank"),
    "bank_account": _l("Bank account"),
    "reasons": _l("Reasons"),
    "questions": _l("Questions"),
    "answers": _l("Answers"),
    "file": _l("Document"),
    "kind": _l("Document type"),
    "decision": _l("Decision"),
    "recommendation": _l("Recommendation"),
    "state": _l("State"),
}

# What the pages say for each error code the onboarding service raises.
ERROR_MESSAGES = {
    "four-eyes": _l(
        "Four eyes: the officer who recommended this may not decide it. "
        "A different officer must decide."
    ),
    "own-clearance": _l(
        "Four eyes: you cleared a screening hit on this application; "
        "a different officer must decide."
    ),
    "own-change": _l("Four eyes: you amended this application; a different officer must decide."),
    "recommendation-missing": _l("A reviewer must recommend before an approver may decide."),
    "recommendation-mismatch": _l("The reviewer's recommendation does not allow this decision."),
    "screening-hit-open": _l(
        "Screening hits are still open: a reviewer must clear or confirm each first."
    ),
    "screening-hit-confirmed": _l(
        "A screening hit was confirmed as a true match: approval is refused; reject instead."
    ),
    "hit-decided": _l("This screening hit has already been decided."),
    "hit-not-found": _l("No such screening hit on this application."),
    "stale-state": _l("The application changed meanwhile. Reload the page and try again."),
    "invalid-transition": _l("The application's state does not allow this step."),
    "duplicate-credit-code": _l(
        "Another open or approved application has this unified social credit code."
    ),
    "duplicate-merchant": _l("Your company already has an open or approved application."),
    "document-type": _l(
        "The file is not a PDF, PNG or JPEG document. The type is read from the file's "
        "content, not its name."
    ),
    "document-refused": _l("The document was refused: it is empty or not a PDF, PNG or JPEG."),
    "document-too-large": _l("The document is larger than 10 MiB."),
    "forbidden": _l("Your role may not do this."),
    "document-unreadable": _l(
        "The stored document does not open or does not match its SHA-256: it may have "
        "been altered. It is not served; tell an administrator."
    ),
    "document-media-type": _l(
        "The stored document is not a PDF, PNG or JPEG document, so it is not served."
    ),
}

FIELD_HINTS = {
    "legal_name": _l("Enter the legal name (at most 200 characters)."),
    "credit_code": _l(
        "Enter the 18-character unified social credit code; its check digit must be right."
    ),
    "legal_rep_id_number": _l(
        "Enter the 18-character resident ID number; its check digit must be right."
    ),
    "domain": _l("Enter a domain name like shop.example.cn."),
    "user_agreement_url": _l("Enter an http or https URL."),
    "privacy_policy_url": _l("Enter an http or https URL."),
    "bank_account": _l("A bank account number is 8 to 30 digits."),
    "owners": _l(
        "Each owner needs a name and a share above 0 and at most 100; the shares add up "
        "to at most 100; ID numbers must be valid."
    ),
    "fund_custody": _l("Choose how customer funds are held."),
    "reasons": _l("Give at least one reason, one per line (at most 20, 500 characters each)."),
    "questions": _l("Ask at least one question, one per line (at most 20)."),
    "answers": _l("Answer at least one question (at most 4000 characters each)."),
    "kind": _l("Choose the document's type."),
    "file": _l("Choose a file to upload."),
    "decision": _l("Choose a decision."),
    "recommendation": _l("Choose a recommendation."),
}

LABELS: dict[str, Mapping[Any, Any]] = {
    "state": STATE_LABELS,
    "action": ACTION_LABELS,
    "check": CHECK_LABELS,
    "result": RESULT_LABELS,
    "risk": RISK_LABELS,
    "kind": KIND_LABELS,
    "custody": CUSTODY_LABELS,
    "hit": HIT_STATUS_LABELS,
    "recommendation": RECOMMENDATION_LABELS,
    "party": PARTY_LABELS,
    "field": FIELD_LABELS,
}


def label(kind: str, value: Any) -> str:
    """The translated label of ``value`` (a state, check, action...), else the value."""
    if value is None:
        return ""
    text = LABELS[kind].get(value)
    return str(text) if text is not None else str(value)


def evidence_text(evidence: Any) -> str:
    """A check's evidence as indented JSON (shown escaped, in a ``<pre>``)."""
    return json.dumps(evidence, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def template_helpers() -> dict[str, Any]:
    return {"onboarding_label": label, "evidence_text": evidence_text}


bp.context_processor(template_helpers)


def error_text(error: CardtraceError) -> str:
    """What the page says about a refusal: by its code, else by its field, else its
    message (the service's messages name fields and rules, never personal data)."""
    text = ERROR_MESSAGES.get(error.code)
    if text is not None:
        return str(text)
    field = getattr(error, "field", None)
    if field:
        name = str(field).split(".")[0]
        hint = FIELD_HINTS.get(name)
        if hint is not None:
            return f"{label('field', name)}: {hint}"
    return error.message


def form_error(error: pydantic.ValidationError, prefix: str = "") -> ValidationError:
    """A refused form as the service would have refused it: naming the first field."""
    first = error.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "form"
    return ValidationError(f"{prefix}{where}: {first['msg']}", field=prefix + where)


def lines(name: str) -> list[str]:
    """A textarea's non-empty lines, stripped (one reason or question per line)."""
    return [line.strip() for line in request.form.get(name, "").splitlines() if line.strip()]


def refusal_status(error: CardtraceError) -> int:
    return status_for(error)


NOT_FOUND_MESSAGES = {
    "hit-not-found": _l("No such screening hit on this application."),
    "document-not-found": _l("No such document on this application."),
}


def not_found_page(error: NotFoundError) -> Response:
    """Unknown application, hit or document, or another merchant's: the same 404 page."""
    message = NOT_FOUND_MESSAGES.get(error.code, _l("No such application."))
    return page("accounts/error.html", 404, code="not-found", message=str(message))


bp.errorhandler(NotFoundError)(not_found_page)

# --- the queue ----------------------------------------------------------------------------


@bp.get("/applications")
@login_required(*READERS)
def queue() -> ResponseReturnValue:
    """Applications waiting for an officer (``?state=`` narrows; ``all``), oldest first,
    and the approved merchants whose re-review is due."""
    service, session, now = onboarding_service(), db_session(), current_runtime().now()
    chosen = request.args.get("state", "")
    error = None
    states: tuple[State, ...] = OPEN_STATES
    status = 200
    if chosen == "all":
        states = tuple(State)
    elif chosen:
        try:
            states = (State(chosen),)
        except ValueError:
            error, status = str(_l("Unknown state; showing the open applications.")), 400
    items = service.queue(session, now=now, states=states)
    due = [i for i in service.queue(session, now=now, states=(State.APPROVED,)) if i.review_due]
    return page(
        "pages/applications/queue.html",
        status,
        items=items,
        due=due,
        chosen=chosen if status == 200 else "",
        states=list(State),
        error=error,
        now=now,
    )


# --- one application --------------------------------------------------------------------


def _can_act() -> bool:
    return current_role() in OFFICERS


def _actions(state: State, renewal: bool) -> dict[str, Any]:
    """Which forms the signed-in officer sees; the service decides whether each succeeds."""
    role = current_role()
    reviewer, approver = role is Role.REVIEWER, role is Role.APPROVER
    suspendable = state in (State.APPROVED,) or (
        renewal and state in (State.IN_REVIEW, State.NEEDS_INFORMATION)
    )
    return {
        "start_review": reviewer and state in (State.SUBMITTED, State.APPROVED),
        "questions": reviewer and state is State.IN_REVIEW,
        "recommend": sorted(RECOMMENDABLE.get(state, frozenset())) if reviewer else [],
        "hits": reviewer and state in HIT_DECISION_STATES,
        "checks": (reviewer or approver) and state not in (State.DRAFT, *FINAL_STATES),
        "decide": approver and state is State.IN_REVIEW,
        "reinstate": approver and state is State.SUSPENDED,
        "suspend": (reviewer or approver) and suspendable,
        "terminate": approver and state in (State.APPROVED, State.SUSPENDED),
    }


def detail_context(session: Session, service: Onboarding, application_id: int) -> dict[str, Any]:
    """Everything the officer's page shows of one application.

    Raises:
        ApplicationNotFoundError: no such application.
    """
    application = get_application(session, application_id)
    status = service.status(session, application_id)
    state = State(status.state)
    return {
        "application": application,
        "status_row": status,
        "state": state,
        "owners": owners_of(session, application_id),
        "documents": documents(session, application_id),
        "checks": latest_checks(session, application),
        "hits": hits_of(session, application_id),
        "questions": questions(session, application_id),
        "history": history(session, application_id),
        "can_act": _can_act(),
        "actions": _actions(state, status.renewal) if _can_act() else {},
        "now": current_runtime().now(),
    }


def _detail(application_id: int, status: int = 200, **extra: Any) -> Response:
    service, session = onboarding_service(), db_session()
    context = detail_context(session, service, application_id)
    return page("pages/applications/detail.html", status, **context, **extra)


@bp.get("/applications/<int:application_id>")
@login_required(*READERS)
def detail(application_id: int) -> ResponseReturnValue:
    return _detail(application_id)


# --- one document -----------------------------------------------------------------------

# The content is served as a download in a sandbox: no script, no plugin, no same-origin
# access even if a browser were made to render it.
DOCUMENT_CSP = "sandbox; default-src 'none'"


def document_download(session: Session, application_id: int, document_id: int) -> Response:
    """Serve one document as an attachment and record who opened it; a damaged or
    refused document gets an error page and nothing is served or recorded.

    Raises:
        NotFoundError: no such document on this application.
    """
    try:
        document, content = onboarding_service().open_document(session, application_id, document_id)
    except NotFoundError:
        raise
    except CardtraceError as e:
        return page("accounts/error.html", refusal_status(e), code=e.code, message=error_text(e))
    media_type, filename = document.media_type, document.filename
    with write_transaction(session):
        record(
            session,
            EventKind.DOCUMENT_VIEWED,
            now=current_runtime().now(),
            user=current_user(),
            ip=client_ip(),
            detail=f"application {application_id} document {document_id}",
        )
    response = send_file(
        io.BytesIO(content),
        mimetype=media_type,
        as_attachment=True,
        download_name=filename,
        conditional=False,
        etag=False,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOCUMENT_CSP
    return response


@bp.get("/applications/<int:application_id>/documents/<int:document_id>")
@login_required(*READERS)
def download_document(application_id: int, document_id: int) -> ResponseReturnValue:
    session = db_session()
    get_application(session, application_id)
    return document_download(session, application_id, document_id)


# --- actions ----------------------------------------------------------------------------

Step = Callable[[Onboarding, Session], Any]


def _act(application_id: int, step: Step, done: Any) -> ResponseReturnValue:
    """Run one service step as the signed-in officer in the request's transaction; on
    success flash ``done`` and go back to the application, else show the refusal."""
    service, session = onboarding_service(), db_session()
    try:
        with write_transaction(session):
            step(service, session)
    except PermissionDeniedError as e:
        raise ForbiddenError(e.message) from e
    except (NotFoundError, AccountsError):
        raise
    except CardtraceError as e:
        return _detail(application_id, refusal_status(e), error=error_text(e), error_code=e.code)
    flash(str(done), "info")
    return redirect(url_for("pages_applications.detail", application_id=application_id), 303)


def _reasons() -> list[str]:
    try:
        return ReasonsRequest(reasons=lines("reasons")).reasons
    except pydantic.ValidationError as e:
        raise form_error(e) from e


def _refused(application_id: int, error: CardtraceError) -> Response:
    get_application(db_session(), application_id)
    return _detail(
        application_id, refusal_status(error), error=error_text(error), error_code=error.code
    )


@bp.post("/applications/<int:application_id>/review")
@login_required(*OFFICERS)
def start_review(application_id: int) -> ResponseReturnValue:
    now = current_runtime().now()
    return _act(
        application_id,
        lambda s, db: s.start_review(db, application_id, actor=officer_actor(), now=now),
        _l("Review started."),
    )


@bp.post("/applications/<int:application_id>/checks")
@login_required(*OFFICERS)
def run_checks(application_id: int) -> ResponseReturnValue:
    now = current_runtime().now()
    return _act(
        application_id,
        lambda s, db: s.run_checks(db, application_id, actor=officer_actor(), now=now),
        _l("The automated checks ran again."),
    )


@bp.post("/applications/<int:application_id>/questions")
@login_required(*OFFICERS)
def ask(application_id: int) -> ResponseReturnValue:
    try:
        asked = QuestionsRequest(questions=lines("questions")).questions
    except pydantic.ValidationError as e:
        return _refused(application_id, form_error(e))
    now = current_runtime().now()
    return _act(
        application_id,
        lambda s, db: s.request_information(
            db, application_id, asked, actor=officer_actor(), now=now
        ),
        _l("Questions sent to the merchant."),
    )


@bp.post("/applications/<int:application_id>/recommendation")
@login_required(*OFFICERS)
def recommend(application_id: int) -> ResponseReturnValue:
    try:
        choice = Recommendation(request.form.get("recommendation", ""))
        reasons = _reasons()
    except ValueError:
        return _refused(
            application_id, ValidationError("recommendation: choose one", field="recommendation")
        )
    except ValidationError as e:
        return _refused(application_id, e)
    now = current_runtime().now()
    return _act(
        application_id,
        lambda s, db: s.recommend(
            db, application_id, choice, reasons, actor=officer_actor(), now=now
        ),
        _l("Recommendation recorded; a different officer decides."),
    )


@bp.post("/applications/<int:application_id>/decision")
@login_required(*OFFICERS)
def decide(application_id: int) -> ResponseReturnValue:
    decision = request.form.get("decision", "")
    if decision not in ("approve", "reject"):
        return _refused(
            application_id, ValidationError("decision: approve or reject", field="decision")
        )
    try:
        reasons = _reasons()
    except ValidationError as e:
        return _refused(application_id, e)
    now = current_runtime().now()

    def step(service: Onboarding, session: Session) -> Any:
        method = service.approve if decision == "approve" else service.reject
        return method(session, application_id, reasons, actor=officer_actor(), now=now)

    done = _l("Application approved.") if decision == "approve" else _l("Application rejected.")
    return _act(application_id, step, done)


_STEPS = {
    "suspend": _l("Merchant suspended."),
    "reinstate": _l("Merchant reinstated."),
    "terminate": _l("Merchant terminated."),
}


def _reasoned_step(application_id: int, name: str) -> ResponseReturnValue:
    try:
        reasons = _reasons()
    except ValidationError as e:
        return _refused(application_id, e)
    now = current_runtime().now()

    def step(service: Onboarding, session: Session) -> Any:
        method: Any = getattr(service, name)
        return method(session, application_id, reasons, actor=officer_actor(), now=now)

    return _act(application_id, step, _STEPS[name])


@bp.post("/applications/<int:application_id>/suspend")
@login_required(*OFFICERS)
def suspend(application_id: int) -> ResponseReturnValue:
    return _reasoned_step(application_id, "suspend")


@bp.post("/applications/<int:application_id>/reinstate")
@login_required(*OFFICERS)
def reinstate(application_id: int) -> ResponseReturnValue:
    return _reasoned_step(application_id, "reinstate")


@bp.post("/applications/<int:application_id>/terminate")
@login_required(*OFFICERS)
def terminate(application_id: int) -> ResponseReturnValue:
    return _reasoned_step(application_id, "terminate")


@bp.post("/applications/<int:application_id>/hits/<int:hit_id>/decision")
@login_required(*OFFICERS)
def decide_hit(application_id: int, hit_id: int) -> ResponseReturnValue:
    outcome = HIT_OUTCOMES.get(request.form.get("decision", ""))
    if outcome is None:
        return _refused(
            application_id, ValidationError("decision: clear or confirm", field="decision")
        )
    try:
        reasons = _reasons()
    except ValidationError as e:
        return _refused(application_id, e)
    now = current_runtime().now()
    done = (
        _l("Screening hit cleared.")
        if outcome.value == "cleared"
        else _l("Screening hit confirmed.")
    )
    return _act(
        application_id,
        lambda s, db: s.decide_hit(
            db, application_id, hit_id, outcome, reasons, actor=officer_actor(), now=now
        ),
        done,
    )

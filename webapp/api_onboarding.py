"""Merchant onboarding API: applications, documents, checks, the workflow and the queue.

Who acts comes only from the credential: a personal API key (``Authorization: Bearer
ctk_...``) or a signed-in session, of a staff account (reviewer, approver; readers) or of
a merchant account, which applies for its own party and acts on its own applications
only (see :mod:`webapp.officer_auth`). No request field names the actor, so four eyes
cannot be bypassed by claiming another identity.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from merchant_onboarding.applications import ApplicationChanges, ApplicationInput, get_application
from merchant_onboarding.documents import MAX_DOCUMENT_BYTES, DocumentKind, check_document
from merchant_onboarding.errors import (
    AuthenticationError,
    DocumentTooLargeError,
    PermissionDeniedError,
)
from merchant_onboarding.hits import HitOutcome, hits_of
from merchant_onboarding.officers import Actor, ActorKind
from merchant_onboarding.workflow import Onboarding, Recommendation, State
from provenance.db import write_transaction
from provenance.errors import ValidationError
from webapp.errors import Problem, problem_response
from webapp.officer_auth import bearer_actor, bearer_merchant, bearer_officer, init_officer_auth
from webapp.onboarding import application_json, hit_json, onboarding_service, queue_json
from webapp.openapi import JSON_OBJECT, PERSONAL, Query, api_doc, multipart
from webapp.runtime import current_runtime, db_session
from webapp.validation import parse_body

bp = Blueprint("onboarding_api", __name__, url_prefix="/api/v1/onboarding")

Reason = Annotated[str, Field(min_length=1, max_length=500)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Empty(_Request):
    pass


class ReasonsRequest(_Request):
    reasons: list[Reason] = Field(min_length=1, max_length=20)


class RecommendationRequest(ReasonsRequest):
    recommendation: Recommendation


class DecisionRequest(ReasonsRequest):
    decision: Recommendation


HIT_OUTCOMES = {"clear": HitOutcome.CLEARED, "confirm": HitOutcome.CONFIRMED}


class HitDecisionRequest(ReasonsRequest):
    decision: Literal["clear", "confirm"]


class QuestionsRequest(_Request):
    questions: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        min_length=1, max_length=20
    )


class AnswersRequest(_Request):
    answers: dict[int, Annotated[str, Field(min_length=1, max_length=4000)]] = Field(
        min_length=1, max_length=20
    )


_actor = bearer_actor


def _officer() -> Actor:
    return bearer_officer("do this")


def _no_body() -> None:
    """Steps without parameters accept no body, or an empty JSON object."""
    if request.get_data(cache=True):
        parse_body(Empty)


def _officer_view() -> bool:
    """Whether an officer asked: screening hits are shown to officers only, never to
    the applicant, who must not learn that they match a watch list."""
    try:
        return _actor().kind is ActorKind.OFFICER
    except (AuthenticationError, PermissionDeniedError):
        # A merchant opening an application is no officer (and names no application yet).
        return False


def _render(service: Onboarding, application_id: int, status: int = 200) -> tuple[Response, int]:
    runtime = current_runtime()
    document = application_json(
        db_session(), service, application_id, runtime.now(), officer_view=_officer_view()
    )
    return jsonify(document), status


init_officer_auth(bp, "cardtrace onboarding")


@bp.errorhandler(DocumentTooLargeError)
def _too_large(error: DocumentTooLargeError) -> Response:
    return problem_response(Problem(413, error.code, error.title, error.message, error.field))


@bp.post("/applications")
@api_doc(body=ApplicationInput, auth=[PERSONAL], responses={201: JSON_OBJECT})
def create_application() -> tuple[Response, int]:
    """Open a draft for the merchant account's own party (``merchant`` must name it); the
    account then acts on it as its applicant."""
    party = bearer_merchant()
    body = parse_body(ApplicationInput)
    if body.merchant != party:
        raise PermissionDeniedError(
            f"this account applies for {party} only, not for {body.merchant}"
        )
    service, session, now = onboarding_service(), db_session(), current_runtime().now()
    with write_transaction(session):
        created = service.create(session, body, now=now)
        application_id = created.application.id
    return _render(service, application_id, 201)


@bp.get("/applications/<int:application_id>")
@api_doc(auth=[PERSONAL], responses={200: JSON_OBJECT})
def show_application(application_id: int) -> tuple[Response, int]:
    actor = _actor()
    if actor.kind is ActorKind.APPLICANT:
        actor.require_applicant_of(application_id, "see it")
    return _render(onboarding_service(), application_id)


@bp.patch("/applications/<int:application_id>")
@api_doc(body=ApplicationChanges, auth=[PERSONAL], responses={200: JSON_OBJECT})
def change_application(application_id: int) -> tuple[Response, int]:
    actor = _actor()
    body = parse_body(ApplicationChanges)
    service, session = onboarding_service(), db_session()
    with write_transaction(session):
        service.update(session, application_id, body, actor=actor, now=current_runtime().now())
    return _render(service, application_id)


_DOCUMENT_FORM = frozenset({"kind"})


@bp.post("/applications/<int:application_id>/documents")
@api_doc(
    body_schema=multipart("kind"),
    body_media="multipart/form-data",
    auth=[PERSONAL],
    responses={201: JSON_OBJECT},
)
def add_document(application_id: int) -> tuple[Response, int]:
    """``multipart/form-data`` with ``kind`` and ``file``; the type is read from the bytes."""
    actor = _actor()
    unknown = (set(request.form) - _DOCUMENT_FORM) | (set(request.files) - {"file"})
    if unknown:
        # A part without a name (Content-Disposition: form-data) is keyed None.
        name = sorted(str(n) if n is not None else "(no name)" for n in unknown)[0]
        raise ValidationError(f"{name}: unknown field", field=name)
    try:
        kind = DocumentKind(request.form.get("kind", ""))
    except ValueError as e:
        choices = ", ".join(k.value for k in DocumentKind)
        raise ValidationError(f"kind: must be one of {choices}", field="kind") from e
    upload = request.files.get("file")
    if upload is None:
        raise ValidationError("file: attach the document as 'file'", field="file")
    content = upload.stream.read(MAX_DOCUMENT_BYTES + 1)
    document = check_document(content, upload.filename or "document")
    service, session = onboarding_service(), db_session()
    with write_transaction(session):
        service.add_document(
            session, application_id, kind, document, actor=actor, now=current_runtime().now()
        )
    return _render(service, application_id, 201)


@bp.post("/applications/<int:application_id>/submit")
@api_doc(body=Empty, body_required=False, auth=[PERSONAL], responses={200: JSON_OBJECT})
def submit(application_id: int) -> tuple[Response, int]:
    actor = _actor()
    _no_body()
    service, session = onboarding_service(), db_session()
    with write_transaction(session):
        service.submit(session, application_id, actor=actor, now=current_runtime().now())
    return _render(service, application_id)


@bp.post("/applications/<int:application_id>/answers")
@api_doc(body=AnswersRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def answer(application_id: int) -> tuple[Response, int]:
    actor = _actor()
    body = parse_body(AnswersRequest)
    service, session = onboarding_service(), db_session()
    with write_transaction(session):
        service.answer(
            session, application_id, body.answers, actor=actor, now=current_runtime().now()
        )
    return _render(service, application_id)


@bp.post("/applications/<int:application_id>/checks")
@api_doc(body=Empty, body_required=False, auth=[PERSONAL], responses={200: JSON_OBJECT})
def rerun_checks(application_id: int) -> tuple[Response, int]:
    actor = _officer()
    _no_body()
    service, session = onboarding_service(), db_session()
    with write_transaction(session):
        service.run_checks(session, application_id, actor=actor, now=current_runtime().now())
    return _render(service, application_id)


@bp.get("/applications/<int:application_id>/hits")
@api_doc(auth=[PERSONAL], responses={200: JSON_OBJECT})
def list_hits(application_id: int) -> Response:
    """The application's watch-list hits, best score first, each open, cleared or confirmed."""
    _officer()
    session = db_session()
    get_application(session, application_id)
    return jsonify({"hits": [hit_json(h) for h in hits_of(session, application_id)]})


@bp.post("/applications/<int:application_id>/hits/<int:hit_id>/decision")
@api_doc(body=HitDecisionRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def decide_hit(application_id: int, hit_id: int) -> tuple[Response, int]:
    """``clear`` (a false positive) or ``confirm`` (a true match), with reasons (reviewer).

    The officer who clears a hit may not approve the application; a confirmed hit
    refuses approval.
    """
    actor = _officer()
    body = parse_body(HitDecisionRequest)
    service, session = onboarding_service(), db_session()
    with write_transaction(session):
        service.decide_hit(
            session,
            application_id,
            hit_id,
            HIT_OUTCOMES[body.decision],
            body.reasons,
            actor=actor,
            now=current_runtime().now(),
        )
    return _render(service, application_id)


@bp.post("/applications/<int:application_id>/review")
@api_doc(body=Empty, body_required=False, auth=[PERSONAL], responses={200: JSON_OBJECT})
def start_review(application_id: int) -> tuple[Response, int]:
    actor = _officer()
    _no_body()
    service, session = onboarding_service(), db_session()
    with write_transaction(session):
        service.start_review(session, application_id, actor=actor, now=current_runtime().now())
    return _render(service, application_id)


@bp.post("/applications/<int:application_id>/questions")
@api_doc(body=QuestionsRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def ask(application_id: int) -> tuple[Response, int]:
    actor = _officer()
    body = parse_body(QuestionsRequest)
    service, session = onboarding_service(), db_session()
    with write_transaction(session):
        service.request_information(
            session, application_id, body.questions, actor=actor, now=current_runtime().now()
        )
    return _render(service, application_id)


@bp.post("/applications/<int:application_id>/recommendation")
@api_doc(body=RecommendationRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def recommend(application_id: int) -> tuple[Response, int]:
    actor = _officer()
    body = parse_body(RecommendationRequest)
    service, session = onboarding_service(), db_session()
    with write_transaction(session):
        service.recommend(
            session,
            application_id,
            body.recommendation,
            body.reasons,
            actor=actor,
            now=current_runtime().now(),
        )
    return _render(service, application_id)


@bp.post("/applications/<int:application_id>/decision")
@api_doc(body=DecisionRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def decide(application_id: int) -> tuple[Response, int]:
    """``approve`` or ``reject`` after a recommendation by another officer."""
    actor = _officer()
    body = parse_body(DecisionRequest)
    if body.decision is Recommendation.REINSTATE:
        raise ValidationError(
            "decision: approve or reject; reinstate a suspended merchant at /reinstate",
            field="decision",
        )
    service, session = onboarding_service(), db_session()
    decide = service.approve if body.decision is Recommendation.APPROVE else service.reject
    with write_transaction(session):
        decide(session, application_id, body.reasons, actor=actor, now=current_runtime().now())
    return _render(service, application_id)


def _step(application_id: int, name: str) -> tuple[Response, int]:
    actor = _officer()
    body = parse_body(ReasonsRequest)
    service, session = onboarding_service(), db_session()
    method: Any = getattr(service, name)
    with write_transaction(session):
        method(session, application_id, body.reasons, actor=actor, now=current_runtime().now())
    return _render(service, application_id)


@bp.post("/applications/<int:application_id>/suspend")
@api_doc(body=ReasonsRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def suspend(application_id: int) -> tuple[Response, int]:
    """Takes effect at once: verify-before-sale blocks the merchant from this commit on."""
    return _step(application_id, "suspend")


@bp.post("/applications/<int:application_id>/reinstate")
@api_doc(body=ReasonsRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def reinstate(application_id: int) -> tuple[Response, int]:
    """After a recommendation to reinstate by another officer."""
    return _step(application_id, "reinstate")


@bp.post("/applications/<int:application_id>/terminate")
@api_doc(body=ReasonsRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
def terminate(application_id: int) -> tuple[Response, int]:
    return _step(application_id, "terminate")


@bp.get("/queue")
@api_doc(
    query=[Query("state", {"enum": [s.value for s in State]}, repeated=True)],
    auth=[PERSONAL],
    responses={200: JSON_OBJECT},
)
def queue() -> Response:
    """Applications waiting for an officer, oldest first; ``?state=`` narrows (repeatable)."""
    _officer()
    names = request.args.getlist("state")
    try:
        states = [State(n) for n in names] if names else None
    except ValueError as e:
        raise ValidationError("state: not an application state", field="state") from e
    service = onboarding_service()
    now = current_runtime().now()
    items = (
        service.queue(db_session(), now=now, states=states)
        if states
        else service.queue(db_session(), now=now)
    )
    return jsonify({"applications": [queue_json(i) for i in items]})

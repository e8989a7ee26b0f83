"""Cases API: open, list, show and work investigators' cases.

Who acts comes only from ``Authorization: Bearer <token>`` (an officer's token). Each
action is one ledger entry; errors are problem+json (``case-transition``,
``case-closed``, ``bad-case-input``, ...).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from merchant_onboarding.officers import Actor
from provenance.cases import (
    AttachmentStore,
    CaseInputError,
    add_members,
    add_note,
    assign_case,
    attach_file,
    case_json,
    change_status,
    get_case,
    list_cases,
    open_case,
    related_entries,
)
from provenance.db import write_transaction
from webapp.officer_auth import bearer_officer, init_officer_auth
from webapp.openapi import (
    JSON_OBJECT,
    OFFICER,
    SHORT_TEXT,
    WHOLE_NUMBER,
    CaseEntries,
    CaseList,
    Query,
    api_doc,
    multipart,
)
from webapp.runtime import current_runtime, db_session
from webapp.validation import parse_body

bp = Blueprint("cases_api", __name__, url_prefix="/api/v1/cases")
init_officer_auth(bp, "cardtrace cases")


class OpenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=200)


class MemberRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=16)
    value: str = Field(max_length=100)


class MembersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    members: list[MemberRequest] = Field(min_length=1, max_length=100)


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str = Field(max_length=64)


class StatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(max_length=32)
    outcome: str | None = Field(default=None, max_length=32)


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=4000)


def _actor() -> Actor:
    return bearer_officer("work cases")


def attachment_store() -> AttachmentStore:
    """Where case files are kept: ``<instance>/attachments``, by SHA-256."""
    return AttachmentStore(Path(current_runtime().settings.instance_path) / "attachments")


@bp.get("")
@api_doc(
    query=[
        Query("status", SHORT_TEXT),
        Query("assignee", SHORT_TEXT),
        Query("limit", WHOLE_NUMBER),
    ],
    auth=[OFFICER],
    responses={200: CaseList},
)
def index() -> Response:
    """Cases, most recently changed first; ``?status=``, ``?assignee=``, ``?limit=``."""
    _actor()
    raw_limit = request.args.get("limit", "100")
    if not raw_limit.isdigit():
        raise CaseInputError("limit must be a whole number", field="limit")
    found = list_cases(
        db_session(),
        status=request.args.get("status"),
        assignee=request.args.get("assignee"),
        limit=int(raw_limit),
    )
    return jsonify({"cases": [case_json(c, full=False) for c in found]})


@bp.post("")
@api_doc(body=OpenRequest, auth=[OFFICER], responses={201: JSON_OBJECT})
def create() -> tuple[Response, int]:
    """Open a case, as the officer whose token is given."""
    actor = _actor()
    body = parse_body(OpenRequest)
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        case = open_case(
            session, runtime.ledger, title=body.title, officer=actor.id, now=runtime.now()
        )
        document = case_json(case)
    return jsonify(document), 201


@bp.get("/<int:case_id>")
@api_doc(auth=[OFFICER], responses={200: JSON_OBJECT})
def show(case_id: int) -> Response:
    """One case with its members, timeline, notes, attachments and ledger entries."""
    _actor()
    return jsonify(case_json(get_case(db_session(), case_id)))


@bp.get("/<int:case_id>/entries")
@api_doc(auth=[OFFICER], responses={200: CaseEntries})
def entries(case_id: int) -> Response:
    """The ledger entries behind the case, in all and per member."""
    _actor()
    session = db_session()
    related = related_entries(session, get_case(session, case_id))
    return jsonify(
        {
            "seqs": list(related.seqs),
            "truncated": related.truncated,
            "members": [
                {"kind": kind, "value": value, "seqs": list(seqs)}
                for (kind, value), seqs in related.by_member.items()
            ],
        }
    )


@bp.post("/<int:case_id>/members")
@api_doc(body=MembersRequest, auth=[OFFICER], responses={200: JSON_OBJECT})
def members(case_id: int) -> Response:
    """Add alerts, merchants, buyers, instruments or codes (pseudonyms, fingerprints)."""
    actor = _actor()
    body = parse_body(MembersRequest)
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        case = add_members(
            session,
            runtime.ledger,
            case_id,
            [(m.kind, m.value) for m in body.members],
            officer=actor.id,
            now=runtime.now(),
        )
        document = case_json(case)
    return jsonify(document)


@bp.post("/<int:case_id>/assignment")
@api_doc(body=AssignRequest, auth=[OFFICER], responses={200: JSON_OBJECT})
def assignment(case_id: int) -> Response:
    actor = _actor()
    body = parse_body(AssignRequest)
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        case = assign_case(
            session, runtime.ledger, case_id, body.assignee, officer=actor.id, now=runtime.now()
        )
        document = case_json(case)
    return jsonify(document)


@bp.post("/<int:case_id>/status")
@api_doc(body=StatusRequest, auth=[OFFICER], responses={200: JSON_OBJECT})
def status(case_id: int) -> Response:
    """open -> under_investigation -> reported -> closed (closing needs an outcome)."""
    actor = _actor()
    body = parse_body(StatusRequest)
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        case = change_status(
            session,
            runtime.ledger,
            case_id,
            body.status,
            officer=actor.id,
            outcome=body.outcome,
            now=runtime.now(),
        )
        document = case_json(case)
    return jsonify(document)


@bp.post("/<int:case_id>/notes")
@api_doc(body=NoteRequest, auth=[OFFICER], responses={201: JSON_OBJECT})
def notes(case_id: int) -> tuple[Response, int]:
    actor = _actor()
    body = parse_body(NoteRequest)
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        case = add_note(
            session, runtime.ledger, case_id, body.text, officer=actor.id, now=runtime.now()
        )
        document = case_json(case)
    return jsonify(document), 201


@bp.post("/<int:case_id>/attachments")
@api_doc(
    body_schema=multipart(),
    body_media="multipart/form-data",
    auth=[OFFICER],
    responses={201: JSON_OBJECT},
)
def attachments(case_id: int) -> tuple[Response, int]:
    """Attach one file (multipart field ``file``); kept by SHA-256, its name sanitised."""
    actor = _actor()
    upload = request.files.get("file")
    if upload is None or len(request.files) != 1:
        raise CaseInputError("send one file as the multipart field 'file'", field="file")
    store = attachment_store()
    # One byte over the limit is enough to refuse it, without reading the rest.
    content = upload.stream.read(store.max_bytes + 1)
    session, runtime = db_session(), current_runtime()
    with write_transaction(session):
        case = attach_file(
            session,
            runtime.ledger,
            store,
            case_id,
            upload.filename or "attachment",
            content,
            officer=actor.id,
            now=runtime.now(),
        )
        document = case_json(case)
    return jsonify(document), 201

"""Cases API: open, list, show and work investigators' cases.

Who acts comes only from the credential, a signed-in session or a personal API key
(:mod:`webapp.officer_auth`): analysts work cases, auditors read them. Each action is one
ledger entry; errors are problem+json (``case-transition``,
``case-closed``, ``bad-case-input``, ...).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from flask import Blueprint, Response, jsonify, request, send_file, url_for
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
from provenance.entries import format_time
from provenance.errors import ConflictError, NotFoundError
from webapp.officer_auth import bearer_officer, init_officer_auth
from webapp.openapi import (
    JSON_OBJECT,
    PERSONAL,
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
    auth=[PERSONAL],
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
@api_doc(body=OpenRequest, auth=[PERSONAL], responses={201: JSON_OBJECT})
def create() -> tuple[Response, int]:
    """Open a case, as the acting analyst."""
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
@api_doc(auth=[PERSONAL], responses={200: JSON_OBJECT})
def show(case_id: int) -> Response:
    """One case with its members, timeline, notes, attachments and ledger entries."""
    _actor()
    return jsonify(case_json(get_case(db_session(), case_id)))


@bp.get("/<int:case_id>/entries")
@api_doc(auth=[PERSONAL], responses={200: CaseEntries})
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
@api_doc(body=MembersRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
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
@api_doc(body=AssignRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
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
@api_doc(body=StatusRequest, auth=[PERSONAL], responses={200: JSON_OBJECT})
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
@api_doc(body=NoteRequest, auth=[PERSONAL], responses={201: JSON_OBJECT})
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
    auth=[PERSONAL],
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


# Evidence packages over the API. An export runs as the ``cardtrace.export_evidence``
# task; its state is a small JSON file beside the package, in
# ``<instance>/exports/<export id>/``, which the worker and the web server share (the
# package itself is on that disk too).

_EXPORT_ID_RE = re.compile(r"[0-9a-f]{32}")
EXPORT_STEPS = ("package", "archive")


class ExportState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class EvidenceExportNotFoundError(NotFoundError):
    code = "evidence-export-not-found"
    title = "No such evidence export"


class EvidenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    lang: Literal["zh", "en"] = "zh"
    # Printed in the report and recorded on the ledger: one line of text.
    recipient: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")


class ExportStep(BaseModel):
    name: str
    state: str


class ExportFailure(BaseModel):
    code: str
    detail: str


class ExportStatus(BaseModel):
    """An export's state, as stored and as answered."""

    model_config = ConfigDict(extra="forbid")

    id: str
    case: int
    state: ExportState
    steps: list[ExportStep]
    requested_by: str
    recipient: str
    language: str
    requested_at: str
    package_sha256: str | None = None
    archive_sha256: str | None = None
    size: int | None = None
    custody_seq: int | None = None
    archive_name: str | None = None
    failure: ExportFailure | None = None


class ExportStarted(BaseModel):
    id: str
    state: ExportState
    status_url: str


@dataclass(frozen=True, slots=True)
class EvidenceExports:
    """The exports folder: one directory per export, named by its id."""

    root: Path

    def directory(self, export_id: str) -> Path:
        if not _EXPORT_ID_RE.fullmatch(export_id):
            raise EvidenceExportNotFoundError(f"no evidence export {export_id[:40]!r}")
        return self.root / export_id

    def package_dir(self, export_id: str) -> Path:
        return self.directory(export_id) / "package"

    def read(self, export_id: str) -> ExportStatus:
        """Raises:
        EvidenceExportNotFoundError: no export of that id."""
        path = self.directory(export_id) / "status.json"
        try:
            return ExportStatus.model_validate_json(path.read_bytes())
        except FileNotFoundError as e:
            raise EvidenceExportNotFoundError(f"no evidence export {export_id}") from e

    def write(self, status: ExportStatus) -> None:
        """Replace the export's state in one step: a reader sees the old or the new."""
        directory = self.directory(status.id)
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / "status.json.tmp"
        temporary.write_text(status.model_dump_json(indent=2), encoding="utf-8")
        os.replace(temporary, directory / "status.json")

    def create(
        self, case_id: int, *, officer: str, recipient: str, language: str, now: datetime
    ) -> ExportStatus:
        status = ExportStatus(
            id=secrets.token_hex(16),
            case=case_id,
            state=ExportState.QUEUED,
            steps=[ExportStep(name=name, state="pending") for name in EXPORT_STEPS],
            requested_by=officer,
            recipient=recipient,
            language=language,
            requested_at=format_time(now),
        )
        self.write(status)
        return status


def evidence_exports() -> EvidenceExports:
    """Where API exports are written: ``<instance>/exports``."""
    return EvidenceExports(Path(current_runtime().settings.instance_path) / "exports")


def _export_of_case(case_id: int, export_id: str) -> ExportStatus:
    status = evidence_exports().read(export_id)
    if status.case != case_id:
        # Another case's export is not found here: its id says nothing about this case.
        raise EvidenceExportNotFoundError(f"no evidence export {export_id} of case {case_id}")
    return status


@bp.post("/<int:case_id>/evidence")
@api_doc(body=EvidenceRequest, auth=[PERSONAL], responses={202: ExportStarted})
def evidence_export(case_id: int) -> tuple[Response, int, dict[str, str]]:
    """Start exporting the case's evidence package (a background task); answers 202 with
    the export's id and the URL of its status. The export is recorded on the ledger
    (chain of custody) as the CLI's is: by this officer, for the recipient."""
    from webapp.tasks import export_evidence

    actor = bearer_officer("export evidence")
    body = parse_body(EvidenceRequest)
    session, runtime = db_session(), current_runtime()
    get_case(session, case_id)
    session.rollback()  # end the read before the task writes (SQLite: one writer)
    status = evidence_exports().create(
        case_id,
        officer=actor.id,
        recipient=body.recipient,
        language=body.lang,
        now=runtime.now(),
    )
    if export_evidence.app.conf.task_always_eager:
        # Embedded default: in-process, in this request's thread. The bag is written by
        # absolute paths (provenance/evidence/bag.py), so the server's cwd is untouched.
        export_evidence.apply((status.id,))
    else:
        export_evidence.delay(status.id)
    url = url_for("cases_api.evidence_status", case_id=case_id, export_id=status.id)
    started = ExportStarted(
        id=status.id, state=evidence_exports().read(status.id).state, status_url=url
    )
    return jsonify(started.model_dump(mode="json")), 202, {"Location": url}


@bp.get("/<int:case_id>/evidence/<export_id>")
@api_doc(auth=[PERSONAL], responses={200: ExportStatus})
def evidence_status(case_id: int, export_id: str) -> Response:
    """An export's state: queued, running (with its steps), done (with the package's hash
    and the archive's size and hash) or failed (with the reason)."""
    _actor()
    return jsonify(_export_of_case(case_id, export_id).model_dump(mode="json"))


@bp.get("/<int:case_id>/evidence/<export_id>/archive")
@api_doc(auth=[PERSONAL], responses={200: None}, response_media="application/zip")
def evidence_archive(case_id: int, export_id: str) -> Response:
    """The finished package as a zip. ``X-Package-SHA256`` is the package's hash (as
    recorded on the ledger); ``Repr-Digest`` is the SHA-256 of the zip itself."""
    _actor()
    status = _export_of_case(case_id, export_id)
    if status.state is not ExportState.DONE or status.archive_name is None:
        raise ExportNotReadyError(f"evidence export {export_id} is {status.state.value}")
    assert status.archive_sha256 is not None and status.package_sha256 is not None
    path = evidence_exports().directory(export_id) / status.archive_name
    response = send_file(
        path, mimetype="application/zip", as_attachment=True, download_name=status.archive_name
    )
    response.headers["X-Package-SHA256"] = status.package_sha256
    digest = base64.b64encode(bytes.fromhex(status.archive_sha256)).decode("ascii")
    response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
    return response


class ExportNotReadyError(ConflictError):
    code = "evidence-export-not-ready"
    title = "The evidence export is not finished"

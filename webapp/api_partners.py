"""Partners' notices over HTTP: ``POST /api/v1/partners/<partner>/notices``.

The caller authenticates with an API key of the partner's
(``Authorization: Bearer ctk_...``, scope ``partners:notice``, issued to that partner's
party; see webapp.accounts): no key or a bad one is a 401, a key of another party or
without the scope a 403. The body is JSON: ``{"notice": <base64 of the file>,
"signature": <base64 of the partner's detached Ed25519 signature over the file's
bytes>}``; the signature is optional unless the partner's policy requires it, and
checked whenever it is given (a signature that does not verify is a 401). Nothing is
written unless the whole file is accepted. 201 with the import report when notices were
added, 200 when all were already in force.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from provenance.db import write_transaction
from provenance.errors import ValidationError
from provenance.partners.errors import (
    NoticeFormatError,
    NoticeSignatureError,
    NoticeTooLargeError,
)
from provenance.partners.notices import (
    MAX_NOTICE_BYTES,
    ImportReport,
    apply_notices,
    read_notice_file,
)
from webapp.accounts.api import authenticate_api_key
from webapp.accounts.errors import ForbiddenError
from webapp.accounts.roles import Scope
from webapp.api_risk import live_risk
from webapp.errors import Problem, problem_response
from webapp.openapi import API_KEY, JSON_OBJECT, api_doc
from webapp.runtime import current_runtime, db_session
from webapp.validation import parse_body

bp = Blueprint("partners_api", __name__, url_prefix="/api/v1/partners")

# The base64 of the largest file, and room for the signature and the JSON around them.
MAX_REQUEST_BYTES = (MAX_NOTICE_BYTES * 4) // 3 + 4096


class NoticeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    notice: str = Field(min_length=1, max_length=MAX_REQUEST_BYTES)
    signature: str | None = Field(default=None, max_length=200)


@bp.errorhandler(NoticeSignatureError)
def _unauthenticated(error: NoticeSignatureError) -> Response:
    response = problem_response(Problem(401, error.code, error.title, error.message))
    response.headers["WWW-Authenticate"] = 'Signature realm="cardtrace partners"'
    return response


@bp.errorhandler(NoticeTooLargeError)
def _too_large(error: NoticeTooLargeError) -> Response:
    return problem_response(Problem(413, error.code, error.title, error.message, error.field))


@bp.errorhandler(NoticeFormatError)
def _malformed(error: NoticeFormatError) -> Response:
    if isinstance(error, NoticeTooLargeError):
        return _too_large(error)
    response = problem_response(Problem(422, error.code, error.title, error.message, error.field))
    if error.line is not None:
        body = response.get_json()
        body["line"] = error.line
        response.set_data(jsonify(body).get_data())
    return response


def _decode(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValidationError(f"{field} must be base64", field=field) from e


def report_json(report: ImportReport) -> dict[str, Any]:
    return {
        "partner": report.partner,
        "sha256": report.sha256,
        "format": report.format.value,
        "notices": report.notices,
        "added": report.added,
        "already_in_force": report.skipped,
        "by_kind": dict(report.by_kind),
        "key_id": report.key_id,
        "seqs": list(report.seqs),
    }


@bp.post("/<partner>/notices")
@api_doc(body=NoticeRequest, auth=[API_KEY], responses={200: JSON_OBJECT, 201: JSON_OBJECT})
def post_notices(partner: str) -> tuple[Response, int]:
    """Import one notice file from ``partner`` (all or nothing, idempotent)."""
    actor = authenticate_api_key(Scope.PARTNERS_NOTICE)
    if actor.party != partner:
        raise ForbiddenError(f"this API key acts for {actor.party}, not for {partner}")
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        raise NoticeTooLargeError(
            f"a notice file is at most {MAX_NOTICE_BYTES:,} bytes", field="notice"
        )
    body = parse_body(NoticeRequest)
    data = _decode(body.notice, "notice")
    signature = None if body.signature is None else _decode(body.signature, "signature")
    runtime, session, live = current_runtime(), db_session(), live_risk()
    # Read and checked first (the OASIS validator can take seconds), written after.
    notice_file = read_notice_file(
        session,
        partner=partner,
        data=data,
        signature=signature,
        fingerprint_key=runtime.secrets.fingerprint_key,
        now=runtime.now(),
    )
    session.rollback()
    with write_transaction(session):
        report = apply_notices(session, runtime.ledger, notice_file, now=runtime.now())
        # A stolen card or a reported device is in the real-time risk state at once.
        live.entries_appended(session, report.statements)
    return jsonify(report_json(report)), 201 if report.added else 200

"""RFC 9457 problem details for every error the JSON API returns, from one place."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from merchant_onboarding.errors import OnboardingError
from provenance.entries import SignatureError
from provenance.errors import (
    CardtraceError,
    ConfigError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from provenance.merkle import ProofError
from provenance.verify import VerificationError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Error class -> HTTP status. The most specific class in an error's MRO wins.
STATUS_BY_ERROR: dict[type[CardtraceError], int] = {
    CardtraceError: 400,
    ValidationError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    OnboardingError: 409,
    ConfigError: 503,
    ProofError: 422,
    SignatureError: 422,
    VerificationError: 422,
}

_HTTP_CODES = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "rate-limited",
    500: "internal-error",
    503: "unavailable",
}

bp = Blueprint("problems", __name__)
_SLUG = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    code: str
    title: str
    detail: str
    field: str | None = None


def status_for(error: CardtraceError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, object] = {
        "type": url_for("problems.describe", code=problem.code, _external=True),
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if problem.field is not None:
        body["field"] = problem.field
    response = jsonify(body)
    response.status_code = problem.status
    response.mimetype = PROBLEM_JSON
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _from_cardtrace(error: CardtraceError) -> Response:
    status = status_for(error)
    if isinstance(error, ConfigError):
        log.error("configuration problem: %s", error)
    return problem_response(
        Problem(
            status=status,
            code=error.code,
            title=error.title,
            detail=error.message,
            field=getattr(error, "field", None),
        )
    )


def _from_http(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {}
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return problem_response(
        Problem(
            status=status,
            code=_HTTP_CODES.get(status, "http-error"),
            title=error.name,
            detail=error.description or error.name,
        ),
        headers,
    )


def _from_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(
        Problem(
            status=500,
            code="internal-error",
            title="Internal Server Error",
            detail="The server could not complete the request; it has been logged.",
        )
    )


@bp.get("/problems/<code>")
def describe(code: str) -> Response:
    """A human page for a problem ``type`` URI, so the URI dereferences to something."""
    known = {cls.code: cls.title for cls in _all_error_classes()} | {
        c: c.replace("-", " ").capitalize() for c in _HTTP_CODES.values()
    }
    # Errors may carry a more specific code than their class (e.g. "code-sold"); every
    # code the API can send is a lower-case slug, and its URI answers with its name.
    if code not in known and not _SLUG.fullmatch(code):
        return problem_response(
            Problem(404, "not-found", "Not Found", f"No problem type is named {code!r}.")
        )
    return jsonify({"code": code, "title": known.get(code, code.replace("-", " ").capitalize())})


def _all_error_classes() -> list[type[CardtraceError]]:
    seen: list[type[CardtraceError]] = []
    stack: list[type[CardtraceError]] = [CardtraceError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_error_handler(CardtraceError, _from_cardtrace)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(Exception, _from_unexpected)

"""The JSON API's OpenAPI 3.1 description, built from the app's routes and their models.

A view declares what it takes and answers with :func:`api_doc`, which only records
an :class:`ApiDoc` on the function; :func:`build_document` walks the URL map for every
``/api/`` rule, so a route without a declaration is still described (with a generic
body). The document is served at ``/api/openapi.json`` and read by people at
``/api/docs``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule
from werkzeug.routing.converters import BaseConverter, IntegerConverter, UnicodeConverter

F = TypeVar("F", bound=Callable[..., Any])

API_PREFIX = "/api/"
OPENAPI_VERSION = "3.1.0"
PROBLEM_JSON = "application/problem+json"
REF = "#/components/schemas/{model}"

# Security schemes, by the names views use in ``api_doc(auth=...)``.
API_KEY = "apiKey"
SESSION = "session"
CSRF = "csrfToken"
# Not a scheme of its own: the officer APIs take a personal API key (the API_KEY scheme)
# or a signed-in session, and act as that user account.
PERSONAL = "personal"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    API_KEY: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "ctk_<key id>_<secret>",
        "description": "An API key issued by an administrator: a machine's, scoped to a "
        "party and to operations, or a personal key, which acts as its user account would "
        "signed in (the onboarding, alerts, cases and risk APIs take personal keys only).",
    },
    SESSION: {
        "type": "apiKey",
        "in": "cookie",
        "name": "session",
        "description": "A signed-in browser's session cookie; always with the CSRF header.",
    },
    CSRF: {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRFToken",
        "description": "The page's CSRF token (its `csrf-token` meta tag).",
    },
}

# Which security requirements an ``auth`` name stands for. A session is only ever
# accepted together with its CSRF header, and never together with a bearer credential.
_REQUIREMENTS: dict[str, list[dict[str, list[str]]]] = {
    API_KEY: [{API_KEY: []}],
    SESSION: [{SESSION: [], CSRF: []}],
    PERSONAL: [{API_KEY: []}, {SESSION: [], CSRF: []}],
}

# The statuses a JSON API request may be refused with, and when.
_CLIENT_ERRORS = {
    400: "Bad request.",
    404: "No such object.",
    405: "Method not allowed.",
    409: "The request conflicts with the object's state.",
    413: "The request body is too large.",
    415: "The request body is not of a supported media type.",
    422: "The input is malformed; `field` names the first bad field.",
    429: "Too many requests; `Retry-After` says when to retry.",
}
_AUTH_ERRORS = {
    401: "No credential, or one nobody holds.",
    403: "The credential may not perform this operation.",
}


class Problem(BaseModel):
    """An RFC 9457 problem: every error of the JSON API."""

    model_config = ConfigDict(title="Problem", json_schema_extra={"additionalProperties": True})

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """One query parameter: its name, JSON Schema, and whether it must be given."""

    name: str
    schema: Mapping[str, Any]
    required: bool = False
    description: str = ""
    repeated: bool = False


Shape = type[BaseModel] | Mapping[str, Any] | None

# Shapes views use in their declarations.
JSON_OBJECT: Mapping[str, Any] = {"type": "object"}
TEXT: Mapping[str, Any] = {"type": "string"}
WHOLE_NUMBER: Mapping[str, Any] = {"type": "integer", "minimum": 0}
SHORT_TEXT: Mapping[str, Any] = {"type": "string", "maxLength": 64}


def multipart(*text_fields: str, file: str = "file") -> dict[str, Any]:
    """The schema of a ``multipart/form-data`` body: one file and some text fields."""
    properties: dict[str, Any] = {name: {"type": "string"} for name in text_fields}
    properties[file] = {"type": "string", "contentMediaType": "application/octet-stream"}
    return {"type": "object", "properties": properties, "required": [*text_fields, file]}


Verdict = Literal["allow", "review", "block"]


class VerdictReason(BaseModel):
    """Why a verdict is what it is: a stable code and a sentence in English and Chinese;
    a risk rule's reason also names the rule and its version."""

    code: str
    decision: Verdict
    message: str
    message_zh: str
    rule: str | None = None
    version: int | None = None


class CodeSummary(BaseModel):
    product: str
    batch: str | None
    origin: str
    holder: str
    state: str
    frozen: bool
    tainted: bool
    expires_at: str | None


class CustodyStep(BaseModel):
    seq: int
    type: str
    time: str
    actor: str
    signer: str


class ProofCheckpoint(BaseModel):
    size: int
    root: str
    note: str | None


class EntryProof(BaseModel):
    leaf_hash: str
    proof: list[str]


class VerdictProofs(BaseModel):
    """Inclusion proofs of the entries behind the verdict against the latest checkpoint
    (hashes in base64); entries newer than it are ``pending``."""

    checkpoint: ProofCheckpoint | None
    entries: dict[str, EntryProof]
    pending: list[int]


class RiskPart(BaseModel):
    decision: Verdict
    reasons: list[VerdictReason]
    shadow: list[VerdictReason]


class SaleVerdict(BaseModel):
    """One code's verdict; with a sale context, the one verdict of code and risk."""

    fingerprint: str
    decision: Verdict
    reasons: list[VerdictReason]
    code: CodeSummary | None
    custody: list[CustodyStep]
    risk: RiskPart | None = None


class VerifyAnswer(SaleVerdict):
    merchant: str
    proofs: VerdictProofs


class VerifyBatchAnswer(BaseModel):
    merchant: str
    results: list[SaleVerdict]
    proofs: VerdictProofs


class CodeStatusAnswer(BaseModel):
    fingerprint: str
    code: CodeSummary | None
    custody: list[CustodyStep]
    proofs: VerdictProofs


class AppendedEntry(BaseModel):
    seq: int
    type: str
    leaf_hash: str


class AppendAnswer(BaseModel):
    appended: list[AppendedEntry]


class PartyKeyInfo(BaseModel):
    key_id: str
    party: str
    public_key: str
    not_before: str
    not_after: str | None
    revoked_at: str | None
    revoke_reason: str | None
    added_seq: int


class LedgerKeys(BaseModel):
    """The log's origin and keys, and every party key with its validity and revocation."""

    origin: str
    platform_key: str
    note_verifier_key: str
    keys: list[PartyKeyInfo]


class AlertList(BaseModel):
    alerts: list[dict[str, Any]]


class CaseList(BaseModel):
    cases: list[dict[str, Any]]


class CaseMemberEntries(BaseModel):
    kind: str
    value: str
    seqs: list[int]


class CaseEntries(BaseModel):
    """The ledger entries behind a case, in all and per member."""

    seqs: list[int]
    truncated: bool
    members: list[CaseMemberEntries]


class LedgerRecord(BaseModel):
    """One ledger record, byte for byte (``record`` is its canonical JSON text)."""

    seq: int
    leaf_hash: str
    record: str


class InclusionProof(BaseModel):
    """An RFC 9162 audit path; hashes in base64."""

    seq: int
    size: int
    leaf_hash: str
    root: str
    proof: list[str]


class ConsistencyProof(BaseModel):
    """An RFC 9162 consistency proof between two tree sizes; hashes in base64."""

    old: int
    new: int
    old_root: str
    new_root: str
    proof: list[str]


@dataclass(frozen=True, slots=True)
class ApiDoc:
    """What a view takes and answers, for the description (see :func:`api_doc`)."""

    summary: str | None = None
    body: type[BaseModel] | None = None
    body_schema: Mapping[str, Any] | None = None
    body_media: str = "application/json"
    body_required: bool = True
    query: tuple[Query, ...] = ()
    responses: Mapping[int, Shape] = field(default_factory=dict)
    response_media: str = "application/json"
    auth: tuple[str, ...] = ()


def api_doc(
    *,
    summary: str | None = None,
    body: type[BaseModel] | None = None,
    body_schema: Mapping[str, Any] | None = None,
    body_media: str = "application/json",
    body_required: bool = True,
    query: Sequence[Query] = (),
    responses: Mapping[int, Shape] | None = None,
    response_media: str = "application/json",
    auth: Sequence[str] = (),
) -> Callable[[F], F]:
    """Declare a JSON view's request and answers; it stores an :class:`ApiDoc` on the
    function (as ``__api_doc__``) and changes nothing else.

    Args:
        summary: one line; the view's docstring is the description.
        body: the pydantic model the view parses the body with.
        body_schema: a JSON Schema for a body that is not a model (multipart forms).
        body_media: the body's media type.
        body_required: whether a body must be sent.
        query: the query parameters the view reads.
        responses: success status -> response model, JSON Schema, or None (no schema).
        response_media: the success response's media type.
        auth: the credentials accepted, any one of them (``API_KEY``, ``SESSION``,
            ``PERSONAL``).
    """
    doc = ApiDoc(
        summary=summary,
        body=body,
        body_schema=body_schema,
        body_media=body_media,
        body_required=body_required,
        query=tuple(query),
        responses=dict(responses or {200: None}),
        response_media=response_media,
        auth=tuple(auth),
    )

    def decorate(view: F) -> F:
        view.__api_doc__ = doc  # type: ignore[attr-defined]
        return view

    return decorate


def _converter_schema(converter: BaseConverter) -> dict[str, Any]:
    if isinstance(converter, IntegerConverter):
        schema: dict[str, Any] = {"type": "integer", "minimum": 0}
        if getattr(converter, "signed", False):
            schema.pop("minimum")
        if converter.min is not None:
            schema["minimum"] = converter.min
        if converter.max is not None:
            schema["maximum"] = converter.max
        return schema
    if isinstance(converter, UnicodeConverter):
        return {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
    return {"type": "string"}


class _Components:
    """The document's ``components.schemas``: every model's schema, made in one pass so
    that two models of the same name (``DecisionRequest`` of alerts and of onboarding)
    get distinct names."""

    def __init__(self, models: set[tuple[type[BaseModel], JsonSchemaMode]]) -> None:
        keys, top = models_json_schema(
            sorted(models, key=lambda m: (m[0].__module__, m[0].__qualname__, m[1])),
            ref_template=REF,
        )
        self._refs = keys
        self.schemas: dict[str, Any] = top.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
        return dict(self._refs[(model, mode)])

    def shape(self, shape: Shape, mode: JsonSchemaMode) -> dict[str, Any] | None:
        if shape is None:
            return None
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            return self.ref(shape, mode)
        return dict(shape)


def _models(doc: ApiDoc) -> set[tuple[type[BaseModel], JsonSchemaMode]]:
    found: set[tuple[type[BaseModel], JsonSchemaMode]] = set()
    if doc.body is not None:
        found.add((doc.body, "validation"))
    for shape in doc.responses.values():
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            found.add((shape, "serialization"))
    return found


def _doc_of(view: Callable[..., Any]) -> ApiDoc:
    found = getattr(view, "__api_doc__", None)
    return found if isinstance(found, ApiDoc) else ApiDoc()


def _description(view: Callable[..., Any]) -> str:
    text = (view.__doc__ or "").strip()
    return re.sub(r"\s*\n\s*", " ", text)


_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _openapi_path(rule: Rule) -> str:
    return _PARAM.sub(r"{\1}", rule.rule)


def _operation(
    rule: Rule, method: str, view: Callable[..., Any], comps: _Components
) -> dict[str, Any]:
    doc = _doc_of(view)
    operation: dict[str, Any] = {
        "operationId": f"{rule.endpoint}.{method}" if len(_methods(rule)) > 1 else rule.endpoint,
        "tags": [rule.endpoint.split(".", 1)[0]],
        "summary": doc.summary or _description(view).split(". ")[0] or rule.endpoint,
    }
    if description := _description(view):
        operation["description"] = description
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _converter_schema(converter),
        }
        for name, converter in rule._converters.items()
    ]
    for query in doc.query:
        schema = dict(query.schema)
        if query.repeated:
            schema = {"type": "array", "items": schema}
        parameter: dict[str, Any] = {
            "name": query.name,
            "in": "query",
            "required": query.required,
            "schema": schema,
        }
        if query.description:
            parameter["description"] = query.description
        parameters.append(parameter)
    if parameters:
        operation["parameters"] = parameters

    takes_body = method in {"POST", "PUT", "PATCH"}
    if takes_body:
        if doc.body is not None:
            schema = comps.ref(doc.body)
        elif doc.body_schema is not None:
            schema = dict(doc.body_schema)
        else:
            schema = {"type": "object"}
        operation["requestBody"] = {
            "required": doc.body_required,
            "content": {doc.body_media: {"schema": schema}},
        }

    responses: dict[str, Any] = {}
    for status, shape in sorted((doc.responses or {200: None}).items()):
        media: dict[str, Any] = {}
        answer = comps.shape(shape, "serialization")
        if answer is not None:
            media["schema"] = answer
        responses[str(status)] = {
            "description": "Success.",
            "content": {doc.response_media: media},
        }
    problem = {"content": {PROBLEM_JSON: {"schema": comps.ref(Problem, "serialization")}}}
    errors = dict(_CLIENT_ERRORS)
    if doc.auth:
        errors |= _AUTH_ERRORS
    if not takes_body:
        for status in (413, 415):
            errors.pop(status)
    for status, text in sorted(errors.items()):
        responses[str(status)] = {"description": text, **problem}
    responses["500"] = {"description": "An unexpected error (logged).", **problem}
    responses["503"] = {"description": "The platform is not configured.", **problem}
    operation["responses"] = responses
    operation["security"] = [req for name in doc.auth for req in _REQUIREMENTS[name]]
    return operation


def _methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def api_rules(app: Flask) -> list[Rule]:
    """The app's JSON API rules: every rule under ``/api/`` but the description's own."""
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith(API_PREFIX) and rule.endpoint.split(".")[0] != bp.name
        ),
        key=lambda rule: rule.rule,
    )


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 description of every ``/api/`` route of ``app``."""
    rules = api_rules(app)
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Problem, "serialization")}
    for rule in rules:
        models |= _models(_doc_of(app.view_functions[rule.endpoint]))
    comps = _Components(models)
    paths: dict[str, dict[str, Any]] = {}
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        item = paths.setdefault(_openapi_path(rule), {})
        for method in _methods(rule):
            item[method.lower()] = _operation(rule, method, view, comps)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "cardtrace JSON API",
            "version": "1",
            "description": "Card-code provenance: the ledger, verify before sale, merchant "
            "onboarding, real-time risk rules, alerts, cases and partners' notices. Errors "
            "are RFC 9457 problem details (application/problem+json) with a stable `code`.",
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(comps.schemas.items())),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


bp = Blueprint("openapi", __name__)


def _document() -> dict[str, Any]:
    found: dict[str, Any] | None = current_app.extensions.get("cardtrace.openapi")
    if found is None:
        found = build_document(current_app)
        current_app.extensions["cardtrace.openapi"] = found
    return found


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 description of the JSON API (no credential needed)."""
    return jsonify(_document())


@bp.get("/api/docs")
def docs_page() -> str:
    """The description as a page: operations, parameters, bodies, answers and schemas."""
    document = _document()
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    return render_template("api_docs.html", document=document, operations=operations)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

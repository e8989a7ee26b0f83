"""Card-code API: verify before sale (one or a batch), code status, signed entries.

Verify takes an optional sale ``context`` (see docs/RISK.md): the risk step then runs
after the code's own verdict, and the answer is one verdict, the more severe of the two,
with the code's reasons followed by the risk rules'. The rules' review and block
decisions go to the alert queue after the answer is made (:func:`send_hits`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from provenance.codes import get_code, require_product
from provenance.db import write_transaction
from provenance.entries import SignedStatement, format_time
from provenance.errors import ValidationError
from provenance.parties import PLATFORM_PARTY
from provenance.risk import RiskAssessment, RiskReason, SaleContext
from provenance.risk.errors import SaleContextError
from provenance.risk.live import LiveRisk, RiskHit, decision_of, hits_of
from provenance.verdict import (
    CodeQuery,
    CodeVerdict,
    Decision,
    EntryProof,
    NodeCache,
    Proofs,
    VerifyResult,
    verify_codes,
)
from webapp.accounts import Scope, api_actor, current_api_actor
from webapp.accounts.errors import ScopeError
from webapp.api_risk import live_risk
from webapp.openapi import (
    API_KEY,
    SESSION,
    AppendAnswer,
    CodeStatusAnswer,
    VerifyAnswer,
    VerifyBatchAnswer,
    api_doc,
)
from webapp.runtime import current_runtime, db_session
from webapp.validation import parse_body

bp = Blueprint("codes_api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

MAX_VERIFY_BATCH = 10_000
MAX_ENTRIES = 1_000


@dataclass
class CodesState:
    """What verify keeps in the process between requests.

    ``products`` holds the (issuer, product) pairs already found registered: products are
    only ever added and never change issuer, so a pair once known stays valid, and an
    unknown one is looked up again (and refused) every time. ``nodes`` keeps the log's
    tree hashes, which never change either.
    """

    nodes: NodeCache = field(default_factory=NodeCache)
    products: set[tuple[str, str]] = field(default_factory=set)


@bp.record_once
def _init_state(state: BlueprintSetupState) -> None:
    state.app.extensions["cardtrace.codes"] = CodesState()


def codes_state() -> CodesState:
    found: CodesState = current_app.extensions["cardtrace.codes"]
    return found


class RawCode(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    issuer: str = Field(min_length=1, max_length=64)
    product: str = Field(min_length=1, max_length=100)
    serial: str = Field(min_length=1, max_length=128)
    pin: str = Field(min_length=1, max_length=128, repr=False)


class CodeItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    code: RawCode | None = None
    fingerprint: str | None = Field(default=None, max_length=64)
    # The sale's context (SaleContext), validated on its own for its own error codes.
    context: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> CodeItem:
        if (self.code is None) == (self.fingerprint is None):
            raise ValueError("give either code (issuer, product, serial, pin) or fingerprint")
        return self


class VerifyRequest(CodeItem):
    merchant: str = Field(min_length=1, max_length=64)


class VerifyBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    merchant: str = Field(min_length=1, max_length=64)
    items: list[CodeItem] = Field(min_length=1, max_length=MAX_VERIFY_BATCH)
    # The context of every item that has none of its own.
    context: dict[str, Any] | None = None


class SignedEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    entry: dict[str, Any]
    sig: str


class EntriesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    entries: list[SignedEntry] = Field(min_length=1, max_length=MAX_ENTRIES)


def decode_fingerprint(value: str, field: str = "fingerprint") -> bytes:
    """A fingerprint as base64 (standard or URL-safe) or 64 hex digits.

    Raises:
        ValidationError: it is neither, or not 32 bytes.
    """
    try:
        if len(value) == 64:
            raw = bytes.fromhex(value)
        else:
            padded = value + "=" * (-len(value) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (ValueError, binascii.Error) as e:
        raise ValidationError(f"{field} is not hex or base64", field=field) from e
    if len(raw) != 32:
        raise ValidationError(f"{field} must be 32 bytes", field=field)
    return raw


def code_query(
    item: CodeItem, key: bytes, products: set[tuple[str, str]], index: int | None = None
) -> CodeQuery:
    """The query for one item: its fingerprint, or the fingerprints of its raw code.

    Raises:
        ValidationError: a malformed fingerprint or code field (named, never echoed).
        NotFoundError: the raw code's product is not registered.
    """
    prefix = "" if index is None else f"items.{index}."
    if item.fingerprint is not None:
        return CodeQuery(decode_fingerprint(item.fingerprint, prefix + "fingerprint"))
    code = item.code
    assert code is not None
    try:
        if (code.issuer, code.product) not in products:
            require_product(db_session(), code.issuer, code.product)
            products.add((code.issuer, code.product))
        return CodeQuery.from_raw(key, code.issuer, code.product, code.serial, code.pin)
    except ValidationError as e:
        raise ValidationError(str(e), code=e.code, field=f"{prefix}code.{e.field}") from e


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def verdict_json(verdict: CodeVerdict) -> dict[str, Any]:
    code = verdict.code
    return {
        "fingerprint": verdict.fingerprint.hex(),
        "decision": verdict.decision.value,
        "reasons": [
            {
                "code": r.code.value,
                "decision": r.decision.value,
                "message": r.message,
                "message_zh": r.message_zh,
            }
            for r in verdict.reasons
        ],
        "code": None
        if code is None
        else {
            "product": code.product,
            "batch": code.batch,
            "origin": code.origin,
            "holder": code.holder,
            "state": code.state,
            "frozen": code.frozen,
            "tainted": code.tainted,
            "expires_at": format_time(code.expires_at) if code.expires_at else None,
        },
        "custody": [
            {
                "seq": step.seq,
                "type": step.type,
                "time": format_time(step.time),
                "actor": step.actor,
                "signer": step.signer,
            }
            for step in verdict.custody
        ],
    }


@functools.lru_cache(maxsize=16_384)
def _encoded_proof(proof: EntryProof) -> tuple[str, tuple[str, ...]]:
    # The entries behind verdicts are shared by many codes (a batch's issuance, its
    # transfers): their proofs against one checkpoint are encoded once.
    return _b64(proof.leaf_hash), tuple(_b64(h) for h in proof.proof)


def _entry_proof_json(proof: EntryProof) -> dict[str, Any]:
    leaf, path = _encoded_proof(proof)
    return {"leaf_hash": leaf, "proof": list(path)}


def proofs_json(proofs: Proofs) -> dict[str, Any]:
    return {
        "checkpoint": None
        if proofs.root is None
        else {"size": proofs.checkpoint_size, "root": _b64(proofs.root), "note": proofs.note},
        "entries": {str(seq): _entry_proof_json(p) for seq, p in sorted(proofs.entries.items())},
        "pending": list(proofs.pending),
    }


def risk_reason_json(reason: RiskReason) -> dict[str, Any]:
    """A risk rule's reason, shaped like the code's reasons (plus the rule and version)."""
    return {
        "code": reason.code,
        "decision": reason.action.value,
        "message": reason.en,
        "message_zh": reason.zh,
        "rule": reason.rule,
        "version": reason.version,
    }


def sale_verdict_json(verdict: CodeVerdict, risk: RiskAssessment | None) -> dict[str, Any]:
    """The verdict as JSON; with a risk assessment, the one verdict of code and risk.

    ``decision`` is the more severe of the two; ``reasons`` the code's followed by the
    enforced rules'; ``risk`` keeps the risk step's own decision, its reasons and the
    shadow rules that fired (reported, never enforced).
    """
    document = verdict_json(verdict)
    if risk is not None:
        document["decision"] = decision_of(verdict.decision.value, risk.decision)
        document["reasons"] += [risk_reason_json(r) for r in risk.reasons]
        document["risk"] = {
            "decision": risk.decision.value,
            "reasons": [risk_reason_json(r) for r in risk.reasons],
            "shadow": [risk_reason_json(r) for r in risk.shadow],
        }
    return document


@dataclass(frozen=True, slots=True)
class SaleVerify:
    """Verify-before-sale's whole answer: code verdicts, and risk where a context was given."""

    result: VerifyResult
    risks: tuple[RiskAssessment | None, ...]
    hits: tuple[RiskHit, ...] = ()

    def to_json(self, single: bool) -> dict[str, Any]:
        verdicts = [
            sale_verdict_json(v, r) for v, r in zip(self.result.verdicts, self.risks, strict=True)
        ]
        if single:
            return {
                "merchant": self.result.merchant,
                **verdicts[0],
                "proofs": proofs_json(self.result.proofs),
            }
        return {
            "merchant": self.result.merchant,
            "results": verdicts,
            "proofs": proofs_json(self.result.proofs),
        }


def parse_context(raw: dict[str, Any] | None, where: str = "context") -> SaleContext | None:
    """A sale context from a request, its errors naming the field under ``where``.

    Raises:
        CardNumberRefusedError: a field looks like a full card number (never repeated).
        SaleContextError: any other bad field.
    """
    if raw is None:
        return None
    try:
        return SaleContext.parse(raw)
    except SaleContextError as e:
        field = f"{where}.{e.field}" if e.field and e.field != "context" else where
        raise type(e)(f"{where}.{e.message}", field=field) from e


def assess_sales(
    session: Session,
    live: LiveRisk,
    result: VerifyResult,
    contexts: Sequence[SaleContext | None],
    *,
    now: datetime,
) -> SaleVerify:
    """Run the risk step for each verdict that has a context, after the code's verdict.

    A sale the code's verdict allows or sends to review is held in the risk state (so
    parallel sales see it); one the code blocks is only read (it will not happen). With
    the SQL store the holds are written in one transaction on ``session``.
    """
    if all(context is None for context in contexts):
        return SaleVerify(result, tuple(None for _ in contexts))
    risks: list[RiskAssessment | None] = []
    hits: list[RiskHit] = []

    def run() -> None:
        engine = live.engine(session)
        for verdict, context in zip(result.verdicts, contexts, strict=True):
            if context is None:
                risks.append(None)
                continue
            ref = verdict.fingerprint.hex()
            hold = None if verdict.decision is Decision.BLOCK else ref
            risk = engine.assess(context, merchant=result.merchant, now=now, hold=hold)
            risks.append(risk)
            if risk.reasons or risk.shadow:
                facts = engine.facts(context, merchant=result.merchant, now=now, ref=ref)
                hits.extend(hits_of(risk, facts))

    if live.redis_store is None:
        if session.in_transaction():
            # The code's verdict was read in a transaction of its own that wrote nothing;
            # the holds take the write lock from the start (SQLite: BEGIN IMMEDIATE).
            session.commit()
        with write_transaction(session):
            run()
    else:
        run()
    return SaleVerify(result, tuple(risks), tuple(hits))


def send_hits(hits: Sequence[RiskHit]) -> None:
    """Hand the rules' decisions to the alert queue, and the shadow rules that fired to
    their record (``risk_shadow_hit``).

    With a broker this enqueues one ``cardtrace.risk_alerts`` task (a worker writes the
    alerts); in the embedded default the same task runs in-process, once the verdict is
    made and the holds are committed. A failure is logged, never turned into the answer.
    """
    from webapp.tasks import risk_alerts

    for hit in hits:
        if hit.shadow:
            log.info(
                "risk shadow rule %s v%d fired (%s, would %s) on sale %s",
                hit.rule,
                hit.version,
                hit.reason,
                hit.action,
                hit.ref[:16],
            )
    payload = [hit.to_json() for hit in hits]
    if not payload:
        return
    try:
        if risk_alerts.app.conf.task_always_eager:
            risk_alerts.apply((payload,))  # embedded: in-process, no broker to reach
        else:
            risk_alerts.delay(payload)
    except Exception:  # the verdict stands whatever happens to its alerts
        log.exception("risk alerts for %d decisions could not be recorded", len(payload))


def read_verdicts(queries: Sequence[CodeQuery], merchant: str) -> VerifyResult:
    """The codes' verdicts for ``merchant``, read through the read engine when the app has
    one (writes nothing). Needs an app context."""
    runtime = current_runtime()
    state = codes_state()
    engine = runtime.reader()
    if engine is None:
        return verify_codes(
            db_session(), queries, merchant=merchant, now=runtime.now(), nodes=state.nodes
        )
    try:
        with engine.connect() as connection:
            return _read_verdicts_on(connection, queries, merchant, runtime.now(), state.nodes)
    except DBAPIError as e:
        if not e.connection_invalidated:
            raise
    # The server dropped a pooled connection (a restart, a failover): SQLAlchemy has
    # discarded the pool, and verify writes nothing, so asking again is safe.
    with engine.connect() as connection:
        return _read_verdicts_on(connection, queries, merchant, runtime.now(), state.nodes)


def _read_verdicts_on(
    connection: Connection,
    queries: Sequence[CodeQuery],
    merchant: str,
    now: datetime,
    nodes: NodeCache,
) -> VerifyResult:
    """Verdicts read on a connection of the read engine (autocommit). One code is one
    statement (and tree hashes, which never change); several codes take several
    statements, which then read one snapshot: a read-only transaction of their own, so
    that no code's custody lists a step newer than the state its verdict was read from."""
    if len({q.fingerprint for q in queries}) <= 1:
        return verify_codes(connection, queries, merchant=merchant, now=now, nodes=nodes)
    postgresql = connection.dialect.name == "postgresql"
    connection.exec_driver_sql(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if postgresql else "BEGIN"
    )
    try:
        result = verify_codes(connection, queries, merchant=merchant, now=now, nodes=nodes)
    except BaseException:
        # If the connection is gone, the error that ended the read is the one to raise.
        with contextlib.suppress(DBAPIError):
            connection.exec_driver_sql("ROLLBACK")
        raise
    connection.exec_driver_sql("COMMIT")
    return result


def read_context(text: str | None) -> SaleContext | None:
    """A context given on the command line: JSON, or ``@FILE`` holding JSON.

    Raises:
        SaleContextError: not readable, not a JSON object, or a bad field.
    """
    if text is None:
        return None
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise SaleContextError(f"context: cannot read {text[1:]}", field="context") from e
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise SaleContextError("context: not valid JSON", field="context") from e
    if not isinstance(raw, dict):
        raise SaleContextError("context: must be a JSON object", field="context")
    return parse_context(raw)


def verify_for_sale(
    queries: Sequence[CodeQuery], merchant: str, contexts: Sequence[SaleContext | None]
) -> SaleVerify:
    """Verify codes before sale, with the risk step for those with a context; the rules'
    decisions are sent to the alert queue. Needs an app context."""
    result = read_verdicts(queries, merchant)
    if all(context is None for context in contexts):
        return SaleVerify(result, tuple(None for _ in contexts))  # no risk step to run
    session = db_session()
    answer = assess_sales(session, live_risk(), result, contexts, now=current_runtime().now())
    if answer.hits:
        # The reads above end here (nothing was written), before the alerts' own
        # transaction starts.
        session.commit()
        send_hits(answer.hits)
    return answer


def may_verify_for(party: str | None, merchant: str) -> bool:
    """A merchant's key or account verifies its own sales only; the platform's keys and
    staff (and a credential of no party) verify for any merchant."""
    return party is None or party in (PLATFORM_PARTY, merchant)


def _may_sell_for(merchant: str) -> None:
    """Raises ScopeError: the request's credential acts for another party."""
    party = current_api_actor().party
    if not may_verify_for(party, merchant):
        raise ScopeError(f"this credential acts for {party}; it may verify only its own sales")


@bp.post("/codes/verify")
@api_doc(body=VerifyRequest, auth=[API_KEY, SESSION], responses={200: VerifyAnswer})
@api_actor(Scope.CODES_VERIFY)
def verify() -> Response:
    """Verify one code before sale. Without a context it writes nothing; with one, the
    risk step holds the sale in the risk state."""
    body = parse_body(VerifyRequest)
    _may_sell_for(body.merchant)
    context = parse_context(body.context)
    key = current_runtime().secrets.fingerprint_key
    query = code_query(body, key, codes_state().products)
    return jsonify(verify_for_sale([query], body.merchant, [context]).to_json(single=True))


@bp.post("/codes/verify-batch")
@api_doc(body=VerifyBatchRequest, auth=[API_KEY, SESSION], responses={200: VerifyBatchAnswer})
@api_actor(Scope.CODES_VERIFY)
def verify_batch() -> Response:
    """Verify up to 10,000 codes before sale; each item with a context (its own or the
    batch's) is one sale to that buyer, assessed in the items' order."""
    body = parse_body(VerifyBatchRequest)
    _may_sell_for(body.merchant)
    shared = parse_context(body.context)
    contexts = [
        parse_context(item.context, f"items.{i}.context") if item.context is not None else shared
        for i, item in enumerate(body.items)
    ]
    key = current_runtime().secrets.fingerprint_key
    products = codes_state().products
    queries = [code_query(item, key, products, i) for i, item in enumerate(body.items)]
    return jsonify(verify_for_sale(queries, body.merchant, contexts).to_json(single=False))


@bp.get("/codes/<fingerprint>")
@api_doc(auth=[API_KEY, SESSION], responses={200: CodeStatusAnswer})
@api_actor(Scope.CODES_VERIFY)
def code_status(fingerprint: str) -> Response:
    """A code's current state and custody chain, by fingerprint (hex or base64url)."""
    session = db_session()
    fp = decode_fingerprint(fingerprint)
    get_code(session, fp)  # 404 for an unknown code
    result = verify_codes(
        session,
        [CodeQuery(fp)],
        merchant="",
        now=current_runtime().now(),
        nodes=codes_state().nodes,
    )
    verdict = verdict_json(result.verdicts[0])
    verdict.pop("decision")
    verdict.pop("reasons")
    return jsonify({**verdict, "proofs": proofs_json(result.proofs)})


@bp.post("/entries")
@api_doc(body=EntriesRequest, auth=[API_KEY, SESSION], responses={201: AppendAnswer})
@api_actor(Scope.ENTRIES_APPEND)
def append_entries() -> tuple[Response, int]:
    """Append entries that their actors signed (up to 1,000, all or none)."""
    body = parse_body(EntriesRequest)
    signed = []
    for i, item in enumerate(body.entries):
        try:
            signed.append(SignedStatement.from_json(item.entry, item.sig))
        except ValidationError as e:
            raise ValidationError(
                f"entries.{i}: {e}", code=e.code, field=f"entries.{i}.{e.field}"
            ) from e
    session = db_session()
    live = live_risk()
    with write_transaction(session):
        appended = current_runtime().ledger.append(session, signed, now=current_runtime().now())
        # Sales feed the risk state; partner notices taint at once (see LiveRisk).
        live.entries_appended(session, [s.statement for s in signed])
    return jsonify(
        {
            "appended": [
                {"seq": a.seq, "type": a.type, "leaf_hash": _b64(a.leaf_hash)} for a in appended
            ]
        }
    ), 201

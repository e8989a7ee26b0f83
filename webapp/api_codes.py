"""Card-code API: verify before sale (one or a batch), code status, signed entries."""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from provenance.codes import get_code, require_product
from provenance.db import write_transaction
from provenance.entries import SignedStatement, format_time
from provenance.errors import ValidationError
from provenance.verdict import (
    CodeQuery,
    CodeVerdict,
    NodeCache,
    Proofs,
    VerifyResult,
    verify_codes,
)
from webapp.database import make_engine
from webapp.runtime import Runtime, current_runtime, db_session
from webapp.validation import parse_body

bp = Blueprint("codes_api", __name__, url_prefix="/api/v1")

MAX_VERIFY_BATCH = 10_000
MAX_ENTRIES = 1_000


# How long a connection of the verify engine (and the plans it prepared) lives.
READ_CONNECTION_SECONDS = 300


def read_engine(url: URL) -> Engine | None:
    """The engine verify reads through, or ``None`` to read through the request's session.

    On PostgreSQL verify runs in autocommit, without a ping before each checkout: its one
    or two SELECTs are then its only round trips (no ping, BEGIN or ROLLBACK). Nothing is
    lost: in a READ COMMITTED transaction each statement has its own snapshot anyway, and
    an inclusion proof against a checkpoint holds whenever it is read.

    Its statements are prepared on the server: planning the statement of a single verify
    costs the server more than running it (about 0.8 ms against 0.7 ms). A prepared
    statement may settle on a plan made while a table was still small; every plan here
    is a lookup by key, and connections (with their plans) are replaced every
    :data:`READ_CONNECTION_SECONDS`, so such a plan cannot outlive a few minutes. SQLite
    reads in-process, where a transaction costs next to nothing.
    """
    if url.get_backend_name() != "postgresql":
        return None
    return make_engine(
        url,
        pool_pre_ping=False,
        pool_recycle=READ_CONNECTION_SECONDS,
        isolation_level="AUTOCOMMIT",
        connect_args={"prepare_threshold": 0},
    )


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
    _reader: Engine | None = None
    _reader_known: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reader(self, runtime: Runtime) -> Engine | None:
        """See :func:`read_engine`; ``None`` also when the app's sessions are not made from
        its own engine (tests bind them to one connection they roll back)."""
        with self._lock:
            if not self._reader_known:
                own = isinstance(runtime.make_session, sessionmaker) and (
                    runtime.make_session.kw.get("bind") is runtime.engine
                )
                self._reader = read_engine(runtime.settings.database_url) if own else None
                self._reader_known = True
            return self._reader


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


def _query(
    item: CodeItem, key: bytes, products: set[tuple[str, str]], index: int | None = None
) -> CodeQuery:
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


def proofs_json(proofs: Proofs) -> dict[str, Any]:
    return {
        "checkpoint": None
        if proofs.root is None
        else {"size": proofs.checkpoint_size, "root": _b64(proofs.root), "note": proofs.note},
        "entries": {
            str(seq): {"leaf_hash": _b64(p.leaf_hash), "proof": [_b64(h) for h in p.proof]}
            for seq, p in sorted(proofs.entries.items())
        },
        "pending": list(proofs.pending),
    }


def _result_json(result: VerifyResult, single: bool) -> dict[str, Any]:
    if single:
        return {
            "merchant": result.merchant,
            **verdict_json(result.verdicts[0]),
            "proofs": proofs_json(result.proofs),
        }
    return {
        "merchant": result.merchant,
        "results": [verdict_json(v) for v in result.verdicts],
        "proofs": proofs_json(result.proofs),
    }


def _verify(queries: Sequence[CodeQuery], merchant: str) -> VerifyResult:
    runtime = current_runtime()
    state = codes_state()
    engine = state.reader(runtime)
    if engine is None:
        return verify_codes(
            db_session(), queries, merchant=merchant, now=runtime.now(), nodes=state.nodes
        )
    try:
        with Session(engine) as session:
            return verify_codes(
                session, queries, merchant=merchant, now=runtime.now(), nodes=state.nodes
            )
    except DBAPIError as e:
        if not e.connection_invalidated:
            raise
    # The server dropped a pooled connection (a restart, a failover): SQLAlchemy has
    # discarded the pool, and verify writes nothing, so asking again is safe.
    with Session(engine) as session:
        return verify_codes(
            session, queries, merchant=merchant, now=runtime.now(), nodes=state.nodes
        )


@bp.post("/codes/verify")
def verify() -> Response:
    """Verify one code before sale; writes nothing."""
    body = parse_body(VerifyRequest)
    key = current_runtime().secrets.fingerprint_key
    query = _query(body, key, codes_state().products)
    return jsonify(_result_json(_verify([query], body.merchant), single=True))


@bp.post("/codes/verify-batch")
def verify_batch() -> Response:
    """Verify up to 10,000 codes before sale; writes nothing."""
    body = parse_body(VerifyBatchRequest)
    key = current_runtime().secrets.fingerprint_key
    products = codes_state().products
    queries = [_query(item, key, products, i) for i, item in enumerate(body.items)]
    return jsonify(_result_json(_verify(queries, body.merchant), single=False))


@bp.get("/codes/<fingerprint>")
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
    with write_transaction(session):
        appended = current_runtime().ledger.append(session, signed, now=current_runtime().now())
    return jsonify(
        {
            "appended": [
                {"seq": a.seq, "type": a.type, "leaf_hash": _b64(a.leaf_hash)} for a in appended
            ]
        }
    ), 201

"""Read-only ledger API: checkpoints, entries, proofs and keys."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from provenance.checkpoint import format_verifier_key
from provenance.entries import format_time
from provenance.errors import NotFoundError, ValidationError
from provenance.parties import PartyKey
from webapp.openapi import (
    TEXT,
    WHOLE_NUMBER,
    ConsistencyProof,
    InclusionProof,
    LedgerKeys,
    LedgerRecord,
    Query,
    api_doc,
)
from webapp.runtime import current_runtime, db_session

bp = Blueprint("ledger_api", __name__, url_prefix="/api/v1/ledger")

MAX_SEQ = 2**53


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _int_arg(name: str, *, default: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ValidationError(f"query parameter {name!r} is required", field=name)
        return default
    if not raw.isdigit() or len(raw) > 16 or int(raw) > MAX_SEQ:
        raise ValidationError(f"{name} must be a non-negative integer", field=name)
    return int(raw)


def _latest_size() -> int:
    checkpoint = current_runtime().ledger.latest_checkpoint(db_session())
    if checkpoint is None:
        raise NotFoundError("no checkpoint has been issued yet")
    return checkpoint.size


def _note(text: str) -> Response:
    return Response(text, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


@bp.get("/checkpoint")
@api_doc(responses={200: TEXT}, response_media="text/plain")
def latest_checkpoint() -> Response:
    """The latest signed checkpoint, as a C2SP signed note (text/plain)."""
    checkpoint = current_runtime().ledger.latest_checkpoint(db_session())
    if checkpoint is None:
        raise NotFoundError("no checkpoint has been issued yet")
    return _note(checkpoint.note)


@bp.get("/checkpoints/<int:size>")
@api_doc(responses={200: TEXT}, response_media="text/plain")
def checkpoint_at(size: int) -> Response:
    """A checkpoint issued earlier, by tree size (text/plain)."""
    return _note(current_runtime().ledger.checkpoint_at(db_session(), size).note)


@bp.get("/entries/<int:seq>")
@api_doc(responses={200: LedgerRecord})
def entry(seq: int) -> Response:
    """One record, byte for byte, with its leaf hash."""
    record = current_runtime().ledger.record(db_session(), seq)
    return jsonify(
        {
            "seq": seq,
            "leaf_hash": record.leaf_hash.hex(),
            "record": record.raw.decode("utf-8"),
        }
    )


@bp.get("/proofs/inclusion")
@api_doc(
    query=[Query("seq", WHOLE_NUMBER, required=True), Query("size", WHOLE_NUMBER)],
    responses={200: InclusionProof},
)
def inclusion_proof() -> Response:
    """Audit path of entry ``seq`` in the tree of ``size`` (default: latest checkpoint)."""
    session = db_session()
    ledger = current_runtime().ledger
    seq = _int_arg("seq")
    size = _int_arg("size", default=_latest_size())
    proof = ledger.inclusion_proof(session, seq, size)
    leaf = ledger.record(session, seq).leaf_hash if seq < size else b""
    return jsonify(
        {
            "seq": seq,
            "size": size,
            "leaf_hash": _b64(leaf),
            "root": _b64(ledger.root_at(session, size)),
            "proof": [_b64(h) for h in proof],
        }
    )


@bp.get("/proofs/consistency")
@api_doc(
    query=[Query("old", WHOLE_NUMBER, required=True), Query("new", WHOLE_NUMBER)],
    responses={200: ConsistencyProof},
)
def consistency_proof() -> Response:
    """RFC 9162 consistency proof from tree size ``old`` to ``new`` (default: latest)."""
    session = db_session()
    ledger = current_runtime().ledger
    old = _int_arg("old")
    new = _int_arg("new", default=_latest_size())
    proof = ledger.consistency_proof(session, old, new)
    return jsonify(
        {
            "old": old,
            "new": new,
            "old_root": _b64(ledger.root_at(session, min(old, new))),
            "new_root": _b64(ledger.root_at(session, new)),
            "proof": [_b64(h) for h in proof],
        }
    )


@bp.get("/keys")
@api_doc(responses={200: LedgerKeys})
def keys() -> Response:
    """Every registered key with its validity and revocation, and the log's note key."""
    runtime = current_runtime()
    ledger = runtime.ledger
    public = Ed25519PublicKey.from_public_bytes(ledger.platform.public_key)
    rows = db_session().scalars(select(PartyKey).order_by(PartyKey.party_id, PartyKey.key_id))

    def describe(key: PartyKey) -> dict[str, Any]:
        return {
            "key_id": key.key_id,
            "party": key.party_id,
            "public_key": _b64(key.public_key),
            "not_before": format_time(key.not_before),
            "not_after": format_time(key.not_after) if key.not_after else None,
            "revoked_at": format_time(key.revoked_at) if key.revoked_at else None,
            "revoke_reason": key.revoke_reason,
            "added_seq": key.added_seq,
        }

    return jsonify(
        {
            "origin": ledger.platform.origin,
            "platform_key": _b64(ledger.platform.public_key),
            "note_verifier_key": format_verifier_key(ledger.platform.origin, public),
            "keys": [describe(k) for k in rows],
        }
    )

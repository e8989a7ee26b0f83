"""Pages: the ledger explorer (see :mod:`webapp.pages`).

Entries newest first, filtered by type and actor, paged by sequence number (keyset
paging: each page is an index range scan however long the log is); one entry with its
canonical bytes, signature, chain link and inclusion proof against the latest
checkpoint; the signed checkpoints; and the consistency proof between two of them. The
proofs come from the same ledger service as ``/api/v1/ledger``; the pages embed them for
``static/js/proof.js`` to check in the browser.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Blueprint, Response, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from provenance.entries import PARTY_ID_RE, TYPE_RE
from provenance.errors import NotFoundError
from provenance.ledger import EntryPage, LedgerEntry, StoredCheckpoint, entry_page
from provenance.merkle import ProofError
from webapp.accounts.web import login_required
from webapp.pages.common import STAFF, page
from webapp.runtime import current_runtime, db_session

bp = Blueprint("pages_ledger", __name__)

PAGE_SIZE = 50
MAX_SEQ = 2**53

MESSAGES = {
    "type": _l("Unknown entry type."),
    "actor": _l("An actor is 1-64 lower-case letters, digits, dots, dashes or underscores."),
    "position": _l("A position in the ledger is a whole number."),
    "no-entry": _l("The ledger has no such entry."),
    "no-checkpoint": _l("No checkpoint of that size has been signed."),
    "no-checkpoints": _l("No checkpoint has been signed yet."),
    "order": _l("The older checkpoint must not be larger than the newer one."),
}


class LedgerInputError(Exception):
    def __init__(self, key: str, status: int = 422) -> None:
        super().__init__(key)
        self.key = key
        self.status = status

    @property
    def message(self) -> str:
        return str(MESSAGES[self.key])


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _position(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 16 or int(raw) > MAX_SEQ:
        raise LedgerInputError("position")
    return int(raw)


def _error(error: LedgerInputError) -> Response:
    return page("pages/ledger/error.html", error.status, message=error.message)


def _origin(note: str) -> str:
    return note.split("\n", 1)[0]


@bp.get("/ledger")
@login_required(*STAFF)
def entries() -> ResponseReturnValue:
    """The entries, newest first; ``type`` and ``actor`` filter, ``before``/``after`` page,
    ``seq`` opens one entry."""
    types = sorted(current_runtime().ledger.catalog.types)
    type_ = request.args.get("type", "").strip()
    actor = request.args.get("actor", "").strip()
    try:
        seq = _position("seq")
        if seq is not None:
            return redirect(url_for("pages_ledger.entry", seq=seq))
        if type_ and (not TYPE_RE.fullmatch(type_) or type_ not in types):
            raise LedgerInputError("type")
        if actor and not PARTY_ID_RE.fullmatch(actor):
            raise LedgerInputError("actor")
        found = entry_page(
            db_session(),
            type_=type_ or None,
            actor=actor or None,
            before=_position("before"),
            after=_position("after"),
            size=PAGE_SIZE,
        )
    except LedgerInputError as e:
        return page(
            "pages/ledger/entries.html",
            e.status,
            error=e.message,
            page=EntryPage([], None, None),
            types=types,
            filters={"type": type_ if type_ in types else "", "actor": actor},
        )
    return page(
        "pages/ledger/entries.html",
        page=found,
        types=types,
        filters={"type": type_, "actor": actor},
    )


@bp.get("/ledger/entries/<int:seq>")
@login_required(*STAFF)
def entry(seq: int) -> Response:
    """One entry: its canonical record, signature, chain link and inclusion proof."""
    session = db_session()
    ledger = current_runtime().ledger
    try:
        if seq > MAX_SEQ:
            raise NotFoundError("no such entry")
        record = ledger.record(session, seq)
    except NotFoundError:
        return _error(LedgerInputError("no-entry", 404))
    key_id = session.scalar(select(LedgerEntry.key_id).where(LedgerEntry.seq == seq))
    checkpoint = ledger.latest_checkpoint(session)
    proof_data: dict[str, Any] | None = None
    if checkpoint is not None and seq < checkpoint.size:
        proof = ledger.inclusion_proof(session, seq, checkpoint.size)
        proof_data = {
            "checkpoint": {
                "origin": _origin(checkpoint.note),
                "size": checkpoint.size,
                "root": _b64(checkpoint.root),
            },
            "inclusion": [
                {
                    "seq": seq,
                    "size": checkpoint.size,
                    "leaf_hash": _b64(record.leaf_hash),
                    "record": _b64(record.raw),
                    "proof": [_b64(h) for h in proof],
                }
            ],
        }
    statement = record.statement
    pretty = json.dumps(json.loads(record.raw), indent=2, ensure_ascii=False, sort_keys=True)
    return page(
        "pages/ledger/entry.html",
        seq=seq,
        record=record,
        statement=statement,
        key_id=key_id or statement.key,
        pretty=pretty,
        signature=_b64(record.signed.signature),
        leaf_hash=record.leaf_hash.hex(),
        prev=record.prev.hex(),
        last=ledger.tree_head(session).size,
        checkpoint=checkpoint,
        proof_data=proof_data,
    )


@bp.get("/ledger/checkpoints")
@login_required(*STAFF)
def checkpoints() -> ResponseReturnValue:
    """The signed checkpoints, largest first, paged by size."""
    try:
        before = _position("before")
    except LedgerInputError as e:
        return _error(e)
    query = select(StoredCheckpoint).order_by(
        StoredCheckpoint.size.desc(), StoredCheckpoint.issued_at.desc()
    )
    if before is not None:
        query = query.where(StoredCheckpoint.size < before)
    found = list(db_session().scalars(query.limit(PAGE_SIZE + 1)))
    rows = found[:PAGE_SIZE]
    latest = current_runtime().ledger.latest_checkpoint(db_session())
    return page(
        "pages/ledger/checkpoints.html",
        checkpoints=rows,
        older=rows[-1].size if len(found) > PAGE_SIZE else None,
        latest=latest,
        paged=before is not None,
        origin=_origin,
        b64=_b64,
    )


def _checkpoint(size: int) -> StoredCheckpoint:
    try:
        return current_runtime().ledger.checkpoint_at(db_session(), size)
    except NotFoundError as e:
        raise LedgerInputError("no-checkpoint", 404) from e


@bp.get("/ledger/consistency")
@login_required(*STAFF)
def consistency() -> Response:
    """The consistency proof between two signed checkpoints (``old``, ``new``: sizes;
    ``new`` defaults to the latest)."""
    session = db_session()
    ledger = current_runtime().ledger
    latest = ledger.latest_checkpoint(session)
    form = {"old": request.args.get("old", ""), "new": request.args.get("new", "")}
    try:
        old_size = _position("old")
        new_size = _position("new")
        if old_size is None:
            return page("pages/ledger/consistency.html", form=form, latest=latest, proof=None)
        if new_size is None:
            if latest is None:
                raise LedgerInputError("no-checkpoints", 404)
            new_size = latest.size
        if old_size > new_size:
            raise LedgerInputError("order")
        old, new = _checkpoint(old_size), _checkpoint(new_size)
        try:
            proof = ledger.consistency_proof(session, old.size, new.size)
        except ProofError as e:
            raise LedgerInputError("no-checkpoint", 404) from e
    except LedgerInputError as e:
        return page(
            "pages/ledger/consistency.html",
            e.status,
            form=form,
            latest=latest,
            proof=None,
            error=e.message,
        )
    data = {
        "old": {"size": old.size, "root": _b64(old.root)},
        "new": {"size": new.size, "root": _b64(new.root)},
        "proof": [_b64(h) for h in proof],
    }
    return page(
        "pages/ledger/consistency.html",
        form={"old": str(old.size), "new": str(new.size)},
        latest=latest,
        old=old,
        new=new,
        proof=data,
        origin=_origin,
    )

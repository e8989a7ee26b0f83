"""Pages: code lookup (see :mod:`webapp.pages`).

A code is looked up by its raw parts (issuer, product, serial, PIN) or by its
fingerprint, for a sale by a merchant, through the same verify-before-sale service as
``POST /api/v1/codes/verify``. A raw code is only ever taken from a POST body: a PIN
never appears in a URL (which ends up in logs and browser history), is never sent back
in the page, and is never stored (verify without a sale context writes nothing).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from provenance.codes import require_product
from provenance.errors import ValidationError
from provenance.parties import Party, PartyKind
from provenance.verdict import CodeQuery, CodeVerdict, Proofs
from webapp.accounts.i18n import current_language
from webapp.accounts.roles import Role
from webapp.accounts.web import login_required
from webapp.api_codes import decode_fingerprint, verify_for_sale
from webapp.pages.common import READERS, STAFF, current_role, merchant_party, page
from webapp.runtime import current_runtime, db_session

bp = Blueprint("pages_codes", __name__)

ROLES = (Role.MERCHANT, *READERS)
# How many merchants the staff's merchant field suggests.
MERCHANT_SUGGESTIONS = 500

DECISION_LABELS = {
    "allow": _l("Allow"),
    "review": _l("Review"),
    "block": _l("Block"),
}

# What the page says for each kind of bad input, by the field it concerns.
FIELD_MESSAGES = {
    "empty": _l("Give the code (issuer, product, serial and PIN) or its fingerprint."),
    "both": _l("Give either the code or its fingerprint, not both."),
    "incomplete": _l("A code needs its issuer, product, serial and PIN."),
    "too-long": _l("A field is too long."),
    "fingerprint": _l("A fingerprint is 64 hex digits, or 32 bytes in base64."),
    "issuer": _l("No issuer of that name is registered."),
    "product": _l("That issuer has registered no such product."),
    "serial": _l("The serial must be letters and digits (spaces and dashes are ignored)."),
    "pin": _l("The PIN must be letters and digits (spaces and dashes are ignored)."),
    "merchant-missing": _l("Choose the selling merchant."),
    "merchant": _l("No merchant of that name is registered."),
    "pin-in-link": _l("A PIN is never sent in a link: use the form."),
}

# The API's limits on each field.
_LIMITS = {"issuer": 64, "product": 100, "serial": 128, "pin": 128, "fingerprint": 64}


class LookupInputError(Exception):
    """The lookup form is filled in wrongly; ``key`` names the message to show."""

    def __init__(self, key: str, status: int = 422) -> None:
        super().__init__(key)
        self.key = key
        self.status = status

    @property
    def message(self) -> str:
        return str(FIELD_MESSAGES[self.key])


@dataclass(frozen=True, slots=True)
class LookupForm:
    """What was typed in. The PIN is kept out of ``repr`` and never rendered."""

    issuer: str = ""
    product: str = ""
    serial: str = ""
    fingerprint: str = ""
    merchant: str = ""
    pin: str = field(default="", repr=False)

    @classmethod
    def from_values(cls, values: Any) -> LookupForm:
        def text(name: str) -> str:
            return str(values.get(name, "")).strip()

        return cls(
            issuer=text("issuer"),
            product=text("product"),
            serial=text("serial"),
            fingerprint=text("fingerprint"),
            merchant=text("merchant"),
            pin=str(values.get("pin", "")),
        )

    def shown(self) -> dict[str, str]:
        """The values the form is filled in with again: everything but the PIN."""
        return {
            "issuer": self.issuer,
            "product": self.product,
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "merchant": self.merchant,
        }


@dataclass(frozen=True, slots=True)
class Lookup:
    merchant: str
    verdict: CodeVerdict
    proofs: Proofs


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _merchant(form: LookupForm) -> str:
    """The selling merchant: a merchant account is always its own party."""
    if current_role() is Role.MERCHANT:
        return merchant_party()
    if not form.merchant:
        raise LookupInputError("merchant-missing", 400)
    party = db_session().get(Party, form.merchant) if len(form.merchant) <= 64 else None
    if party is None or party.kind != PartyKind.MERCHANT.value:
        raise LookupInputError("merchant")
    return party.id


def _query(form: LookupForm) -> CodeQuery:
    raw_parts = (form.issuer, form.product, form.serial, form.pin.strip())
    has_code = any(raw_parts)
    if not has_code and not form.fingerprint:
        raise LookupInputError("empty", 400)
    if has_code and form.fingerprint:
        raise LookupInputError("both", 400)
    for name, limit in _LIMITS.items():
        if len(getattr(form, name)) > limit:
            raise LookupInputError("fingerprint" if name == "fingerprint" else "too-long")
    if form.fingerprint:
        try:
            return CodeQuery(decode_fingerprint(form.fingerprint))
        except ValidationError as e:
            raise LookupInputError("fingerprint") from e
    if not all(raw_parts):
        raise LookupInputError("incomplete", 400)
    try:
        require_product(db_session(), form.issuer, form.product)
        key = current_runtime().secrets.fingerprint_key
        return CodeQuery.from_raw(key, form.issuer, form.product, form.serial, form.pin)
    except ValidationError as e:
        # The messages of these errors never repeat a serial or a PIN.
        raise LookupInputError(e.field if e.field in FIELD_MESSAGES else "incomplete") from e


def _lookup(form: LookupForm) -> Lookup:
    merchant = _merchant(form)
    query = _query(form)
    answer = verify_for_sale([query], merchant, [None])
    return Lookup(merchant, answer.result.verdicts[0], answer.result.proofs)


def proof_data(proofs: Proofs) -> dict[str, Any]:
    """What the browser needs to check each inclusion proof against the checkpoint."""
    checkpoint = None
    if proofs.root is not None and proofs.note is not None:
        checkpoint = {
            "origin": proofs.note.split("\n", 1)[0],
            "size": proofs.checkpoint_size,
            "root": _b64(proofs.root),
        }
    return {
        "checkpoint": checkpoint,
        "inclusion": [
            {
                "seq": seq,
                "size": proofs.checkpoint_size,
                "leaf_hash": _b64(p.leaf_hash),
                "proof": [_b64(h) for h in p.proof],
            }
            for seq, p in sorted(proofs.entries.items())
        ],
    }


def _suggested_merchants() -> list[str]:
    if current_role() is Role.MERCHANT:
        return []
    return list(
        db_session().scalars(
            select(Party.id)
            .where(Party.kind == PartyKind.MERCHANT.value)
            .order_by(Party.id)
            .limit(MERCHANT_SUGGESTIONS)
        )
    )


def _render(
    form: LookupForm, status: int = 200, *, result: Lookup | None = None, error: str | None = None
) -> Response:
    role = current_role()
    context: dict[str, Any] = {
        "form": form.shown(),
        "error": error,
        "result": result,
        "is_merchant": role is Role.MERCHANT,
        "own_party": merchant_party() if role is Role.MERCHANT else None,
        "merchants": _suggested_merchants(),
        "ledger_links": role in STAFF,
        "decision_labels": DECISION_LABELS,
        "chinese": current_language() == "zh_CN",
    }
    if result is not None:
        context["proof_data"] = proof_data(result.proofs)
        context["checkpoint"] = context["proof_data"]["checkpoint"]
    return page("pages/codes/lookup.html", status, **context)


def _answer(form: LookupForm) -> Response:
    try:
        result = _lookup(form)
    except LookupInputError as e:
        return _render(form, e.status, error=e.message)
    return _render(form, result=result)


@bp.get("/codes")
@login_required(*ROLES)
def lookup() -> Response:
    """The lookup form; with ``fingerprint`` in the query, the lookup by fingerprint."""
    if "pin" in request.args:
        # Refused without being read back: the PIN is already in a log somewhere, but
        # it goes no further.
        return _render(LookupForm(), 400, error=str(FIELD_MESSAGES["pin-in-link"]))
    form = LookupForm.from_values(request.args)
    if not request.args.get("fingerprint"):
        return _render(form)
    return _answer(form)


@bp.post("/codes")
@login_required(*ROLES)
def lookup_post() -> Response:
    """The lookup of a raw code (or a fingerprint) from the form."""
    return _answer(LookupForm.from_values(request.form))

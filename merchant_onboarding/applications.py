"""Applications: what a merchant declares, validated on the way in and stored protected.

Input crosses a trust boundary as :class:`ApplicationInput` (unknown fields refused,
check digits verified with python-stdnum). ID numbers and the bank account are sealed
(:mod:`merchant_onboarding.protect`) and kept masked for display; the bank account also
gets a keyed look-up tag so re-use is found without the clear value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

from merchant_onboarding.errors import (
    ApplicationNotFoundError,
    DuplicateApplicationError,
    InvalidApplicationError,
)
from merchant_onboarding.models import Application, Owner
from merchant_onboarding.protect import PersonalData, Purpose, mask_account, mask_id_number
from provenance.entries import PARTY_ID_RE
from provenance.parties import Party, PartyKind

MAX_OWNERS = 20


class FundCustody(StrEnum):
    """How customer funds are held until settlement."""

    LICENSED_INSTITUTION = "licensed_institution"  # a licensed payment institution holds them
    BANK_CUSTODY = "bank_custody"  # a bank custody (escrow) account
    MERCHANT_ACCOUNT = "merchant_account"  # collected into the merchant's own account
    PLATFORM_POOLED = "platform_pooled"  # pooled by the platform (二清)


def _stdnum_message(e: Exception, what: str) -> str:
    if isinstance(e, stdnum_errors.InvalidChecksum):
        return f"the {what}'s check digit is wrong"
    if isinstance(e, stdnum_errors.InvalidLength):
        return f"a {what} has 18 characters"
    return f"not a well-formed {what}"


def _credit_code(value: str) -> str:
    try:
        return str(uscc.validate(value))
    except stdnum_errors.ValidationError as e:
        raise ValueError(_stdnum_message(e, "unified social credit code")) from None


def id_number_format(value: str) -> str:
    """Length, digits and check digit of a resident ID number (birth date and place are
    judged by the automated check, which can warn rather than refuse)."""
    number = ric.compact(value)
    if len(number) != 18:
        raise ValueError("a resident ID number has 18 characters")
    if not number[:-1].isdigit() or not (number[-1].isdigit() or number[-1] == "X"):
        raise ValueError("a resident ID number is 17 digits and a digit or X")
    if ric.calc_check_digit(number) != number[-1]:
        raise ValueError("the resident ID number's check digit is wrong")
    return str(number)


def _party_id(value: str) -> str:
    if not PARTY_ID_RE.fullmatch(value):
        raise ValueError("must be a party id: lower-case letters, digits, '.', '_', '-'")
    return value


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _domain(value: str) -> str:
    text = value.strip().lower().rstrip(".")
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("not a valid domain name") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(x) for x in labels):
        raise ValueError("not a valid domain name (like shop.example.cn)")
    return ascii_name


def _url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    return value.strip()


def _account(value: str) -> str:
    digits = re.sub(r"[\s-]", "", value)
    if not digits.isdigit() or not 8 <= len(digits) <= 30:
        raise ValueError("a bank account number is 8-30 digits")
    return digits


CreditCode = Annotated[str, AfterValidator(_credit_code)]
IdNumber = Annotated[str, AfterValidator(id_number_format)]
PartyId = Annotated[str, AfterValidator(_party_id)]
Domain = Annotated[str, AfterValidator(_domain)]
Url = Annotated[str, Field(max_length=500), AfterValidator(_url)]
BankAccount = Annotated[str, AfterValidator(_account)]


class OwnerInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    share: Decimal = Field(gt=0, le=100, decimal_places=2)
    id_number: IdNumber | None = Field(default=None, repr=False)


class ApplicationChanges(BaseModel):
    """Fields an applicant (or an officer, as an amendment) may set or change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    legal_name: str | None = Field(default=None, min_length=1, max_length=200)
    credit_code: CreditCode | None = None
    legal_rep_name: str | None = Field(default=None, min_length=1, max_length=100)
    legal_rep_id_number: IdNumber | None = Field(default=None, repr=False)
    registered_address: str | None = Field(default=None, min_length=1, max_length=500)
    domain: Domain | None = None
    icp_number: str | None = Field(default=None, min_length=1, max_length=64)
    payment_licence: str | None = Field(default=None, min_length=1, max_length=32)
    clearing_institution: str | None = Field(default=None, min_length=1, max_length=200)
    fund_custody: FundCustody | None = None
    user_agreement_url: Url | None = None
    privacy_policy_url: Url | None = None
    owners: list[OwnerInput] | None = Field(default=None, max_length=MAX_OWNERS)
    bank_name: str | None = Field(default=None, min_length=1, max_length=100)
    bank_account: BankAccount | None = Field(default=None, repr=False)


class ApplicationInput(ApplicationChanges):
    """A new application: the merchant's party id, legal name and credit code at least."""

    merchant: PartyId = Field(max_length=64)
    legal_name: str = Field(min_length=1, max_length=200)
    credit_code: CreditCode


# Fields an application needs before it can be submitted.
REQUIRED_FOR_SUBMISSION = (
    "legal_rep_name",
    "legal_rep_id_sealed",
    "registered_address",
    "domain",
    "icp_number",
    "fund_custody",
    "user_agreement_url",
    "privacy_policy_url",
    "bank_name",
    "bank_account_sealed",
)
_FIELD_NAMES = {"legal_rep_id_sealed": "legal_rep_id_number", "bank_account_sealed": "bank_account"}


def missing_for_submission(application: Application, owners: int) -> list[str]:
    missing = [
        _FIELD_NAMES.get(name, name)
        for name in REQUIRED_FOR_SUBMISSION
        if getattr(application, name) in (None, "")
    ]
    if owners == 0:
        missing.append("owners")
    return missing


def get_application(session: Session, application_id: int) -> Application:
    application = session.get(Application, application_id)
    if application is None:
        raise ApplicationNotFoundError(f"no application {application_id}")
    return application


def owners_of(session: Session, application_id: int) -> list[Owner]:
    return list(
        session.scalars(
            select(Owner).where(Owner.application_id == application_id).order_by(Owner.position)
        )
    )


def check_merchant_party(session: Session, merchant: str) -> None:
    """Raises InvalidApplicationError if the party id belongs to a party that is no merchant."""
    party = session.get(Party, merchant)
    if party is not None and party.kind != PartyKind.MERCHANT.value:
        raise InvalidApplicationError(
            f"merchant: party {merchant!r} is registered as a {party.kind}, not a merchant",
            field="merchant",
        )


def check_not_duplicate(
    session: Session, *, credit_code: str | None, merchant: str | None, own_id: int | None
) -> None:
    """Raises DuplicateApplicationError if another live application has that code or merchant."""
    if credit_code is not None:
        other = session.scalars(
            select(Application.id).where(Application.live_credit_code == credit_code)
        ).first()
        if other is not None and other != own_id:
            raise DuplicateApplicationError(
                f"credit_code: application {other} for this unified social credit code is "
                "open or approved",
                code="duplicate-credit-code",
                field="credit_code",
            )
    if merchant is not None:
        others = session.scalars(
            select(Application.id).where(
                Application.merchant == merchant, Application.live_credit_code.is_not(None)
            )
        ).all()
        if any(other != own_id for other in others):
            raise DuplicateApplicationError(
                f"merchant: {merchant} already has an open or approved application",
                code="duplicate-merchant",
                field="merchant",
            )


def _owner_rows(
    personal_data: PersonalData, application_id: int, owners: list[OwnerInput]
) -> list[Owner]:
    total = sum(o.share for o in owners)
    if total > 100:
        raise InvalidApplicationError(
            "owners: the shares add up to more than 100 %", field="owners"
        )
    return [
        Owner(
            application_id=application_id,
            position=i,
            name=o.name,
            share_bp=int(o.share * 100),
            id_sealed=personal_data.seal_text(Purpose.ID_NUMBER, o.id_number)
            if o.id_number
            else None,
            id_masked=mask_id_number(o.id_number) if o.id_number else None,
        )
        for i, o in enumerate(owners)
    ]


@dataclass(frozen=True, slots=True)
class AppliedChanges:
    fields: list[str]


def apply_changes(
    session: Session,
    personal_data: PersonalData,
    application: Application,
    changes: ApplicationChanges,
) -> AppliedChanges:
    """Write the fields that ``changes`` sets; sensitive ones sealed, masked and tagged."""
    given = [name for name in changes.model_fields_set if name != "merchant"]
    values: dict[str, Any] = {name: getattr(changes, name) for name in given}
    if "credit_code" in values and values["credit_code"] is None:
        raise InvalidApplicationError("credit_code: may not be removed", field="credit_code")
    if "legal_name" in values and values["legal_name"] is None:
        raise InvalidApplicationError("legal_name: may not be removed", field="legal_name")
    for name, value in values.items():
        if name == "legal_rep_id_number":
            application.legal_rep_id_sealed = (
                personal_data.seal_text(Purpose.ID_NUMBER, value) if value else None
            )
            application.legal_rep_id_masked = mask_id_number(value) if value else None
        elif name == "bank_account":
            application.bank_account_sealed = (
                personal_data.seal_text(Purpose.BANK_ACCOUNT, value) if value else None
            )
            application.bank_account_masked = mask_account(value) if value else None
            application.bank_account_lookup = (
                personal_data.lookup(Purpose.BANK_ACCOUNT, value) if value else None
            )
        elif name == "owners":
            for row in owners_of(session, application.id):
                session.delete(row)
            session.flush()
            session.add_all(_owner_rows(personal_data, application.id, value or []))
        elif name == "fund_custody":
            application.fund_custody = value.value if value else None
        else:
            setattr(application, name, value)
    if "credit_code" in values and application.live_credit_code is not None:
        application.live_credit_code = values["credit_code"]
    session.flush()
    return AppliedChanges(sorted(given))

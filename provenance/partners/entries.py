"""The ``partner.*`` ledger entries and their projections.

- ``partner.policy`` (platform only): a partner's sharing policy, naming the officer.
- ``partner.account``: a buyer account a partner reports as fraudulent (by pseudonym).
- ``partner.code``: a code (or every code of a serial) a partner reports compromised;
  verify-before-sale blocks it from the moment the entry is appended.
- ``partner.export`` (platform only): a STIX bundle sent to a partner: what it reported,
  under which TLP level, and the bundle's SHA-256 (no projection: the ledger is the log).
- ``partner.import`` (platform only): a notice file that added notices: its SHA-256, its
  format, how many notices it held and added, and the detached signature that came with
  it (so anyone holding the file can check it against the partner's registered key).

Stolen instruments reuse ``payment.stolen`` and reported devices ``risk.taint``; the
importer signs those for the partner too.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.catalog import AppliedEntry, Body, EntryCatalog, EntryType, each
from provenance.codes import Code, CodeEvent, Fingerprint, Pseudonym
from provenance.entries import parse_time
from provenance.errors import ConflictError
from provenance.parties import (
    NotPermittedError,
    Party,
    PartyIdStr,
    PartyKind,
    TimeStr,
)
from provenance.partners.models import (
    CompromisedCode,
    FlaggedAccount,
    PartnerImport,
    PartnerPolicy,
)
from provenance.partners.policy import SharedField, Tlp

POLICY_TYPE = "partner.policy"
ACCOUNT_TYPE = "partner.account"
CODE_TYPE = "partner.code"
IMPORT_TYPE = "partner.import"
EXPORT_TYPE = "partner.export"
OFFICER = r"^[a-z][a-z0-9._-]{1,63}$"


class CodeScope(StrEnum):
    CODE = "code"  # one code: issuer, product, serial and PIN
    SERIAL = "serial"  # every code with this serial, whatever its PIN


class NoticeFormat(StrEnum):
    STIX = "stix"
    CSV = "csv"


class PolicyBody(Body):
    partner: PartyIdStr
    fields: list[Annotated[SharedField, Field(strict=False)]] = Field(max_length=len(SharedField))
    tlp: Tlp = Field(strict=False)
    pseudonymise: bool
    pseudonym_epoch: int = Field(ge=0, le=1_000_000)
    require_signature: bool
    by: str = Field(pattern=OFFICER)


class AccountBody(Body):
    pseudonym: Pseudonym
    reported_at: TimeStr
    reason: str = Field(min_length=1, max_length=500)


class CodeNoticeBody(Body):
    fingerprint: Fingerprint
    scope: CodeScope = Field(strict=False)
    reported_at: TimeStr
    reason: str = Field(min_length=1, max_length=500)


class ImportBody(Body):
    partner: PartyIdStr
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: NoticeFormat = Field(strict=False)
    notices: int = Field(ge=1, le=1_000_000)
    added: int = Field(ge=1, le=1_000_000)
    key_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    signature: str | None = Field(default=None, min_length=88, max_length=88)


class ExportBody(Body):
    partner: PartyIdStr
    source: str = Field(pattern=r"^(alert|case)$")
    reference: str = Field(min_length=1, max_length=100)
    tlp: Tlp = Field(strict=False)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def _partner(session: Session, party_id: str) -> Party:
    party = session.get(Party, party_id)
    if party is None or party.kind != PartyKind.PARTNER.value:
        raise NotPermittedError(f"{party_id} is not a registered anti-fraud partner")
    return party


def _reporter(session: Session, entry: AppliedEntry[Any], what: str) -> None:
    party = session.get(Party, entry.actor)
    if party is None or party.kind not in (PartyKind.PARTNER.value, PartyKind.PLATFORM.value):
        raise NotPermittedError(f"only an anti-fraud partner or the platform reports {what}")


def _project_policy(session: Session, entry: AppliedEntry[PolicyBody]) -> None:
    body = entry.body
    _partner(session, body.partner)
    row = session.get(PartnerPolicy, body.partner)
    if row is None:
        row = PartnerPolicy(partner=body.partner)
        session.add(row)
    row.fields = ",".join(sorted({f.value for f in body.fields}))
    row.tlp = body.tlp.value
    row.pseudonymise = body.pseudonymise
    row.pseudonym_epoch = body.pseudonym_epoch
    row.require_signature = body.require_signature
    row.set_by = body.by
    row.set_at = entry.time
    row.seq = entry.seq
    session.flush()


def _project_account(session: Session, entry: AppliedEntry[AccountBody]) -> None:
    body = entry.body
    _reporter(session, entry, "fraudulent accounts")
    if session.get(FlaggedAccount, body.pseudonym) is not None:
        raise ConflictError("that account is already reported", code="already-reported")
    session.add(
        FlaggedAccount(
            pseudonym=body.pseudonym,
            reporter=entry.actor,
            reported_at=parse_time(body.reported_at),
            seq=entry.seq,
        )
    )
    session.flush()


def _project_code(session: Session, entry: AppliedEntry[CodeNoticeBody]) -> None:
    body = entry.body
    _reporter(session, entry, "compromised codes")
    fingerprint = base64.b64decode(body.fingerprint)
    if session.get(CompromisedCode, fingerprint) is not None:
        raise ConflictError(f"that {body.scope.value} is already reported", code="already-reported")
    session.add(
        CompromisedCode(
            fingerprint=fingerprint,
            scope=body.scope.value,
            reporter=entry.actor,
            reported_at=parse_time(body.reported_at),
            seq=entry.seq,
        )
    )
    column = Code.fingerprint if body.scope is CodeScope.CODE else Code.serial_fp
    affected = list(session.scalars(select(Code.fingerprint).where(column == fingerprint)))
    if affected:
        # The notice joins each affected code's history, so its verdict cites the entry.
        session.add_all(
            CodeEvent(fingerprint=fp, seq=entry.seq, kind="compromised") for fp in affected
        )
    session.flush()


def _project_import(session: Session, entry: AppliedEntry[ImportBody]) -> None:
    body = entry.body
    _partner(session, body.partner)
    if session.get(PartnerImport, (body.partner, body.sha256)) is not None:
        raise ConflictError("that notice file is already imported", code="already-imported")
    session.add(
        PartnerImport(
            partner=body.partner,
            sha256=body.sha256,
            format=body.format.value,
            notices=body.notices,
            added=body.added,
            key_id=body.key_id,
            imported_at=entry.time,
            seq=entry.seq,
        )
    )
    session.flush()


ENTRY_TYPES = (
    EntryType(POLICY_TYPE, PolicyBody, each(_project_policy), platform_only=True),
    EntryType(ACCOUNT_TYPE, AccountBody, each(_project_account)),
    EntryType(CODE_TYPE, CodeNoticeBody, each(_project_code)),
    EntryType(IMPORT_TYPE, ImportBody, each(_project_import), platform_only=True),
    EntryType(EXPORT_TYPE, ExportBody, platform_only=True),
)
PROJECTION_TABLES = (
    "partner_import",
    "partner_policy",
    "partner_flagged_account",
    "compromised_code",
)


def partners_catalog() -> EntryCatalog:
    return EntryCatalog.of(ENTRY_TYPES, PROJECTION_TABLES)

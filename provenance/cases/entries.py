"""The ``case.*`` ledger entries and the projections they maintain.

Every case action is one platform-signed entry. Bodies carry only ids, pseudonyms,
fingerprints and hashes: a title, a note or a file name is recorded by its SHA-256 and
its text kept in ``case_text``. The projections check each step against the case as it
stands, so a replay of the ledger rebuilds exactly the same cases, and a step decided on
a stale view (two officers at once) is refused with nothing written.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.cases.models import CaseAttachment, CaseEvent, CaseFile, CaseMember
from provenance.catalog import AppliedEntry, Body, EntryCatalog, EntryType, each
from provenance.errors import ConflictError, NotFoundError, ValidationError

OPEN_TYPE = "case.open"
ADD_TYPE = "case.add"
ASSIGN_TYPE = "case.assign"
STATUS_TYPE = "case.status"
NOTE_TYPE = "case.note"
ATTACH_TYPE = "case.attach"
EXPORT_TYPE = "case.export"

MAX_MEMBERS_PER_ENTRY = 100
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


class CaseStatus(StrEnum):
    OPEN = "open"
    UNDER_INVESTIGATION = "under_investigation"
    REPORTED = "reported"
    CLOSED = "closed"


class CaseOutcome(StrEnum):
    """Why a case was closed."""

    FRAUD_CONFIRMED = "fraud_confirmed"
    REFERRED_TO_POLICE = "referred_to_police"
    NO_FRAUD = "no_fraud"
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"
    DUPLICATE = "duplicate"


# A case moves forward only; a closed case stays closed (open a new one that cites it).
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.OPEN: frozenset({CaseStatus.UNDER_INVESTIGATION, CaseStatus.CLOSED}),
    CaseStatus.UNDER_INVESTIGATION: frozenset({CaseStatus.REPORTED, CaseStatus.CLOSED}),
    CaseStatus.REPORTED: frozenset({CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset(),
}


class MemberKind(StrEnum):
    ALERT = "alert"
    MERCHANT = "merchant"
    BUYER = "buyer"
    INSTRUMENT = "instrument"
    CODE = "code"


# What a member's value must look like: no name, card number or PIN ever fits.
MEMBER_PATTERNS: dict[MemberKind, re.Pattern[str]] = {
    MemberKind.ALERT: re.compile(r"[0-9a-f]{64}"),
    MemberKind.MERCHANT: re.compile(r"[a-z0-9][a-z0-9._-]{0,63}"),
    MemberKind.BUYER: re.compile(r"[0-9a-f]{32}"),
    MemberKind.INSTRUMENT: re.compile(r"[0-9a-f]{32}"),
    # The canonical base64 of a 32-byte code fingerprint.
    MemberKind.CODE: re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]="),
}
MEMBER_FORMS = {
    MemberKind.ALERT: "an alert key (64 hex digits)",
    MemberKind.MERCHANT: "a party id",
    MemberKind.BUYER: "a buyer pseudonym (32 hex digits)",
    MemberKind.INSTRUMENT: "a payment-instrument pseudonym (32 hex digits)",
    MemberKind.CODE: "a code fingerprint (64 hex digits or its base64)",
}


class CaseError(ConflictError):
    code = "case-conflict"
    title = "Case cannot change that way"


class CaseTransitionError(CaseError):
    code = "case-transition"
    title = "Case status cannot change that way"


class CaseClosedError(CaseError):
    code = "case-closed"
    title = "Case is closed"


class MemberExistsError(CaseError):
    code = "case-member-exists"
    title = "Already in the case"


class CaseNotFoundError(NotFoundError):
    code = "case-not-found"
    title = "No such case"


class CaseInputError(ValidationError):
    code = "bad-case-input"
    title = "Bad case input"


# --- bodies -------------------------------------------------------------------------

CaseNumber = Annotated[int, Field(ge=0, le=2**53 - 1)]
Officer = Annotated[str, Field(pattern=r"^[a-z][a-z0-9._-]{1,63}$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class CaseOpenBody(Body):
    by: Officer
    title_sha256: Sha256Hex


class MemberBody(Body):
    kind: MemberKind = Field(strict=False)
    value: str = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _value_fits_kind(self) -> Self:
        if not MEMBER_PATTERNS[self.kind].fullmatch(self.value):
            raise ValueError(f"a {self.kind.value} member must be {MEMBER_FORMS[self.kind]}")
        return self


class CaseAddBody(Body):
    case: CaseNumber
    by: Officer
    members: list[MemberBody] = Field(min_length=1, max_length=MAX_MEMBERS_PER_ENTRY)


class CaseAssignBody(Body):
    case: CaseNumber
    by: Officer
    assignee: Officer


class CaseStatusBody(Body):
    case: CaseNumber
    by: Officer
    from_status: CaseStatus = Field(strict=False)
    to_status: CaseStatus = Field(strict=False)
    outcome: CaseOutcome | None = Field(default=None, strict=False)

    @model_validator(mode="after")
    def _outcome_only_when_closed(self) -> Self:
        if (self.to_status is CaseStatus.CLOSED) != (self.outcome is not None):
            raise ValueError("a case is closed with an outcome, and only then has one")
        return self


class CaseNoteBody(Body):
    case: CaseNumber
    by: Officer
    note_sha256: Sha256Hex


class CaseAttachBody(Body):
    case: CaseNumber
    by: Officer
    sha256: Sha256Hex
    size: int = Field(ge=1, le=MAX_ATTACHMENT_BYTES)
    name_sha256: Sha256Hex


class CaseExportBody(Body):
    """Chain of custody: who exported an evidence package of the case, for whom, and the
    SHA-256 of the package's signed tag manifest (which covers every file in it)."""

    case: CaseNumber
    by: Officer
    recipient: str = Field(min_length=1, max_length=200)
    package_sha256: Sha256Hex
    checkpoint_size: int = Field(ge=1, le=2**53 - 1)
    entries: int = Field(ge=0, le=2**53 - 1)
    language: str = Field(pattern=r"^(zh|en)$")


# --- projections ----------------------------------------------------------------------


def _case(session: Session, number: int) -> CaseFile:
    row = session.get(CaseFile, number)
    if row is None:
        raise CaseNotFoundError(f"no case {number}")
    return row


def _open_case(session: Session, number: int) -> CaseFile:
    row = _case(session, number)
    if row.status == CaseStatus.CLOSED.value:
        raise CaseClosedError(f"case {number} is closed")
    return row


def _event(
    session: Session, entry: AppliedEntry[Any], case: CaseFile, action: str, detail: dict[str, Any]
) -> None:
    session.add(
        CaseEvent(
            seq=entry.seq,
            case_id=case.id,
            action=action,
            by=entry.body.by,
            at=entry.time,
            detail=detail,
        )
    )
    case.updated_at = entry.time
    case.last_seq = entry.seq


def _project_open(session: Session, entry: AppliedEntry[CaseOpenBody]) -> None:
    case = CaseFile(
        id=entry.seq,
        status=CaseStatus.OPEN.value,
        outcome=None,
        assignee=None,
        opened_by=entry.body.by,
        opened_at=entry.time,
        updated_at=entry.time,
        last_seq=entry.seq,
    )
    session.add(case)
    _event(session, entry, case, "open", {})
    session.flush()


def _project_add(session: Session, entry: AppliedEntry[CaseAddBody]) -> None:
    body = entry.body
    case = _open_case(session, body.case)
    wanted = {(m.kind.value, m.value) for m in body.members}
    if len(wanted) != len(body.members):
        raise MemberExistsError("the same member is listed twice")
    present = session.execute(
        select(CaseMember.kind, CaseMember.value).where(
            CaseMember.case_id == case.id,
            CaseMember.value.in_([value for _, value in wanted]),
        )
    ).all()
    clash = wanted & {(kind, value) for kind, value in present}
    if clash:
        kind, value = sorted(clash)[0]
        raise MemberExistsError(f"{kind} {value[:16]} is already in case {case.id}")
    for member in body.members:
        session.add(
            CaseMember(
                case_id=case.id,
                kind=member.kind.value,
                value=member.value,
                added_seq=entry.seq,
                added_by=body.by,
                added_at=entry.time,
            )
        )
    counts: dict[str, int] = {}
    for member in body.members:
        counts[member.kind.value] = counts.get(member.kind.value, 0) + 1
    _event(session, entry, case, "add", {"members": counts})
    session.flush()


def _project_assign(session: Session, entry: AppliedEntry[CaseAssignBody]) -> None:
    case = _open_case(session, entry.body.case)
    case.assignee = entry.body.assignee
    _event(session, entry, case, "assign", {"assignee": entry.body.assignee})
    session.flush()


def check_transition(current: CaseStatus, target: CaseStatus, number: int) -> None:
    """Raises CaseTransitionError unless a case may go from ``current`` to ``target``."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing"
        raise CaseTransitionError(
            f"case {number} is {current.value}; it cannot become {target.value} "
            f"(it can become: {allowed})"
        )


def _project_status(session: Session, entry: AppliedEntry[CaseStatusBody]) -> None:
    body = entry.body
    case = _case(session, body.case)
    current = CaseStatus(case.status)
    if body.from_status is not current:
        raise CaseTransitionError(
            f"case {case.id} is {current.value}, not {body.from_status.value}", code="stale-state"
        )
    check_transition(current, body.to_status, case.id)
    case.status = body.to_status.value
    case.outcome = body.outcome.value if body.outcome is not None else None
    detail = {"from": current.value, "to": body.to_status.value}
    if body.outcome is not None:
        detail["outcome"] = body.outcome.value
    _event(session, entry, case, "status", detail)
    session.flush()


def _project_note(session: Session, entry: AppliedEntry[CaseNoteBody]) -> None:
    case = _open_case(session, entry.body.case)
    _event(session, entry, case, "note", {"note_sha256": entry.body.note_sha256})
    session.flush()


def _project_attach(session: Session, entry: AppliedEntry[CaseAttachBody]) -> None:
    body = entry.body
    case = _open_case(session, body.case)
    if session.get(CaseAttachment, (case.id, body.sha256)) is not None:
        raise MemberExistsError(f"case {case.id} already has the file {body.sha256[:16]}")
    session.add(
        CaseAttachment(
            case_id=case.id,
            sha256=body.sha256,
            size=body.size,
            seq=entry.seq,
            added_by=body.by,
            added_at=entry.time,
        )
    )
    _event(session, entry, case, "attach", {"sha256": body.sha256, "size": body.size})
    session.flush()


def _project_export(session: Session, entry: AppliedEntry[CaseExportBody]) -> None:
    body = entry.body
    case = _case(session, body.case)
    detail = {
        "recipient": body.recipient,
        "package_sha256": body.package_sha256,
        "checkpoint_size": body.checkpoint_size,
        "entries": body.entries,
        "language": body.language,
    }
    _event(session, entry, case, "export", detail)
    session.flush()


ENTRY_TYPES = (
    EntryType(OPEN_TYPE, CaseOpenBody, each(_project_open), platform_only=True),
    EntryType(ADD_TYPE, CaseAddBody, each(_project_add), platform_only=True),
    EntryType(ASSIGN_TYPE, CaseAssignBody, each(_project_assign), platform_only=True),
    EntryType(STATUS_TYPE, CaseStatusBody, each(_project_status), platform_only=True),
    EntryType(NOTE_TYPE, CaseNoteBody, each(_project_note), platform_only=True),
    EntryType(ATTACH_TYPE, CaseAttachBody, each(_project_attach), platform_only=True),
    EntryType(EXPORT_TYPE, CaseExportBody, each(_project_export), platform_only=True),
)
CASE_TYPES = frozenset(t.name for t in ENTRY_TYPES)
# Children first: a rebuild empties them in this order.
PROJECTION_TABLES = ("case_attachment", "case_event", "case_member", "case_file")


def cases_catalog() -> EntryCatalog:
    """The ``case.*`` entry types and the tables they project into."""
    return EntryCatalog.of(ENTRY_TYPES, PROJECTION_TABLES)

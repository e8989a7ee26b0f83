"""Working cases: open, add members, assign, change status, note, attach; read them back.

Each action checks its input and the case's state first (a refusal writes nothing),
then appends one platform-signed ``case.*`` entry whose projection updates the case
tables in the same transaction. Services flush and never commit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.analysis.models import Alert
from provenance.cases.attachments import AttachmentStore, sanitise_name
from provenance.cases.entries import (
    ADD_TYPE,
    ASSIGN_TYPE,
    ATTACH_TYPE,
    MAX_MEMBERS_PER_ENTRY,
    MEMBER_FORMS,
    MEMBER_PATTERNS,
    NOTE_TYPE,
    OPEN_TYPE,
    STATUS_TYPE,
    CaseClosedError,
    CaseInputError,
    CaseNotFoundError,
    CaseOutcome,
    CaseStatus,
    MemberExistsError,
    MemberKind,
    check_transition,
)
from provenance.cases.models import CaseAttachment, CaseEvent, CaseFile, CaseMember, CaseText
from provenance.codes import Code
from provenance.ledger import Ledger
from provenance.parties import Party

MAX_TITLE = 200
MAX_NOTE = 4000
_OFFICER_RE = re.compile(r"[a-z][a-z0-9._-]{1,63}")


@dataclass(frozen=True, slots=True)
class Member:
    kind: MemberKind
    value: str
    added_seq: int
    added_by: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    action: str
    by: str
    at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Note:
    seq: int
    by: str
    at: datetime
    text: str | None  # None once erased: the ledger still has its hash


@dataclass(frozen=True, slots=True)
class Attachment:
    sha256: str
    size: int
    name: str | None
    seq: int
    added_by: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case as it stands, with its members, timeline, notes and attachments.

    ``seqs`` are the ledger entries of the case's own actions, in log order.
    """

    id: int
    title: str | None
    status: CaseStatus
    outcome: CaseOutcome | None
    assignee: str | None
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    members: tuple[Member, ...]
    events: tuple[Event, ...]
    notes: tuple[Note, ...]
    attachments: tuple[Attachment, ...]

    @property
    def reference(self) -> str:
        return f"CASE-{self.id}"

    @property
    def seqs(self) -> tuple[int, ...]:
        return tuple(e.seq for e in self.events)

    def members_of(self, kind: MemberKind) -> list[str]:
        return [m.value for m in self.members if m.kind is kind]


# --- input ---------------------------------------------------------------------------


def _officer(value: str, field: str) -> str:
    if not _OFFICER_RE.fullmatch(value):
        raise CaseInputError(
            f"{field}: an officer id is 2-64 lower-case letters, digits, '.', '_' or '-'",
            field=field,
        )
    return value


def _text(value: str, field: str, limit: int) -> str:
    text = value.strip()
    if not 1 <= len(text) <= limit:
        raise CaseInputError(f"{field}: 1-{limit} characters", field=field)
    return text


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_member(kind: str, value: str) -> tuple[MemberKind, str]:
    """Check a member's kind and value; a code may be given as hex or base64.

    Raises:
        CaseInputError: an unknown kind, or a value not of that kind's form.
    """
    try:
        member_kind = MemberKind(kind)
    except ValueError:
        choices = ", ".join(k.value for k in MemberKind)
        raise CaseInputError(f"member kind must be one of {choices}", field="kind") from None
    value = value.strip()
    if member_kind is MemberKind.CODE and re.fullmatch(r"[0-9a-fA-F]{64}", value):
        value = base64.b64encode(bytes.fromhex(value)).decode("ascii")
    if member_kind in (MemberKind.ALERT, MemberKind.BUYER, MemberKind.INSTRUMENT):
        value = value.lower()
    if not MEMBER_PATTERNS[member_kind].fullmatch(value):
        raise CaseInputError(
            f"a {member_kind.value} member must be {MEMBER_FORMS[member_kind]}", field="value"
        )
    return member_kind, value


def _code_bytes(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CaseInputError("not a code fingerprint", field="value") from None


def _require_known(session: Session, kind: MemberKind, value: str) -> None:
    """Members the platform knows must exist: no case about a typo."""
    if kind is MemberKind.ALERT:
        known = session.scalar(select(Alert.id).where(Alert.key == value)) is not None
        what = f"no alert has the key {value[:16]}..."
    elif kind is MemberKind.MERCHANT:
        known = session.get(Party, value) is not None
        what = f"no party {value!r} is registered"
    elif kind is MemberKind.CODE:
        fingerprint = _code_bytes(value)
        known = session.get(Code, fingerprint) is not None
        what = f"no code {fingerprint.hex()[:12]} is recorded"
    else:
        return
    if not known:
        raise CaseInputError(what, field="value")


# --- reading -------------------------------------------------------------------------


def _row(session: Session, case_id: int) -> CaseFile:
    row = session.get(CaseFile, case_id)
    if row is None:
        raise CaseNotFoundError(f"no case {case_id}")
    return row


def get_case(session: Session, case_id: int) -> CaseView:
    """The case with everything in it.

    Raises:
        CaseNotFoundError: no such case.
    """
    row = _row(session, case_id)
    texts = {t.seq: t for t in session.scalars(select(CaseText).where(CaseText.case_id == case_id))}
    members = tuple(
        Member(MemberKind(m.kind), m.value, m.added_seq, m.added_by, m.added_at)
        for m in session.scalars(
            select(CaseMember)
            .where(CaseMember.case_id == case_id)
            .order_by(CaseMember.added_seq, CaseMember.kind, CaseMember.value)
        )
    )
    events = tuple(
        Event(e.seq, e.action, e.by, e.at, dict(e.detail))
        for e in session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)
        )
    )
    notes = tuple(
        Note(e.seq, e.by, e.at, texts[e.seq].text if e.seq in texts else None)
        for e in events
        if e.action == "note"
    )
    attachments = tuple(
        Attachment(
            a.sha256,
            a.size,
            texts[a.seq].text if a.seq in texts else None,
            a.seq,
            a.added_by,
            a.added_at,
        )
        for a in session.scalars(
            select(CaseAttachment)
            .where(CaseAttachment.case_id == case_id)
            .order_by(CaseAttachment.seq)
        )
    )
    title = texts.get(row.id)
    return CaseView(
        id=row.id,
        title=title.text if title is not None else None,
        status=CaseStatus(row.status),
        outcome=CaseOutcome(row.outcome) if row.outcome else None,
        assignee=row.assignee,
        opened_by=row.opened_by,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        members=members,
        events=events,
        notes=notes,
        attachments=attachments,
    )


def list_cases(
    session: Session,
    *,
    status: str | None = None,
    assignee: str | None = None,
    limit: int = 100,
) -> list[CaseView]:
    """Cases, most recently changed first.

    Raises:
        CaseInputError: an unknown status, a bad assignee id, or a limit outside 1-1000.
    """
    query = select(CaseFile.id)
    if status is not None:
        query = query.where(CaseFile.status == _status(status).value)
    if assignee is not None:
        query = query.where(CaseFile.assignee == _officer(assignee, "assignee"))
    if not 1 <= limit <= 1000:
        raise CaseInputError("limit must be between 1 and 1000", field="limit")
    ids = session.scalars(query.order_by(CaseFile.last_seq.desc()).limit(limit)).all()
    return [get_case(session, case_id) for case_id in ids]


def _status(value: str) -> CaseStatus:
    try:
        return CaseStatus(value)
    except ValueError:
        choices = ", ".join(s.value for s in CaseStatus)
        raise CaseInputError(f"status must be one of {choices}", field="status") from None


def _outcome(value: str) -> CaseOutcome:
    try:
        return CaseOutcome(value)
    except ValueError:
        choices = ", ".join(s.value for s in CaseOutcome)
        raise CaseInputError(f"outcome must be one of {choices}", field="outcome") from None


# --- acting --------------------------------------------------------------------------


def _append(
    session: Session, ledger: Ledger, type_name: str, body: dict[str, Any], now: datetime
) -> int:
    [entry] = ledger.append_as_platform(
        session, [ledger.statement(type_name, body, now=now)], now=now
    )
    return entry.seq


def _open_row(session: Session, case_id: int) -> CaseFile:
    row = _row(session, case_id)
    if row.status == CaseStatus.CLOSED.value:
        raise CaseClosedError(f"case {case_id} is closed")
    return row


def open_case(
    session: Session, ledger: Ledger, *, title: str, officer: str, now: datetime
) -> CaseView:
    """Open a case; its number is the seq of its ``case.open`` entry.

    Raises:
        CaseInputError: a bad title or officer id (nothing written).
    """
    _officer(officer, "officer")
    text = _text(title, "title", MAX_TITLE)
    seq = _append(session, ledger, OPEN_TYPE, {"by": officer, "title_sha256": _sha256(text)}, now)
    session.add(CaseText(seq=seq, case_id=seq, kind="title", text=text))
    session.flush()
    return get_case(session, seq)


def add_members(
    session: Session,
    ledger: Ledger,
    case_id: int,
    members: Iterable[tuple[str, str]],
    *,
    officer: str,
    now: datetime,
) -> CaseView:
    """Add alerts, merchants, buyers, instruments or codes to a case, in one entry.

    Raises:
        CaseInputError: a bad kind or value, an unknown alert, party or code, or none or
            too many given (nothing written).
        CaseNotFoundError, CaseClosedError: no such case, or it is closed.
        MemberExistsError: one is already in the case (nothing written).
    """
    _officer(officer, "officer")
    wanted = [normalise_member(kind, value) for kind, value in members]
    if not 1 <= len(wanted) <= MAX_MEMBERS_PER_ENTRY:
        raise CaseInputError(f"add 1-{MAX_MEMBERS_PER_ENTRY} members at a time", field="members")
    if len(set(wanted)) != len(wanted):
        raise MemberExistsError("the same member is listed twice")
    _open_row(session, case_id)
    for kind, value in wanted:
        _require_known(session, kind, value)
        if session.get(CaseMember, (case_id, kind.value, value)) is not None:
            raise MemberExistsError(f"{kind.value} {value[:16]} is already in case {case_id}")
    body = {
        "case": case_id,
        "by": officer,
        "members": [{"kind": kind.value, "value": value} for kind, value in wanted],
    }
    _append(session, ledger, ADD_TYPE, body, now)
    return get_case(session, case_id)


def assign_case(
    session: Session, ledger: Ledger, case_id: int, assignee: str, *, officer: str, now: datetime
) -> CaseView:
    """Give a case to an investigator.

    Raises:
        CaseInputError, CaseNotFoundError, CaseClosedError: nothing written.
    """
    _officer(officer, "officer")
    _officer(assignee, "assignee")
    _open_row(session, case_id)
    _append(
        session, ledger, ASSIGN_TYPE, {"case": case_id, "by": officer, "assignee": assignee}, now
    )
    return get_case(session, case_id)


def change_status(
    session: Session,
    ledger: Ledger,
    case_id: int,
    status: str,
    *,
    officer: str,
    now: datetime,
    outcome: str | None = None,
) -> CaseView:
    """Move a case on: open -> under_investigation -> reported -> closed (with an outcome).

    Raises:
        CaseInputError: an unknown status or outcome, an outcome when not closing, or
            none when closing (nothing written).
        CaseTransitionError: the case's status does not allow it (nothing written).
    """
    _officer(officer, "officer")
    target = _status(status)
    result = _outcome(outcome) if outcome is not None else None
    if target is CaseStatus.CLOSED and result is None:
        raise CaseInputError("closing a case needs an outcome", field="outcome")
    if target is not CaseStatus.CLOSED and result is not None:
        raise CaseInputError("only a closed case has an outcome", field="outcome")
    row = _row(session, case_id)
    current = CaseStatus(row.status)
    check_transition(current, target, case_id)
    body: dict[str, Any] = {
        "case": case_id,
        "by": officer,
        "from_status": current.value,
        "to_status": target.value,
    }
    if result is not None:
        body["outcome"] = result.value
    _append(session, ledger, STATUS_TYPE, body, now)
    return get_case(session, case_id)


def add_note(
    session: Session, ledger: Ledger, case_id: int, text: str, *, officer: str, now: datetime
) -> CaseView:
    """Note something on a case; the ledger keeps the note's SHA-256, the case its text.

    Raises:
        CaseInputError, CaseNotFoundError, CaseClosedError: nothing written.
    """
    _officer(officer, "officer")
    note = _text(text, "note", MAX_NOTE)
    _open_row(session, case_id)
    seq = _append(
        session,
        ledger,
        NOTE_TYPE,
        {"case": case_id, "by": officer, "note_sha256": _sha256(note)},
        now,
    )
    session.add(CaseText(seq=seq, case_id=case_id, kind="note", text=note))
    session.flush()
    return get_case(session, case_id)


def attach_file(
    session: Session,
    ledger: Ledger,
    store: AttachmentStore,
    case_id: int,
    name: str,
    content: bytes,
    *,
    officer: str,
    now: datetime,
) -> CaseView:
    """Attach a file: stored by its SHA-256, recorded on the ledger by hash and size.

    The bytes are stored before the entry is appended: a refused entry leaves at most an
    unreferenced file, which the content address makes harmless.

    Raises:
        CaseInputError: an empty or too large file, or a name with nothing usable.
        CaseNotFoundError, CaseClosedError: no such case, or it is closed.
        MemberExistsError: the case already has the same bytes.
    """
    _officer(officer, "officer")
    clean = sanitise_name(name)
    if not content:
        raise CaseInputError("the attachment is empty", field="file")
    if len(content) > store.max_bytes:
        raise CaseInputError(
            f"the attachment is {len(content):,} bytes; the limit is {store.max_bytes:,}",
            field="file",
        )
    _open_row(session, case_id)
    digest = hashlib.sha256(content).hexdigest()
    if session.get(CaseAttachment, (case_id, digest)) is not None:
        raise MemberExistsError(f"case {case_id} already has the file {digest[:16]}")
    stored = store.put(content)
    body = {
        "case": case_id,
        "by": officer,
        "sha256": stored.sha256,
        "size": stored.size,
        "name_sha256": _sha256(clean),
    }
    seq = _append(session, ledger, ATTACH_TYPE, body, now)
    session.add(CaseText(seq=seq, case_id=case_id, kind="attachment", text=clean))
    session.flush()
    return get_case(session, case_id)


# --- presenting ------------------------------------------------------------------------


def case_json(case: CaseView, *, full: bool = True) -> dict[str, Any]:
    """How the API and the CLI show a case."""
    shown: dict[str, Any] = {
        "id": case.id,
        "reference": case.reference,
        "title": case.title,
        "status": case.status.value,
        "outcome": case.outcome.value if case.outcome else None,
        "assignee": case.assignee,
        "opened_by": case.opened_by,
        "opened_at": case.opened_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "members": len(case.members),
    }
    if full:
        shown["members"] = [
            {
                "kind": m.kind.value,
                "value": m.value,
                "added_seq": m.added_seq,
                "added_by": m.added_by,
                "added_at": m.added_at.isoformat(),
            }
            for m in case.members
        ]
        shown["timeline"] = [
            {"seq": e.seq, "action": e.action, "by": e.by, "at": e.at.isoformat(), **e.detail}
            for e in case.events
        ]
        shown["notes"] = [
            {"seq": n.seq, "by": n.by, "at": n.at.isoformat(), "text": n.text} for n in case.notes
        ]
        shown["attachments"] = [
            {
                "sha256": a.sha256,
                "size": a.size,
                "name": a.name,
                "seq": a.seq,
                "added_by": a.added_by,
                "added_at": a.added_at.isoformat(),
            }
            for a in case.attachments
        ]
        shown["ledger_seqs"] = list(case.seqs)
    return shown


def members_json(members: Sequence[Member]) -> list[dict[str, Any]]:
    return [{"kind": m.kind.value, "value": m.value, "added_seq": m.added_seq} for m in members]

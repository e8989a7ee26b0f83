"""The ledger entries behind a case: its own actions and what its members point to.

This is what an evidence package or a partner report proves: for each member, the
entries that show it (an alert's opening and decisions and the entries of its evidence
subgraph; a party's registration, status changes and vetting decisions; a code's
issuance and custody; an instrument's stolen-payment report and the sales it paid).
Everything is read from the ledger and its projections, never from a report's text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.analysis.models import Alert, AlertNote
from provenance.cases.entries import MemberKind
from provenance.cases.service import CaseView
from provenance.codes import Code, CodeEvent, StolenPayment
from provenance.entries import decode_record, format_time
from provenance.ledger import LedgerEntry
from provenance.parties import Party

# At most this many entries are gathered for one case (a package stays readable).
MAX_RELATED = 20_000

# Entry types that decide about a party, found by the party named in their body.
VETTING_TYPES = (
    "party.status",
    "onboarding.transition",
    "onboarding.recommend",
    "onboarding.hit_decision",
)


@dataclass(frozen=True, slots=True)
class RelatedEntries:
    """``seqs``: every entry, in log order; ``by_member``: the entries per member
    (``(kind, value)``), the case's own actions under ``("case", "<id>")``."""

    seqs: tuple[int, ...]
    by_member: dict[tuple[str, str], tuple[int, ...]]
    truncated: bool


def _alert_seqs(session: Session, key: str) -> set[int]:
    alert = session.scalar(select(Alert).where(Alert.key == key))
    if alert is None:
        return set()
    seqs = {alert.opened_seq, alert.last_seq}
    seqs.update(session.scalars(select(AlertNote.seq).where(AlertNote.alert_id == alert.id)))
    for edge in alert.evidence.get("edges", []):
        seq = edge.get("seq")
        if isinstance(seq, int) and seq >= 0:
            seqs.add(seq)
    return seqs


def party_decisions(session: Session, party: str) -> list[tuple[int, str, dict[str, Any]]]:
    """``(seq, type, body)`` of every entry deciding about ``party``'s standing: status
    changes and onboarding transitions, recommendations and screening decisions."""
    found = []
    rows = session.execute(
        select(LedgerEntry.seq, LedgerEntry.type, LedgerEntry.record)
        .where(LedgerEntry.type.in_(VETTING_TYPES))
        .order_by(LedgerEntry.seq)
    )
    for seq, type_name, raw in rows:
        body = json.loads(raw)["entry"]["body"]
        if body.get("party") == party or body.get("merchant") == party:
            found.append((seq, type_name, body))
    return found


def _party_seqs(session: Session, party_id: str) -> set[int]:
    party = session.get(Party, party_id)
    if party is None:
        return set()
    seqs = {party.registered_seq, party.status_seq}
    seqs.update(seq for seq, _, _ in party_decisions(session, party_id))
    return seqs


def _code_seqs(session: Session, fingerprint: bytes) -> set[int]:
    code = session.get(Code, fingerprint)
    if code is None:
        return set()
    seqs = {code.issued_seq}
    seqs.update(session.scalars(select(CodeEvent.seq).where(CodeEvent.fingerprint == fingerprint)))
    return seqs


def _instrument_seqs(session: Session, pseudonym: str) -> set[int]:
    seqs = set(
        session.scalars(
            select(StolenPayment.reported_seq).where(StolenPayment.pseudonym == pseudonym)
        )
    )
    paid = select(Code.fingerprint).where(Code.sale_instrument == pseudonym)
    seqs.update(
        session.scalars(
            select(CodeEvent.seq).where(CodeEvent.fingerprint.in_(paid), CodeEvent.kind == "sale")
        )
    )
    return seqs


def related_entries(session: Session, case: CaseView) -> RelatedEntries:
    """The entries behind ``case`` (see the module docstring), at most ``MAX_RELATED``."""
    by_member: dict[tuple[str, str], tuple[int, ...]] = {
        ("case", str(case.id)): tuple(sorted(case.seqs))
    }
    for member in case.members:
        if member.kind is MemberKind.ALERT:
            seqs = _alert_seqs(session, member.value)
        elif member.kind is MemberKind.MERCHANT:
            seqs = _party_seqs(session, member.value)
        elif member.kind is MemberKind.CODE:
            seqs = _code_seqs(session, base64.b64decode(member.value))
        elif member.kind is MemberKind.INSTRUMENT:
            seqs = _instrument_seqs(session, member.value)
        else:
            # A buyer is shown by the sales in its alerts' evidence; the projections keep
            # no index by buyer.
            seqs = set()
        seqs.add(member.added_seq)
        by_member[(member.kind.value, member.value)] = tuple(sorted(seqs))
    every = sorted({seq for seqs in by_member.values() for seq in seqs})
    truncated = len(every) > MAX_RELATED
    return RelatedEntries(tuple(every[:MAX_RELATED]), by_member, truncated)


def read_records(session: Session, seqs: Iterable[int]) -> dict[int, bytes]:
    """The raw records of those entries."""
    wanted = sorted(set(seqs))
    found: dict[int, bytes] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for seq, raw in session.execute(
            select(LedgerEntry.seq, LedgerEntry.record).where(LedgerEntry.seq.in_(chunk))
        ):
            found[seq] = raw
    return found


def decoded(records: dict[int, bytes]) -> list[tuple[int, str, str, str, dict[str, Any]]]:
    """``(seq, type, time, actor, body)`` of each record, in log order."""
    out = []
    for seq in sorted(records):
        statement = decode_record(records[seq]).statement
        out.append(
            (seq, statement.type, format_time(statement.time), statement.actor, statement.body)
        )
    return out

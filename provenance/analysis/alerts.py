"""Alerts from the ledger analysis: kept once per pattern across runs, worked by officers,
every opening and decision recorded on the ledger.

An alert's ``key`` is the SHA-256 of its typology and subject, so a run that finds the
same pattern again refreshes the alert (score, evidence, ``runs``, ``last_seen_at``)
instead of opening another. Opening writes an ``alert.open`` entry (key, typology,
subject, score in thousandths, the SHA-256 of the canonical evidence); each decision an
``alert.decide`` entry (key, new status, the officer, the assignee, the SHA-256 of the
note). The note's text and the evidence stay in the alert tables, off the ledger, so
the entries carry only pseudonyms and hashes. A dismissed or escalated alert is
decided: a later run refreshes its evidence but does not reopen it.

``run_ledger_analysis`` brings the stored graph (``analysis_state``) up to the ledger's
last entry, reading only new entries, runs the detectors and records their findings.
Services flush and never commit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from networkx.readwrite import json_graph
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.analysis.findings import Typology
from provenance.analysis.ledger_detectors import LedgerDetector, LedgerFinding, analyze_ledger
from provenance.analysis.ledger_graph import LedgerGraph, read_ledger
from provenance.analysis.models import Alert, AlertNote, AnalysisState
from provenance.catalog import Body, EntryCatalog, EntryType
from provenance.entries import canonical
from provenance.errors import ConflictError, NotFoundError, ValidationError
from provenance.ledger import Ledger

STATE_NAME = "ledger"
OPEN_TYPE = "alert.open"
DECIDE_TYPE = "alert.decide"
MAX_NOTE = 2000


class AlertStatus(StrEnum):
    NEW = "new"
    TRIAGED = "triaged"
    DISMISSED = "dismissed"
    ESCALATED = "escalated"


# Dismissed and escalated are decisions; an escalated alert becomes a case.
_NEXT: dict[AlertStatus, frozenset[AlertStatus]] = {
    AlertStatus.NEW: frozenset({AlertStatus.TRIAGED, AlertStatus.DISMISSED, AlertStatus.ESCALATED}),
    AlertStatus.TRIAGED: frozenset({AlertStatus.DISMISSED, AlertStatus.ESCALATED}),
    AlertStatus.DISMISSED: frozenset(),
    AlertStatus.ESCALATED: frozenset(),
}


class AlertTransitionError(ConflictError):
    code = "alert-transition"
    title = "Alert cannot change that way"


class AlertNotFoundError(NotFoundError):
    code = "alert-not-found"
    title = "No such alert"


class AlertInputError(ValidationError):
    code = "bad-alert-decision"
    title = "Bad alert decision"


# --- ledger entries ---------------------------------------------------------------------

_OFFICER_RE = re.compile(r"[a-z][a-z0-9._-]{1,63}")


class AlertOpenBody(Body):
    key: str = Field(pattern=r"^[0-9a-f]{64}$")
    typology: str = Field(min_length=1, max_length=32)
    subject_kind: str = Field(min_length=1, max_length=16)
    subject: str = Field(min_length=1, max_length=100)
    score_milli: int = Field(ge=0, le=1000)
    evidence_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AlertDecideBody(Body):
    key: str = Field(pattern=r"^[0-9a-f]{64}$")
    status: AlertStatus = Field(strict=False)
    officer: str = Field(pattern=r"^[a-z][a-z0-9._-]{1,63}$")
    assignee: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9._-]{1,63}$")
    note_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


ENTRY_TYPES = (
    EntryType(OPEN_TYPE, AlertOpenBody, platform_only=True),
    EntryType(DECIDE_TYPE, AlertDecideBody, platform_only=True),
)


def analysis_catalog() -> EntryCatalog:
    """The alert entry types (no projection: the alert tables are the analysis's own)."""
    return EntryCatalog.of(ENTRY_TYPES)


# --- keys and evidence --------------------------------------------------------------------


def alert_key(typology: Typology | str, subject_kind: str, subject: str) -> str:
    """The stable key of the alert about ``subject`` for ``typology``."""
    text = f"{Typology(typology).value}\n{subject_kind}\n{subject}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def evidence_json(finding: LedgerFinding) -> dict[str, Any]:
    """The evidence subgraph as node-link JSON."""
    data: dict[str, Any] = json_graph.node_link_data(finding.evidence, edges="edges")
    return data


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def _canonical_ready(value: Any) -> Any:
    """Floats become fixed-point strings: canonical JSON here carries no floats."""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return {str(k): _canonical_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_ready(v) for v in value]
    return value


# --- recording findings -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordReport:
    opened: list[str]
    refreshed: list[str]


def record_findings(
    session: Session, ledger: Ledger, findings: Sequence[LedgerFinding], *, now: datetime
) -> RecordReport:
    """Open an alert per new (typology, subject) and refresh the ones already open.

    When several findings share a key (the same subject found twice in one run), the
    strongest is kept.
    """
    strongest: dict[str, LedgerFinding] = {}
    for finding in findings:
        key = alert_key(finding.typology, finding.subject_kind, finding.subject)
        if key not in strongest or finding.score > strongest[key].score:
            strongest[key] = finding
    existing = {
        a.key: a
        for start in range(0, len(strongest), 500)
        for a in session.scalars(
            select(Alert).where(Alert.key.in_(list(strongest)[start : start + 500]))
        )
    }
    opened, refreshed, statements, rows = [], [], [], []
    for key, finding in strongest.items():
        evidence = evidence_json(finding)
        digest = _sha256(_canonical_ready(evidence))
        alert = existing.get(key)
        if alert is not None:
            alert.score = finding.score
            alert.reason = finding.reason[:500]
            alert.evidence = evidence
            alert.evidence_sha256 = digest
            alert.last_seen_at = now
            alert.runs += 1
            refreshed.append(key)
            continue
        body = {
            "key": key,
            "typology": finding.typology.value,
            "subject_kind": finding.subject_kind,
            "subject": finding.subject,
            "score_milli": round(finding.score * 1000),
            "evidence_sha256": digest,
        }
        statements.append(ledger.statement(OPEN_TYPE, body, now=now))
        rows.append((key, finding, evidence, digest))
        opened.append(key)
    appended = []
    for start in range(0, len(statements), 1000):
        appended += ledger.append_as_platform(session, statements[start : start + 1000], now=now)
    for (key, finding, evidence, digest), entry in zip(rows, appended, strict=True):
        session.add(
            Alert(
                key=key,
                typology=finding.typology.value,
                subject_kind=finding.subject_kind,
                subject=finding.subject,
                score=finding.score,
                severity=finding.severity.value,
                status=AlertStatus.NEW.value,
                assignee=None,
                reason=finding.reason[:500],
                evidence=evidence,
                evidence_sha256=digest,
                first_seen_at=now,
                last_seen_at=now,
                runs=1,
                opened_seq=entry.seq,
                last_seq=entry.seq,
            )
        )
    session.flush()
    return RecordReport(opened, refreshed)


@dataclass(frozen=True, slots=True)
class AnalysisRun:
    """What one run did: entries read, findings, alerts opened and refreshed."""

    entries_read: int
    last_seq: int
    findings: int
    opened: list[str]
    refreshed: list[str]


def load_graph(session: Session) -> LedgerGraph:
    """The graph the last run kept, or an empty one."""
    state = session.get(AnalysisState, STATE_NAME)
    return LedgerGraph.from_bytes(state.snapshot) if state is not None else LedgerGraph()


def run_ledger_analysis(
    session: Session,
    ledger: Ledger,
    *,
    now: datetime,
    detectors: Sequence[LedgerDetector] | None = None,
) -> AnalysisRun:
    """Read the entries appended since the last run, run the detectors over the whole
    graph and record the findings as alerts (see the module docstring).

    Raises:
        GraphSnapshotError: the stored graph cannot be read.
    """
    graph, read = read_ledger(session, load_graph(session))
    findings = analyze_ledger(graph, detectors)
    report = record_findings(session, ledger, findings, now=now)
    state = session.get(AnalysisState, STATE_NAME)
    if state is None:
        state = AnalysisState(name=STATE_NAME, last_seq=-1, snapshot=b"", updated_at=now)
        session.add(state)
    state.last_seq = graph.last_seq
    state.snapshot = graph.to_bytes()
    state.updated_at = now
    session.flush()
    return AnalysisRun(read, graph.last_seq, len(findings), report.opened, report.refreshed)


# --- working alerts ---------------------------------------------------------------------------


def get_alert(session: Session, alert_id: int) -> Alert:
    """Raises: AlertNotFoundError."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFoundError(f"no alert {alert_id}")
    return alert


def list_alerts(
    session: Session,
    *,
    status: str | None = None,
    typology: str | None = None,
    limit: int = 100,
) -> list[Alert]:
    """Alerts, strongest first.

    Raises:
        AlertInputError: an unknown status or typology, or a limit outside 1-1000.
    """
    query = select(Alert)
    if status is not None:
        query = query.where(Alert.status == _status(status).value)
    if typology is not None:
        try:
            query = query.where(Alert.typology == Typology(typology).value)
        except ValueError:
            raise AlertInputError(f"unknown typology {typology!r}", field="typology") from None
    if not 1 <= limit <= 1000:
        raise AlertInputError("limit must be between 1 and 1000", field="limit")
    query = query.order_by(Alert.score.desc(), Alert.id).limit(limit)
    return list(session.scalars(query))


def notes_of(session: Session, alert: Alert) -> list[AlertNote]:
    return list(
        session.scalars(
            select(AlertNote).where(AlertNote.alert_id == alert.id).order_by(AlertNote.id)
        )
    )


def _status(value: str) -> AlertStatus:
    try:
        return AlertStatus(value)
    except ValueError:
        choices = ", ".join(s.value for s in AlertStatus)
        raise AlertInputError(f"status must be one of {choices}", field="status") from None


def _officer(value: str, field: str) -> str:
    if not _OFFICER_RE.fullmatch(value):
        raise AlertInputError(
            f"{field}: an officer id is 2-64 lower-case letters, digits, '.', '_' or '-'",
            field=field,
        )
    return value


def decide(
    session: Session,
    ledger: Ledger,
    alert_id: int,
    status: str,
    *,
    officer: str,
    now: datetime,
    assignee: str | None = None,
    note: str | None = None,
) -> Alert:
    """Move an alert to ``status`` (triaged, dismissed or escalated), as ``officer``.

    Raises:
        AlertNotFoundError: no such alert.
        AlertInputError: a bad status, officer or assignee id, or note (nothing written).
        AlertTransitionError: the alert's status does not allow it (nothing written).
    """
    target = _status(status)
    _officer(officer, "officer")
    if assignee is not None:
        _officer(assignee, "assignee")
    if note is not None and not 1 <= len(note.strip()) <= MAX_NOTE:
        raise AlertInputError(f"note: 1-{MAX_NOTE} characters", field="note")
    alert = get_alert(session, alert_id)
    current = AlertStatus(alert.status)
    if target not in _NEXT[current]:
        raise AlertTransitionError(
            f"alert {alert.id} is {current.value}; it cannot be {target.value}"
        )
    body: dict[str, Any] = {"key": alert.key, "status": target.value, "officer": officer}
    if assignee is not None:
        body["assignee"] = assignee
    if note is not None:
        body["note_sha256"] = hashlib.sha256(note.strip().encode("utf-8")).hexdigest()
    [entry] = ledger.append_as_platform(
        session, [ledger.statement(DECIDE_TYPE, body, now=now)], now=now
    )
    alert.status = target.value
    if assignee is not None:
        alert.assignee = assignee
    alert.last_seq = entry.seq
    if note is not None:
        session.add(
            AlertNote(alert_id=alert.id, at=now, author=officer, text=note.strip(), seq=entry.seq)
        )
    session.flush()
    return alert


def alert_json(
    alert: Alert, notes: Sequence[AlertNote] = (), *, evidence: bool = True
) -> dict[str, Any]:
    """How the API and the CLI show an alert."""
    shown: dict[str, Any] = {
        "id": alert.id,
        "key": alert.key,
        "typology": alert.typology,
        "subject_kind": alert.subject_kind,
        "subject": alert.subject,
        "score": round(alert.score, 4),
        "severity": alert.severity,
        "status": alert.status,
        "assignee": alert.assignee,
        "reason": alert.reason,
        "runs": alert.runs,
        "first_seen_at": alert.first_seen_at.isoformat(),
        "last_seen_at": alert.last_seen_at.isoformat(),
        "opened_seq": alert.opened_seq,
        "last_seq": alert.last_seq,
        "evidence_sha256": alert.evidence_sha256,
    }
    if evidence:
        shown["evidence"] = alert.evidence
        shown["notes"] = [
            {"at": n.at.isoformat(), "author": n.author, "text": n.text, "seq": n.seq}
            for n in notes
        ]
    return shown

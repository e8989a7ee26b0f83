"""Alerts from the ledger analysis: kept once per pattern across runs, worked by officers,
every opening and decision recorded on the ledger.

An alert's ``key`` is the SHA-256 of its typology and subject, so a run that finds the
same pattern again refreshes the alert (score, evidence, ``runs``, ``last_seen_at``)
instead of opening another. Opening writes an ``alert.open`` entry (key, typology,
subject, score in thousandths, the SHA-256 of the canonical evidence); each decision an
``alert.decide`` entry (key, new status, the officer, the assignee, the SHA-256 of the
note); a note on its own an ``alert.note`` entry (key, officer, the note's SHA-256). The
note's text and the evidence stay in the alert tables, off the ledger, so
the entries carry only pseudonyms and hashes. A dismissed or escalated alert is
decided: a later run refreshes its evidence but does not reopen it.

Alerts also come from the real-time risk rules (:func:`record_risk_hits`, typology
``risk-rule``): one open alert per rule and subject, the repeats counted on it.

``run_ledger_analysis`` brings the stored graph (``analysis_state``) up to the ledger's
last entry, reading only new entries, runs the detectors and records their findings.
Services flush and never commit.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, defer

from provenance.analysis.findings import Typology
from provenance.analysis.ledger_detectors import LedgerDetector, LedgerFinding, analyze_ledger
from provenance.analysis.ledger_graph import (
    GraphSnapshotError,
    LedgerGraph,
    heap_frozen,
    read_ledger,
)
from provenance.analysis.models import Alert, AlertNote, AnalysisState
from provenance.catalog import Body, EntryCatalog, EntryType
from provenance.entries import canonical, decode_record, format_time
from provenance.errors import ConflictError, NotFoundError, ValidationError
from provenance.ledger import Ledger, LedgerEntry
from provenance.risk.live import RiskHit
from provenance.risk.store import RiskShadowHit

log = logging.getLogger(__name__)

STATE_NAME = "ledger"
OPEN_TYPE = "alert.open"
DECIDE_TYPE = "alert.decide"
NOTE_TYPE = "alert.note"
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


class AlertNoteBody(Body):
    key: str = Field(pattern=r"^[0-9a-f]{64}$")
    officer: str = Field(pattern=r"^[a-z][a-z0-9._-]{1,63}$")
    note_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


ENTRY_TYPES = (
    EntryType(OPEN_TYPE, AlertOpenBody, platform_only=True),
    EntryType(DECIDE_TYPE, AlertDecideBody, platform_only=True),
    EntryType(NOTE_TYPE, AlertNoteBody, platform_only=True),
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
    return finding.evidence_json()


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


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
    strongest is kept. An alert whose stored evidence has the digest the finding's
    evidence is known to have (:func:`~provenance.analysis.ledger_detectors.reuse_evidence`)
    keeps it: the evidence is neither drawn nor written again.
    """
    strongest: dict[str, LedgerFinding] = {}
    for finding in findings:
        key = alert_key(finding.typology, finding.subject_kind, finding.subject)
        if key not in strongest or finding.score > strongest[key].score:
            strongest[key] = finding
    keys = list(strongest)
    existing = {
        a.key: a
        for start in range(0, len(keys), 500)
        for a in session.scalars(
            select(Alert)
            .where(Alert.key.in_(keys[start : start + 500]))
            .options(defer(Alert.evidence))
        )
    }
    opened, refreshed, statements, rows = [], [], [], []
    for key, finding in strongest.items():
        alert = existing.get(key)
        if alert is not None:
            known = finding.known_evidence_sha256
            if known is None or known != alert.evidence_sha256:
                alert.evidence, alert.evidence_sha256 = finding.evidence_with_sha256()
            alert.score = finding.score
            alert.reason = finding.reason[:500]
            alert.last_seen_at = now
            alert.runs += 1
            refreshed.append(key)
            continue
        evidence, digest = finding.evidence_with_sha256()
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


# --- alerts from the real-time risk rules ---------------------------------------------------

RISK_TYPOLOGY = "risk-rule"
OPEN_STATUSES = (AlertStatus.NEW.value, AlertStatus.TRIAGED.value)
_RISK_SCORE = {"block": 0.9, "review": 0.6}
_RISK_SEVERITY = {"block": "high", "review": "medium"}
MAX_RISK_SALES = 50  # sale attempts an alert's evidence keeps (the latest)


def risk_alert_key(rule: str, subject_kind: str, subject: str, generation: int = 0) -> str:
    """The key of the ``generation``-th alert (from 0) about ``subject`` for ``rule``: a
    decided alert is never reopened, a later hit opens the next generation."""
    text = f"{RISK_TYPOLOGY}\n{rule}\n{subject_kind}\n{subject}\n{generation}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _risk_evidence(hits: Sequence[RiskHit], before: dict[str, Any] | None) -> dict[str, Any]:
    """The subject, the codes it tried to buy and the shops, as a node-link graph."""
    first = hits[0]
    subject = f"{first.subject_kind}:{first.subject}"
    edges = list(before["edges"]) if before else []
    for hit in hits:
        edges.append(
            {
                "source": subject,
                "target": f"code:{hit.ref}",
                "kind": "sale-attempt",
                "merchant": hit.merchant,
                "at": format_time(hit.at),
                "decision": hit.action,
                "version": hit.version,
            }
        )
    edges = edges[-MAX_RISK_SALES:]
    nodes = {subject: first.subject_kind}
    for edge in edges:
        nodes[edge["target"]] = "code"
        nodes[f"party:{edge['merchant']}"] = "merchant"
    return {
        "directed": True,
        "multigraph": True,
        "graph": {"rule": first.rule, "reason": first.reason, "action": first.action},
        "nodes": [{"id": node, "kind": kind} for node, kind in nodes.items()],
        "edges": edges,
    }


def record_risk_hits(
    session: Session, ledger: Ledger, hits: Sequence[RiskHit], *, now: datetime
) -> RecordReport:
    """Turn enforced risk-rule decisions into alerts, at most one open per rule and subject.

    Hits of one rule about one subject (a buyer, card, device or IP pseudonym) go to the
    alert that is open (new or triaged) for them: its ``runs`` counts the decisions, its
    evidence gains the sale attempts, nothing is appended to the ledger. Without an open
    one, an alert is opened with an ``alert.open`` entry, as the analysis opens them.
    Shadow hits are only recorded (``risk_shadow_hit``): shadow rules never raise alerts.
    """
    groups: dict[tuple[str, str, str], list[RiskHit]] = {}
    for hit in hits:
        if hit.shadow:
            session.add(
                RiskShadowHit(
                    at=hit.at,
                    rule=hit.rule,
                    version=hit.version,
                    action=hit.action,
                    reason=hit.reason,
                    subject_kind=hit.subject_kind,
                    subject=hit.subject,
                    ref=hit.ref,
                    merchant=hit.merchant,
                )
            )
        else:
            groups.setdefault((hit.rule, hit.subject_kind, hit.subject), []).append(hit)
    if not groups:
        session.flush()
        return RecordReport([], [])
    if session.get_bind().dialect.name == "postgresql":
        # One writer of risk alerts at a time, so two processes never open the same one.
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:n, 7))"), {"n": RISK_TYPOLOGY}
        )
    subjects = sorted({subject for _, _, subject in groups})
    known: dict[tuple[str, str, str], list[Alert]] = {}
    for start in range(0, len(subjects), 500):
        for alert in session.scalars(
            select(Alert)
            .where(
                Alert.typology == RISK_TYPOLOGY, Alert.subject.in_(subjects[start : start + 500])
            )
            .order_by(Alert.id)
        ):
            rule = alert.evidence.get("graph", {}).get("rule", "")
            known.setdefault((rule, alert.subject_kind, alert.subject), []).append(alert)
    opened: list[str] = []
    refreshed: list[str] = []
    statements = []
    rows: list[tuple[str, str, str, float, RiskHit, int, dict[str, Any], str]] = []
    for (rule, kind, subject), group in groups.items():
        earlier = known.get((rule, kind, subject), [])
        found = next((a for a in earlier if a.status in OPEN_STATUSES), None)
        score = max(_RISK_SCORE.get(h.action, 0.6) for h in group)
        if found is not None:
            alert = found
            # A task delivered twice brings the same decisions again: count them once.
            seen = {(e["target"], e["at"]) for e in alert.evidence.get("edges", [])}
            group = [h for h in group if (f"code:{h.ref}", format_time(h.at)) not in seen]
            if not group:
                continue
            alert.evidence = _risk_evidence(group, alert.evidence)
            alert.evidence_sha256 = _sha256(alert.evidence)
            alert.runs += len(group)
            alert.score = max(alert.score, score)
            alert.severity = _RISK_SEVERITY["block" if alert.score >= 0.9 else "review"]
            alert.last_seen_at = now
            refreshed.append(alert.key)
            continue
        key = risk_alert_key(rule, kind, subject, len(earlier))
        evidence = _risk_evidence(group, None)
        digest = _sha256(evidence)
        body = {
            "key": key,
            "typology": RISK_TYPOLOGY,
            "subject_kind": kind,
            "subject": subject,
            "score_milli": round(score * 1000),
            "evidence_sha256": digest,
        }
        statements.append(ledger.statement(OPEN_TYPE, body, now=now))
        worst = max(group, key=lambda h: _RISK_SCORE.get(h.action, 0.6))
        rows.append((key, kind, subject, score, worst, len(group), evidence, digest))
        opened.append(key)
    appended = ledger.append_as_platform(session, statements, now=now) if statements else []
    for (key, kind, subject, score, worst, runs, evidence, digest), entry in zip(
        rows, appended, strict=True
    ):
        session.add(
            Alert(
                key=key,
                typology=RISK_TYPOLOGY,
                subject_kind=kind,
                subject=subject,
                score=score,
                severity=_RISK_SEVERITY.get(worst.action, "medium"),
                status=AlertStatus.NEW.value,
                assignee=None,
                reason=f"{worst.rule}: {worst.en}"[:500],
                evidence=evidence,
                evidence_sha256=digest,
                first_seen_at=now,
                last_seen_at=now,
                runs=runs,
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
    """The graph the last run kept, or an empty one: also when the kept one cannot be
    read (written by another version of cardtrace, or damaged). The graph is only a
    summary of the ledger, so the run then reads the whole ledger again; alerts are
    deduplicated by their pattern, so findings alerted before refresh their alerts."""
    state = session.get(AnalysisState, STATE_NAME)
    if state is None:
        return LedgerGraph()
    try:
        return LedgerGraph.from_bytes(state.snapshot)
    except GraphSnapshotError as e:
        log.warning("the stored analysis graph cannot be read (%s); rebuilding it", e)
        return LedgerGraph()


def run_ledger_analysis(
    session: Session,
    ledger: Ledger,
    *,
    now: datetime,
    detectors: Sequence[LedgerDetector] | None = None,
) -> AnalysisRun:
    """Read the entries appended since the last run, run the detectors over the whole
    graph and record the findings as alerts (see the module docstring). A stored graph
    that cannot be read is rebuilt from the whole ledger (:func:`load_graph`). The
    stored graph is left out of garbage collection while the run lasts
    (:func:`~provenance.analysis.ledger_graph.heap_frozen`).
    """
    kept = load_graph(session)
    with heap_frozen():
        graph, read = read_ledger(session, kept)
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


SEVERITIES = ("high", "medium", "low")


def _alert_filter(
    *,
    status: str | None = None,
    typology: str | None = None,
    severity: str | None = None,
    assignee: str | None = None,
    subject: str | None = None,
) -> list[Any]:
    """The WHERE clauses of a listing; raises AlertInputError on an unknown value."""
    clauses: list[Any] = []
    if status is not None:
        clauses.append(Alert.status == _status(status).value)
    if typology is not None:
        try:
            known = typology if typology == RISK_TYPOLOGY else Typology(typology).value
        except ValueError:
            raise AlertInputError(f"unknown typology {typology!r}", field="typology") from None
        clauses.append(Alert.typology == known)
    if severity is not None:
        if severity not in SEVERITIES:
            choices = ", ".join(SEVERITIES)
            raise AlertInputError(f"severity must be one of {choices}", field="severity")
        clauses.append(Alert.severity == severity)
    if assignee is not None:
        clauses.append(Alert.assignee == _officer(assignee, "assignee"))
    if subject is not None:
        if not 1 <= len(subject) <= 100:
            raise AlertInputError("subject: 1-100 characters", field="subject")
        clauses.append(Alert.subject.contains(subject, autoescape=True))
    return clauses


def list_alerts(
    session: Session,
    *,
    status: str | None = None,
    typology: str | None = None,
    limit: int = 100,
    severity: str | None = None,
    assignee: str | None = None,
    subject: str | None = None,
    offset: int = 0,
) -> list[Alert]:
    """Alerts, strongest first; ``subject`` matches part of the subject, the other
    filters match exactly; ``offset`` skips that many (for pages).

    Raises:
        AlertInputError: an unknown status, typology or severity, a bad assignee id, a
            limit outside 1-1000 or a negative offset.
    """
    clauses = _alert_filter(
        status=status, typology=typology, severity=severity, assignee=assignee, subject=subject
    )
    if not 1 <= limit <= 1000:
        raise AlertInputError("limit must be between 1 and 1000", field="limit")
    if offset < 0:
        raise AlertInputError("offset must not be negative", field="offset")
    query = (
        select(Alert)
        .where(*clauses)
        .order_by(Alert.score.desc(), Alert.id)
        .offset(offset)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_alerts(
    session: Session,
    *,
    status: str | None = None,
    typology: str | None = None,
    severity: str | None = None,
    assignee: str | None = None,
    subject: str | None = None,
) -> dict[tuple[str, str], int]:
    """How many alerts match, by (severity, status); the filters are those of
    :func:`list_alerts`.

    Raises:
        AlertInputError: as :func:`list_alerts`.
    """
    clauses = _alert_filter(
        status=status, typology=typology, severity=severity, assignee=assignee, subject=subject
    )
    rows = session.execute(
        select(Alert.severity, Alert.status, func.count())
        .where(*clauses)
        .group_by(Alert.severity, Alert.status)
    )
    return {(severity_, status_): int(n) for severity_, status_, n in rows}


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


def note_alert(
    session: Session, ledger: Ledger, alert_id: int, note: str, *, officer: str, now: datetime
) -> AlertNote:
    """Add an officer's note to an alert, whatever its status, without changing it.

    Raises:
        AlertNotFoundError: no such alert.
        AlertInputError: a bad officer id or a note that is empty or too long (nothing
            written).
    """
    _officer(officer, "officer")
    text = note.strip()
    if not 1 <= len(text) <= MAX_NOTE:
        raise AlertInputError(f"note: 1-{MAX_NOTE} characters", field="note")
    alert = get_alert(session, alert_id)
    body = {
        "key": alert.key,
        "officer": officer,
        "note_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }
    [entry] = ledger.append_as_platform(
        session, [ledger.statement(NOTE_TYPE, body, now=now)], now=now
    )
    alert.last_seq = entry.seq
    row = AlertNote(alert_id=alert.id, at=now, author=officer, text=text, seq=entry.seq)
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True, slots=True)
class AlertStep:
    """One ledger entry about an alert: its opening, a decision or a note."""

    seq: int
    at: datetime
    type: str
    status: str | None
    officer: str | None
    assignee: str | None


def alert_history(session: Session, alert: Alert) -> list[AlertStep]:
    """The alert's ledger entries, oldest first, read back from the ledger.

    Every entry about an alert lies between its opening and ``last_seq``, so only that
    range is read.
    """
    rows = session.scalars(
        select(LedgerEntry.record)
        .where(
            LedgerEntry.seq >= alert.opened_seq,
            LedgerEntry.seq <= alert.last_seq,
            LedgerEntry.type.in_([OPEN_TYPE, DECIDE_TYPE, NOTE_TYPE]),
        )
        .order_by(LedgerEntry.seq)
    )
    steps = []
    for raw in rows:
        record = decode_record(raw)
        statement = record.statement
        body = statement.body
        if body.get("key") != alert.key:
            continue
        status = AlertStatus.NEW.value if statement.type == OPEN_TYPE else body.get("status")
        steps.append(
            AlertStep(
                seq=record.seq,
                at=statement.time,
                type=statement.type,
                status=status,
                officer=body.get("officer"),
                assignee=body.get("assignee"),
            )
        )
    return steps


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

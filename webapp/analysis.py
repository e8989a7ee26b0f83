"""What the API, the CLI and the tasks share for the ledger analysis: one run with its
suspension proposals, and the proposal itself.

A high-severity alert about a merchant proposes suspension through the onboarding
workflow's public service: an approved merchant is put back in the officers' queue by a
re-review that the system starts (the workflow lets the system start one, and the
merchant stays approved meanwhile); an officer reads the alert and suspends with
``cardtrace onboarding suspend`` or the onboarding API. The system could suspend at once
(the workflow allows it), but an unsupervised finding is a reason to look, not a
decision: a merchant hit by one ring of fraudsters would lose its trade before anyone
read the evidence. A merchant already in review, suspended or terminated is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from merchant_onboarding.models import Status
from merchant_onboarding.officers import Actor
from merchant_onboarding.workflow import Onboarding, State
from provenance.analysis.alerts import AnalysisRun, run_ledger_analysis
from provenance.analysis.ledger_detectors import Severity
from provenance.analysis.ledger_graph import NodeKind
from provenance.analysis.models import Alert
from provenance.ledger import Ledger


class ProposalOutcome(StrEnum):
    REVIEW_STARTED = "review-started"
    ALREADY_IN_QUEUE = "already-in-queue"
    NOT_ACTIVE = "not-active"
    NO_APPLICATION = "no-application"
    NOT_A_MERCHANT_ALERT = "not-a-merchant-alert"


@dataclass(frozen=True, slots=True)
class SuspensionProposal:
    alert_id: int
    merchant: str
    outcome: ProposalOutcome
    application_id: int | None = None


def proposes_suspension(alert: Alert) -> bool:
    """Whether an alert puts its subject's suspension before the officers: a high alert
    about a party (a merchant, if it has an application)."""
    return alert.subject_kind == NodeKind.PARTY.value and alert.severity == Severity.HIGH.value


def latest_status(session: Session, merchant: str) -> Status | None:
    """The onboarding status of the merchant's latest application, if it has one."""
    return session.scalars(
        select(Status).where(Status.merchant == merchant).order_by(Status.since.desc())
    ).first()


def propose_suspension(
    session: Session, service: Onboarding, alert: Alert, *, now: datetime
) -> SuspensionProposal:
    """Put the merchant an alert is about before the officers (see the module docstring)."""
    if not proposes_suspension(alert):
        return SuspensionProposal(alert.id, alert.subject, ProposalOutcome.NOT_A_MERCHANT_ALERT)
    status = latest_status(session, alert.subject)
    if status is None:
        return SuspensionProposal(alert.id, alert.subject, ProposalOutcome.NO_APPLICATION)
    state = State(status.state)
    if state is State.APPROVED:
        service.start_review(session, status.application_id, actor=Actor.system(), now=now)
        outcome = ProposalOutcome.REVIEW_STARTED
    elif state in (State.SUBMITTED, State.IN_REVIEW, State.NEEDS_INFORMATION):
        outcome = ProposalOutcome.ALREADY_IN_QUEUE
    else:
        outcome = ProposalOutcome.NOT_ACTIVE
    return SuspensionProposal(alert.id, alert.subject, outcome, status.application_id)


@dataclass(frozen=True, slots=True)
class LedgerAnalysis:
    run: AnalysisRun
    proposals: list[SuspensionProposal]


def analyse_ledger(
    session: Session, ledger: Ledger, service: Onboarding | None, *, now: datetime
) -> LedgerAnalysis:
    """One incremental run, then a suspension proposal for each new high-severity alert
    about a party (when the onboarding service is configured). Flushes, no commit."""
    run = run_ledger_analysis(session, ledger, now=now)
    proposals = []
    if service is not None and run.opened:
        opened = session.scalars(
            select(Alert).where(
                Alert.key.in_(run.opened),
                Alert.subject_kind == NodeKind.PARTY.value,
                Alert.severity == Severity.HIGH.value,
            )
        )
        for alert in opened:
            proposals.append(propose_suspension(session, service, alert, now=now))
    return LedgerAnalysis(run, proposals)

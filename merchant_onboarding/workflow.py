"""The vetting workflow: states, the only transitions allowed, and four eyes.

Every step is a ledger entry, signed by the platform and naming the officer (by id),
the applicant or the system, with reasons. The entries' projector keeps
``onboarding_status`` and refuses, on its own, any step the state does not allow and any
decision without a recommendation by another officer: the ledger cannot record a
one-person approval whichever path wrote it. Approval, suspension, reinstatement and
termination move the merchant's party status through ``party.status`` entries in the
same append, so verify-before-sale sees the change at once.

::

    draft -submit-> submitted -start_review-> in_review -approve-> approved
    in_review -request_information-> needs_information -answer-> in_review
    in_review -reject-> rejected
    approved -start_review-> in_review (a re-review; the merchant stays approved)
    approved -suspend-> suspended      (also from a re-review in progress)
    suspended -reinstate-> approved    (four eyes again)
    approved | suspended -terminate-> terminated
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from merchant_onboarding.applications import (
    ApplicationChanges,
    ApplicationInput,
    apply_changes,
    check_merchant_party,
    check_not_duplicate,
    get_application,
    missing_for_submission,
    owners_of,
)
from merchant_onboarding.checks import CheckContext, CheckResult, ScreeningCheck, run_checks
from merchant_onboarding.documents import CheckedDocument, DocumentKind, MediaType
from merchant_onboarding.errors import (
    DuplicateApplicationError,
    FourEyesError,
    InvalidApplicationError,
    OnboardingError,
    ScreeningHoldError,
    TransitionError,
)
from merchant_onboarding.hits import HitOutcome, HitStatus, get_hit, hits_of, record_hits
from merchant_onboarding.models import (
    Amendment,
    Application,
    Blob,
    CheckRecord,
    Document,
    HistoryStep,
    HitDecision,
    Question,
    ScreeningHitRecord,
    Status,
)
from merchant_onboarding.officers import (
    APPLICANT,
    Actor,
    ActorKind,
    Role,
)
from merchant_onboarding.protect import PersonalData, Purpose, SealError
from merchant_onboarding.registries import Registries
from merchant_onboarding.risk import score
from provenance.catalog import AppliedEntry, Body, EntryCatalog, EntryType, each
from provenance.entries import format_time, parse_time
from provenance.errors import NotFoundError
from provenance.ledger import Ledger
from provenance.parties import Party, PartyIdStr, PartyStatus, TimeStr


class State(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    NEEDS_INFORMATION = "needs_information"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class Action(StrEnum):
    CREATE = "create"
    SUBMIT = "submit"
    START_REVIEW = "start_review"
    REQUEST_INFORMATION = "request_information"
    ANSWER = "answer"
    APPROVE = "approve"
    REJECT = "reject"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    TERMINATE = "terminate"


class Recommendation(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REINSTATE = "reinstate"


TRANSITIONS: dict[Action, dict[State | None, State]] = {
    Action.CREATE: {None: State.DRAFT},
    Action.SUBMIT: {State.DRAFT: State.SUBMITTED},
    Action.START_REVIEW: {State.SUBMITTED: State.IN_REVIEW, State.APPROVED: State.IN_REVIEW},
    Action.REQUEST_INFORMATION: {State.IN_REVIEW: State.NEEDS_INFORMATION},
    Action.ANSWER: {State.NEEDS_INFORMATION: State.IN_REVIEW},
    Action.APPROVE: {State.IN_REVIEW: State.APPROVED},
    Action.REJECT: {State.IN_REVIEW: State.REJECTED},
    Action.SUSPEND: {
        State.APPROVED: State.SUSPENDED,
        State.IN_REVIEW: State.SUSPENDED,
        State.NEEDS_INFORMATION: State.SUSPENDED,
    },
    Action.REINSTATE: {State.SUSPENDED: State.APPROVED},
    Action.TERMINATE: {State.APPROVED: State.TERMINATED, State.SUSPENDED: State.TERMINATED},
}
# A merchant under review for the first time has nothing to suspend; one being re-reviewed
# is still approved and can be.
_RENEWAL_ONLY = {(Action.SUSPEND, State.IN_REVIEW), (Action.SUSPEND, State.NEEDS_INFORMATION)}

# Which recommendation a decision needs. An approval needs a recommendation to approve:
# otherwise one officer alone could approve by overruling a recommendation to reject.
DECISIONS: dict[Action, frozenset[Recommendation]] = {
    Action.APPROVE: frozenset({Recommendation.APPROVE}),
    Action.REJECT: frozenset({Recommendation.APPROVE, Recommendation.REJECT}),
    Action.REINSTATE: frozenset({Recommendation.REINSTATE}),
}
RECOMMENDABLE: dict[State, frozenset[Recommendation]] = {
    State.IN_REVIEW: frozenset({Recommendation.APPROVE, Recommendation.REJECT}),
    State.SUSPENDED: frozenset({Recommendation.REINSTATE}),
}
FINAL_STATES = frozenset({State.REJECTED, State.TERMINATED})
OPEN_STATES = (State.SUBMITTED, State.IN_REVIEW, State.NEEDS_INFORMATION)


def next_state(action: Action, current: State | None, *, renewal: bool = False) -> State:
    """The state ``action`` leads to from ``current``.

    Raises:
        TransitionError: the action is not allowed in that state.
    """
    target = TRANSITIONS[action].get(current)
    if target is None or ((action, current) in _RENEWAL_ONLY and not renewal):
        where = current.value if current else "nothing"
        raise TransitionError(
            f"cannot {action.value.replace('_', ' ')} an application that is {where}",
            code="invalid-transition",
        )
    return target


# --- ledger entries -------------------------------------------------------------------

ActorId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9._-]{1,63}$")]
ReasonText = Annotated[str, Field(min_length=1, max_length=500)]


class TransitionBody(Body):
    application: int = Field(ge=1, le=2**53 - 1)
    merchant: PartyIdStr
    action: Action = Field(strict=False)
    from_state: State | None = Field(strict=False)
    to_state: State = Field(strict=False)
    by: ActorId
    # The seq of the entry that put the application in from_state: binds each step to
    # the state it was decided on, so two officers acting at once cannot both succeed.
    after: int | None = Field(ge=0, le=2**53 - 1)
    reasons: list[ReasonText] = Field(max_length=20)
    expires_at: TimeStr | None = None
    next_review_at: TimeStr | None = None


class RecommendBody(Body):
    application: int = Field(ge=1, le=2**53 - 1)
    merchant: PartyIdStr
    recommendation: Recommendation = Field(strict=False)
    by: ActorId
    after: int = Field(ge=0, le=2**53 - 1)
    reasons: list[ReasonText] = Field(min_length=1, max_length=20)


class HitDecisionBody(Body):
    """An officer's decision on a screening hit. Names the listed entry, never the
    screened person."""

    application: int = Field(ge=1, le=2**53 - 1)
    merchant: PartyIdStr
    hit: int = Field(ge=1, le=2**53 - 1)
    watchlist: Annotated[str, Field(min_length=1, max_length=64)]
    entry_id: Annotated[str, Field(min_length=1, max_length=200)]
    decision: HitOutcome = Field(strict=False)
    by: ActorId
    after: int = Field(ge=0, le=2**53 - 1)
    reasons: list[ReasonText] = Field(min_length=1, max_length=20)


# States in which an officer may clear or confirm a hit: during a review (first or
# re-review), and while suspended, before a reinstatement.
HIT_DECISION_STATES = frozenset({State.IN_REVIEW, State.NEEDS_INFORMATION, State.SUSPENDED})
# Decisions that make a merchant approved: a confirmed hit refuses them, and the
# officer who cleared a hit may not take them.
_APPROVING = frozenset({Action.APPROVE, Action.REINSTATE})


def _history(session: Session, entry: AppliedEntry[Any], action: str, before: str | None) -> None:
    body = entry.body
    to_state = body.to_state.value if isinstance(body, TransitionBody) else before
    session.add(
        HistoryStep(
            application_id=body.application,
            seq=entry.seq,
            action=action,
            from_state=before,
            to_state=to_state,
            by=body.by,
            at=entry.time,
            reasons=list(body.reasons),
        )
    )


def _check_four_eyes(session: Session, row: Status, action: Action, by: str) -> None:
    if by in (APPLICANT, "system"):
        raise FourEyesError(f"only an officer may {action.value}")
    if row.recommendation is None or row.recommended_by is None:
        raise FourEyesError(
            f"a reviewer must recommend before an approver may {action.value}",
            code="recommendation-missing",
        )
    if Recommendation(row.recommendation) not in DECISIONS[action]:
        raise FourEyesError(
            f"the reviewer recommended to {row.recommendation}; {action.value} needs a "
            f"recommendation to {' or '.join(sorted(r.value for r in DECISIONS[action]))}",
            code="recommendation-mismatch",
        )
    if row.recommended_by == by:
        raise FourEyesError(
            f"{by} recommended this; a different officer must {action.value}",
            code="four-eyes",
        )
    if action in _APPROVING:
        _check_hit_decisions(session, row.application_id, action, by)


def _check_hit_decisions(session: Session, application_id: int, action: Action, by: str) -> None:
    """A confirmed hit refuses an approval; so does a hit cleared by the deciding officer."""
    for decision in session.scalars(
        select(HitDecision).where(HitDecision.application_id == application_id)
    ):
        if decision.decision == HitOutcome.CONFIRMED.value:
            raise ScreeningHoldError(
                f"a screening hit was confirmed as a true match: {action.value} is refused; "
                "reject instead",
                code="screening-hit-confirmed",
            )
        if decision.by == by:
            raise FourEyesError(
                f"{by} cleared a screening hit on this application; a different officer "
                f"must {action.value}",
                code="own-clearance",
            )


def _project_transition(session: Session, entry: AppliedEntry[TransitionBody]) -> None:
    body = entry.body
    row = session.get(Status, body.application)
    if body.action is Action.CREATE:
        if row is not None:
            raise TransitionError(f"application {body.application} already exists")
        if next_state(Action.CREATE, body.from_state) is not body.to_state:
            raise TransitionError("an application starts as a draft")
        session.add(
            Status(
                application_id=body.application,
                merchant=body.merchant,
                state=body.to_state.value,
                since=entry.time,
                state_seq=entry.seq,
                submitted_at=None,
                renewal=False,
            )
        )
        _history(session, entry, body.action.value, None)
        session.flush()
        return
    if row is None:
        raise TransitionError(f"no application {body.application}")
    if row.merchant != body.merchant:
        raise TransitionError(f"application {body.application} is not for {body.merchant}")
    current = State(row.state)
    if body.from_state is not current or body.after != row.state_seq:
        raise TransitionError(
            f"application {body.application} is {current.value} since entry {row.state_seq}, "
            f"not {body.from_state.value if body.from_state else 'new'} since {body.after}",
            code="stale-state",
        )
    if next_state(body.action, current, renewal=row.renewal) is not body.to_state:
        raise TransitionError(f"{body.action.value} does not lead to {body.to_state.value}")
    if body.action in DECISIONS:
        _check_four_eyes(session, row, body.action, body.by)
    if body.action is Action.SUBMIT and row.submitted_at is None:
        row.submitted_at = entry.time
    if body.action is Action.START_REVIEW and current is State.APPROVED:
        row.renewal = True
    if body.action in (Action.APPROVE, Action.REJECT, Action.REINSTATE):
        row.decided_by = body.by
    if body.to_state is State.APPROVED:
        if body.expires_at is None or body.next_review_at is None:
            raise TransitionError("an approval must say when it expires and is next reviewed")
        row.renewal = False
        row.approved_at = entry.time
        row.expires_at = parse_time(body.expires_at, "expires_at")
        row.next_review_at = parse_time(body.next_review_at, "next_review_at")
    row.state = body.to_state.value
    row.since = entry.time
    row.state_seq = entry.seq
    row.recommendation = row.recommended_by = row.recommended_at = None
    _history(session, entry, body.action.value, current.value)
    session.flush()


def _project_recommend(session: Session, entry: AppliedEntry[RecommendBody]) -> None:
    body = entry.body
    row = session.get(Status, body.application)
    if row is None or row.merchant != body.merchant:
        raise TransitionError(f"no application {body.application} for {body.merchant}")
    state = State(row.state)
    if body.after != row.state_seq:
        raise TransitionError(
            f"application {body.application} changed after entry {body.after}",
            code="stale-state",
        )
    if body.recommendation not in RECOMMENDABLE.get(state, frozenset()):
        raise TransitionError(
            f"cannot recommend to {body.recommendation.value} an application that is {state.value}"
        )
    row.recommendation = body.recommendation.value
    row.recommended_by = body.by
    row.recommended_at = entry.time
    _history(session, entry, f"recommend_{body.recommendation.value}", state.value)
    session.flush()


def _project_hit_decision(session: Session, entry: AppliedEntry[HitDecisionBody]) -> None:
    body = entry.body
    row = session.get(Status, body.application)
    if row is None or row.merchant != body.merchant:
        raise TransitionError(f"no application {body.application} for {body.merchant}")
    if body.after != row.state_seq:
        raise TransitionError(
            f"application {body.application} changed after entry {body.after}",
            code="stale-state",
        )
    state = State(row.state)
    if state not in HIT_DECISION_STATES:
        raise TransitionError(
            f"screening hits are decided in review or while suspended; it is {state.value}"
        )
    if body.by in (APPLICANT, "system"):
        raise FourEyesError("only an officer may decide on a screening hit")
    hit = session.get(ScreeningHitRecord, body.hit)
    if (
        hit is None
        or hit.application_id != body.application
        or (hit.watchlist, hit.entry_id) != (body.watchlist, body.entry_id)
    ):
        raise TransitionError(
            f"application {body.application} has no screening hit {body.hit} on "
            f"{body.watchlist} entry {body.entry_id}",
            code="hit-not-found",
        )
    if session.get(HitDecision, body.hit) is not None:
        raise TransitionError(f"screening hit {body.hit} is already decided", code="hit-decided")
    session.add(
        HitDecision(
            hit_id=body.hit,
            application_id=body.application,
            decision=body.decision.value,
            by=body.by,
            at=entry.time,
            seq=entry.seq,
            reasons=list(body.reasons),
        )
    )
    _history(session, entry, f"hit_{body.decision.value}", state.value)
    session.flush()


TRANSITION_TYPE = "onboarding.transition"
RECOMMEND_TYPE = "onboarding.recommend"
HIT_DECISION_TYPE = "onboarding.hit_decision"
ENTRY_TYPES = (
    EntryType(TRANSITION_TYPE, TransitionBody, each(_project_transition), platform_only=True),
    EntryType(RECOMMEND_TYPE, RecommendBody, each(_project_recommend), platform_only=True),
    EntryType(HIT_DECISION_TYPE, HitDecisionBody, each(_project_hit_decision), platform_only=True),
)
PROJECTION_TABLES = ("onboarding_hit_decision", "onboarding_history", "onboarding_status")


def onboarding_catalog() -> EntryCatalog:
    return EntryCatalog.of(ENTRY_TYPES, PROJECTION_TABLES)


# --- the service ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReviewPolicy:
    """How long an approval lasts and how often an approved merchant is re-reviewed."""

    approval_validity: timedelta = timedelta(days=365)
    review_interval: timedelta = timedelta(days=180)


@dataclass(frozen=True, slots=True)
class Created:
    application: Application


@dataclass(frozen=True, slots=True)
class QueueItem:
    application_id: int
    merchant: str
    legal_name: str
    state: State
    since: datetime
    waiting: timedelta
    submitted_at: datetime | None
    risk_score: int | None
    risk_level: str | None
    recommendation: str | None
    recommended_by: str | None
    review_due: bool
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ScheduleReport:
    reviews_started: list[int]
    suspended_expired: list[int]


_PARTY_STATUS_AFTER: dict[Action, PartyStatus] = {
    Action.APPROVE: PartyStatus.APPROVED,
    Action.REINSTATE: PartyStatus.APPROVED,
    Action.SUSPEND: PartyStatus.SUSPENDED,
    Action.TERMINATE: PartyStatus.TERMINATED,
}


# The media types uploads accept: the only ones a stored document is served as.
_DOCUMENT_MEDIA_TYPES = frozenset(m.value for m in MediaType)


class Onboarding:
    """Applications through their workflow. Methods flush and never commit.

    Args:
        ledger: where each step is recorded.
        personal_data: seals ID numbers, bank accounts and documents.
        registries: the registries a session answers from (offline: the imported extract).
        screening: watch-list screening, run with the other checks when given.
    """

    def __init__(
        self,
        ledger: Ledger,
        personal_data: PersonalData,
        registries: Callable[[Session], Registries],
        *,
        policy: ReviewPolicy | None = None,
        screening: ScreeningCheck | None = None,
    ) -> None:
        self.ledger = ledger
        self.personal_data = personal_data
        self.registries = registries
        self.policy = policy or ReviewPolicy()
        self.screening = screening

    # --- reading ---------------------------------------------------------------------

    def status(self, session: Session, application_id: int) -> Status:
        get_application(session, application_id)
        row = session.get(Status, application_id)
        if row is None:
            raise TransitionError(f"application {application_id} has no recorded state")
        return row

    def _state(self, session: Session, application_id: int) -> tuple[Application, Status]:
        return get_application(session, application_id), self.status(session, application_id)

    # --- writing the ledger ------------------------------------------------------------

    def _transition(
        self,
        session: Session,
        application: Application,
        status: Status,
        action: Action,
        actor: Actor,
        reasons: Sequence[str],
        *,
        now: datetime,
    ) -> Status:
        current = State(status.state)
        target = next_state(action, current, renewal=status.renewal)
        body: dict[str, Any] = {
            "application": application.id,
            "merchant": application.merchant,
            "action": action.value,
            "from_state": current.value,
            "to_state": target.value,
            "by": actor.id,
            "after": status.state_seq,
            "reasons": list(reasons),
        }
        if target is State.APPROVED:
            body["expires_at"] = format_time(now + self.policy.approval_validity)
            body["next_review_at"] = format_time(now + self.policy.review_interval)
        statements = [self.ledger.statement(TRANSITION_TYPE, body, now=now)]
        party_status = _PARTY_STATUS_AFTER.get(action)
        if action is Action.REJECT and status.renewal:
            party_status = PartyStatus.TERMINATED
        if party_status is not None:
            if (
                party_status is PartyStatus.APPROVED
                and session.get(Party, application.merchant) is None
            ):
                statements.append(
                    self.ledger.statement(
                        "party.register",
                        {
                            "party": application.merchant,
                            "kind": "merchant",
                            "name": application.legal_name,
                            "keys": [],
                        },
                        now=now,
                    )
                )
            statements.append(
                self.ledger.statement(
                    "party.status",
                    {
                        "party": application.merchant,
                        "status": party_status.value,
                        "reason": f"onboarding application {application.id}, after entry "
                        f"{status.state_seq}: {action.value} by {actor.id}",
                    },
                    now=now,
                )
            )
        self.ledger.append_as_platform(session, statements, now=now)
        if target in FINAL_STATES:
            application.live_credit_code = None
        application.updated_at = now
        session.flush()
        session.refresh(status)
        return status

    # --- applicant steps -----------------------------------------------------------------

    def create(self, session: Session, fields: ApplicationInput, *, now: datetime) -> Created:
        """Open a draft application of ``fields.merchant`` (the caller checks that the
        acting account is that merchant's).

        Raises:
            InvalidApplicationError: the merchant id belongs to a party that is no merchant.
            DuplicateApplicationError: the credit code or merchant has a live application.
        """
        check_merchant_party(session, fields.merchant)
        check_not_duplicate(
            session, credit_code=fields.credit_code, merchant=fields.merchant, own_id=None
        )
        application = Application(
            merchant=fields.merchant,
            legal_name=fields.legal_name,
            credit_code=fields.credit_code,
            live_credit_code=fields.credit_code,
            applicant_token_hash=None,
            created_by=APPLICANT,
            created_at=now,
            updated_at=now,
            check_run=0,
        )
        session.add(application)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError as e:
            raise DuplicateApplicationError(
                "credit_code: another open or approved application has this credit code",
                code="duplicate-credit-code",
                field="credit_code",
            ) from e
        apply_changes(session, self.personal_data, application, fields)
        body = {
            "application": application.id,
            "merchant": application.merchant,
            "action": Action.CREATE.value,
            "from_state": None,
            "to_state": State.DRAFT.value,
            "by": APPLICANT,
            "after": None,
            "reasons": [],
        }
        self.ledger.append_as_platform(
            session, [self.ledger.statement(TRANSITION_TYPE, body, now=now)], now=now
        )
        return Created(application)

    def update(
        self,
        session: Session,
        application_id: int,
        changes: ApplicationChanges,
        *,
        actor: Actor,
        now: datetime,
    ) -> Application:
        """Change an application: the applicant while it is a draft or needs information;
        a reviewer during review (an amendment, which bars them from approving it).

        Raises:
            PermissionDeniedError, TransitionError, InvalidApplicationError,
            DuplicateApplicationError.
        """
        application, status = self._state(session, application_id)
        state = State(status.state)
        if actor.kind is ActorKind.APPLICANT:
            actor.require_applicant_of(application_id, "change it")
            if state not in (State.DRAFT, State.NEEDS_INFORMATION):
                raise TransitionError(
                    f"the applicant may change an application only while it is a draft or "
                    f"needs information; it is {state.value}"
                )
        else:
            actor.require_role(Role.REVIEWER, "amend an application")
            if state is not State.IN_REVIEW:
                raise TransitionError(
                    f"an officer may amend an application only in review; it is {state.value}"
                )
        if changes.credit_code is not None and changes.credit_code != application.credit_code:
            check_not_duplicate(
                session, credit_code=changes.credit_code, merchant=None, own_id=application.id
            )
        applied = apply_changes(session, self.personal_data, application, changes)
        application.updated_at = now
        if actor.kind is ActorKind.OFFICER and applied.fields:
            session.add(
                Amendment(
                    application_id=application.id,
                    officer=actor.id,
                    fields=",".join(applied.fields)[:500],
                    at=now,
                )
            )
        session.flush()
        return application

    def add_document(
        self,
        session: Session,
        application_id: int,
        kind: DocumentKind,
        document: CheckedDocument,
        *,
        actor: Actor,
        now: datetime,
    ) -> Document:
        """Attach a document (already checked by content); stored once per SHA-256."""
        application, status = self._state(session, application_id)
        actor.require_applicant_of(application_id, "add documents")
        state = State(status.state)
        if state not in (State.DRAFT, State.NEEDS_INFORMATION):
            raise TransitionError(
                f"documents can be added while a draft or needing information; it is {state.value}"
            )
        existing = session.scalars(
            select(Document).where(
                Document.application_id == application.id, Document.sha256 == document.sha256
            )
        ).first()
        if existing is not None:
            return existing
        if session.get(Blob, document.sha256) is None:
            session.add(
                Blob(
                    sha256=document.sha256,
                    size=document.size,
                    media_type=document.media_type.value,
                    sealed=self.personal_data.seal(Purpose.DOCUMENT, document.content),
                )
            )
            session.flush()
        row = Document(
            application_id=application.id,
            kind=kind.value,
            sha256=document.sha256,
            size=document.size,
            media_type=document.media_type.value,
            filename=document.filename,
            uploaded_at=now,
        )
        session.add(row)
        application.updated_at = now
        session.flush()
        return row

    def open_document(
        self, session: Session, application_id: int, document_id: int
    ) -> tuple[Document, bytes]:
        """One document of one application, with its clear content.

        Raises:
            NotFoundError: no such document, or it belongs to another application
                (code ``document-not-found``).
            OnboardingError: the stored media type is not one uploads accept
                (``document-media-type``), or the sealed content does not open or does not
                hash to the document's SHA-256 (``document-unreadable``).
        """
        document = session.get(Document, document_id)
        if document is None or document.application_id != application_id:
            raise NotFoundError(
                f"no document {document_id} on application {application_id}",
                code="document-not-found",
            )
        if document.media_type not in _DOCUMENT_MEDIA_TYPES:
            raise OnboardingError(
                f"document {document_id}: the stored media type is not served",
                code="document-media-type",
            )
        blob = session.get(Blob, document.sha256)
        if blob is None:
            raise OnboardingError(
                f"document {document_id}: the content is missing", code="document-unreadable"
            )
        try:
            content = self.personal_data.open(Purpose.DOCUMENT, blob.sealed)
        except SealError as e:
            raise OnboardingError(
                f"document {document_id}: the sealed content does not open",
                code="document-unreadable",
            ) from e
        # The seal proves the key sealed it, not that it was sealed for this document: a
        # sealed copy of another file moved into this row would open, and fails here.
        if not hmac.compare_digest(hashlib.sha256(content).digest(), document.sha256):
            raise OnboardingError(
                f"document {document_id}: the content does not match its SHA-256",
                code="document-unreadable",
            )
        return document, content

    def submit(
        self, session: Session, application_id: int, *, actor: Actor, now: datetime
    ) -> Status:
        """Submit a complete draft and run the automated checks.

        Raises:
            InvalidApplicationError: naming the first missing field.
        """
        application, status = self._state(session, application_id)
        actor.require_applicant_of(application_id, "submit it")
        next_state(Action.SUBMIT, State(status.state))
        missing = missing_for_submission(application, len(owners_of(session, application.id)))
        if missing:
            raise InvalidApplicationError(
                f"{missing[0]}: required before submitting (missing: {', '.join(missing)})",
                field=missing[0],
            )
        status = self._transition(session, application, status, Action.SUBMIT, actor, [], now=now)
        self.run_checks(session, application_id, now=now)
        return status

    def answer(
        self,
        session: Session,
        application_id: int,
        answers: dict[int, str],
        *,
        actor: Actor,
        now: datetime,
    ) -> Status:
        """Answer open questions; with all answered, the application returns to review
        and the checks run again."""
        application, status = self._state(session, application_id)
        actor.require_applicant_of(application_id, "answer its questions")
        if State(status.state) is not State.NEEDS_INFORMATION:
            raise TransitionError(f"application {application_id} has no open questions")
        open_questions = {
            q.id: q
            for q in session.scalars(
                select(Question).where(
                    Question.application_id == application_id, Question.answer.is_(None)
                )
            )
        }
        for question_id, text in answers.items():
            question = open_questions.get(question_id)
            if question is None:
                raise InvalidApplicationError(
                    f"answers.{question_id}: no open question {question_id} on this application",
                    field=f"answers.{question_id}",
                )
            question.answer = text
            question.answered_at = now
        session.flush()
        if all(q.answer is not None for q in open_questions.values()):
            status = self._transition(
                session,
                application,
                status,
                Action.ANSWER,
                actor,
                [f"{len(open_questions)} question(s) answered"],
                now=now,
            )
            self.run_checks(session, application_id, now=now)
        return status

    # --- officer steps --------------------------------------------------------------------

    def run_checks(
        self, session: Session, application_id: int, *, now: datetime, actor: Actor | None = None
    ) -> list[CheckResult]:
        """Run every automated check, store the results as a new run, and score the risk."""
        application = get_application(session, application_id)
        if actor is not None:
            actor.require_officer("run the checks")
            state = State(self.status(session, application_id).state)
            if state in (State.DRAFT, *FINAL_STATES):
                raise TransitionError(f"checks run on submitted applications; it is {state.value}")
        documents = list(
            session.scalars(select(Document).where(Document.application_id == application_id))
        )
        context = CheckContext(
            session=session,
            application=application,
            owners=owners_of(session, application_id),
            documents=documents,
            personal_data=self.personal_data,
            registries=self.registries(session),
            now=now,
        )
        results = run_checks(context, self.screening)
        application.check_run += 1
        for result in results:
            session.add(
                CheckRecord(
                    application_id=application_id,
                    run=application.check_run,
                    name=result.name.value,
                    result=result.result.value,
                    summary=result.summary[:500],
                    evidence=result.evidence,
                    source=result.source[:200],
                    extract_date=result.extract_date,
                    checked_at=result.checked_at,
                )
            )
        record_hits(session, application_id, application.check_run, results, now=now)
        risk = score(results)
        application.risk_score = risk.score
        application.risk_level = risk.level.value
        application.risk = [c.to_json() for c in risk.contributions]
        session.flush()
        return results

    def decide_hit(
        self,
        session: Session,
        application_id: int,
        hit_id: int,
        outcome: HitOutcome,
        reasons: Sequence[str],
        *,
        actor: Actor,
        now: datetime,
    ) -> HitDecision:
        """A reviewer clears a screening hit (a false positive) or confirms it (a true
        match), with reasons; a ledger entry. The officer who clears a hit may not then
        approve or reinstate the application; a confirmed hit refuses both.

        Raises:
            PermissionDeniedError: not a reviewer.
            HitNotFoundError: no such hit on this application.
            TransitionError: the hit is already decided (``hit-decided``), or the
                application is not in review, needing information or suspended.
            InvalidApplicationError: no reason given.
        """
        application, status = self._state(session, application_id)
        actor.require_role(Role.REVIEWER, "clear or confirm a screening hit")
        view = get_hit(session, application_id, hit_id)
        state = State(status.state)
        if state not in HIT_DECISION_STATES:
            raise TransitionError(
                f"screening hits are decided in review or while suspended; it is {state.value}"
            )
        if view.decision is not None:
            raise TransitionError(
                f"screening hit {hit_id} was already {view.decision.decision} by "
                f"{view.decision.by}",
                code="hit-decided",
            )
        if not reasons:
            raise InvalidApplicationError("reasons: say why", field="reasons")
        body = {
            "application": application.id,
            "merchant": application.merchant,
            "hit": hit_id,
            "watchlist": view.hit.watchlist,
            "entry_id": view.hit.entry_id,
            "decision": outcome.value,
            "by": actor.id,
            "after": status.state_seq,
            "reasons": list(reasons),
        }
        self.ledger.append_as_platform(
            session, [self.ledger.statement(HIT_DECISION_TYPE, body, now=now)], now=now
        )
        decision = session.get(HitDecision, hit_id)
        if decision is None:
            raise TransitionError(f"screening hit {hit_id}: the decision was not recorded")
        return decision

    def start_review(
        self, session: Session, application_id: int, *, actor: Actor, now: datetime
    ) -> Status:
        """A reviewer takes a submitted application, or begins an approved one's re-review."""
        application, status = self._state(session, application_id)
        if actor.kind is not ActorKind.SYSTEM:
            actor.require_role(Role.REVIEWER, "start a review")
        reason = (
            "re-review of an approved merchant"
            if State(status.state) is State.APPROVED
            else "review started"
        )
        return self._transition(
            session, application, status, Action.START_REVIEW, actor, [reason], now=now
        )

    def request_information(
        self,
        session: Session,
        application_id: int,
        questions: Sequence[str],
        *,
        actor: Actor,
        now: datetime,
    ) -> Status:
        application, status = self._state(session, application_id)
        actor.require_role(Role.REVIEWER, "ask for information")
        next_state(Action.REQUEST_INFORMATION, State(status.state))
        if not questions:
            raise InvalidApplicationError("questions: ask at least one", field="questions")
        for text in questions:
            session.add(
                Question(application_id=application_id, asked_by=actor.id, asked_at=now, text=text)
            )
        session.flush()
        return self._transition(
            session,
            application,
            status,
            Action.REQUEST_INFORMATION,
            actor,
            [f"{len(questions)} question(s) asked"],
            now=now,
        )

    def recommend(
        self,
        session: Session,
        application_id: int,
        recommendation: Recommendation,
        reasons: Sequence[str],
        *,
        actor: Actor,
        now: datetime,
    ) -> Status:
        """A reviewer's recommendation; a different officer then decides."""
        application, status = self._state(session, application_id)
        actor.require_role(Role.REVIEWER, "recommend a decision")
        state = State(status.state)
        if recommendation not in RECOMMENDABLE.get(state, frozenset()):
            raise TransitionError(
                f"cannot recommend to {recommendation.value} an application that is {state.value}"
            )
        body = {
            "application": application.id,
            "merchant": application.merchant,
            "recommendation": recommendation.value,
            "by": actor.id,
            "after": status.state_seq,
            "reasons": list(reasons),
        }
        self.ledger.append_as_platform(
            session, [self.ledger.statement(RECOMMEND_TYPE, body, now=now)], now=now
        )
        session.refresh(status)
        return status

    def _decide(
        self,
        session: Session,
        application_id: int,
        action: Action,
        reasons: Sequence[str],
        *,
        actor: Actor,
        now: datetime,
    ) -> Status:
        application, status = self._state(session, application_id)
        actor.require_role(Role.APPROVER, action.value)
        next_state(action, State(status.state), renewal=status.renewal)
        _check_four_eyes(session, status, action, actor.id)
        amended = session.scalars(
            select(Amendment.id).where(
                Amendment.application_id == application_id, Amendment.officer == actor.id
            )
        ).first()
        if amended is not None:
            raise FourEyesError(
                f"{actor.id} amended this application; a different officer must {action.value}",
                code="own-change",
            )
        if action in _APPROVING:
            open_hits = [
                h.hit.id for h in hits_of(session, application_id) if h.status is HitStatus.OPEN
            ]
            if open_hits:
                raise ScreeningHoldError(
                    f"{len(open_hits)} screening hit(s) still open "
                    f"({', '.join(map(str, open_hits))}): a reviewer must clear or confirm "
                    f"each before an officer may {action.value}",
                    code="screening-hit-open",
                )
        return self._transition(session, application, status, action, actor, reasons, now=now)

    def approve(
        self,
        session: Session,
        application_id: int,
        reasons: Sequence[str],
        *,
        actor: Actor,
        now: datetime,
    ) -> Status:
        return self._decide(session, application_id, Action.APPROVE, reasons, actor=actor, now=now)

    def reject(
        self,
        session: Session,
        application_id: int,
        reasons: Sequence[str],
        *,
        actor: Actor,
        now: datetime,
    ) -> Status:
        return self._decide(session, application_id, Action.REJECT, reasons, actor=actor, now=now)

    def reinstate(
        self,
        session: Session,
        application_id: int,
        reasons: Sequence[str],
        *,
        actor: Actor,
        now: datetime,
    ) -> Status:
        return self._decide(
            session, application_id, Action.REINSTATE, reasons, actor=actor, now=now
        )

    def suspend(
        self,
        session: Session,
        application_id: int,
        reasons: Sequence[str],
        *,
        actor: Actor,
        now: datetime,
    ) -> Status:
        """Suspend at once (any officer, or the system); verify-before-sale blocks the
        merchant from the same transaction on."""
        application, status = self._state(session, application_id)
        if actor.kind is not ActorKind.SYSTEM:
            actor.require_officer("suspend a merchant")
        if not reasons:
            raise InvalidApplicationError("reasons: say why", field="reasons")
        return self._transition(
            session, application, status, Action.SUSPEND, actor, reasons, now=now
        )

    def terminate(
        self,
        session: Session,
        application_id: int,
        reasons: Sequence[str],
        *,
        actor: Actor,
        now: datetime,
    ) -> Status:
        application, status = self._state(session, application_id)
        actor.require_role(Role.APPROVER, "terminate a merchant")
        if not reasons:
            raise InvalidApplicationError("reasons: say why", field="reasons")
        return self._transition(
            session, application, status, Action.TERMINATE, actor, reasons, now=now
        )

    # --- schedule and queue -------------------------------------------------------------

    def run_schedule(self, session: Session, *, now: datetime) -> ScheduleReport:
        """Suspend merchants whose approval expired; start re-reviews that are due.

        Idempotent: each step changes the state it selects on, so a second run (or a
        retried task) finds nothing left to do.
        """
        system = Actor.system()
        expired = list(
            session.scalars(
                select(Status)
                .where(
                    Status.expires_at <= now,
                    (Status.state == State.APPROVED.value)
                    | (
                        Status.state.in_([State.IN_REVIEW.value, State.NEEDS_INFORMATION.value])
                        & Status.renewal.is_(True)
                    ),
                )
                .order_by(Status.application_id)
            )
        )
        suspended = []
        for status in expired:
            expiry = format_time(status.expires_at) if status.expires_at else "?"
            self.suspend(
                session,
                status.application_id,
                [f"approval expired at {expiry} without a completed re-review"],
                actor=system,
                now=now,
            )
            suspended.append(status.application_id)
        due = list(
            session.scalars(
                select(Status)
                .where(Status.state == State.APPROVED.value, Status.next_review_at <= now)
                .order_by(Status.application_id)
            )
        )
        started = []
        for status in due:
            self.start_review(session, status.application_id, actor=system, now=now)
            started.append(status.application_id)
        return ScheduleReport(started, suspended)

    def queue(
        self, session: Session, *, now: datetime, states: Sequence[State] = OPEN_STATES
    ) -> list[QueueItem]:
        """Applications waiting for an officer, oldest first, with how long they wait."""
        rows = session.execute(
            select(Status, Application)
            .join(Application, Application.id == Status.application_id)
            .where(Status.state.in_([s.value for s in states]))
            .order_by(Status.since, Status.application_id)
        )
        return [
            QueueItem(
                application_id=status.application_id,
                merchant=status.merchant,
                legal_name=application.legal_name,
                state=State(status.state),
                since=status.since,
                waiting=now - status.since,
                submitted_at=status.submitted_at,
                risk_score=application.risk_score,
                risk_level=application.risk_level,
                recommendation=status.recommendation,
                recommended_by=status.recommended_by,
                review_due=status.next_review_at is not None and status.next_review_at <= now,
                expires_at=status.expires_at,
            )
            for status, application in rows
        ]


def latest_checks(session: Session, application: Application) -> list[CheckRecord]:
    return list(
        session.scalars(
            select(CheckRecord)
            .where(
                CheckRecord.application_id == application.id,
                CheckRecord.run == application.check_run,
            )
            .order_by(CheckRecord.id)
        )
    )


def history(session: Session, application_id: int) -> list[HistoryStep]:
    return list(
        session.scalars(
            select(HistoryStep)
            .where(HistoryStep.application_id == application_id)
            .order_by(HistoryStep.seq)
        )
    )


def questions(session: Session, application_id: int) -> list[Question]:
    return list(
        session.scalars(
            select(Question).where(Question.application_id == application_id).order_by(Question.id)
        )
    )


def documents(session: Session, application_id: int) -> list[Document]:
    return list(
        session.scalars(
            select(Document).where(Document.application_id == application_id).order_by(Document.id)
        )
    )

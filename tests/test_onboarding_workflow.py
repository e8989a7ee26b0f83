"""The workflow: every transition from every state, four eyes, party status, schedule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.applications import ApplicationChanges, ApplicationInput
from merchant_onboarding.errors import (
    FourEyesError,
    InvalidApplicationError,
    PermissionDeniedError,
    TransitionError,
)
from merchant_onboarding.models import HistoryStep, Status
from merchant_onboarding.officers import Actor
from merchant_onboarding.workflow import (
    RECOMMEND_TYPE,
    TRANSITION_TYPE,
    Action,
    Onboarding,
    Recommendation,
    State,
)
from provenance.ledger import Ledger, LedgerEntry, rebuild_projections
from provenance.parties import Party
from tests.ledger_support import NOW
from tests.onboarding_support import (
    ApplicationPayload,
    Officers,
    make_officers,
    make_service,
    onboarding_ledger,
    registered,
    submitted,
)


@pytest.fixture()
def ledger(session: Session) -> Ledger:
    ledger = onboarding_ledger()
    ledger.ensure_genesis(session, name="test", now=NOW)
    return ledger


@pytest.fixture()
def service(ledger: Ledger) -> Onboarding:
    return make_service(ledger)


@pytest.fixture()
def officers(session: Session) -> Officers:
    return make_officers(session)


def state_of(session: Session, app_id: int) -> str:
    row = session.get(Status, app_id)
    assert row is not None
    return row.state


def ledger_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def party_status(session: Session, merchant: str) -> str | None:
    party = session.get(Party, merchant)
    return party.status if party else None


class Driver:
    """Brings an application to a state and performs actions with the right officers."""

    def __init__(self, service: Onboarding, session: Session, officers: Officers) -> None:
        self.service, self.session, self.o = service, session, officers

    def draft(self) -> int:
        created = self.service.create(
            self.session, ApplicationInput.model_validate(ApplicationPayload()), now=NOW
        )
        return created.application.id

    def to(self, target: str) -> int:
        s, svc, o = self.session, self.service, self.o
        if target == "draft":
            return self.draft()
        payload = ApplicationPayload()
        registered(s, payload)
        app_id = submitted(svc, s, payload)
        if target == "submitted":
            return app_id
        svc.start_review(s, app_id, actor=o.reviewer, now=NOW)
        if target == "in_review":
            return app_id
        if target == "needs_information":
            svc.request_information(s, app_id, ["Send the licence"], actor=o.reviewer, now=NOW)
            return app_id
        if target == "rejected":
            self.act(app_id, Action.REJECT)
            return app_id
        self.act(app_id, Action.APPROVE)
        if target == "approved":
            return app_id
        if target in ("in_review_renewal", "needs_information_renewal"):
            svc.start_review(s, app_id, actor=o.reviewer, now=NOW)
            if target == "needs_information_renewal":
                svc.request_information(s, app_id, ["Still trading?"], actor=o.reviewer, now=NOW)
            return app_id
        svc.suspend(s, app_id, ["chargebacks"], actor=o.reviewer, now=NOW)
        if target == "suspended":
            return app_id
        assert target == "terminated"
        svc.terminate(s, app_id, ["fraud confirmed"], actor=o.approver, now=NOW)
        return app_id

    def act(self, app_id: int, action: Action) -> None:
        s, svc, o = self.session, self.service, self.o
        state = State(state_of(s, app_id))
        if action is Action.SUBMIT:
            svc.submit(s, app_id, actor=Actor.applicant(app_id), now=NOW)
        elif action is Action.START_REVIEW:
            svc.start_review(s, app_id, actor=o.reviewer, now=NOW)
        elif action is Action.REQUEST_INFORMATION:
            svc.request_information(s, app_id, ["Why?"], actor=o.reviewer, now=NOW)
        elif action is Action.ANSWER:
            from merchant_onboarding.workflow import questions

            answers = {q.id: "Because." for q in questions(s, app_id) if q.answer is None}
            svc.answer(s, app_id, answers, actor=Actor.applicant(app_id), now=NOW)
        elif action in (Action.APPROVE, Action.REJECT, Action.REINSTATE):
            wanted = {
                Action.APPROVE: Recommendation.APPROVE,
                Action.REJECT: Recommendation.REJECT,
                Action.REINSTATE: Recommendation.REINSTATE,
            }[action]
            if (state is State.IN_REVIEW and wanted is not Recommendation.REINSTATE) or (
                state is State.SUSPENDED and wanted is Recommendation.REINSTATE
            ):
                svc.recommend(s, app_id, wanted, ["checked"], actor=o.reviewer, now=NOW)
            decide: Callable[..., object] = {
                Action.APPROVE: svc.approve,
                Action.REJECT: svc.reject,
                Action.REINSTATE: svc.reinstate,
            }[action]
            decide(s, app_id, ["decided"], actor=o.approver, now=NOW)
        elif action is Action.SUSPEND:
            svc.suspend(s, app_id, ["alert 17"], actor=o.reviewer, now=NOW)
        elif action is Action.TERMINATE:
            svc.terminate(s, app_id, ["done"], actor=o.approver, now=NOW)
        else:
            raise AssertionError(action)


@pytest.fixture()
def driver(service: Onboarding, session: Session, officers: Officers) -> Driver:
    return Driver(service, session, officers)


START_STATES = [
    "draft",
    "submitted",
    "in_review",
    "needs_information",
    "approved",
    "rejected",
    "suspended",
    "terminated",
    "in_review_renewal",
    "needs_information_renewal",
]
VALID = {
    ("draft", Action.SUBMIT): "submitted",
    ("submitted", Action.START_REVIEW): "in_review",
    ("in_review", Action.REQUEST_INFORMATION): "needs_information",
    ("in_review", Action.APPROVE): "approved",
    ("in_review", Action.REJECT): "rejected",
    ("needs_information", Action.ANSWER): "in_review",
    ("approved", Action.START_REVIEW): "in_review",
    ("approved", Action.SUSPEND): "suspended",
    ("approved", Action.TERMINATE): "terminated",
    ("suspended", Action.REINSTATE): "approved",
    ("suspended", Action.TERMINATE): "terminated",
    ("in_review_renewal", Action.REQUEST_INFORMATION): "needs_information",
    ("in_review_renewal", Action.APPROVE): "approved",
    ("in_review_renewal", Action.REJECT): "rejected",
    ("in_review_renewal", Action.SUSPEND): "suspended",
    ("needs_information_renewal", Action.ANSWER): "in_review",
    ("needs_information_renewal", Action.SUSPEND): "suspended",
}
ACTIONS = [a for a in Action if a is not Action.CREATE]


@pytest.mark.parametrize(("start", "action"), sorted(VALID, key=str))
def test_valid_transition_moves_the_application_and_records_it(
    driver: Driver, session: Session, start: str, action: Action
) -> None:
    app_id = driver.to(start)
    before = ledger_size(session)
    driver.act(app_id, action)
    assert state_of(session, app_id) == VALID[(start, action)]
    last = session.scalars(
        select(HistoryStep)
        .where(HistoryStep.application_id == app_id)
        .order_by(HistoryStep.seq.desc())
    ).first()
    assert last is not None and last.action == action.value
    assert last.to_state == VALID[(start, action)]
    assert ledger_size(session) > before


@pytest.mark.parametrize(
    ("start", "action"),
    [(s, a) for s in START_STATES for a in ACTIONS if (s, a) not in VALID],
)
def test_invalid_transition_is_refused_and_writes_nothing(
    driver: Driver, session: Session, start: str, action: Action
) -> None:
    app_id = driver.to(start)
    state = state_of(session, app_id)
    before = ledger_size(session)
    with pytest.raises(TransitionError):
        driver.act(app_id, action)
    assert state_of(session, app_id) == state
    assert ledger_size(session) == before


def test_a_second_create_entry_for_one_application_is_refused(
    driver: Driver, session: Session, ledger: Ledger
) -> None:
    app_id = driver.draft()
    body = {
        "application": app_id,
        "merchant": "shop-x",
        "action": "create",
        "from_state": None,
        "to_state": "draft",
        "by": "applicant",
        "after": None,
        "reasons": [],
    }
    with pytest.raises(TransitionError):
        ledger.append_as_platform(
            session, [ledger.statement(TRANSITION_TYPE, body, now=NOW)], now=NOW
        )


# --- four eyes -------------------------------------------------------------------------


def test_the_same_officer_may_not_recommend_and_approve(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("in_review")
    service.recommend(
        session, app_id, Recommendation.APPROVE, ["fine"], actor=officers.both, now=NOW
    )
    before = ledger_size(session)
    with pytest.raises(FourEyesError) as caught:
        service.approve(session, app_id, ["fine"], actor=officers.both, now=NOW)
    assert caught.value.code == "four-eyes"
    assert state_of(session, app_id) == "in_review"
    assert ledger_size(session) == before


def test_approval_needs_a_recommendation(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("in_review")
    with pytest.raises(FourEyesError) as caught:
        service.approve(session, app_id, ["fine"], actor=officers.approver, now=NOW)
    assert caught.value.code == "recommendation-missing"


def test_an_approver_cannot_overrule_a_recommendation_to_reject_into_an_approval(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("in_review")
    service.recommend(
        session, app_id, Recommendation.REJECT, ["bad"], actor=officers.reviewer, now=NOW
    )
    with pytest.raises(FourEyesError) as caught:
        service.approve(session, app_id, ["fine"], actor=officers.approver, now=NOW)
    assert caught.value.code == "recommendation-mismatch"


def test_a_reviewer_without_the_approver_role_cannot_decide(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("in_review")
    service.recommend(
        session, app_id, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
    )
    with pytest.raises(PermissionDeniedError):
        service.approve(session, app_id, ["ok"], actor=officers.second_reviewer, now=NOW)


def test_an_approver_cannot_recommend(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("in_review")
    with pytest.raises(PermissionDeniedError):
        service.recommend(
            session, app_id, Recommendation.APPROVE, ["ok"], actor=officers.approver, now=NOW
        )


def test_an_officer_may_not_approve_their_own_amendment(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("in_review")
    service.update(
        session,
        app_id,
        ApplicationChanges(registered_address="北京市朝阳区建国路89号"),
        actor=officers.both,
        now=NOW,
    )
    service.recommend(
        session, app_id, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
    )
    with pytest.raises(FourEyesError) as caught:
        service.approve(session, app_id, ["ok"], actor=officers.both, now=NOW)
    assert caught.value.code == "own-change"
    service.approve(session, app_id, ["ok"], actor=officers.approver, now=NOW)
    assert state_of(session, app_id) == "approved"


def test_reinstatement_needs_a_second_officer(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("suspended")
    service.recommend(
        session, app_id, Recommendation.REINSTATE, ["cleared"], actor=officers.both, now=NOW
    )
    with pytest.raises(FourEyesError):
        service.reinstate(session, app_id, ["cleared"], actor=officers.both, now=NOW)
    assert state_of(session, app_id) == "suspended"


def test_the_ledger_refuses_a_one_person_approval_written_around_the_service(
    driver: Driver, service: Onboarding, session: Session, officers: Officers, ledger: Ledger
) -> None:
    app_id = driver.to("in_review")
    service.recommend(session, app_id, Recommendation.APPROVE, ["ok"], actor=officers.both, now=NOW)
    status = session.get(Status, app_id)
    assert status is not None
    body = {
        "application": app_id,
        "merchant": status.merchant,
        "action": "approve",
        "from_state": "in_review",
        "to_state": "approved",
        "by": officers.both.id,
        "after": status.state_seq,
        "reasons": ["forged"],
        "expires_at": "2027-11-26T12:00:00.000000Z",
        "next_review_at": "2027-05-26T12:00:00.000000Z",
    }
    with pytest.raises(FourEyesError):
        ledger.append_as_platform(
            session, [ledger.statement(TRANSITION_TYPE, body, now=NOW)], now=NOW
        )
    assert state_of(session, app_id) == "in_review"


def test_a_recommendation_is_only_possible_in_review_or_suspension(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("submitted")
    with pytest.raises(TransitionError):
        service.recommend(
            session, app_id, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
        )


def test_recommendations_are_ledger_entries(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("in_review")
    service.recommend(
        session, app_id, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
    )
    types = session.scalars(select(LedgerEntry.type).order_by(LedgerEntry.seq.desc())).first()
    assert types == RECOMMEND_TYPE


# --- the merchant party follows the decisions -------------------------------------------


def test_approval_registers_the_merchant_and_approves_it(driver: Driver, session: Session) -> None:
    app_id = driver.to("approved")
    status = session.get(Status, app_id)
    assert status is not None
    assert party_status(session, status.merchant) == "approved"
    assert status.expires_at == NOW + timedelta(days=365)
    assert status.next_review_at == NOW + timedelta(days=180)


@pytest.mark.parametrize(
    ("start", "action", "party"),
    [
        ("approved", Action.SUSPEND, "suspended"),
        ("suspended", Action.REINSTATE, "approved"),
        ("approved", Action.TERMINATE, "terminated"),
        ("suspended", Action.TERMINATE, "terminated"),
        ("in_review_renewal", Action.REJECT, "terminated"),
        ("in_review_renewal", Action.START_REVIEW, None),
    ],
)
def test_decisions_drive_the_party_status(
    driver: Driver, session: Session, start: str, action: Action, party: str | None
) -> None:
    app_id = driver.to(start)
    status = session.get(Status, app_id)
    assert status is not None
    if party is None:
        assert party_status(session, status.merchant) == "approved"
        return
    driver.act(app_id, action)
    assert party_status(session, status.merchant) == party


def test_a_re_review_keeps_the_merchant_approved(driver: Driver, session: Session) -> None:
    app_id = driver.to("in_review_renewal")
    status = session.get(Status, app_id)
    assert status is not None and status.renewal
    assert party_status(session, status.merchant) == "approved"


def test_a_first_rejection_leaves_no_party_behind(driver: Driver, session: Session) -> None:
    app_id = driver.to("rejected")
    status = session.get(Status, app_id)
    assert status is not None
    assert party_status(session, status.merchant) is None


def test_projections_rebuild_to_the_same_states(
    driver: Driver, session: Session, ledger: Ledger
) -> None:
    ids = [driver.to(s) for s in ("approved", "suspended", "needs_information", "rejected")]
    before = {i: state_of(session, i) for i in ids}
    rebuild_projections(session, ledger.catalog)
    session.expire_all()
    assert {i: state_of(session, i) for i in ids} == before


# --- schedule and queue ----------------------------------------------------------------


def test_re_reviews_come_due_and_the_schedule_is_idempotent(
    driver: Driver, service: Onboarding, session: Session
) -> None:
    app_id = driver.to("approved")
    later = NOW + timedelta(days=181)
    report = service.run_schedule(session, now=later)
    assert report.reviews_started == [app_id] and report.suspended_expired == []
    assert state_of(session, app_id) == "in_review"
    before = ledger_size(session)
    again = service.run_schedule(session, now=later)
    assert again.reviews_started == [] and again.suspended_expired == []
    assert ledger_size(session) == before


def test_an_expired_approval_suspends_the_merchant_once(
    driver: Driver, service: Onboarding, session: Session
) -> None:
    app_id = driver.to("in_review_renewal")
    status = session.get(Status, app_id)
    assert status is not None
    later = NOW + timedelta(days=366)
    assert service.run_schedule(session, now=later).suspended_expired == [app_id]
    assert state_of(session, app_id) == "suspended"
    assert party_status(session, status.merchant) == "suspended"
    assert service.run_schedule(session, now=later).suspended_expired == []


def test_the_queue_shows_how_long_each_application_waits(
    driver: Driver, service: Onboarding, session: Session
) -> None:
    first = driver.to("submitted")
    second = driver.to("needs_information")
    driver.to("approved")
    items = service.queue(session, now=NOW + timedelta(hours=5))
    assert [i.application_id for i in items] == [first, second]
    assert all(i.waiting == timedelta(hours=5) for i in items)
    assert items[0].state is State.SUBMITTED and items[0].risk_score is not None


# --- applicant rules -------------------------------------------------------------------


def test_submitting_an_incomplete_draft_names_the_missing_field(
    service: Onboarding, session: Session
) -> None:
    payload = ApplicationPayload()
    del payload["bank_account"]
    created = service.create(session, ApplicationInput.model_validate(payload), now=NOW)
    app_id = created.application.id
    with pytest.raises(InvalidApplicationError) as caught:
        service.submit(session, app_id, actor=Actor.applicant(app_id), now=NOW)
    assert caught.value.field == "bank_account"
    assert state_of(session, app_id) == "draft"


def test_an_applicant_cannot_act_on_another_application(
    driver: Driver, service: Onboarding, session: Session
) -> None:
    mine, theirs = driver.draft(), driver.draft()
    with pytest.raises(PermissionDeniedError):
        service.submit(session, theirs, actor=Actor.applicant(mine), now=NOW)


def test_answering_some_questions_keeps_the_application_waiting(
    driver: Driver, service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = driver.to("in_review")
    service.request_information(session, app_id, ["A?", "B?"], actor=officers.reviewer, now=NOW)
    from merchant_onboarding.workflow import questions

    first = questions(session, app_id)[0]
    service.answer(session, app_id, {first.id: "A."}, actor=Actor.applicant(app_id), now=NOW)
    assert state_of(session, app_id) == "needs_information"

"""Screening in the onboarding checks, and officers clearing or confirming its hits."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.applications import get_application
from merchant_onboarding.checks import CheckName
from merchant_onboarding.errors import (
    FourEyesError,
    HitNotFoundError,
    InvalidApplicationError,
    PermissionDeniedError,
    ScreeningHoldError,
    TransitionError,
)
from merchant_onboarding.hits import HitOutcome, HitStatus, hits_of, screening_check
from merchant_onboarding.models import CheckRecord, HistoryStep, HitDecision, Status
from merchant_onboarding.officers import Actor
from merchant_onboarding.protect import PersonalData
from merchant_onboarding.registries import OfflineRegistry, Registries
from merchant_onboarding.workflow import (
    HIT_DECISION_TYPE,
    TRANSITION_TYPE,
    Onboarding,
    Recommendation,
    ReviewPolicy,
    latest_checks,
)
from provenance.entries import format_time
from provenance.ledger import Ledger, LedgerEntry, rebuild_projections
from tests.keys import PERSONAL_DATA_KEY
from tests.ledger_support import NOW
from tests.onboarding_support import (
    ApplicationPayload,
    Officers,
    id_number,
    make_officers,
    onboarding_ledger,
    registered,
    submitted,
)
from tests.screening_support import EXTRACT, import_csv

WATCHLIST = """id,name,kind,aliases,countries,note
E1,北京黑石贸易有限公司,entity,Beijing Heishi Trading Co Ltd,cn,
P1,王磊,person,Wang Lei,cn,
P2,John Smith,person,,us,
"""

LISTED = {
    "legal_name": "北京 黑石贸易（集团）有限公司",
    "legal_rep_name": "王 磊",
    "owners": [
        {"name": "王 磊", "share": "60.00", "id_number": id_number(2)},
        {"name": "Jon Smith", "share": "20.00"},
        {"name": "李娜", "share": "20.00"},
    ],
}


@pytest.fixture()
def ledger(session: Session) -> Ledger:
    ledger = onboarding_ledger()
    ledger.ensure_genesis(session, name="test", now=NOW)
    return ledger


@pytest.fixture()
def service(ledger: Ledger) -> Onboarding:
    return Onboarding(
        ledger,
        PersonalData(PERSONAL_DATA_KEY),
        lambda s: Registries(OfflineRegistry(s), OfflineRegistry(s)),
        policy=ReviewPolicy(),
        screening=screening_check(),
    )


@pytest.fixture()
def officers(session: Session) -> Officers:
    return make_officers(session)


def apply(service: Onboarding, session: Session, **fields: Any) -> int:
    payload = ApplicationPayload(**fields)
    registered(session, payload)
    return submitted(service, session, payload)


def screening_results(session: Session, app_id: int) -> list[CheckRecord]:
    checks = latest_checks(session, get_application(session, app_id))
    return [c for c in checks if c.name == CheckName.SCREENING.value]


def by_roles(results: list[CheckRecord]) -> dict[str, CheckRecord]:
    return {"+".join(r.evidence["party"]["roles"]): r for r in results}


def ledger_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def decisions(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(HitDecision)) or 0


# --- the check ------------------------------------------------------------------------


def test_without_a_watch_list_nobody_passes_as_screened(
    service: Onboarding, session: Session
) -> None:
    app_id = apply(service, session)
    (result,) = screening_results(session, app_id)
    assert (result.result, result.summary) == (
        "warn",
        "not screened: no watch list has been imported",
    )
    assert result.evidence["screened"] is False
    assert result.source == "watch lists (none imported)"
    assert hits_of(session, app_id) == []
    risk = {c["rule"]: c["points"] for c in get_application(session, app_id).risk or []}
    assert risk["screening"] == 20


def test_entity_representative_and_owners_are_each_screened_with_evidence(
    service: Onboarding, session: Session
) -> None:
    import_csv(session, WATCHLIST, name="demo-sanctions")
    app_id = apply(service, session, **LISTED)
    results = by_roles(screening_results(session, app_id))
    assert set(results) == {"entity", "legal_rep+owner", "owner"}
    entity = results["entity"]
    assert entity.result == "fail"
    (hit,) = entity.evidence["hits"]
    assert hit["watchlist"] == "demo-sanctions" and hit["entry_id"] == "E1"
    assert hit["source"] == "tests" and hit["extract_date"] == EXTRACT.isoformat()
    assert hit["score"] == 100.0 and hit["status"] == "open"
    assert {"width", "whitespace", "suffix"} <= set(hit["normalisations"])
    assert entity.extract_date == EXTRACT
    assert entity.source.startswith("watch lists: demo-sanctions (tests, extract ")
    rep = results["legal_rep+owner"]
    assert rep.result == "fail" and rep.evidence["hits"][0]["entry_id"] == "P1"
    owners = [
        r for r in screening_results(session, app_id) if r.evidence["party"]["roles"] == ["owner"]
    ]
    by_name = {r.evidence["party"]["name"]: r for r in owners}
    weak = by_name["Jon Smith"]
    assert weak.result == "warn" and 90 <= weak.evidence["hits"][0]["score"] < 95
    assert by_name["李娜"].result == "pass" and by_name["李娜"].evidence["hits"] == []
    stored = {(h.hit.party_name, h.hit.entry_id): h for h in hits_of(session, app_id)}
    assert set(stored) == {
        ("北京 黑石贸易（集团）有限公司", "E1"),
        ("王 磊", "P1"),
        ("Jon Smith", "P2"),
    }
    assert all(h.status is HitStatus.OPEN for h in stored.values())
    assert stored[("王 磊", "P1")].hit.party_roles == "legal_rep,owner"


def test_unrelated_names_pass_with_the_lists_named(service: Onboarding, session: Session) -> None:
    import_csv(session, WATCHLIST, name="demo-sanctions")
    app_id = apply(service, session)
    results = screening_results(session, app_id)
    assert {r.result for r in results} == {"pass"}
    assert results[0].evidence["watchlists"][0]["name"] == "demo-sanctions"
    assert hits_of(session, app_id) == []


def test_a_rerun_keeps_hits_and_drops_open_ones_no_longer_found(
    service: Onboarding, session: Session, officers: Officers
) -> None:
    import_csv(session, WATCHLIST, name="demo-sanctions")
    app_id = apply(service, session, **LISTED)
    first = {h.hit.entry_id: h.hit.id for h in hits_of(session, app_id)}
    service.start_review(session, app_id, actor=officers.reviewer, now=NOW)
    service.decide_hit(
        session,
        app_id,
        first["P2"],
        HitOutcome.CLEARED,
        ["US citizen, other birth date"],
        actor=officers.reviewer,
        now=NOW,
    )
    import_csv(
        session, WATCHLIST.replace("P1,王磊,person,Wang Lei,cn,\n", ""), name="demo-sanctions"
    )
    service.run_checks(session, app_id, now=NOW)
    after = {h.hit.entry_id: h for h in hits_of(session, app_id)}
    assert set(after) == {"E1", "P2"}
    assert after["E1"].hit.id == first["E1"] and after["E1"].hit.last_run == 2
    assert after["P2"].status is HitStatus.CLEARED
    weak = [
        r for r in screening_results(session, app_id) if r.evidence["party"]["name"] == "Jon Smith"
    ]
    assert weak[0].result == "pass" and weak[0].evidence["hits"][0]["status"] == "cleared"


# --- officers' decisions -----------------------------------------------------------------


@pytest.fixture()
def in_review(service: Onboarding, session: Session, officers: Officers) -> int:
    import_csv(session, WATCHLIST, name="demo-sanctions")
    app_id = apply(service, session, **LISTED)
    service.start_review(session, app_id, actor=officers.reviewer, now=NOW)
    return app_id


def hit_ids(session: Session, app_id: int) -> dict[str, int]:
    return {h.hit.entry_id: h.hit.id for h in hits_of(session, app_id)}


def clear_all(service: Onboarding, session: Session, app_id: int, actor: Actor) -> None:
    for hit_id in hit_ids(session, app_id).values():
        service.decide_hit(
            session, app_id, hit_id, HitOutcome.CLEARED, ["different person"], actor=actor, now=NOW
        )


def test_clearing_a_hit_is_a_ledger_entry_with_reasons(
    service: Onboarding, session: Session, officers: Officers, in_review: int
) -> None:
    hit_id = hit_ids(session, in_review)["P2"]
    decision = service.decide_hit(
        session,
        in_review,
        hit_id,
        HitOutcome.CLEARED,
        ["born 1990, listed one 1961"],
        actor=officers.reviewer,
        now=NOW,
    )
    assert (decision.decision, decision.by, decision.reasons) == (
        "cleared",
        "li.reviewer",
        ["born 1990, listed one 1961"],
    )
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.seq == decision.seq)).one()
    assert entry.type == HIT_DECISION_TYPE
    step = session.get(HistoryStep, (in_review, decision.seq))
    assert step is not None and step.action == "hit_cleared"
    statuses = {h.hit.entry_id: h.status for h in hits_of(session, in_review)}
    assert statuses == {"E1": HitStatus.OPEN, "P1": HitStatus.OPEN, "P2": HitStatus.CLEARED}


def test_an_open_hit_blocks_approval_and_nothing_is_written(
    service: Onboarding, session: Session, officers: Officers, in_review: int
) -> None:
    service.recommend(
        session, in_review, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
    )
    before = ledger_size(session)
    with pytest.raises(ScreeningHoldError) as caught:
        service.approve(session, in_review, ["ok"], actor=officers.approver, now=NOW)
    assert caught.value.code == "screening-hit-open"
    assert "3 screening hit(s) still open" in caught.value.message
    assert ledger_size(session) == before


def test_with_every_hit_cleared_another_officer_approves(
    service: Onboarding, session: Session, officers: Officers, in_review: int
) -> None:
    clear_all(service, session, in_review, officers.reviewer)
    service.recommend(
        session, in_review, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
    )
    status = service.approve(session, in_review, ["ok"], actor=officers.approver, now=NOW)
    assert status.state == "approved"


def test_the_officer_who_cleared_a_hit_may_not_approve(
    service: Onboarding, session: Session, officers: Officers, in_review: int
) -> None:
    clear_all(service, session, in_review, officers.both)
    service.recommend(
        session, in_review, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
    )
    before = ledger_size(session)
    with pytest.raises(FourEyesError) as caught:
        service.approve(session, in_review, ["ok"], actor=officers.both, now=NOW)
    assert caught.value.code == "own-clearance"
    assert ledger_size(session) == before
    assert service.approve(session, in_review, ["ok"], actor=officers.approver, now=NOW).state == (
        "approved"
    )


def test_the_ledger_refuses_an_approval_by_the_clearing_officer_written_directly(
    service: Onboarding, ledger: Ledger, session: Session, officers: Officers, in_review: int
) -> None:
    clear_all(service, session, in_review, officers.both)
    status = service.recommend(
        session, in_review, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
    )
    body = {
        "application": in_review,
        "merchant": status.merchant,
        "action": "approve",
        "from_state": "in_review",
        "to_state": "approved",
        "by": officers.both.id,
        "after": status.state_seq,
        "reasons": ["ok"],
        "expires_at": format_time(NOW),
        "next_review_at": format_time(NOW),
    }
    with pytest.raises(FourEyesError) as caught:
        ledger.append_as_platform(
            session, [ledger.statement(TRANSITION_TYPE, body, now=NOW)], now=NOW
        )
    assert caught.value.code == "own-clearance"


def test_a_confirmed_hit_blocks_approval_and_the_application_is_rejected(
    service: Onboarding, session: Session, officers: Officers, in_review: int
) -> None:
    ids = hit_ids(session, in_review)
    service.decide_hit(
        session,
        in_review,
        ids["P1"],
        HitOutcome.CONFIRMED,
        ["same ID number as the listing"],
        actor=officers.reviewer,
        now=NOW,
    )
    for entry in ("E1", "P2"):
        service.decide_hit(
            session,
            in_review,
            ids[entry],
            HitOutcome.CLEARED,
            ["other"],
            actor=officers.reviewer,
            now=NOW,
        )
    service.recommend(
        session, in_review, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
    )
    with pytest.raises(ScreeningHoldError) as caught:
        service.approve(session, in_review, ["ok"], actor=officers.approver, now=NOW)
    assert caught.value.code == "screening-hit-confirmed"
    assert service.reject(
        session, in_review, ["listed"], actor=officers.approver, now=NOW
    ).state == ("rejected")
    service.run_checks(session, in_review, now=NOW)
    rep = by_roles(screening_results(session, in_review))["legal_rep+owner"]
    assert rep.result == "fail" and rep.summary.startswith(
        "legal representative and beneficial owner: confirmed match"
    )


def test_decisions_are_rebuilt_from_the_ledger(
    service: Onboarding, ledger: Ledger, session: Session, officers: Officers, in_review: int
) -> None:
    clear_all(service, session, in_review, officers.reviewer)
    before = {
        h.hit.id: (h.status, h.decision.by if h.decision else None)
        for h in hits_of(session, in_review)
    }
    rebuild_projections(session, ledger.catalog)
    session.expire_all()
    after = {
        h.hit.id: (h.status, h.decision.by if h.decision else None)
        for h in hits_of(session, in_review)
    }
    assert after == before and decisions(session) == 3


@pytest.mark.parametrize(
    ("who", "hit", "reasons", "error", "code"),
    [
        ("approver", "P1", ["x"], PermissionDeniedError, "forbidden"),
        ("applicant", "P1", ["x"], PermissionDeniedError, "forbidden"),
        ("reviewer", "missing", ["x"], HitNotFoundError, "hit-not-found"),
        ("reviewer", "P1", [], InvalidApplicationError, "invalid-application"),
    ],
)
def test_a_bad_decision_is_refused_and_nothing_written(
    service: Onboarding,
    session: Session,
    officers: Officers,
    in_review: int,
    who: str,
    hit: str,
    reasons: list[str],
    error: type[Exception],
    code: str,
) -> None:
    actor = {
        "approver": officers.approver,
        "applicant": Actor.applicant(in_review),
        "reviewer": officers.reviewer,
    }[who]
    hit_id = hit_ids(session, in_review).get(hit, 10**9)
    before = ledger_size(session)
    with pytest.raises(error) as caught:
        service.decide_hit(
            session, in_review, hit_id, HitOutcome.CLEARED, reasons, actor=actor, now=NOW
        )
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert ledger_size(session) == before and decisions(session) == 0
    if hit == "missing":
        assert caught.value.field == "hit"  # type: ignore[attr-defined]
    if not reasons:
        assert caught.value.field == "reasons"  # type: ignore[attr-defined]


def test_a_hit_of_another_application_is_not_found(
    service: Onboarding, session: Session, officers: Officers, in_review: int
) -> None:
    other = apply(service, session)
    service.start_review(session, other, actor=officers.reviewer, now=NOW)
    with pytest.raises(HitNotFoundError):
        service.decide_hit(
            session,
            other,
            hit_ids(session, in_review)["P1"],
            HitOutcome.CLEARED,
            ["x"],
            actor=officers.reviewer,
            now=NOW,
        )
    assert decisions(session) == 0


def test_a_hit_is_decided_once(
    service: Onboarding, session: Session, officers: Officers, in_review: int
) -> None:
    hit_id = hit_ids(session, in_review)["P1"]
    service.decide_hit(
        session, in_review, hit_id, HitOutcome.CLEARED, ["x"], actor=officers.reviewer, now=NOW
    )
    before = ledger_size(session)
    with pytest.raises(TransitionError) as caught:
        service.decide_hit(
            session,
            in_review,
            hit_id,
            HitOutcome.CONFIRMED,
            ["y"],
            actor=officers.second_reviewer,
            now=NOW,
        )
    assert caught.value.code == "hit-decided"
    assert ledger_size(session) == before


def test_hits_are_not_decided_before_a_review_starts(
    service: Onboarding, session: Session, officers: Officers
) -> None:
    import_csv(session, WATCHLIST, name="demo-sanctions")
    app_id = apply(service, session, **LISTED)
    with pytest.raises(TransitionError) as caught:
        service.decide_hit(
            session,
            app_id,
            hit_ids(session, app_id)["P1"],
            HitOutcome.CLEARED,
            ["x"],
            actor=officers.reviewer,
            now=NOW,
        )
    assert caught.value.code == "invalid-transition"
    assert decisions(session) == 0


def test_reinstatement_waits_for_hits_found_while_suspended(
    service: Onboarding, session: Session, officers: Officers
) -> None:
    app_id = apply(service, session, **LISTED)
    service.start_review(session, app_id, actor=officers.reviewer, now=NOW)
    service.recommend(
        session, app_id, Recommendation.APPROVE, ["ok"], actor=officers.reviewer, now=NOW
    )
    service.approve(session, app_id, ["ok"], actor=officers.approver, now=NOW)
    service.suspend(session, app_id, ["alert"], actor=officers.reviewer, now=NOW)
    import_csv(session, WATCHLIST, name="demo-sanctions")
    service.run_checks(session, app_id, now=NOW, actor=officers.reviewer)
    service.recommend(
        session, app_id, Recommendation.REINSTATE, ["ok"], actor=officers.reviewer, now=NOW
    )
    with pytest.raises(ScreeningHoldError):
        service.reinstate(session, app_id, ["ok"], actor=officers.approver, now=NOW)
    clear_all(service, session, app_id, officers.reviewer)
    assert service.reinstate(session, app_id, ["ok"], actor=officers.approver, now=NOW).state == (
        "approved"
    )


def test_the_ledger_refuses_a_hit_decision_not_by_an_officer(
    ledger: Ledger, session: Session, in_review: int
) -> None:
    hit = hits_of(session, in_review)[0].hit
    status = session.get(Status, in_review)
    assert status is not None
    body = {
        "application": in_review,
        "merchant": status.merchant,
        "hit": hit.id,
        "watchlist": hit.watchlist,
        "entry_id": hit.entry_id,
        "decision": "cleared",
        "by": "applicant",
        "after": status.state_seq,
        "reasons": ["not me"],
    }
    with pytest.raises(FourEyesError):
        ledger.append_as_platform(
            session, [ledger.statement(HIT_DECISION_TYPE, body, now=NOW)], now=NOW
        )
    assert decisions(session) == 0

"""Alerts: opened once per pattern across runs, each opening and decision a ledger entry,
bad decisions refused with nothing written; the API and the suspension proposal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import networkx as nx
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.models import Status
from merchant_onboarding.workflow import State, onboarding_catalog
from provenance.analysis import Typology
from provenance.analysis.alerts import (
    AlertInputError,
    AlertStatus,
    AlertTransitionError,
    alert_key,
    analysis_catalog,
    decide,
    list_alerts,
    notes_of,
    record_findings,
    run_ledger_analysis,
)
from provenance.analysis.ledger_detectors import LedgerFinding, analyze_ledger, evidence_digest
from provenance.analysis.ledger_graph import LedgerGraph, read_ledger
from provenance.analysis.models import Alert, AnalysisState
from provenance.core import core_catalog
from provenance.ledger import Ledger, LedgerEntry, PlatformSigner
from tests.codes_support import PARTNER, SHOP, Chain, build_chain, person, sale_body
from tests.ledger_support import NOW, PLATFORM_KEY
from tests.onboarding_support import make_officers, make_service
from tests.test_onboarding_workflow import Driver
from webapp.analysis import ProposalOutcome, analyse_ledger, propose_suspension

LATER = NOW + timedelta(minutes=1)


@pytest.fixture()
def ledger(session: Session) -> Ledger:
    catalog = core_catalog().merge(onboarding_catalog()).merge(analysis_catalog())
    ledger = Ledger(catalog, PlatformSigner(PLATFORM_KEY))
    ledger.ensure_genesis(session, name="test", now=NOW)
    return ledger


def entries(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def stolen_sales(session: Session, chain: Chain) -> None:
    """Codes 0-4 sold by the shop to one buyer with a card, later reported stolen."""
    for i in range(5):
        body = sale_body(i, instrument="stolen-card") | {"buyer": person("buyer", "mule")}
        chain.append(session, SHOP, "code.sale", body)
    report = {
        "kind": "instrument",
        "pseudonym": person("instrument", "stolen-card"),
        "reported_at": "2026-11-26T11:00:00.000000Z",
        "reason": "cardholder reported the card stolen",
    }
    chain.append(session, PARTNER, "payment.stolen", report)


def finding(subject: str, score: float = 0.9, kind: str = "party") -> LedgerFinding:
    evidence = nx.MultiDiGraph()
    evidence.add_edge(f"{kind}:{subject}", "buyer:b", kind="sale", amount=100.0, seq=7)
    return LedgerFinding(
        Typology.STOLEN_PAYMENT_TAINT, kind, subject, score, "tainted", evidence, frozenset()
    )


def test_a_run_opens_alerts_with_evidence_and_a_ledger_entry_each(
    session: Session, ledger: Ledger
) -> None:
    stolen_sales(session, build_chain(session, ledger))
    run = run_ledger_analysis(session, ledger, now=NOW)
    alerts = list_alerts(session, typology="stolen-payment-taint")
    subjects = {(a.subject_kind, a.subject) for a in alerts}
    assert ("instrument", person("instrument", "stolen-card")) in subjects
    assert ("buyer", person("buyer", "mule")) in subjects
    assert ("party", SHOP) in subjects
    assert len(run.opened) == len(alerts)
    opened = session.scalars(
        select(LedgerEntry).where(LedgerEntry.seq.in_([a.opened_seq for a in alerts]))
    ).all()
    assert len(opened) == len(alerts)
    shop = next(a for a in alerts if a.subject == SHOP)
    assert shop.severity == "high" and shop.status == "new"
    assert {n["kind"] for n in shop.evidence["nodes"]} >= {"code", "party", "buyer", "instrument"}


def test_a_second_run_reads_only_new_entries_and_opens_nothing_twice(
    session: Session, ledger: Ledger
) -> None:
    chain = build_chain(session, ledger)
    stolen_sales(session, chain)
    first = run_ledger_analysis(session, ledger, now=NOW)
    size = entries(session)
    second = run_ledger_analysis(session, ledger, now=LATER)
    assert second.entries_read == len(first.opened)
    assert second.opened == [] and sorted(second.refreshed) == sorted(first.opened)
    assert entries(session) == size
    state = session.get(AnalysisState, "ledger")
    assert state is not None and state.last_seq == size - 1
    assert all(a.runs == 2 for a in list_alerts(session))


@pytest.mark.parametrize(
    "damage",
    [lambda _: b"not a snapshot", lambda _: b"", lambda kept: kept[: len(kept) // 2]],
    ids=["foreign", "empty", "truncated"],
)
def test_a_stored_graph_that_cannot_be_read_is_rebuilt_from_the_ledger(
    session: Session, ledger: Ledger, damage: Callable[[bytes], bytes]
) -> None:
    chain = build_chain(session, ledger)
    stolen_sales(session, chain)
    first = run_ledger_analysis(session, ledger, now=NOW)
    state = session.get(AnalysisState, "ledger")
    assert state is not None
    state.snapshot = damage(state.snapshot)  # another version's graph, or a damaged one
    session.flush()
    size = entries(session)
    again = run_ledger_analysis(session, ledger, now=LATER)
    assert again.entries_read == size  # the whole ledger, read again
    assert again.opened == [] and sorted(again.refreshed) == sorted(first.opened)
    assert entries(session) == size  # no alert opened twice
    assert all(a.runs == 2 for a in list_alerts(session))
    session.refresh(state)
    assert LedgerGraph.from_bytes(state.snapshot).last_seq == size - 1


def test_the_same_subject_found_again_keeps_one_alert(session: Session, ledger: Ledger) -> None:
    first = record_findings(session, ledger, [finding("shop-x")], now=NOW)
    again = record_findings(session, ledger, [finding("shop-x", 0.95)], now=LATER)
    assert again.opened == [] and again.refreshed == first.opened
    [alert] = list_alerts(session)
    assert alert.key == alert_key(Typology.STOLEN_PAYMENT_TAINT, "party", "shop-x")
    assert alert.score == pytest.approx(0.95) and alert.runs == 2


def test_an_alert_whose_evidence_is_known_unchanged_is_not_drawn_again(
    session: Session, ledger: Ledger
) -> None:
    first = finding("shop-1")
    record_findings(session, ledger, [first], now=NOW)
    (alert,) = list_alerts(session)
    kept = dict(alert.evidence)

    def undrawable() -> nx.MultiDiGraph:
        raise AssertionError("the evidence was drawn")

    same = LedgerFinding(
        Typology.STOLEN_PAYMENT_TAINT,
        "party",
        "shop-1",
        0.8,
        "tainted again",
        undrawable,
        evidence_sha256=alert.evidence_sha256,
    )
    record_findings(session, ledger, [same], now=LATER)
    assert alert.evidence == kept and alert.runs == 2 and alert.score == 0.8
    moved = finding("shop-1", score=0.7)
    moved.evidence.add_edge("party:shop-1", "party:shop-2", kind="holds")
    record_findings(session, ledger, [moved], now=LATER)
    assert alert.evidence == moved.evidence_json() != kept
    assert alert.evidence_sha256 == evidence_digest(alert.evidence) == moved.evidence_sha256


def test_after_new_entries_every_alert_holds_a_full_runs_evidence(
    session: Session, ledger: Ledger
) -> None:
    chain = build_chain(session, ledger)
    stolen_sales(session, chain)
    run_ledger_analysis(session, ledger, now=NOW)
    body = sale_body(5, instrument="stolen-card") | {"buyer": person("buyer", "mule")}
    chain.append(session, SHOP, "code.sale", body)
    run_ledger_analysis(session, ledger, now=LATER)
    graph, _ = read_ledger(session)
    fresh: dict[str, LedgerFinding] = {}
    for found in analyze_ledger(graph):
        key = alert_key(found.typology, found.subject_kind, found.subject)
        if key not in fresh or found.score > fresh[key].score:
            fresh[key] = found
    alerts = list_alerts(session)
    assert {a.key for a in alerts} == set(fresh)
    for alert in alerts:
        assert alert.evidence == fresh[alert.key].evidence_json()
        assert alert.evidence_sha256 == fresh[alert.key].evidence_sha256
        assert alert.runs == 2


def test_triage_then_escalate_records_each_decision(session: Session, ledger: Ledger) -> None:
    record_findings(session, ledger, [finding("shop-x")], now=NOW)
    [alert] = list_alerts(session)
    before = entries(session)
    decide(
        session, ledger, alert.id, "triaged", officer="li.reviewer", assignee="wang.approver",
        note="looking at the buyer's other purchases", now=LATER,
    )  # fmt: skip
    decide(session, ledger, alert.id, "escalated", officer="wang.approver", now=LATER)
    assert entries(session) == before + 2
    assert alert.status == "escalated" and alert.assignee == "wang.approver"
    [note] = notes_of(session, alert)
    assert note.author == "li.reviewer" and note.seq == alert.last_seq - 1


@pytest.mark.parametrize(
    ("status", "officer", "assignee", "note", "field"),
    [
        ("closed", "li.reviewer", None, None, "status"),
        ("new", "li.reviewer", None, None, None),
        ("triaged", "Li Reviewer", None, None, "officer"),
        ("triaged", "li.reviewer", "x", None, "assignee"),
        ("triaged", "li.reviewer", None, "   ", "note"),
        ("triaged", "li.reviewer", None, "x" * 2001, "note"),
    ],
)
def test_a_bad_decision_is_refused_and_nothing_is_written(
    session: Session,
    ledger: Ledger,
    status: str,
    officer: str,
    assignee: str | None,
    note: str | None,
    field: str | None,
) -> None:
    record_findings(session, ledger, [finding("shop-x")], now=NOW)
    [alert] = list_alerts(session)
    before = entries(session)
    with pytest.raises((AlertInputError, AlertTransitionError)) as caught:
        decide(
            session, ledger, alert.id, status, officer=officer, assignee=assignee, note=note,
            now=LATER,
        )  # fmt: skip
    assert getattr(caught.value, "field", None) == field
    assert entries(session) == before
    assert alert.status == "new" and notes_of(session, alert) == []


def test_a_dismissed_alert_cannot_be_escalated_nor_reopened_by_a_run(
    session: Session, ledger: Ledger
) -> None:
    record_findings(session, ledger, [finding("shop-x")], now=NOW)
    [alert] = list_alerts(session)
    decide(session, ledger, alert.id, "dismissed", officer="li.reviewer", note="refund", now=NOW)
    with pytest.raises(AlertTransitionError) as caught:
        decide(session, ledger, alert.id, "escalated", officer="li.reviewer", now=NOW)
    assert caught.value.code == "alert-transition"
    record_findings(session, ledger, [finding("shop-x")], now=LATER)
    assert alert.status == AlertStatus.DISMISSED.value and alert.runs == 2


def test_listing_refuses_an_unknown_status_or_typology(session: Session) -> None:
    with pytest.raises(AlertInputError, match="status"):
        list_alerts(session, status="open")
    with pytest.raises(AlertInputError, match="typology"):
        list_alerts(session, typology="smurfing")


# --- suspension proposal --------------------------------------------------------------------


def test_a_high_alert_on_an_approved_merchant_puts_it_in_the_officers_queue(
    session: Session, ledger: Ledger
) -> None:
    service = make_service(ledger)
    driver = Driver(service, session, make_officers(session))
    app_id = driver.to("approved")
    status = session.get(Status, app_id)
    assert status is not None
    merchant = status.merchant
    record = record_findings(session, ledger, [finding(merchant, 0.95)], now=NOW)
    alert = session.scalars(select(Alert).where(Alert.key == record.opened[0])).one()
    proposal = propose_suspension(session, service, alert, now=LATER)
    assert proposal.outcome is ProposalOutcome.REVIEW_STARTED
    assert proposal.application_id == app_id
    queue = service.queue(session, now=LATER)
    assert [(i.application_id, i.state) for i in queue] == [(app_id, State.IN_REVIEW)]
    again = propose_suspension(session, service, alert, now=LATER)
    assert again.outcome is ProposalOutcome.ALREADY_IN_QUEUE


def test_a_low_alert_or_one_about_a_buyer_proposes_nothing(
    session: Session, ledger: Ledger
) -> None:
    service = make_service(ledger)
    record_findings(
        session, ledger, [finding("shop-x", 0.5), finding("b" * 32, kind="buyer")], now=NOW
    )
    done = analyse_ledger(session, ledger, service, now=LATER)
    assert done.proposals == []
    for alert in list_alerts(session):
        outcome = propose_suspension(session, service, alert, now=LATER).outcome
        assert outcome is ProposalOutcome.NOT_A_MERCHANT_ALERT


# --- the API ---------------------------------------------------------------------------------


def _token(client: FlaskClient, session: Session) -> str:
    from tests.personal_keys_support import personal_key
    from webapp.accounts.roles import Role

    return personal_key(client.application, session, "li.analyst", Role.ANALYST)


def _api_alert(client: FlaskClient, session: Session) -> tuple[int, dict[str, str]]:
    from webapp.runtime import current_runtime

    with client.application.app_context():
        ledger = current_runtime().ledger
        ledger.ensure_genesis(session, name="test", now=NOW)
        record_findings(session, ledger, [finding("shop-x")], now=NOW)
    [alert] = list_alerts(session)
    return alert.id, {"Authorization": f"Bearer {_token(client, session)}"}


def test_api_lists_shows_and_decides(client: FlaskClient, session: Session) -> None:
    alert_id, auth = _api_alert(client, session)
    listed = client.get("/api/v1/alerts?status=new", headers=auth)
    assert listed.status_code == 200
    assert [a["id"] for a in listed.get_json()["alerts"]] == [alert_id]
    shown = client.get(f"/api/v1/alerts/{alert_id}", headers=auth).get_json()
    assert shown["evidence"]["edges"][0]["kind"] == "sale"
    decided = client.post(
        f"/api/v1/alerts/{alert_id}/decision",
        json={"status": "triaged", "note": "checking"},
        headers=auth,
    )
    assert decided.status_code == 200, decided.get_json()
    body: dict[str, Any] = decided.get_json()
    assert body["status"] == "triaged" and body["notes"][0]["author"] == "li.analyst"


def test_api_refuses_without_a_token_and_bad_decisions(
    client: FlaskClient, session: Session
) -> None:
    alert_id, auth = _api_alert(client, session)
    assert client.get("/api/v1/alerts").status_code == 401
    bad = client.post(f"/api/v1/alerts/{alert_id}/decision", json={"status": "new"}, headers=auth)
    assert bad.status_code == 422 and bad.get_json()["code"] == "invalid-input"
    extra = client.post(
        f"/api/v1/alerts/{alert_id}/decision",
        json={"status": "triaged", "officer": "someone.else"},
        headers=auth,
    )
    assert extra.status_code == 422
    missing = client.get("/api/v1/alerts/999999", headers=auth)
    assert missing.status_code == 404 and missing.get_json()["code"] == "alert-not-found"
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=auth).get_json()["status"] == "new"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("status=open", "status"),
        ("typology=x", "typology"),
    ],
)
def test_api_refuses_a_bad_listing_query(
    client: FlaskClient, session: Session, query: str, field: str
) -> None:
    _, auth = _api_alert(client, session)
    response = client.get(f"/api/v1/alerts?{query}", headers=auth)
    assert response.status_code == 422
    assert response.get_json()["field"] == field

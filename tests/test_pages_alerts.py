# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Alert pages: the list with its filters, counts and pages; the detail with the evidence
subgraph as the graph script reads it; triage, dismissal, escalation and notes, each a
ledger entry; bad input refused with nothing written; roles."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import networkx as nx
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.applications import ApplicationInput
from provenance.analysis import Typology
from provenance.analysis.alerts import get_alert, record_findings
from provenance.analysis.ledger_detectors import LedgerFinding
from provenance.analysis.models import Alert, AlertNote
from provenance.entries import Statement, decode_record
from provenance.ledger import LedgerEntry
from tests.ledger_support import NOW
from tests.onboarding_support import ApplicationPayload, registered
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    PASSWORD,
    SHOP,
    Accounts,
    accounts,
    csrf_token,
    enrol,
    sign_in_as,
    web,
)
from webapp.accounts.roles import Role
from webapp.onboarding import onboarding_service
from webapp.runtime import current_runtime

BUYER = "b" * 32
OTHER_BUYER = "c" * 32
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
READ_ONLY = (Role.REVIEWER, Role.APPROVER, Role.AUDITOR)
REFUSED = (Role.MERCHANT, Role.ADMINISTRATOR)

# --- helpers ---------------------------------------------------------------------------------


def signed_in(accounts: Accounts, role: Role) -> FlaskClient:
    """A new client signed in as a new account of ``role`` (staff enrol a second factor)."""
    client = accounts.app.test_client()
    username = f"{role.value}.one"
    sign_in_as(accounts, client, role, username)
    return client


def evidence_of(subject_kind: str, subject: str) -> nx.MultiDiGraph:
    """Evidence with every kind of node the graph styles: a sale from the merchant."""
    graph = nx.MultiDiGraph(typology="stolen-payment-taint")
    merchant, code, buyer = f"party:{SHOP}", "code:0a1b2c3d4e5f", f"buyer:{BUYER}"
    graph.add_node(merchant, kind="party", name=SHOP)
    graph.add_node(code, kind="code", origin="issued", serial="9f8e7d6c5b4a", product="gift-100")
    graph.add_node(buyer, kind="buyer", name=BUYER)
    graph.add_node("instrument:card-1", kind="instrument", name="card-1")
    graph.add_node("device:dev-1", kind="device", name="dev-1")
    graph.add_node("ip:ip-1", kind="ip", name="ip-1")
    graph.add_node("batch:batch-7", kind="batch", name="batch-7")
    common = {"time": "2026-11-26T10:00:00.000000Z", "seq": 12}
    graph.add_edge(merchant, code, kind="sold", amount=100.0, **common)
    graph.add_edge(code, buyer, kind="bought", amount=100.0, **common)
    graph.add_edge(buyer, "instrument:card-1", kind="paid_with", **common)
    graph.add_edge(buyer, "device:dev-1", kind="used", **common)
    graph.add_edge(buyer, "ip:ip-1", kind="used", **common)
    graph.add_edge("batch:batch-7", code, kind="contains")
    if f"{subject_kind}:{subject}" not in graph:
        graph.add_node(f"{subject_kind}:{subject}", kind=subject_kind, name=subject)
    return graph


def finding(
    subject: str, score: float, kind: str = "party", typology: Typology = Typology.CYCLE
) -> LedgerFinding:
    return LedgerFinding(
        typology,
        kind,
        subject,
        score,
        f"{typology.value} around {subject}",
        evidence_of(kind, subject),
        frozenset(),
    )


@dataclass
class Seeded:
    high: int  # stolen-payment taint on the merchant SHOP, score 0.95
    medium: int  # cycle through BUYER, 0.65
    low: int  # burst by OTHER_BUYER, 0.3


def record(accounts: Accounts, findings: list[LedgerFinding]) -> None:
    with accounts.app.app_context():
        record_findings(accounts.session, current_runtime().ledger, findings, now=NOW)
    accounts.session.flush()


@pytest.fixture()
def seeded(accounts: Accounts) -> Seeded:
    record(
        accounts,
        [
            finding(SHOP, 0.95, typology=Typology.STOLEN_PAYMENT_TAINT),
            finding(BUYER, 0.65, kind="buyer", typology=Typology.CYCLE),
            finding(OTHER_BUYER, 0.3, kind="buyer", typology=Typology.BURST),
        ],
    )
    ids = {a.subject: a.id for a in accounts.session.scalars(select(Alert))}
    return Seeded(ids[SHOP], ids[BUYER], ids[OTHER_BUYER])


def listed(client: FlaskClient, query: str = "") -> list[int]:
    response = client.get(f"/alerts{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [int(i) for i in re.findall(r'data-alert-id="(\d+)"', response.get_data(as_text=True))]


def ledger_size(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def last_statement(session: Session) -> Statement:
    raw = session.scalar(select(LedgerEntry.record).order_by(LedgerEntry.seq.desc()).limit(1))
    assert raw is not None
    return decode_record(raw).statement


def alert_now(session: Session, alert_id: int) -> Alert:
    session.expire_all()
    return get_alert(session, alert_id)


def post_decision(client: FlaskClient, alert_id: int, **form: str) -> tuple[int, str]:
    token = csrf_token(client, f"/alerts/{alert_id}")
    response = client.post(
        f"/alerts/{alert_id}/decision",
        data={"csrf_token": token, **form},
        follow_redirects=True,
    )
    return response.status_code, response.get_data(as_text=True)


def post_note(client: FlaskClient, alert_id: int, note: str) -> tuple[int, str]:
    token = csrf_token(client, f"/alerts/{alert_id}")
    response = client.post(
        f"/alerts/{alert_id}/notes", data={"csrf_token": token, "note": note}, follow_redirects=True
    )
    return response.status_code, response.get_data(as_text=True)


# --- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ANALYST, *READ_ONLY])
def test_every_reader_opens_the_list_and_the_detail(
    accounts: Accounts, seeded: Seeded, role: Role
) -> None:
    client = signed_in(accounts, role)
    assert sorted(listed(client)) == sorted([seeded.high, seeded.medium, seeded.low])
    assert client.get(f"/alerts/{seeded.high}").status_code == 200


@pytest.mark.parametrize("role", REFUSED)
def test_merchants_and_administrators_are_refused(
    accounts: Accounts, seeded: Seeded, role: Role
) -> None:
    client = signed_in(accounts, role)
    assert client.get("/alerts").status_code == 403
    assert client.get(f"/alerts/{seeded.high}").status_code == 403
    token = csrf_token(client, "/")
    before = ledger_size(accounts.session)
    for path, form in (
        (f"/alerts/{seeded.high}/decision", {"status": "escalated"}),
        (f"/alerts/{seeded.high}/notes", {"note": "looked"}),
    ):
        assert client.post(path, data={"csrf_token": token, **form}).status_code == 403
    assert ledger_size(accounts.session) == before


def test_signed_out_visitors_are_sent_to_sign_in(web: FlaskClient, seeded: Seeded) -> None:
    response = web.get(f"/alerts/{seeded.high}")
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]


@pytest.mark.parametrize("role", READ_ONLY)
def test_read_only_roles_see_no_forms_and_cannot_post(
    accounts: Accounts, seeded: Seeded, role: Role
) -> None:
    client = signed_in(accounts, role)
    page = client.get(f"/alerts/{seeded.high}").get_data(as_text=True)
    assert "<form" not in page.split("<main>", 1)[1]
    assert 'id="alert-actions"' not in page
    token = csrf_token(client, f"/alerts/{seeded.high}")
    before = ledger_size(accounts.session)
    for path, form in (
        (f"/alerts/{seeded.high}/decision", {"status": "triaged", "assignee": "x.y"}),
        (f"/alerts/{seeded.high}/decision", {"status": "dismissed", "note": "no"}),
        (f"/alerts/{seeded.high}/decision", {"status": "escalated"}),
        (f"/alerts/{seeded.high}/notes", {"note": "looked"}),
    ):
        assert client.post(path, data={"csrf_token": token, **form}).status_code == 403
    assert ledger_size(accounts.session) == before
    assert alert_now(accounts.session, seeded.high).status == "new"


def test_the_analyst_sees_the_forms_the_status_allows(accounts: Accounts, seeded: Seeded) -> None:
    client = signed_in(accounts, Role.ANALYST)
    page = client.get(f"/alerts/{seeded.high}").get_data(as_text=True)
    for form in ("triage-form", "dismiss-form", "escalate-form", "note-form"):
        assert f'id="{form}"' in page
    assert post_decision(client, seeded.high, status="escalated")[0] == 200
    page = client.get(f"/alerts/{seeded.high}").get_data(as_text=True)
    assert 'id="triage-form"' not in page and 'id="escalate-form"' not in page
    assert 'id="note-form"' in page


# --- the list --------------------------------------------------------------------------------


def test_the_list_filters_by_status_typology_severity_assignee_and_subject(
    accounts: Accounts, seeded: Seeded
) -> None:
    client = signed_in(accounts, Role.ANALYST)
    post_decision(client, seeded.medium, status="triaged", assignee="wang.analyst")
    assert listed(client, "?status=new") == [seeded.high, seeded.low]
    assert listed(client, "?status=triaged") == [seeded.medium]
    assert listed(client, "?typology=burst") == [seeded.low]
    assert listed(client, "?severity=high") == [seeded.high]
    assert listed(client, "?severity=medium&status=new") == []
    assert listed(client, "?assignee=wang.analyst") == [seeded.medium]
    post_decision(client, seeded.low, status="triaged", assignee="analyst.one")
    page = client.get("/alerts").get_data(as_text=True)
    assert 'href="/alerts?assignee=analyst.one" id="alerts-mine"' in page
    assert listed(client, "?assignee=analyst.one") == [seeded.low]
    assert listed(client, f"?subject={OTHER_BUYER[:6]}") == [seeded.low]
    assert listed(client, "?status=new") == [seeded.high]
    assert listed(client, "?subject=&status=&typology=") == [seeded.high, seeded.medium, seeded.low]


def test_the_list_counts_alerts_by_severity(accounts: Accounts, seeded: Seeded) -> None:
    record(accounts, [finding("shop-z", 0.85), finding("shop-y", 0.9)])
    client = signed_in(accounts, Role.AUDITOR)
    page = client.get("/alerts").get_data(as_text=True)
    counts = dict(re.findall(r'data-severity="(\w+)">\s*<span class="count">([\d,]+)</span>', page))
    assert counts == {"high": "3", "medium": "1", "low": "1"}
    assert re.search(r'id="alerts-total">5<', page)
    narrowed = client.get("/alerts?status=new&severity=low").get_data(as_text=True)
    assert re.search(r'id="alerts-total">1<', narrowed)


def test_the_list_goes_page_by_page(accounts: Accounts) -> None:
    record(accounts, [finding(f"shop-{i:02d}", 0.5 + i / 100) for i in range(30)])
    client = signed_in(accounts, Role.ANALYST)
    first, second = listed(client), listed(client, "?page=2")
    assert (len(first), len(second)) == (25, 5)
    assert not set(first) & set(second)
    page = client.get("/alerts?page=2").get_data(as_text=True)
    assert 'rel="prev"' in page and 'rel="next"' not in page
    assert listed(client, "?page=9") == second  # past the end: the last page


@pytest.mark.parametrize(
    "query",
    [
        "?status=open",
        "?typology=laundering",
        "?severity=critical",
        "?assignee=Not%20An%20Id",
        "?page=0",
        "?page=two",
    ],
)
def test_an_unknown_filter_value_is_refused_with_400(
    accounts: Accounts, seeded: Seeded, query: str
) -> None:
    client = signed_in(accounts, Role.ANALYST)
    response = client.get(f"/alerts{query}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="alerts-error"' in page and "data-alert-id" not in page


# --- the detail ------------------------------------------------------------------------------


def script_json(page: str, element_id: str) -> object:
    match = re.search(
        rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S
    )
    assert match, page
    return json.loads(match.group(1))


def test_the_detail_carries_the_evidence_subgraph_for_the_graph(
    accounts: Accounts, seeded: Seeded
) -> None:
    client = signed_in(accounts, Role.ANALYST)
    page = client.get(f"/alerts/{seeded.high}").get_data(as_text=True)
    alert = get_alert(accounts.session, seeded.high)
    assert script_json(page, "alert-evidence") == alert.evidence
    kinds = {n["kind"] for n in alert.evidence["nodes"]}
    assert kinds == {"party", "code", "buyer", "instrument", "device", "ip", "batch"}
    labels = script_json(page, "graph-labels")
    assert isinstance(labels, dict) and labels["kinds"]["buyer"] == "Buyer account"
    assert labels["edges"]["paid_with"] == "paid with"
    assert f'data-subject="party:{SHOP}"' in page
    for fact in ("Stolen-payment taint", "95%", "High", "New", SHOP):
        assert fact in page


def test_the_graph_is_served_from_the_project_under_the_strict_csp(
    accounts: Accounts, seeded: Seeded
) -> None:
    client = signed_in(accounts, Role.ANALYST)
    response = client.get(f"/alerts/{seeded.high}")
    page = response.get_data(as_text=True)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts == ["/static/vendor/cytoscape/cytoscape.min.js", "/static/js/graph.js"]
    for path in scripts:
        served = client.get(path)
        assert served.status_code == 200
        served.close()
    # Cytoscape injects its one <style> unless this id exists: the page's own stylesheet.
    assert re.search(
        r'<link rel="stylesheet" id="__________cytoscape_stylesheet"'
        r' href="/static/css/alerts.css">',
        page,
    )
    assert " style=" not in page and "<style" not in page
    assert not re.search(r"<script(?! (?:src=|type=\"application/json\"))", page)
    assert not re.search(r"\son[a-z]+=", page)


def test_an_unknown_alert_is_404(accounts: Accounts, seeded: Seeded) -> None:
    client = signed_in(accounts, Role.ANALYST)
    assert client.get("/alerts/999999").status_code == 404
    token = csrf_token(client, "/alerts")
    before = ledger_size(accounts.session)
    decided = client.post(
        "/alerts/999999/decision", data={"csrf_token": token, "status": "escalated"}
    )
    noted = client.post("/alerts/999999/notes", data={"csrf_token": token, "note": "x"})
    assert (decided.status_code, noted.status_code) == (404, 404)
    assert ledger_size(accounts.session) == before


def test_a_high_alert_about_a_merchant_links_its_application(
    accounts: Accounts, seeded: Seeded
) -> None:
    client = signed_in(accounts, Role.REVIEWER)
    page = client.get(f"/alerts/{seeded.high}").get_data(as_text=True)
    assert 'id="suspension-proposal"' in page and 'id="proposal-application"' not in page
    payload = ApplicationPayload(merchant=SHOP)
    registered(accounts.session, payload)
    with accounts.app.app_context():
        created = onboarding_service().create(
            accounts.session, ApplicationInput.model_validate(payload), now=NOW
        )
    accounts.session.flush()
    page = client.get(f"/alerts/{seeded.high}").get_data(as_text=True)
    assert f'href="/applications/{created.application.id}" id="proposal-application"' in page
    # A medium alert about a buyer proposes nothing.
    medium = client.get(f"/alerts/{seeded.medium}").get_data(as_text=True)
    assert 'id="suspension-proposal"' not in medium


# --- actions ---------------------------------------------------------------------------------


def test_triage_assigns_the_alert_with_a_ledger_entry(accounts: Accounts, seeded: Seeded) -> None:
    client = signed_in(accounts, Role.ANALYST)
    before = ledger_size(accounts.session)
    status, _ = post_decision(
        client, seeded.high, status="triaged", assignee="wang.analyst", note="Looking into it"
    )
    assert status == 200
    assert ledger_size(accounts.session) == before + 1
    statement = last_statement(accounts.session)
    alert = alert_now(accounts.session, seeded.high)
    assert statement.type == "alert.decide"
    assert statement.body["key"] == alert.key
    assert statement.body["status"] == "triaged"
    assert statement.body["officer"] == "analyst.one"
    assert statement.body["assignee"] == "wang.analyst"
    assert (alert.status, alert.assignee) == ("triaged", "wang.analyst")
    page = client.get(f"/alerts/{seeded.high}").get_data(as_text=True)
    assert 'data-type="alert.decide" data-status="triaged"' in page
    assert 'data-type="alert.open" data-status="new"' in page
    assert "Looking into it" in page


def test_dismissal_records_the_reason(accounts: Accounts, seeded: Seeded) -> None:
    client = signed_in(accounts, Role.ANALYST)
    before = ledger_size(accounts.session)
    assert post_decision(client, seeded.low, status="dismissed", note="Promotion day")[0] == 200
    assert ledger_size(accounts.session) == before + 1
    statement = last_statement(accounts.session)
    assert (statement.type, statement.body["status"]) == ("alert.decide", "dismissed")
    assert "note_sha256" in statement.body
    assert alert_now(accounts.session, seeded.low).status == "dismissed"
    notes = accounts.session.scalars(select(AlertNote).where(AlertNote.alert_id == seeded.low))
    assert [n.text for n in notes] == ["Promotion day"]


def test_escalation_is_a_ledger_entry(accounts: Accounts, seeded: Seeded) -> None:
    client = signed_in(accounts, Role.ANALYST)
    before = ledger_size(accounts.session)
    assert post_decision(client, seeded.medium, status="escalated")[0] == 200
    assert ledger_size(accounts.session) == before + 1
    statement = last_statement(accounts.session)
    assert (statement.type, statement.body["status"]) == ("alert.decide", "escalated")
    assert alert_now(accounts.session, seeded.medium).status == "escalated"


def test_a_note_is_a_ledger_entry_and_shown_escaped(accounts: Accounts, seeded: Seeded) -> None:
    client = signed_in(accounts, Role.ANALYST)
    before = ledger_size(accounts.session)
    assert post_note(client, seeded.high, XSS)[0] == 200
    assert ledger_size(accounts.session) == before + 1
    statement = last_statement(accounts.session)
    alert = alert_now(accounts.session, seeded.high)
    assert statement.type == "alert.note"
    assert statement.body["key"] == alert.key and statement.body["officer"] == "analyst.one"
    assert alert.status == "new" and alert.last_seq == before
    page = client.get(f"/alerts/{seeded.high}").get_data(as_text=True)
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img" in page
    assert 'data-type="alert.note"' in page


def test_a_decided_alert_still_takes_notes(accounts: Accounts, seeded: Seeded) -> None:
    client = signed_in(accounts, Role.ANALYST)
    post_decision(client, seeded.low, status="escalated")
    assert post_note(client, seeded.low, "Sent to the case team")[0] == 200
    assert last_statement(accounts.session).type == "alert.note"


@pytest.mark.parametrize(
    ("form", "status", "field"),
    [
        ({"status": "dismissed", "note": "   "}, 422, "A dismissal needs a reason."),
        ({"status": "dismissed"}, 422, "A dismissal needs a reason."),
        ({"status": "new"}, 422, "Choose a status"),
        ({"status": "closed"}, 422, "Choose a status"),
        ({}, 422, "Choose a status"),
        ({"status": "triaged", "assignee": ""}, 422, "Choose who works the alert."),
        ({"status": "triaged", "assignee": "Robert'); DROP"}, 422, "An assignee is"),
        ({"status": "escalated", "note": "x" * 2001}, 422, "Write a note of 1-2000"),
    ],
)
def test_a_bad_decision_is_refused_and_nothing_is_written(
    accounts: Accounts, seeded: Seeded, form: dict[str, str], status: int, field: str
) -> None:
    client = signed_in(accounts, Role.ANALYST)
    before = ledger_size(accounts.session)
    code, page = post_decision(client, seeded.high, **form)
    assert code == status
    assert 'id="decision-error"' in page and field in page.replace("&#39;", "'")
    assert ledger_size(accounts.session) == before
    alert = alert_now(accounts.session, seeded.high)
    assert (alert.status, alert.assignee) == ("new", None)


@pytest.mark.parametrize("note", ["", "   ", "x" * 2001])
def test_a_bad_note_is_refused_and_nothing_is_written(
    accounts: Accounts, seeded: Seeded, note: str
) -> None:
    client = signed_in(accounts, Role.ANALYST)
    before = ledger_size(accounts.session)
    code, page = post_note(client, seeded.high, note)
    assert code == 422 and 'id="note-error"' in page
    assert ledger_size(accounts.session) == before
    assert accounts.session.scalar(select(func.count()).select_from(AlertNote)) == 0


def test_a_decision_the_status_no_longer_allows_is_409(accounts: Accounts, seeded: Seeded) -> None:
    client = signed_in(accounts, Role.ANALYST)
    post_decision(client, seeded.high, status="escalated")
    before = ledger_size(accounts.session)
    code, page = post_decision(client, seeded.high, status="dismissed", note="changed my mind")
    assert code == 409 and 'id="decision-error"' in page
    assert ledger_size(accounts.session) == before
    assert alert_now(accounts.session, seeded.high).status == "escalated"


def test_a_post_without_the_csrf_token_writes_nothing(accounts: Accounts, seeded: Seeded) -> None:
    client = signed_in(accounts, Role.ANALYST)
    before = ledger_size(accounts.session)
    response = client.post(f"/alerts/{seeded.high}/decision", data={"status": "escalated"})
    assert response.status_code in (400, 403)
    assert ledger_size(accounts.session) == before

"""A supply chain with stolen-card sales, its analysis's alerts, and a case over them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from merchant_onboarding.workflow import onboarding_catalog
from provenance.analysis.alerts import analysis_catalog, list_alerts, run_ledger_analysis
from provenance.cases import CaseView, add_members, add_note, assign_case, open_case
from provenance.cases.entries import cases_catalog
from provenance.core import core_catalog
from provenance.ledger import Ledger, PlatformSigner
from tests.codes_support import SHOP, b64, build_chain, fp, person
from tests.ledger_support import NOW, PLATFORM_KEY
from tests.test_analysis_alerts import stolen_sales

OFFICER = "li.investigator"
TITLE = "Stolen-card sales through shop-good"


def case_ledger() -> Ledger:
    catalog = (
        core_catalog().merge(onboarding_catalog()).merge(analysis_catalog()).merge(cases_catalog())
    )
    return Ledger(catalog, PlatformSigner(PLATFORM_KEY))


def build_case(session: Session, ledger: Ledger) -> CaseView:
    """The chain, its stolen-card sales, the analysis's alerts and a case holding them."""
    chain = build_chain(session, ledger)
    stolen_sales(session, chain)
    run_ledger_analysis(session, ledger, now=NOW)
    alerts = list_alerts(session, typology="stolen-payment-taint")
    case = open_case(session, ledger, title=TITLE, officer=OFFICER, now=NOW)
    members = [("alert", a.key) for a in alerts]
    members += [
        ("merchant", SHOP),
        ("buyer", person("buyer", "mule")),
        ("instrument", person("instrument", "stolen-card")),
        ("code", b64(fp(0))),
        ("code", fp(1).hex()),
    ]
    add_members(session, ledger, case.id, members, officer=OFFICER, now=NOW)
    assign_case(session, ledger, case.id, "wang.analyst", officer=OFFICER, now=NOW)
    return add_note(
        session, ledger, case.id, "Buyer mule paid with a reported card", officer=OFFICER, now=NOW
    )

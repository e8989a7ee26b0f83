"""The demo cast: a merchant in every state, each failing the checks its story says."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from merchant_onboarding.applications import get_application
from merchant_onboarding.demo import CAST, build_cast
from merchant_onboarding.hits import HitStatus, hits_of, screening_check
from merchant_onboarding.models import Status
from merchant_onboarding.protect import PersonalData
from merchant_onboarding.registries import OfflineRegistry, Registries
from merchant_onboarding.workflow import Onboarding, State, latest_checks
from provenance.ledger import Ledger
from provenance.parties import Party
from tests.keys import PERSONAL_DATA_KEY
from tests.ledger_support import NOW
from tests.onboarding_support import onboarding_ledger


def screening_service(ledger: Ledger) -> Onboarding:
    return Onboarding(
        ledger,
        PersonalData(PERSONAL_DATA_KEY),
        lambda s: Registries(OfflineRegistry(s), OfflineRegistry(s)),
        screening=screening_check(),
    )


def test_the_cast_covers_every_state_and_the_intended_checks(session: Session) -> None:
    ledger = onboarding_ledger()
    ledger.ensure_genesis(session, name="demo", now=NOW)
    lines: list[str] = []
    assert build_cast(session, screening_service(ledger), now=NOW, say=lines.append)
    states = {s.merchant: s for s in session.scalars(select(Status))}
    assert {s.state for s in states.values()} == {s.value for s in State}
    for member in CAST:
        assert states[member.merchant].state == member.target

    def results(merchant: str) -> dict[str, str]:
        application = get_application(session, states[merchant].application_id)
        return {c.name: c.result for c in latest_checks(session, application)}

    assert set(results("ob-jinyun").values()) == {"pass"}
    assert results("ob-xinghe")["icp_filing"] == "fail"
    assert results("ob-yunduan")["fund_custody"] == "fail"
    rejected = results("ob-suchong")
    assert (rejected["enterprise_registry"], rejected["payment_licence"]) == ("fail", "fail")
    assert rejected["policies"] == "warn"
    assert results("ob-xunchong")["reuse"] == "fail"
    assert results("ob-yika")["enterprise_registry"] == "warn"
    assert session.get(Party, "ob-changwan").status == "suspended"  # type: ignore[union-attr]
    assert len(lines) == len(CAST)

    listed = states["ob-heishan"]
    [hit] = hits_of(session, listed.application_id)
    assert (hit.status, hit.hit.entry_id, hit.hit.score) == (HitStatus.OPEN, "DP-001", 100.0)
    assert "width" in hit.hit.normalisations
    assert results("ob-heishan")["screening"] == "fail"
    assert any("hit" in line and "open" in line and "DP-001" in line for line in lines)
    [cleared] = hits_of(session, states["ob-longmen"].application_id)
    assert cleared.status is HitStatus.CLEARED and cleared.hit.entry_id == "DP-002"
    assert cleared.decision is not None and cleared.decision.by == "demo.reviewer"
    assert states["ob-longmen"].decided_by == "demo.approver"
    assert results("ob-longmen")["screening"] == "pass"
    assert not build_cast(session, screening_service(ledger), now=NOW, say=lines.append)

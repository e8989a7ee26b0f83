"""Automated checks (pass, warn, fail for each), registry extracts, and the risk score."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.applications import ApplicationInput, get_application
from merchant_onboarding.checks import CheckName, CheckResult, Result
from merchant_onboarding.documents import DocumentKind
from merchant_onboarding.errors import RegistryImportError
from merchant_onboarding.models import CheckRecord, RegistryEnterprise
from merchant_onboarding.officers import Actor
from merchant_onboarding.registries import RegistryKind, capital_in_yuan, import_extract
from merchant_onboarding.risk import RULES, RiskLevel, score
from merchant_onboarding.workflow import Onboarding, Recommendation, latest_checks
from provenance.ledger import Ledger
from tests.ledger_support import NOW
from tests.onboarding_support import (
    ApplicationPayload,
    attach,
    credit_code,
    enterprise_extract,
    enterprise_record,
    icp_csv,
    icp_record,
    id_number,
    load_registries,
    make_officers,
    make_service,
    onboarding_ledger,
    pdf,
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


def checks_of(service: Onboarding, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    app_id = submitted(service, session, payload)
    return {c.name: c for c in latest_checks(session, get_application(session, app_id))}


def result_of(
    service: Onboarding,
    session: Session,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    register: bool = True,
) -> CheckRecord:
    payload = payload or ApplicationPayload()
    if register:
        registered(session, payload)
    return checks_of(service, session, payload)[name]


def test_a_clean_application_passes_every_check_and_scores_zero(
    service: Onboarding, session: Session
) -> None:
    payload = ApplicationPayload()
    registered(session, payload)
    checks = checks_of(service, session, payload)
    assert {name: c.result for name, c in checks.items()} == {
        name.value: "pass" for name in CheckName if name is not CheckName.SCREENING
    }
    app = get_application(session, checks["credit_code"].application_id)
    assert app.risk_score == 0 and app.risk_level == "low"


def test_every_check_is_stored_with_result_evidence_source_and_time(
    service: Onboarding, session: Session
) -> None:
    check = result_of(service, session, "enterprise_registry")
    assert check.source == "企查查 export extract of 2026-11-01"
    assert check.extract_date == date(2026, 11, 1)
    assert check.checked_at == NOW
    assert check.evidence["status"] == "存续"


# --- credit code -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "result"),
    [
        (lambda: credit_code(), "pass"),
        (lambda: credit_code(kind="92"), "warn"),  # an individual business
        (lambda: credit_code(kind="51"), "warn"),  # a social organisation
        (lambda: credit_code(region="990000"), "warn"),  # no such division
    ],
)
def test_credit_code_check(service: Onboarding, session: Session, code: Any, result: str) -> None:
    payload = ApplicationPayload(credit_code=code())
    assert result_of(service, session, "credit_code", payload).result == result


# --- legal representative's ID -----------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "result"),
    [
        (id_number(), "pass"),
        (id_number(born="20150101"), "fail"),  # a minor
        (id_number(region="990000"), "fail"),  # no such birth place
        (id_number(born="19801332"), "fail"),  # no such date
    ],
)
def test_legal_rep_id_check(
    service: Onboarding, session: Session, number: str, result: str
) -> None:
    payload = ApplicationPayload(legal_rep_id_number=number)
    check = result_of(service, session, "legal_rep_id", payload)
    assert check.result == result
    assert number not in str(check.evidence) and number not in check.summary


# --- enterprise registry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "result"),
    [
        ({}, "pass"),
        ({"status": "吊销"}, "fail"),
        ({"status": "注销"}, "fail"),
        ({"name": "别的公司有限公司"}, "fail"),
        ({"legal_rep": "李娜"}, "warn"),
        ({"established": "2026-06-01"}, "warn"),
    ],
)
def test_enterprise_registry_check(
    service: Onboarding, session: Session, overrides: dict[str, str], result: str
) -> None:
    payload = ApplicationPayload()
    load_registries(session, [enterprise_record(payload, **overrides)], [icp_record(payload)])
    assert checks_of(service, session, payload)["enterprise_registry"].result == result


def test_an_entity_missing_from_the_registry_fails(service: Onboarding, session: Session) -> None:
    payload = ApplicationPayload()
    load_registries(session, [], [icp_record(payload)])
    assert checks_of(service, session, payload)["enterprise_registry"].result == "fail"


def test_without_an_extract_the_registry_checks_warn_and_say_so(
    service: Onboarding, session: Session
) -> None:
    checks = checks_of(service, session, ApplicationPayload())
    assert checks["enterprise_registry"].result == "warn"
    assert "none imported" in checks["enterprise_registry"].source
    assert checks["icp_filing"].result == "warn"


def test_full_width_and_spacing_do_not_break_a_name_match(
    service: Onboarding, session: Session
) -> None:
    payload = ApplicationPayload(legal_name="龙门（北京）科技有限公司")
    load_registries(
        session,
        [enterprise_record(payload, name="龙门(北京)科技 有限公司")],
        [icp_record(payload)],
    )
    assert checks_of(service, session, payload)["enterprise_registry"].result == "pass"


# --- ICP filing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filing", "icp_number", "result"),
    [
        ({}, None, "pass"),
        ({"holder_name": "张三", "holder_credit_code": None, "holder_kind": "个人"}, None, "fail"),
        ({"domain": "other.example.cn"}, None, "fail"),
        ({"icp_number": "京ICP备99999999号"}, None, "fail"),
        ({}, "ICP 12345", "fail"),
    ],
)
def test_icp_filing_check(
    service: Onboarding,
    session: Session,
    filing: dict[str, Any],
    icp_number: str | None,
    result: str,
) -> None:
    payload = ApplicationPayload()
    record = icp_record(payload, **filing)
    if icp_number:
        payload["icp_number"] = icp_number
    load_registries(session, [enterprise_record(payload)], [record])
    assert checks_of(service, session, payload)["icp_filing"].result == result


# --- domain, licence, custody, policies ------------------------------------------------------


def test_policies_on_another_domain_warn_domain_consistency(
    service: Onboarding, session: Session
) -> None:
    payload = ApplicationPayload(privacy_policy_url="https://cdn.hosting-example.com/p.html")
    assert result_of(service, session, "domain", payload).result == "warn"


def test_policies_on_a_subdomain_of_the_shop_are_consistent(
    service: Onboarding, session: Session
) -> None:
    payload = ApplicationPayload(domain="shop.longmen.com.cn")
    payload["privacy_policy_url"] = "https://help.longmen.com.cn/privacy"
    assert result_of(service, session, "domain", payload).result == "pass"


def test_payment_licence_with_its_document_passes(service: Onboarding, session: Session) -> None:
    payload = ApplicationPayload(clearing_institution=None, payment_licence="Z2000133000019")
    registered(session, payload)
    created = service.create(session, ApplicationInput.model_validate(payload), now=NOW)
    app_id = created.application.id
    attach(service, session, app_id, DocumentKind.PAYMENT_LICENCE, pdf("licence"))
    attach(service, session, app_id, DocumentKind.CUSTODY_AGREEMENT, pdf("custody"))
    service.submit(session, app_id, actor=Actor.applicant(app_id), now=NOW)
    checks = {c.name: c.result for c in latest_checks(session, created.application)}
    assert checks["payment_licence"] == "pass"


@pytest.mark.parametrize(
    ("overrides", "result"),
    [
        ({"clearing_institution": None}, "fail"),
        ({"clearing_institution": None, "payment_licence": "Z2000133000019"}, "warn"),
        ({"clearing_institution": None, "payment_licence": "2000133000019"}, "fail"),
    ],
)
def test_payment_licence_check(
    service: Onboarding, session: Session, overrides: dict[str, Any], result: str
) -> None:
    payload = ApplicationPayload(**overrides)
    assert result_of(service, session, "payment_licence", payload).result == result


@pytest.mark.parametrize(
    ("custody", "result"),
    [
        ("licensed_institution", "pass"),
        ("bank_custody", "pass"),
        ("merchant_account", "fail"),
        ("platform_pooled", "fail"),
    ],
)
def test_fund_custody_check(
    service: Onboarding, session: Session, custody: str, result: str
) -> None:
    payload = ApplicationPayload(fund_custody=custody)
    assert result_of(service, session, "fund_custody", payload).result == result


def test_policies_over_plain_http_warn(service: Onboarding, session: Session) -> None:
    payload = ApplicationPayload()
    payload["user_agreement_url"] = f"http://{payload['domain']}/terms"
    assert result_of(service, session, "policies", payload).result == "warn"


# --- re-use by rejected or banned merchants --------------------------------------------------


def _reject(service: Onboarding, session: Session, payload: dict[str, Any]) -> int:
    officers = make_officers(session)
    app_id = submitted(service, session, payload)
    service.start_review(session, app_id, actor=officers.reviewer, now=NOW)
    service.recommend(
        session, app_id, Recommendation.REJECT, ["fake"], actor=officers.reviewer, now=NOW
    )
    service.reject(session, app_id, ["fake"], actor=officers.approver, now=NOW)
    return app_id


def test_a_bank_account_used_by_a_rejected_merchant_fails_reuse(
    service: Onboarding, session: Session
) -> None:
    first = ApplicationPayload(bank_account="6217000010001234567")
    rejected = _reject(service, session, first)
    second = ApplicationPayload(bank_account="6217 0000 1000 1234 567")
    check = result_of(service, session, "reuse", second)
    assert check.result == "fail"
    assert check.evidence["bank_account"] == [{"application": rejected, "state": "rejected"}]
    assert "6217000010001234567" not in str(check.evidence)


def test_a_document_used_by_a_rejected_merchant_fails_reuse(
    service: Onboarding, session: Session
) -> None:
    first = ApplicationPayload(merchant="shop-copied", bank_account="6217000010009999999")
    _reject(service, session, first)
    second = ApplicationPayload(merchant="shop-copied2")
    registered(session, second)
    created = service.create(session, ApplicationInput.model_validate(second), now=NOW)
    app_id = created.application.id
    attach(service, session, app_id, DocumentKind.CLEARING_AGREEMENT, pdf("shop-copied"))
    service.submit(session, app_id, actor=Actor.applicant(app_id), now=NOW)
    checks = {c.name: c for c in latest_checks(session, created.application)}
    assert checks["reuse"].result == "fail"
    assert checks["reuse"].evidence["documents"][0]["state"] == "rejected"


def test_a_bank_account_shared_with_an_open_application_warns(
    service: Onboarding, session: Session
) -> None:
    submitted(service, session, ApplicationPayload())
    assert result_of(service, session, "reuse", ApplicationPayload()).result == "warn"


# --- registry extracts ----------------------------------------------------------------------


def test_an_extract_replaces_the_previous_one(session: Session) -> None:
    first, second = ApplicationPayload(), ApplicationPayload()
    load_registries(session, [enterprise_record(first)], [])
    load_registries(session, [enterprise_record(second)], [])
    codes = set(session.scalars(select(RegistryEnterprise.credit_code)))
    assert codes == {second["credit_code"]}


def test_a_bad_line_refuses_the_whole_extract_and_names_the_line(session: Session) -> None:
    good = ApplicationPayload()
    load_registries(session, [enterprise_record(good)], [])
    bad = icp_csv(icp_record(good), icp_record(good, domain="x.example.cn", holder_name=""))
    with pytest.raises(RegistryImportError) as caught:
        import_extract(
            session,
            RegistryKind.ICP,
            bad,
            fmt="csv",
            source="MIIT",
            extract_date=NOW.date(),
            now=NOW,
        )
    assert caught.value.line == 3 and caught.value.field == "holder_name"
    with pytest.raises(RegistryImportError) as caught:
        import_extract(
            session,
            RegistryKind.ENTERPRISE,
            enterprise_extract(enterprise_record(good, status="unknown")),
            fmt="json",
            now=NOW,
        )
    assert caught.value.line == 1 and caught.value.field == "status"
    assert session.scalar(select(func.count()).select_from(RegistryEnterprise)) == 1


def test_registered_capital_is_read_in_yuan() -> None:
    assert capital_in_yuan("1000万元人民币") == 10_000_000
    assert capital_in_yuan("1.5亿元") == 150_000_000
    assert capital_in_yuan("500,000元") == 500_000
    assert capital_in_yuan("unknown") is None


# --- risk --------------------------------------------------------------------------------------


def _result(name: CheckName, result: Result, **evidence: Any) -> CheckResult:
    return CheckResult(name, result, "", evidence, "test", NOW)


def test_each_rule_shows_its_contribution_and_the_score_is_their_capped_sum() -> None:
    risk = score(
        [
            _result(CheckName.FUND_CUSTODY, Result.FAIL),
            _result(CheckName.POLICIES, Result.WARN),
            _result(CheckName.ENTERPRISE_REGISTRY, Result.WARN, age_days=100, capital_yuan=10_000),
        ]
    )
    points = {c.rule: c.points for c in risk.contributions if c.points}
    assert points == {
        "fund-custody": 30,
        "policies": 5,
        "enterprise-registry": 10,
        "young-company": 10,
        "low-capital": 5,
    }
    assert risk.score == 60 and risk.level is RiskLevel.HIGH
    assert len(risk.contributions) == len(RULES)


def test_the_score_is_capped_at_100() -> None:
    results = [_result(name, Result.FAIL) for name in CheckName]
    assert score(results).score == 100


def test_the_worst_of_several_screening_results_counts() -> None:
    risk = score(
        [_result(CheckName.SCREENING, Result.WARN), _result(CheckName.SCREENING, Result.FAIL)]
    )
    assert risk.score == 40

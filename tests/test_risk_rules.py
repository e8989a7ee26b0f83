"""Rules: the language's checks, four eyes on the ledger, shadow mode, errors that never
raise, backtests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.core import core_catalog
from provenance.errors import NotFoundError
from provenance.ledger import Ledger, LedgerEntry, PlatformSigner
from provenance.risk import (
    DEFAULT_RULES,
    MemoryStore,
    RiskDecision,
    RuleSet,
    approve_rule,
    backtest,
    ledger_sales,
    load_rules,
    propose_rule,
    risk_catalog,
)
from provenance.risk.errors import FourEyesError, RuleError, RuleStateError
from provenance.risk.language import check_condition
from provenance.risk.rules import RiskRuleVersion, RuleAction, RuleMode, RuleSpec
from tests.codes_support import SHOP, build_chain, sale_body
from tests.ledger_support import NOW, PLATFORM_KEY
from tests.risk_support import Shop, context, make_engine


@pytest.fixture()
def risk_ledger() -> Iterator[Ledger]:
    ledger = Ledger(core_catalog().merge(risk_catalog()), PlatformSigner(PLATFORM_KEY))
    yield ledger
    ledger.close()


def draft(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "rule": "big-night-sale",
        "condition": "sale.amount >= 5000.0",
        "action": "review",
        "reason": "amount-large",
        "en": "A very large purchase.",
        "zh": "一笔非常大的购买。",
    }
    base.update(changes)
    return base


# --- the language ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition,code,line,column",
    [
        ("buyer.count_1m >", "rule-syntax", 1, 17),
        ("buyer.count_1m >> 3", "rule-syntax", 1, 17),
        ("buyer.count_1m > 3 &&\n  buyer.velocity > 2", "unknown-feature", 2, 9),
        ("card.count_1m > 3", "unknown-feature", 1, 1),
        ("buyer > 3", "unknown-feature", 1, 1),
        ("buyer.count_1m + 0.5 > 3.0", "rule-type", 1, 16),
        ("buyer.count_1m > 'three'", "rule-type", 1, 16),
        ("sale.channel == 3", "rule-type", 1, 14),
        ("buyer.count_1m", "rule-type", 1, 1),
        ("!buyer.count_1m", "rule-type", 1, 1),
        ("instrument.tainted && sale.amount", "rule-type", 1, 23),
        ("sale.channel in ['web', 1]", "rule-type", 1, 17),
        ("exists(sale.amount)", "unknown-function", 1, 1),
        ("sale.region.matches('CN')", "unknown-function", 1, 13),
        ("{'a': 1}.a == 1", "rule-syntax", 1, 1),
        ("buyer.count_1m > null", "rule-syntax", 1, 18),
        ("buyer.count_1m > 3u", "rule-syntax", 1, 18),
    ],
)
def test_a_bad_condition_is_refused_with_its_position(
    condition: str, code: str, line: int, column: int
) -> None:
    with pytest.raises(RuleError) as caught:
        check_condition(condition)
    assert (caught.value.code, caught.value.line, caught.value.column) == (code, line, column)
    assert f"line {line}, column {column}" in str(caught.value)


@pytest.mark.parametrize(
    "condition",
    [
        'sale.channel in ["web", "app"] && double(buyer.count_1h) * 1.5 > 3.0',
        "buyer.count_1m >= 3 ? sale.amount > 10.0 : sale.amount > 1000.0",
        'instrument.bin.startsWith("6222") && size(sale.region) > 0',
        "buyer.count_1m > 2.5 || -buyer.sum_1h < -100.0",
    ],
)
def test_good_conditions_check(condition: str) -> None:
    assert check_condition(condition).source == condition


def test_every_default_rule_checks() -> None:
    for spec in DEFAULT_RULES:
        check_condition(spec.condition)


# --- versions on the ledger, four eyes ----------------------------------------------------


def _entries(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


@pytest.mark.parametrize(
    "changes,code,field",
    [
        ({"condition": "buyer.count_1m >"}, "rule-syntax", "condition"),
        ({"condition": "buyer.speed > 3"}, "unknown-feature", "condition"),
        ({"condition": "buyer.count_1m > 'x'"}, "rule-type", "condition"),
        ({"action": "deny"}, "unknown-action", "action"),
        ({"mode": "loud"}, "bad-rule", "mode"),
        ({"zh": "no Chinese here"}, "bad-rule", "zh"),
        ({"rule": "Bad Rule"}, "bad-rule", "rule"),
        ({"owner": "x"}, "bad-rule", "owner"),
    ],
)
def test_a_bad_rule_version_is_refused_and_nothing_is_saved(
    session: Session, risk_ledger: Ledger, changes: dict[str, object], code: str, field: str
) -> None:
    risk_ledger.ensure_genesis(session, name="test", now=NOW)
    before = _entries(session)
    with pytest.raises(RuleError) as caught:
        propose_rule(session, risk_ledger, draft(**changes), officer="olga", now=NOW)
    assert (caught.value.code, caught.value.field) == (code, field)
    assert _entries(session) == before
    assert session.scalars(select(RiskRuleVersion)).all() == []


def test_a_version_takes_effect_only_after_a_second_officer_approves(
    session: Session, risk_ledger: Ledger
) -> None:
    risk_ledger.ensure_genesis(session, name="test", now=NOW)
    stricter = draft(rule="burst-buyer", condition="buyer.count_1m >= 3", action="block")
    row = propose_rule(session, risk_ledger, stricter, officer="olga", now=NOW)
    assert (row.version, row.status) == (1, "pending")
    assert load_rules(session).version_of("burst-buyer") == DEFAULT_RULES[0]
    with pytest.raises(FourEyesError):
        approve_rule(session, risk_ledger, "burst-buyer", 1, officer="olga", now=NOW)
    approved = approve_rule(session, risk_ledger, "burst-buyer", 1, officer="petra", now=NOW)
    assert (approved.status, approved.approved_by) == ("active", "petra")
    running = load_rules(session).version_of("burst-buyer")
    assert running is not None and (running.version, running.condition) == (
        1,
        "buyer.count_1m >= 3",
    )
    types = session.scalars(select(LedgerEntry.type).order_by(LedgerEntry.seq)).all()
    assert types[-2:] == ["risk.rule", "risk.rule_approve"]


def test_approving_twice_or_an_unknown_version_is_refused(
    session: Session, risk_ledger: Ledger
) -> None:
    risk_ledger.ensure_genesis(session, name="test", now=NOW)
    propose_rule(session, risk_ledger, draft(), officer="olga", now=NOW)
    approve_rule(session, risk_ledger, "big-night-sale", 1, officer="petra", now=NOW)
    with pytest.raises(RuleStateError):
        approve_rule(session, risk_ledger, "big-night-sale", 1, officer="quinn", now=NOW)
    with pytest.raises(NotFoundError):
        approve_rule(session, risk_ledger, "big-night-sale", 7, officer="quinn", now=NOW)


def test_a_newer_approved_version_supersedes_older_ones(
    session: Session, risk_ledger: Ledger
) -> None:
    risk_ledger.ensure_genesis(session, name="test", now=NOW)
    propose_rule(session, risk_ledger, draft(), officer="olga", now=NOW)
    propose_rule(
        session, risk_ledger, draft(condition="sale.amount >= 8000.0"), officer="olga", now=NOW
    )
    approve_rule(session, risk_ledger, "big-night-sale", 2, officer="petra", now=NOW)
    with pytest.raises(RuleStateError):
        approve_rule(session, risk_ledger, "big-night-sale", 1, officer="petra", now=NOW)
    statuses = [
        row.status
        for row in session.scalars(select(RiskRuleVersion).order_by(RiskRuleVersion.version))
    ]
    assert statuses == ["superseded", "active"]


def test_mode_off_retires_a_default_rule(session: Session, risk_ledger: Ledger) -> None:
    risk_ledger.ensure_genesis(session, name="test", now=NOW)
    off = draft(rule="amount-unusual", condition="false", mode="off")
    propose_rule(session, risk_ledger, off, officer="olga", now=NOW)
    approve_rule(session, risk_ledger, "amount-unusual", 1, officer="petra", now=NOW)
    assert load_rules(session).version_of("amount-unusual") is None


# --- at decision time -------------------------------------------------------------------------


def test_a_shadow_rule_is_reported_but_not_enforced() -> None:
    shadow = RuleSpec(
        "try-block-web",
        1,
        'sale.channel == "web"',
        RuleAction.BLOCK,
        "web-sale",
        "Web.",
        "网页。",
        RuleMode.SHADOW,
    )
    assessment = Shop(make_engine(MemoryStore(), RuleSet([shadow]))).sell(context())
    assert assessment.decision is RiskDecision.ALLOW
    assert [r.code for r in assessment.shadow] == ["web-sale"]
    assert assessment.reasons == ()


@pytest.mark.parametrize(
    "condition",
    [
        "1 / (buyer.count_1m - 1) > 0",  # division by zero on a buyer's first sale
        "(buyer.count_1m + 1) * 9223372036854775807 > 0",  # overflow
    ],
)
def test_a_rule_that_fails_at_decision_time_means_review(condition: str) -> None:
    spec = RuleSpec("fragile", 1, condition, RuleAction.BLOCK, "fragile", "F.", "脆弱。")
    check_condition(condition)
    assessment = Shop(make_engine(MemoryStore(), RuleSet([spec]))).sell(context())
    assert assessment.decision is RiskDecision.REVIEW
    assert [(r.code, r.rule, r.action) for r in assessment.reasons] == [
        ("rule-error", "fragile", RiskDecision.REVIEW)
    ]
    assert "规则" in assessment.reasons[0].zh


def test_a_failing_rule_does_not_hide_a_block_from_another() -> None:
    fragile = RuleSpec("fragile", 1, "1 / 0 > 0", RuleAction.BLOCK, "fragile", "F.", "脆弱。")
    always = RuleSpec("always", 1, "true", RuleAction.BLOCK, "always", "A.", "总是。")
    assessment = Shop(make_engine(MemoryStore(), RuleSet([fragile, always]))).sell(context())
    assert assessment.decision is RiskDecision.BLOCK
    assert {r.code for r in assessment.reasons} == {"rule-error", "always"}


# --- backtest -----------------------------------------------------------------------------------


def test_backtest_reports_what_a_version_would_have_blocked_by_day_and_merchant(
    session: Session, risk_ledger: Ledger
) -> None:
    chain = build_chain(session, risk_ledger)
    for i in range(4):
        chain.append(session, SHOP, "code.sale", sale_body(i, instrument="card-1"))
    # The same card across four buyers: the shipped rule blocks the 3rd and 4th sale;
    # a candidate that waits for five buyers blocks none.
    lenient = RuleSpec(
        "instrument-many-buyers",
        1,
        "instrument.distinct_buyers_24h >= 5",
        RuleAction.BLOCK,
        "instrument-many-buyers",
        "Many buyers.",
        "多个买家。",
    )
    current = RuleSet(DEFAULT_RULES)
    rows = backtest(ledger_sales(session), current=current, candidate=current.replace(lenient))
    assert [(r.day, r.merchant, r.sales) for r in rows] == [(NOW.date(), SHOP, 4)]
    row = rows[0]
    assert (row.blocked_current, row.blocked_candidate) == (2, 0)
    assert (row.no_longer_blocked, row.newly_blocked) == (2, 0)


def test_backtest_splits_days() -> None:
    from provenance.risk.context import Pseudonym, SaleFacts, SaleKeys

    sales = [
        SaleFacts(
            f"{i:064x}", NOW + timedelta(days=i // 2), SHOP, SaleKeys(Pseudonym("a" * 32)), 10_000
        )
        for i in range(4)
    ]
    strict = RuleSet([RuleSpec("all", 1, "true", RuleAction.BLOCK, "all", "All.", "全部。")])
    rows = backtest(sales, current=RuleSet([]), candidate=strict)
    assert [(r.day, r.sales, r.newly_blocked) for r in rows] == [
        (NOW.date(), 2, 2),
        ((NOW + timedelta(days=1)).date(), 2, 2),
    ]

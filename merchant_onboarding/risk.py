"""The risk score: documented, weighted rules over the checks' results.

Each rule adds points; the score is their sum capped at 100, and every rule's
contribution is kept, so an officer sees why a score is what it is. The rules and
weights are listed in docs/ONBOARDING.md; change them here and there together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from merchant_onboarding.checks import CheckName, CheckResult, Result


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


MEDIUM_FROM = 20
HIGH_FROM = 50
MAX_SCORE = 100


@dataclass(frozen=True, slots=True)
class RiskRule:
    """``points`` reads the check results (by name) and returns what the rule adds."""

    id: str
    description: str
    weight: int
    points: Callable[[Mapping[CheckName, CheckResult]], int]


def _on_check(name: CheckName, weight: int, warn_weight: int) -> Callable[..., int]:
    def points(results: Mapping[CheckName, CheckResult]) -> int:
        result = results.get(name)
        if result is None:
            return 0
        return {Result.FAIL: weight, Result.WARN: warn_weight}.get(result.result, 0)

    return points


def _on_evidence(name: CheckName, key: str, test: Callable[[Any], bool], weight: int) -> Any:
    def points(results: Mapping[CheckName, CheckResult]) -> int:
        result = results.get(name)
        if result is None:
            return 0
        value = result.evidence.get(key)
        return weight if value is not None and test(value) else 0

    return points


def _rule(id: str, description: str, check: CheckName, fail: int, warn: int) -> RiskRule:
    return RiskRule(id, description, fail, _on_check(check, fail, warn))


RULES: tuple[RiskRule, ...] = (
    _rule(
        "credit-code",
        "credit code invalid (fail) or not an enterprise of market regulation (warn)",
        CheckName.CREDIT_CODE,
        40,
        10,
    ),
    _rule(
        "legal-rep-id", "legal representative's ID number invalid", CheckName.LEGAL_REP_ID, 30, 0
    ),
    _rule(
        "enterprise-registry",
        "not in the registry, not in business (吊销/注销/...), or another name (fail); "
        "different legal representative, young, or unverified (warn)",
        CheckName.ENTERPRISE_REGISTRY,
        40,
        10,
    ),
    _rule(
        "icp-filing",
        "ICP filing malformed, missing, held by someone else or not covering the domain",
        CheckName.ICP_FILING,
        25,
        10,
    ),
    _rule("domain", "published pages on another domain than the shop", CheckName.DOMAIN, 10, 5),
    _rule(
        "payment-licence",
        "no payment licence and no clearing agreement (fail); document missing (warn)",
        CheckName.PAYMENT_LICENCE,
        30,
        10,
    ),
    _rule(
        "fund-custody",
        "customer funds pooled or held by the merchant (fail); no agreement (warn)",
        CheckName.FUND_CUSTODY,
        30,
        10,
    ),
    _rule(
        "policies",
        "user agreement or privacy policy not published (fail); not over https (warn)",
        CheckName.POLICIES,
        10,
        5,
    ),
    _rule(
        "reuse",
        "bank account or document used by a rejected or banned merchant (fail), or by "
        "another application (warn)",
        CheckName.REUSE,
        50,
        15,
    ),
    _rule(
        "screening",
        "watch-list hit an officer has not cleared (fail) or a weak hit (warn)",
        CheckName.SCREENING,
        40,
        20,
    ),
    RiskRule(
        "young-company",
        "established less than a year ago",
        10,
        _on_evidence(CheckName.ENTERPRISE_REGISTRY, "age_days", lambda d: d < 365, 10),
    ),
    RiskRule(
        "low-capital",
        "registered capital below 1,000,000 yuan",
        5,
        _on_evidence(CheckName.ENTERPRISE_REGISTRY, "capital_yuan", lambda c: c < 1_000_000, 5),
    ),
)


@dataclass(frozen=True, slots=True)
class Contribution:
    rule: str
    description: str
    weight: int
    points: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "description": self.description,
            "weight": self.weight,
            "points": self.points,
        }


@dataclass(frozen=True, slots=True)
class RiskScore:
    score: int
    level: RiskLevel
    contributions: tuple[Contribution, ...]


def level_for(score: int) -> RiskLevel:
    if score >= HIGH_FROM:
        return RiskLevel.HIGH
    if score >= MEDIUM_FROM:
        return RiskLevel.MEDIUM
    return RiskLevel.LOW


def score(results: Sequence[CheckResult], rules: Sequence[RiskRule] = RULES) -> RiskScore:
    """Apply every rule; with several results of one check (screening), the worst counts."""
    by_name: dict[CheckName, CheckResult] = {}
    order = {Result.PASS: 0, Result.WARN: 1, Result.FAIL: 2}
    for result in results:
        current = by_name.get(result.name)
        if current is None or order[result.result] > order[current.result]:
            by_name[result.name] = result
    contributions = tuple(
        Contribution(rule.id, rule.description, rule.weight, rule.points(by_name)) for rule in rules
    )
    total = min(MAX_SCORE, sum(c.points for c in contributions))
    return RiskScore(total, level_for(total), contributions)

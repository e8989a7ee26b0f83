"""The decision: features from the state, the rules over them, one answer with reasons."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from provenance.risk.context import SaleContext, SaleFacts
from provenance.risk.errors import StoreUnavailableError
from provenance.risk.features import Observation, Scope, compute_features
from provenance.risk.regions import RegionLookup
from provenance.risk.rules import RuleAction, RuleMode, RuleSet, RuleSpec
from provenance.risk.store import StateStore, TaintKind

log = logging.getLogger(__name__)


class RiskDecision(StrEnum):
    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


_SEVERITY = {RiskDecision.ALLOW: 0, RiskDecision.REVIEW: 1, RiskDecision.BLOCK: 2}
_ACTIONS = {RuleAction.REVIEW: RiskDecision.REVIEW, RuleAction.BLOCK: RiskDecision.BLOCK}


@dataclass(frozen=True, slots=True)
class RiskReason:
    """Why a rule spoke: its reason code, the rule version, and a sentence in EN and ZH.

    ``subject`` is the party the rule is about (``buyer``, ``instrument``, ``device`` or
    ``ip``: see :func:`provenance.risk.rules.subject_of`); its alert names that party.
    """

    code: str
    rule: str
    version: int
    action: RiskDecision
    en: str
    zh: str
    subject: Scope = Scope.BUYER

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "rule": self.rule,
            "version": self.version,
            "action": self.action.value,
            "en": self.en,
            "zh": self.zh,
        }


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """The risk step's answer.

    Attributes:
        decision: the most severe action among enforced rules that fired (or failed).
        reasons: enforced rules that fired, and rules that failed to evaluate (as
            ``rule-error``, action review).
        shadow: shadow-mode rules that fired: recorded, never enforced.
        features: every feature's value for this sale.
        held: the sale is held in the state (see ``RiskEngine.assess``).
    """

    decision: RiskDecision
    reasons: tuple[RiskReason, ...] = ()
    shadow: tuple[RiskReason, ...] = ()
    features: Mapping[str, Any] = field(default_factory=dict)
    held: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "reasons": [r.to_json() for r in self.reasons],
            "shadow": [r.to_json() for r in self.shadow],
        }


def _error_reason(spec: RuleSpec) -> RiskReason:
    return RiskReason(
        "rule-error",
        spec.id,
        spec.version,
        RiskDecision.REVIEW,
        f"Rule {spec.id} could not be evaluated; the sale needs review.",
        f"规则 {spec.id} 无法评估，本次交易需人工复核。",
    )


STORE_UNAVAILABLE = RiskReason(
    "risk-state-unavailable",
    "-",
    0,
    RiskDecision.REVIEW,
    "The risk state could not be read; the sale needs review.",
    "无法读取风险状态，本次交易需人工复核。",
)


def evaluate(
    rules: RuleSet, features: Mapping[str, Any]
) -> tuple[RiskDecision, tuple[RiskReason, ...], tuple[RiskReason, ...]]:
    """Run every rule over the features; never raises.

    A rule whose evaluation fails (division by zero, overflow, a non-bool result) counts
    as ``review`` with the reason ``rule-error``, whatever its mode: a broken rule is
    noticed rather than silently passing.

    Returns:
        The decision, the enforced reasons and the shadow reasons.
    """
    reasons: list[RiskReason] = []
    shadow: list[RiskReason] = []
    decision = RiskDecision.ALLOW
    for rule in rules.rules:
        spec = rule.spec
        try:
            fired = rule.run(features)
            if not isinstance(fired, bool):
                raise TypeError(f"the condition gave {type(fired).__name__}, not bool")
        except Exception as e:  # a rule must never break a sale: see the docstring
            log.warning("risk rule %s v%d failed: %s", spec.id, spec.version, type(e).__name__)
            reasons.append(_error_reason(spec))
            decision = max(decision, RiskDecision.REVIEW, key=_SEVERITY.__getitem__)
            continue
        if not fired:
            continue
        action = _ACTIONS[spec.action]
        reason = RiskReason(
            spec.reason, spec.id, spec.version, action, spec.en, spec.zh, rule.subject
        )
        if spec.mode is RuleMode.SHADOW:
            shadow.append(reason)
        else:
            reasons.append(reason)
            decision = max(decision, action, key=_SEVERITY.__getitem__)
    return decision, tuple(reasons), tuple(shadow)


class RiskEngine:
    """Real-time risk for one platform: rules, a state store, the region table.

    Args:
        rules: the rules in force (``load_rules(session)``).
        store: where the sliding windows and histories live.
        key: the platform's fingerprint key, to pseudonymise device and IP.
        regions: IP-to-region look-up; ``None`` leaves ``sale.ip_region`` empty.
    """

    def __init__(
        self,
        *,
        rules: RuleSet,
        store: StateStore,
        key: bytes,
        regions: RegionLookup | None = None,
    ) -> None:
        self.rules = rules
        self.store = store
        self.key = key
        self.regions = regions

    def with_store(self, store: StateStore) -> RiskEngine:
        return RiskEngine(rules=self.rules, store=store, key=self.key, regions=self.regions)

    def _ip_region(self, context: SaleContext) -> str | None:
        if context.ip is None or self.regions is None:
            return None
        return self.regions.region_of(context.ip)

    def facts(self, context: SaleContext, *, merchant: str, now: datetime, ref: str) -> SaleFacts:
        """The sale as the state stores see it: pseudonyms, amount units, region."""
        region = self._ip_region(context) or context.region
        return SaleFacts(
            ref=ref,
            at=now,
            merchant=merchant,
            keys=context.keys(self.key),
            amount_units=context.amount_units,
            region=region,
        )

    def assess(
        self,
        context: SaleContext,
        *,
        merchant: str,
        now: datetime,
        hold: str | None = None,
    ) -> RiskAssessment:
        """Decide on a sale about to happen. Never raises for a rule or the state.

        Args:
            context: the validated sale context.
            merchant: the selling party.
            now: the platform's time.
            hold: the sale's reference (the code fingerprint's hex). Given, the sale is
                put into the velocity windows atomically with reading them, so parallel
                sales for one buyer see each other; a ``block`` releases it again.
                Without it, nothing is written.
        """
        ip_region = self._ip_region(context)
        facts = self.facts(context, merchant=merchant, now=now, ref=hold or "")
        try:
            observation = self.store.observe(facts, hold=hold is not None)
        except StoreUnavailableError:
            log.error("risk state unavailable; the sale goes to review")
            return RiskAssessment(RiskDecision.REVIEW, (STORE_UNAVAILABLE,))
        features = self.features(context, facts, observation, ip_region)
        decision, reasons, shadow = evaluate(self.rules, features)
        held = observation.held
        if held and decision is RiskDecision.BLOCK:
            self.store.release(facts)
            held = False
        return RiskAssessment(decision, reasons, shadow, features, held)

    def features(
        self,
        context: SaleContext,
        facts: SaleFacts,
        observation: Observation,
        ip_region: str | None,
    ) -> dict[str, Any]:
        return compute_features(
            facts,
            observation,
            channel=context.channel.value,
            declared_region=context.region,
            ip_region=ip_region,
            bin=context.instrument.bin if context.instrument else None,
        )

    def record_sale(self, context: SaleContext, *, merchant: str, now: datetime, ref: str) -> bool:
        """The sale happened: count it (once) and update the buyer's history.

        Returns:
            False if this sale was already recorded.

        Raises:
            StoreUnavailableError: the state could not be written.
        """
        return self.store.record(self.facts(context, merchant=merchant, now=now, ref=ref))

    def release(self, context: SaleContext, *, merchant: str, now: datetime, ref: str) -> None:
        """A held sale will not happen (the code was refused): take the hold back.

        ``now`` must be the time the sale was assessed with.
        """
        self.store.release(self.facts(context, merchant=merchant, now=now, ref=ref))

    def mark_tainted(self, kind: TaintKind, pseudonym: str) -> None:
        self.store.mark_tainted(kind, pseudonym)


assert RuleAction.BLOCK.value == RiskDecision.BLOCK.value

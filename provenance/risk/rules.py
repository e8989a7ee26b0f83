"""Rules that officers manage: versions and approvals on the ledger, four eyes.

A rule is a condition over the features (see :mod:`provenance.risk.language`), an
action (``review`` or ``block``), a reason code and a sentence in English and Chinese.
Each new version is checked before it is written; it is a ``risk.rule`` ledger entry and
takes effect only after a ``risk.rule_approve`` entry by a different officer. A version's
mode is ``enforce`` (its action counts), ``shadow`` (evaluated and recorded, never
enforced) or ``off`` (retires the rule). The projectors repeat every check, so an entry
that breaks the rules is refused however it arrives.

The rules that ship with cardtrace (:data:`DEFAULT_RULES`) are version 0 of their ids and
apply until an approved version of the same id replaces them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import cel
import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from provenance.catalog import AppliedEntry, Body, EntryCatalog, EntryType, each
from provenance.codes import Pseudonym
from provenance.db import Base
from provenance.errors import NotFoundError
from provenance.ledger import Ledger
from provenance.parties import NotPermittedError, Party, PartyKind
from provenance.risk.errors import FourEyesError, RuleError, RuleStateError
from provenance.risk.features import Scope
from provenance.risk.language import check_condition, compile_condition, variable
from provenance.risk.store import RiskTaint, TaintKind

RULE_TYPE = "risk.rule"
APPROVE_TYPE = "risk.rule_approve"
TAINT_TYPE = "risk.taint"
SLUG = r"^[a-z][a-z0-9-]{1,63}$"
OFFICER = r"^[a-z][a-z0-9._-]{1,63}$"


class RuleAction(StrEnum):
    REVIEW = "review"
    BLOCK = "block"


class RuleMode(StrEnum):
    ENFORCE = "enforce"
    SHADOW = "shadow"
    OFF = "off"


class RuleStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUPERSEDED = "superseded"


def _chinese(value: str) -> str:
    if not any("\u4e00" <= c <= "\u9fff" for c in value):
        raise ValueError("must be a sentence in Chinese")
    return value


English = Annotated[str, Field(min_length=1, max_length=300)]
Chinese = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_chinese)]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One version of one rule, as the engine runs it."""

    id: str
    version: int
    condition: str
    action: RuleAction
    reason: str
    en: str
    zh: str
    mode: RuleMode = RuleMode.ENFORCE


class RuleDraft(BaseModel):
    """A new rule version as an officer writes it (checked before it is saved)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    rule: str = Field(pattern=SLUG)
    condition: str = Field(min_length=1, max_length=2000)
    action: RuleAction
    reason: str = Field(pattern=SLUG)
    en: English
    zh: Chinese
    mode: RuleMode = RuleMode.ENFORCE


def parse_draft(raw: dict[str, Any]) -> RuleDraft:
    """Validate a draft and its condition.

    Raises:
        RuleError: ``unknown-action`` for an action other than review or block; the
            condition's ``rule-syntax``, ``unknown-feature``, ``unknown-function`` or
            ``rule-type`` with its position; ``bad-rule`` naming any other field.
    """
    action = raw.get("action")
    if action not in {a.value for a in RuleAction}:
        raise RuleError(
            f"unknown action {action!r}: a rule's action is review or block",
            code="unknown-action",
            field="action",
        )
    try:
        draft = RuleDraft.model_validate(raw)
    except pydantic.ValidationError as e:
        first = e.errors(include_url=False, include_input=False, include_context=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "rule"
        raise RuleError(f"{where}: {first['msg']}", field=where) from e
    check_condition(draft.condition)
    return draft


# --- the rules that ship --------------------------------------------------------------

DEFAULT_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "burst-buyer",
        0,
        "buyer.count_1m >= 6 || buyer.count_1h >= 30",
        RuleAction.BLOCK,
        "burst-buyer",
        "This buyer made too many purchases in a short time.",
        "该买家在短时间内购买次数过多。",
    ),
    RuleSpec(
        "burst-instrument",
        0,
        "instrument.count_1m >= 5 || instrument.count_1h >= 20",
        RuleAction.BLOCK,
        "burst-instrument",
        "This payment card was used too many times in a short time.",
        "该支付卡在短时间内使用次数过多。",
    ),
    RuleSpec(
        "burst-device",
        0,
        'sale.channel != "pos" && (device.count_1m >= 8 || device.count_1h >= 40)',
        RuleAction.REVIEW,
        "burst-device",
        "Too many purchases from this device in a short time.",
        "该设备在短时间内购买次数过多。",
    ),
    RuleSpec(
        "burst-ip",
        0,
        'sale.channel != "pos" && (ip.count_1m >= 12 || ip.count_1h >= 80)',
        RuleAction.REVIEW,
        "burst-ip",
        "Too many purchases from this IP address in a short time.",
        "该IP地址在短时间内购买次数过多。",
    ),
    RuleSpec(
        "instrument-many-buyers",
        0,
        "instrument.distinct_buyers_24h >= 3",
        RuleAction.BLOCK,
        "instrument-many-buyers",
        "This payment card was used by several buyer accounts within a day.",
        "该支付卡一天内被多个买家账户使用。",
    ),
    RuleSpec(
        "device-many-instruments",
        0,
        'sale.channel != "pos" && (device.distinct_instruments_24h >= 5 || '
        "(device.distinct_instruments_24h >= 3 && device.sum_24h >= 2000.0))",
        RuleAction.BLOCK,
        "device-many-instruments",
        "Many different payment cards were used on this device within a day.",
        "该设备一天内使用了多张不同的支付卡。",
    ),
    RuleSpec(
        "new-device-region-change",
        0,
        "device.new_for_buyer && buyer.region_changed && sale.amount >= 500.0",
        RuleAction.REVIEW,
        "new-device-region-change",
        "A high-value purchase from a new device in a region the buyer did not use before.",
        "买家在新设备、新地区进行了大额购买。",
    ),
    RuleSpec(
        "instrument-stolen",
        0,
        "instrument.tainted",
        RuleAction.BLOCK,
        "instrument-stolen",
        "This payment card was reported stolen.",
        "该支付卡已被报告为被盗卡。",
    ),
    RuleSpec(
        "device-reported",
        0,
        "device.tainted",
        RuleAction.REVIEW,
        "device-reported",
        "This device was named in a partner's fraud notice.",
        "该设备出现在合作方的欺诈通报中。",
    ),
    RuleSpec(
        "amount-unusual",
        0,
        "buyer.history_count >= 3 && buyer.amount_ratio >= 10.0 && sale.amount >= 300.0",
        RuleAction.REVIEW,
        "amount-unusual",
        "This amount is far above what this buyer usually spends.",
        "该金额远高于该买家的日常消费。",
    ),
)


# --- the compiled set -------------------------------------------------------------------


# Whom an alert from a rule is about: the party whose features the rule reads most
# (ties go to the earlier one here); a rule reading none of them is about the buyer.
SUBJECTS = (Scope.BUYER, Scope.INSTRUMENT, Scope.DEVICE, Scope.IP)


def subject_of(features: Iterable[str]) -> Scope:
    """The party a rule over ``features`` speaks about (see :data:`SUBJECTS`)."""
    groups = Counter(name.partition(".")[0] for name in features)
    best = max(SUBJECTS, key=lambda scope: groups[scope.value])
    return best if groups[best.value] else Scope.BUYER


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to run: ``run`` decides (see ``CheckedCondition.run``); ``program``
    is the same condition for CEL's own runtime, which the tests hold it against."""

    spec: RuleSpec
    program: cel.Program
    run: Callable[[Mapping[str, Any]], Any]
    subject: Scope = Scope.BUYER


class RuleSet:
    """The rules the engine runs: compiled once, evaluated per sale."""

    def __init__(self, specs: Iterable[RuleSpec]) -> None:
        self.specs = tuple(s for s in specs if s.mode is not RuleMode.OFF)
        checked = [check_condition(spec.condition) for spec in self.specs]
        self.rules = tuple(
            CompiledRule(spec, compile_condition(c.executable), c.run, subject_of(c.features))
            for spec, c in zip(self.specs, checked, strict=True)
        )
        # The features some rule reads, and the CEL variable each is given as.
        self.variables = tuple(
            sorted({(name, variable(name)) for c in checked for name in c.features})
        )

    def replace(self, spec: RuleSpec) -> RuleSet:
        """The same set with ``spec`` in place of its rule's current version."""
        return RuleSet([*(s for s in self.specs if s.id != spec.id), spec])

    def version_of(self, rule: str) -> RuleSpec | None:
        return next((s for s in self.specs if s.id == rule), None)


# --- ledger entries and their projection -------------------------------------------------


class RuleVersionBody(Body):
    rule: str = Field(pattern=SLUG)
    version: int = Field(ge=1, le=1_000_000)
    condition: str = Field(min_length=1, max_length=2000)
    action: RuleAction = Field(strict=False)
    mode: RuleMode = Field(strict=False)
    reason: str = Field(pattern=SLUG)
    en: English
    zh: Chinese
    by: str = Field(pattern=OFFICER)


class RuleApproveBody(Body):
    rule: str = Field(pattern=SLUG)
    version: int = Field(ge=1, le=1_000_000)
    by: str = Field(pattern=OFFICER)


class TaintBody(Body):
    kind: TaintKind = Field(strict=False)
    pseudonym: Pseudonym
    reason: str = Field(min_length=1, max_length=500)


class RiskRuleVersion(Base):
    __tablename__ = "risk_rule_version"

    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    condition: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(8))
    mode: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(64))
    en: Mapped[str] = mapped_column(String(300))
    zh: Mapped[str] = mapped_column(String(300))
    author: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime]
    proposed_seq: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), index=True)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None]
    approved_seq: Mapped[int | None] = mapped_column(BigInteger)

    def spec(self) -> RuleSpec:
        return RuleSpec(
            self.rule,
            self.version,
            self.condition,
            RuleAction(self.action),
            self.reason,
            self.en,
            self.zh,
            RuleMode(self.mode),
        )


def _latest_version(session: Session, rule: str) -> int:
    latest = session.scalar(
        select(func.max(RiskRuleVersion.version)).where(RiskRuleVersion.rule == rule)
    )
    return int(latest or 0)


def _project_rule(session: Session, entry: AppliedEntry[RuleVersionBody]) -> None:
    body = entry.body
    check_condition(body.condition)
    expected = _latest_version(session, body.rule) + 1
    if body.version != expected:
        raise RuleStateError(
            f"rule {body.rule}: the next version is {expected}, not {body.version}",
            code="stale-rule-version",
        )
    session.add(
        RiskRuleVersion(
            rule=body.rule,
            version=body.version,
            condition=body.condition,
            action=body.action.value,
            mode=body.mode.value,
            reason=body.reason,
            en=body.en,
            zh=body.zh,
            author=body.by,
            proposed_at=entry.time,
            proposed_seq=entry.seq,
            status=RuleStatus.PENDING.value,
            approved_by=None,
            approved_at=None,
            approved_seq=None,
        )
    )
    session.flush()


def _project_approve(session: Session, entry: AppliedEntry[RuleApproveBody]) -> None:
    body = entry.body
    row = session.get(RiskRuleVersion, (body.rule, body.version))
    if row is None:
        raise RuleStateError(
            f"rule {body.rule} has no version {body.version}", code="no-rule-version"
        )
    if row.status != RuleStatus.PENDING.value:
        raise RuleStateError(f"rule {body.rule} version {body.version} is {row.status}")
    if row.author == body.by:
        raise FourEyesError(
            f"{body.by} wrote rule {body.rule} version {body.version}; "
            "a different officer must approve it"
        )
    active = session.scalars(
        select(RiskRuleVersion).where(
            RiskRuleVersion.rule == body.rule,
            RiskRuleVersion.status == RuleStatus.ACTIVE.value,
        )
    ).first()
    if active is not None and active.version > body.version:
        raise RuleStateError(
            f"rule {body.rule} already runs version {active.version}, newer than {body.version}"
        )
    for older in session.scalars(
        select(RiskRuleVersion).where(
            RiskRuleVersion.rule == body.rule,
            RiskRuleVersion.version < body.version,
            RiskRuleVersion.status != RuleStatus.SUPERSEDED.value,
        )
    ):
        older.status = RuleStatus.SUPERSEDED.value
    row.status = RuleStatus.ACTIVE.value
    row.approved_by = body.by
    row.approved_at = entry.time
    row.approved_seq = entry.seq
    session.flush()


def _project_taint(session: Session, entry: AppliedEntry[TaintBody]) -> None:
    body = entry.body
    reporter = session.get(Party, entry.actor)
    if reporter is None or reporter.kind not in (PartyKind.PARTNER.value, PartyKind.PLATFORM.value):
        raise NotPermittedError(
            "only an anti-fraud partner or the platform reports a device or card"
        )
    if session.get(RiskTaint, (body.kind.value, body.pseudonym)) is None:
        session.add(RiskTaint(kind=body.kind.value, pseudonym=body.pseudonym))
    session.flush()


ENTRY_TYPES = (
    EntryType(RULE_TYPE, RuleVersionBody, each(_project_rule), platform_only=True),
    EntryType(APPROVE_TYPE, RuleApproveBody, each(_project_approve), platform_only=True),
    EntryType(TAINT_TYPE, TaintBody, each(_project_taint)),
)
PROJECTION_TABLES = ("risk_rule_version",)


def risk_catalog() -> EntryCatalog:
    return EntryCatalog.of(ENTRY_TYPES, PROJECTION_TABLES)


# --- the service ---------------------------------------------------------------------------


def propose_rule(
    session: Session, ledger: Ledger, raw: dict[str, Any], *, officer: str, now: datetime
) -> RiskRuleVersion:
    """Check a new rule version and write it, pending a second officer's approval.

    Raises:
        RuleError: the draft is malformed or its condition does not check (nothing is
            written).
    """
    draft = parse_draft(raw)
    version = _latest_version(session, draft.rule) + 1
    body = {
        "rule": draft.rule,
        "version": version,
        "condition": draft.condition,
        "action": draft.action.value,
        "mode": draft.mode.value,
        "reason": draft.reason,
        "en": draft.en,
        "zh": draft.zh,
        "by": officer,
    }
    ledger.append_as_platform(session, [ledger.statement(RULE_TYPE, body, now=now)], now=now)
    return get_version(session, draft.rule, version)


def approve_rule(
    session: Session, ledger: Ledger, rule: str, version: int, *, officer: str, now: datetime
) -> RiskRuleVersion:
    """Approve a pending version; it replaces the rule's current version.

    Raises:
        NotFoundError: no such version.
        FourEyesError: ``officer`` wrote it.
        RuleStateError: it is not pending, or a newer version already runs.
    """
    get_version(session, rule, version)
    body = {"rule": rule, "version": version, "by": officer}
    ledger.append_as_platform(session, [ledger.statement(APPROVE_TYPE, body, now=now)], now=now)
    row = get_version(session, rule, version)
    session.refresh(row)
    return row


def get_version(session: Session, rule: str, version: int) -> RiskRuleVersion:
    row = session.get(RiskRuleVersion, (rule, version))
    if row is None:
        raise NotFoundError(f"rule {rule} has no version {version}")
    return row


def versions(session: Session, rule: str | None = None) -> Sequence[RiskRuleVersion]:
    query = select(RiskRuleVersion).order_by(RiskRuleVersion.rule, RiskRuleVersion.version)
    if rule is not None:
        query = query.where(RiskRuleVersion.rule == rule)
    return session.scalars(query).all()


def active_specs(session: Session) -> list[RuleSpec]:
    """The rules in force: each approved version, else the shipped default (version 0)."""
    approved = {
        row.rule: row.spec()
        for row in session.scalars(
            select(RiskRuleVersion).where(RiskRuleVersion.status == RuleStatus.ACTIVE.value)
        )
    }
    specs = [approved.pop(spec.id, spec) for spec in DEFAULT_RULES]
    return [*specs, *sorted(approved.values(), key=lambda s: s.id)]


def load_rules(session: Session) -> RuleSet:
    return RuleSet(active_specs(session))

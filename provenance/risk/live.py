"""The risk state kept live: the engine a process decides with, and what committed ledger
entries change in it.

A process (the web app, a worker, a command) keeps one :class:`LiveRisk`. It gives the
engine for a session (:meth:`LiveRisk.engine`: the shared ``RedisStore`` when Redis is
configured, else a ``SqlStore`` over that session), with the rules in force and the
IP-to-region table cached between calls and re-read when they change.

When entries are appended, :meth:`LiveRisk.entries_appended` feeds them to the state:

- each ``code.sale`` is recorded (:meth:`~provenance.risk.store.StateStore.record`),
  keyed by the code fingerprint's hex, with the pseudonyms, amount and seller of its
  body: exactly what :func:`~provenance.risk.replay.rebuild_state` replays, so a rebuild
  from the ledger gives the same windows, sets and histories;
- each ``payment.stolen`` of an instrument and each ``risk.taint`` marks the instrument
  or device tainted.

With the SQL store this happens in the append's own transaction (all or nothing with
the entries). With Redis it happens once the transaction commits: a rolled-back append
changes nothing, and if Redis cannot be reached then, the failure is logged and
``cardtrace risk rebuild`` restores the state from the ledger.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from provenance.entries import Statement, format_time, parse_time
from provenance.risk.context import AMOUNT_SCALE, Pseudonym, SaleFacts, SaleKeys
from provenance.risk.engine import RiskAssessment, RiskDecision, RiskEngine
from provenance.risk.errors import StoreUnavailableError
from provenance.risk.features import Scope
from provenance.risk.redis_store import RedisStore
from provenance.risk.regions import CidrRegionTable, load_region_table
from provenance.risk.rules import TAINT_TYPE, RiskRuleVersion, RuleSet, load_rules
from provenance.risk.store import SqlStore, TaintKind

log = logging.getLogger(__name__)

SALE_TYPE = "code.sale"
STOLEN_TYPE = "payment.stolen"
_PENDING = "cardtrace.risk.after_commit"


def _key(value: object) -> Pseudonym | None:
    return Pseudonym(value) if isinstance(value, str) else None


def sale_facts(statement: Statement) -> SaleFacts | None:
    """A ``code.sale`` statement as the state records it (``None`` for other types)."""
    if statement.type != SALE_TYPE:
        return None
    body = statement.body
    return SaleFacts(
        ref=base64.b64decode(body["code"]).hex(),
        at=statement.time,
        merchant=statement.actor,
        keys=SaleKeys(
            buyer=Pseudonym(body["buyer"]),
            instrument=_key(body.get("instrument")),
            device=_key(body.get("device")),
            ip=_key(body.get("ip")),
        ),
        amount_units=int(Decimal(body["amount"]) * AMOUNT_SCALE),
    )


def taint_of(statement: Statement) -> tuple[TaintKind, str] | None:
    """The instrument or device a partner notice names (``None`` for other entries)."""
    body = statement.body
    if statement.type == STOLEN_TYPE and body.get("kind") == "instrument":
        return TaintKind.INSTRUMENT, str(body["pseudonym"])
    if statement.type == TAINT_TYPE:
        return TaintKind(body["kind"]), str(body["pseudonym"])
    return None


# --- what a decision leaves for the alert queue ------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskHit:
    """A rule that spoke on one sale: an enforced ``review`` or ``block`` becomes an alert
    about its subject; a shadow rule that fired is only recorded.

    Every field is a pseudonym, an id or a fixed sentence: a hit can travel to a task
    (:meth:`to_json`) and be logged without personal data.
    """

    rule: str
    version: int
    action: str
    reason: str
    en: str
    subject_kind: str
    subject: str
    ref: str
    merchant: str
    at: datetime
    shadow: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "version": self.version,
            "action": self.action,
            "reason": self.reason,
            "en": self.en,
            "subject_kind": self.subject_kind,
            "subject": self.subject,
            "ref": self.ref,
            "merchant": self.merchant,
            "at": format_time(self.at),
            "shadow": self.shadow,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RiskHit:
        return cls(**{**raw, "at": parse_time(raw["at"])})


def hits_of(assessment: RiskAssessment, facts: SaleFacts) -> list[RiskHit]:
    """The alerts (and shadow records) one assessment leaves.

    The subject is the party the rule is about; if the sale does not name it (a device
    rule on a sale without a device), the buyer.
    """
    keys = facts.keys
    parties = {
        Scope.BUYER: keys.buyer,
        Scope.INSTRUMENT: keys.instrument,
        Scope.DEVICE: keys.device,
        Scope.IP: keys.ip,
    }
    hits = []
    for shadow, reasons in ((False, assessment.reasons), (True, assessment.shadow)):
        for reason in reasons:
            if reason.rule == "-":  # the state was unavailable: no rule spoke
                continue
            kind = reason.subject if parties.get(reason.subject) else Scope.BUYER
            hits.append(
                RiskHit(
                    rule=reason.rule,
                    version=reason.version,
                    action=reason.action.value,
                    reason=reason.code,
                    en=reason.en,
                    subject_kind=kind.value,
                    subject=str(parties[kind]),
                    ref=facts.ref,
                    merchant=facts.merchant,
                    at=facts.at,
                    shadow=shadow,
                )
            )
    return hits


# --- the process's live state ----------------------------------------------------------------


class LiveRisk:
    """The risk engine of one process, and the feed of committed entries into its state.

    Args:
        key: the platform's fingerprint key (pseudonymises device and IP).
        redis_store: the shared Redis state, or ``None`` for the SQL store of each session.
        rules_ttl: seconds between checks that the rules in force are unchanged (one
            small query); an approval in this process takes effect at once.
        regions_ttl: seconds between re-reads of the IP-to-region table (an import in
            this process takes effect at once).
    """

    def __init__(
        self,
        *,
        key: bytes,
        redis_store: RedisStore | None = None,
        rules_ttl: float = 1.0,
        regions_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.redis_store = redis_store
        self.rules_ttl = rules_ttl
        self.regions_ttl = regions_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: RuleSet | None = None
        self._rules_stamp: tuple[int, int] | None = None
        self._rules_checked = 0.0
        self._regions: CidrRegionTable | None = None
        self._regions_checked = 0.0

    def forget(self) -> None:
        """Re-read the rules and regions on next use (after an approval or an import)."""
        with self._lock:
            self._rules_stamp = None
            self._rules_checked = self._regions_checked = 0.0

    def rules(self, session: Session) -> RuleSet:
        now = self._clock()
        with self._lock:
            if self._rules is not None and now - self._rules_checked < self.rules_ttl:
                return self._rules
        count, last = session.execute(
            select(func.count(), func.max(RiskRuleVersion.approved_seq))
        ).one()
        stamp = (int(count), -1 if last is None else int(last))
        with self._lock:
            if self._rules is None or stamp != self._rules_stamp:
                self._rules = load_rules(session)
                self._rules_stamp = stamp
            self._rules_checked = now
            return self._rules

    def regions(self, session: Session) -> CidrRegionTable:
        now = self._clock()
        with self._lock:
            if self._regions is not None and now - self._regions_checked < self.regions_ttl:
                return self._regions
        table = load_region_table(session)
        with self._lock:
            self._regions, self._regions_checked = table, now
            return table

    def engine(self, session: Session) -> RiskEngine:
        """The engine for a decision made with ``session`` (see the module docstring)."""
        store = self.redis_store if self.redis_store is not None else SqlStore(session)
        return RiskEngine(
            rules=self.rules(session), store=store, key=self.key, regions=self.regions(session)
        )

    def entries_appended(self, session: Session, statements: Iterable[Statement]) -> None:
        """Feed appended entries to the state: sales recorded, partner notices tainting.

        Call right after a successful append, in its transaction.
        """
        sales: list[SaleFacts] = []
        taints: list[tuple[TaintKind, str]] = []
        for statement in statements:
            facts = sale_facts(statement)
            if facts is not None:
                sales.append(facts)
            elif (taint := taint_of(statement)) is not None:
                taints.append(taint)
        if not sales and not taints:
            return
        if self.redis_store is None:
            # Notices reach the SQL state through their projections (risk_taint, and
            # stolen_payment, which the SQL store reads).
            SqlStore(session).record_many(sales)
            return
        after_commit(session, _RedisFeed(self.redis_store, sales, taints))


@dataclass(frozen=True, slots=True)
class _RedisFeed:
    store: RedisStore
    sales: Sequence[SaleFacts]
    taints: Sequence[tuple[TaintKind, str]]

    def __call__(self) -> None:
        try:
            for kind, pseudonym in self.taints:
                self.store.mark_tainted(kind, pseudonym)
            self.store.record_many(self.sales)
        except StoreUnavailableError:
            log.error(
                "risk state: %d sales and %d notices committed but not fed to Redis; "
                "run 'cardtrace risk rebuild'",
                len(self.sales),
                len(self.taints),
            )


def after_commit(session: Session, work: Callable[[], None]) -> None:
    """Run ``work`` once the session's transaction commits; never if it rolls back."""
    pending: list[Callable[[], None]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _run_pending)
        event.listen(session, "after_soft_rollback", _drop_pending)
    pending.append(work)


def _run_pending(session: Session) -> None:
    pending = session.info.get(_PENDING) or []
    work, pending[:] = list(pending), []
    for item in work:
        item()


def _drop_pending(session: Session, previous: Any) -> None:
    if previous.parent is None and not previous.nested:
        session.info.get(_PENDING, []).clear()


def decision_of(code_decision: str, risk: RiskDecision) -> str:
    """The more severe of the code's verdict and the risk step's."""
    order = ("allow", "review", "block")
    return max(code_decision, risk.value, key=order.index)

"""Sales read back from the ledger: rebuilding the state, and backtesting rules.

The ledger's ``code.sale`` entries are read as the live sale feed reads them
(:func:`provenance.risk.live.sale_facts` and ``taint_of``), so a rebuild finds what the
feed recorded. They carry the buyer, instrument, device and IP as keyed pseudonyms, the
amount and the seller, so the windows, distinct sets and histories can be rebuilt from
them. They do not carry the region, the channel or the BIN (the IP is only a
pseudonym there): after a rebuild the buyers' previous regions are unknown until their
next sale, and a backtest sees every sale as channel ``other`` with no region.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.entries import decode_record
from provenance.ledger import LedgerEntry, iter_records
from provenance.risk.context import SaleFacts
from provenance.risk.engine import RiskDecision, evaluate
from provenance.risk.features import compute_features
from provenance.risk.live import SALE_TYPE, sale_facts, taint_of
from provenance.risk.rules import RuleSet
from provenance.risk.store import MemoryStore, StateStore, TaintKind


def ledger_sales(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> Iterator[SaleFacts]:
    """Every ``code.sale`` on the ledger, in log order, as :class:`SaleFacts`."""
    first = 0
    if since is not None:
        first = (
            session.scalar(
                select(LedgerEntry.seq)
                .where(LedgerEntry.type == SALE_TYPE, LedgerEntry.time >= since)
                .order_by(LedgerEntry.seq)
                .limit(1)
            )
            or 0
        )
        if not first:
            return
    for _, raw, _ in iter_records(session, first):
        statement = decode_record(raw).statement
        if statement.type != SALE_TYPE:
            continue
        if until is not None and statement.time >= until:
            return
        if since is not None and statement.time < since:
            continue
        facts = sale_facts(statement)
        if facts is not None:
            yield facts


def ledger_taints(session: Session) -> Iterator[tuple[TaintKind, str]]:
    """Instruments reported stolen, and devices or instruments named by ``risk.taint``."""
    for _, raw, _ in iter_records(session):
        taint = taint_of(decode_record(raw).statement)
        if taint is not None:
            yield taint


def rebuild_state(session: Session, store: StateStore, *, since: datetime) -> int:
    """Empty ``store`` and refill it from the ledger's sales since ``since``.

    Use ``since`` = now minus 180 days to rebuild histories too (windows need 24 h).

    Returns:
        The number of sales recorded.
    """
    store.reset()
    for kind, pseudonym in ledger_taints(session):
        store.mark_tainted(kind, pseudonym)
    count = 0
    for facts in ledger_sales(session, since=since):
        count += store.record(facts)
    return count


@dataclass
class BacktestRow:
    """One day at one merchant."""

    day: date
    merchant: str
    sales: int = 0
    blocked_current: int = 0
    blocked_candidate: int = 0
    review_current: int = 0
    review_candidate: int = 0
    newly_blocked: int = 0
    no_longer_blocked: int = 0
    errors: int = 0
    rules: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "day": self.day.isoformat(),
            "merchant": self.merchant,
            "sales": self.sales,
            "blocked_current": self.blocked_current,
            "blocked_candidate": self.blocked_candidate,
            "review_current": self.review_current,
            "review_candidate": self.review_candidate,
            "newly_blocked": self.newly_blocked,
            "no_longer_blocked": self.no_longer_blocked,
            "errors": self.errors,
        }


def backtest(
    sales: Iterable[SaleFacts],
    *,
    current: RuleSet,
    candidate: RuleSet,
    taints: Iterable[tuple[TaintKind, str]] = (),
) -> list[BacktestRow]:
    """Replay recorded sales in order through a fresh state; judge each sale with both
    rule sets on the same features.

    Every replayed sale is recorded whatever the verdicts: these sales happened, and the
    state must be the one the live engine had.

    Returns:
        Rows by day and merchant, in that order.
    """
    store = MemoryStore()
    for kind, pseudonym in taints:
        store.mark_tainted(kind, pseudonym)
    rows: dict[tuple[date, str], BacktestRow] = {}
    for facts in sales:
        observation = store.observe(facts, hold=False)
        features = compute_features(
            facts, observation, channel="other", declared_region=None, ip_region=None, bin=None
        )
        now_decision, _, _ = evaluate(current, features)
        new_decision, reasons, _ = evaluate(candidate, features)
        store.record(facts)
        key = (facts.at.date(), facts.merchant)
        row = rows.get(key)
        if row is None:
            row = rows[key] = BacktestRow(*key)
        row.sales += 1
        row.blocked_current += now_decision is RiskDecision.BLOCK
        row.blocked_candidate += new_decision is RiskDecision.BLOCK
        row.review_current += now_decision is RiskDecision.REVIEW
        row.review_candidate += new_decision is RiskDecision.REVIEW
        row.newly_blocked += (
            new_decision is RiskDecision.BLOCK and now_decision is not RiskDecision.BLOCK
        )
        row.no_longer_blocked += (
            now_decision is RiskDecision.BLOCK and new_decision is not RiskDecision.BLOCK
        )
        row.errors += sum(r.code == "rule-error" for r in reasons)
        for reason in reasons:
            row.rules[reason.rule] = row.rules.get(reason.rule, 0) + 1
    return [rows[key] for key in sorted(rows)]

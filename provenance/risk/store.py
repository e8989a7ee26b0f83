"""Where the risk state lives: one Protocol, three stores.

:class:`MemoryStore` (in-process; backtests replay through it), :class:`SqlStore` (the
embedded default, tables in the platform's database, SQLite or PostgreSQL) and
:class:`~provenance.risk.redis_store.RedisStore` (production). All keep only keyed
pseudonyms and amounts, never a clear IP, device id or card number.

A sale goes through up to three steps, each keyed by the sale's ``ref`` so that doing
one twice counts once:

1. ``observe(facts, hold=True)``: atomically put the sale into the velocity windows and
   distinct sets and return what the state looks like with it. Two processes holding
   sales for one buyer at once see each other's sale, so a burst that a serial run would
   block is blocked (``hold=False`` reads without writing, as if the sale were added).
2. ``release(facts)``: the sale will not happen (refused); take the hold back.
3. ``record(facts)``: the sale happened; keep it in the windows (adding it if it was not
   held) and update the buyer's history: amounts, devices seen, region. A sale recorded
   from its ledger entry carries no region; the region its hold saw is kept.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import (
    BigInteger,
    Boolean,
    Index,
    Integer,
    String,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from provenance.codes import StolenKind, StolenPayment
from provenance.db import Base, intpk
from provenance.risk.context import SaleFacts
from provenance.risk.features import (
    DISTINCT_WINDOW_S,
    HISTORY_TTL_S,
    WINDOWS,
    Distinct,
    Observation,
    Scope,
    Window,
)


class TaintKind(StrEnum):
    INSTRUMENT = "instrument"
    DEVICE = "device"


class StateStore(Protocol):
    def observe(self, facts: SaleFacts, *, hold: bool) -> Observation: ...

    def release(self, facts: SaleFacts) -> None: ...

    def record(self, facts: SaleFacts) -> bool: ...

    def mark_tainted(self, kind: TaintKind, pseudonym: str) -> None: ...

    def reset(self) -> None: ...


def scope_ids(facts: SaleFacts) -> list[tuple[Scope, str]]:
    """The windows a sale counts in, for the parties it names."""
    keys = facts.keys
    pairs = [
        (Scope.BUYER, keys.buyer),
        (Scope.INSTRUMENT, keys.instrument),
        (Scope.DEVICE, keys.device),
        (Scope.IP, keys.ip),
        (Scope.MERCHANT, facts.merchant),
    ]
    return [(scope, value) for scope, value in pairs if value is not None]


def distinct_pairs(facts: SaleFacts) -> list[tuple[Distinct, str, str]]:
    """``(set, owner, member)`` for each distinct set the sale belongs to."""
    k = facts.keys
    pairs = [
        (Distinct.DEVICE_INSTRUMENTS, k.device, k.instrument),
        (Distinct.BUYER_INSTRUMENTS, k.buyer, k.instrument),
        (Distinct.INSTRUMENT_BUYERS, k.instrument, k.buyer),
        (Distinct.DEVICE_BUYERS, k.device, k.buyer),
        (Distinct.IP_BUYERS, k.ip, k.buyer),
    ]
    return [(d, o, m) for d, o, m in pairs if o is not None and m is not None]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- in memory -----------------------------------------------------------------------


class _Series:
    """One party's sales in time order, with running totals: a window is two bisections.

    Sales arrive nearly in time order (a replay is in log order), so an append is O(1)
    and only an out-of-order sale rewrites the totals after it.
    """

    def __init__(self) -> None:
        self.times: list[int] = []
        self.refs: list[str] = []
        self.totals: list[int] = [0]  # totals[i]: the units of the first i sales

    def add(self, at: int, ref: str, units: int) -> None:
        if not self.times or at >= self.times[-1]:
            self.times.append(at)
            self.refs.append(ref)
            self.totals.append(self.totals[-1] + units)
            return
        index = bisect_right(self.times, at)
        self.times.insert(index, at)
        self.refs.insert(index, ref)
        self.totals.insert(index + 1, self.totals[index] + units)
        for i in range(index + 2, len(self.totals)):
            self.totals[i] += units

    def remove(self, ref: str) -> None:
        for index in range(len(self.refs) - 1, -1, -1):
            if self.refs[index] == ref:
                units = self.totals[index + 1] - self.totals[index]
                del self.times[index], self.refs[index], self.totals[index + 1]
                for i in range(index + 1, len(self.totals)):
                    self.totals[i] -= units
                return

    def window(self, after: int) -> tuple[int, int]:
        """Count and units of the sales strictly later than ``after``."""
        index = bisect_right(self.times, after)
        return len(self.times) - index, self.totals[-1] - self.totals[index]

    def trim(self, before: int) -> None:
        index = bisect_right(self.times, before)
        if index > len(self.times) // 2:  # amortised: copy only when half is stale
            base = self.totals[index]
            self.times = self.times[index:]
            self.refs = self.refs[index:]
            self.totals = [total - base for total in self.totals[index:]]


@dataclass
class _Profile:
    count: int = 0
    units: int = 0
    max_units: int = 0
    region: str | None = None
    devices: set[str] = field(default_factory=set)


class MemoryStore:
    """The state in this process's memory, behind a lock; exact windows everywhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._windows: dict[tuple[Scope, str], _Series] = {}
        self._distinct: dict[tuple[Distinct, str], dict[str, int]] = {}
        self._profiles: dict[str, _Profile] = {}
        self._taint: set[tuple[TaintKind, str]] = set()
        # ref -> (what the hold added to the distinct sets, the region it saw)
        self._held: dict[str, tuple[list[tuple[Distinct, str, str]], str | None]] = {}
        self._recorded: set[str] = set()

    def _window(self, series: _Series | None, now: int, extra: int | None) -> Window:
        counts, sums = [], []
        for seconds in WINDOWS.values():
            count, units = series.window(now - seconds * 1000) if series else (0, 0)
            if extra is not None:
                count, units = count + 1, units + extra
            counts.append(count)
            sums.append(units)
        return Window(*counts, *sums)

    def _add(self, facts: SaleFacts, now: int) -> list[tuple[Distinct, str, str]]:
        for scope, value in scope_ids(facts):
            series = self._windows.setdefault((scope, value), _Series())
            series.add(now, facts.ref, facts.amount_units)
            series.trim(now - DISTINCT_WINDOW_S * 1000)
        added = []
        for distinct, owner, member in distinct_pairs(facts):
            members = self._distinct.setdefault((distinct, owner), {})
            if member not in members:
                added.append((distinct, owner, member))
            members[member] = now
        return added

    def observe(self, facts: SaleFacts, *, hold: bool) -> Observation:
        now = _ms(facts.at)
        with self._lock:
            known = facts.ref in self._held or facts.ref in self._recorded
            held = False
            if hold and not known:
                self._held[facts.ref] = (self._add(facts, now), facts.region)
                held = True
            included = known or held
            windows = {}
            for scope, value in scope_ids(facts):
                extra = None if included else facts.amount_units
                windows[scope] = self._window(self._windows.get((scope, value)), now, extra)
            distinct = {}
            for kind, owner, member in distinct_pairs(facts):
                members = self._distinct.get((kind, owner), {})
                recent = {m for m, at in members.items() if at > now - DISTINCT_WINDOW_S * 1000}
                distinct[kind] = len(recent | {member})
            profile = self._profiles.get(facts.keys.buyer, _Profile())
            return Observation(
                windows=windows,
                distinct=distinct,
                device_seen=facts.keys.device in profile.devices,
                history_count=profile.count,
                history_units=profile.units,
                history_max_units=profile.max_units,
                previous_region=profile.region,
                instrument_tainted=facts.keys.instrument is not None
                and (TaintKind.INSTRUMENT, facts.keys.instrument) in self._taint,
                device_tainted=facts.keys.device is not None
                and (TaintKind.DEVICE, facts.keys.device) in self._taint,
                held=held,
            )

    def release(self, facts: SaleFacts) -> None:
        with self._lock:
            found = self._held.pop(facts.ref, None)
            if found is None or facts.ref in self._recorded:
                return
            added = found[0]
            for scope, value in scope_ids(facts):
                series = self._windows.get((scope, value))
                if series is not None:
                    series.remove(facts.ref)
            for distinct, owner, member in added:
                self._distinct.get((distinct, owner), {}).pop(member, None)

    def record(self, facts: SaleFacts) -> bool:
        now = _ms(facts.at)
        with self._lock:
            if facts.ref in self._recorded:
                return False
            held = self._held.pop(facts.ref, None)
            if held is None:
                self._add(facts, now)
            region = facts.region or (held[1] if held else None)
            self._recorded.add(facts.ref)
            profile = self._profiles.setdefault(facts.keys.buyer, _Profile())
            profile.count += 1
            profile.units += facts.amount_units
            profile.max_units = max(profile.max_units, facts.amount_units)
            if region:
                profile.region = region
            if facts.keys.device is not None:
                profile.devices.add(facts.keys.device)
            return True

    def mark_tainted(self, kind: TaintKind, pseudonym: str) -> None:
        with self._lock:
            self._taint.add((kind, pseudonym))


# --- in the platform's database --------------------------------------------------------


class RiskSale(Base):
    """A held or recorded sale: pseudonyms, amount and region only."""

    __tablename__ = "risk_sale"
    __table_args__ = (
        Index("ix_risk_sale_buyer_at", "buyer", "at"),
        Index("ix_risk_sale_instrument_at", "instrument", "at"),
        Index("ix_risk_sale_device_at", "device", "at"),
        Index("ix_risk_sale_ip_at", "ip", "at"),
        Index("ix_risk_sale_merchant_at", "merchant", "at"),
    )

    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime]
    merchant: Mapped[str] = mapped_column(String(64))
    buyer: Mapped[str] = mapped_column(String(32))
    instrument: Mapped[str | None] = mapped_column(String(32))
    device: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(32))
    amount_units: Mapped[int] = mapped_column(BigInteger)
    region: Mapped[str | None] = mapped_column(String(8))
    recorded: Mapped[bool] = mapped_column(Boolean)


class RiskTaint(Base):
    __tablename__ = "risk_taint"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(32), primary_key=True)


class RiskShadowHit(Base):
    """A shadow-mode rule that fired on a sale: recorded, never enforced, never an alert.

    Pseudonyms and ids only, like every risk table.
    """

    __tablename__ = "risk_shadow_hit"
    __table_args__ = (Index("ix_risk_shadow_hit_rule_at", "rule", "at"),)

    id: Mapped[intpk]
    at: Mapped[datetime]
    rule: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(64))
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(100))
    ref: Mapped[str] = mapped_column(String(64))
    merchant: Mapped[str] = mapped_column(String(64))


_SCOPE_COLUMN = {
    Scope.BUYER: RiskSale.buyer,
    Scope.INSTRUMENT: RiskSale.instrument,
    Scope.DEVICE: RiskSale.device,
    Scope.IP: RiskSale.ip,
    Scope.MERCHANT: RiskSale.merchant,
}
_DISTINCT_COLUMNS = {
    Distinct.DEVICE_INSTRUMENTS: (RiskSale.device, RiskSale.instrument),
    Distinct.BUYER_INSTRUMENTS: (RiskSale.buyer, RiskSale.instrument),
    Distinct.INSTRUMENT_BUYERS: (RiskSale.instrument, RiskSale.buyer),
    Distinct.DEVICE_BUYERS: (RiskSale.device, RiskSale.buyer),
    Distinct.IP_BUYERS: (RiskSale.ip, RiskSale.buyer),
}


class SqlStore:
    """The state in the platform's database, in the caller's transaction (flush only).

    Holding serialises on the sale's parties: on PostgreSQL a transaction-scoped advisory
    lock per pseudonym (taken in sorted order, so two sales never deadlock); on SQLite
    the insert takes the database's write lock. Either way the second of two concurrent
    holds waits for the first to commit and then counts it.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def reset(self) -> None:
        self.session.execute(delete(RiskSale))
        self.session.execute(delete(RiskTaint))
        self.session.flush()

    def _lock(self, facts: SaleFacts) -> None:
        if self.session.get_bind().dialect.name != "postgresql":
            return
        for name in sorted({value for _, value in scope_ids(facts)[:-1]}):
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 7))"),
                {"name": "cardtrace/risk/" + name},
            )

    def _row(self, facts: SaleFacts, recorded: bool) -> dict[str, object]:
        keys = facts.keys
        return {
            "ref": facts.ref,
            "at": facts.at,
            "merchant": facts.merchant,
            "buyer": keys.buyer,
            "instrument": keys.instrument,
            "device": keys.device,
            "ip": keys.ip,
            "amount_units": facts.amount_units,
            "region": facts.region,
            "recorded": recorded,
        }

    def _insert(self, facts: SaleFacts, recorded: bool) -> bool:
        try:
            with self.session.begin_nested():
                self.session.execute(insert(RiskSale), [self._row(facts, recorded)])
        except IntegrityError:
            return False
        return True

    def observe(self, facts: SaleFacts, *, hold: bool) -> Observation:
        held = False
        if hold:
            self._lock(facts)
            held = self._insert(facts, recorded=False)
        included = held or self.session.get(RiskSale, facts.ref) is not None
        start = facts.at - timedelta(seconds=max(WINDOWS.values()))
        windows = {}
        for scope, value in scope_ids(facts):
            column = _SCOPE_COLUMN[scope]
            parts = []
            for seconds in WINDOWS.values():
                inside = RiskSale.at > facts.at - timedelta(seconds=seconds)
                parts.append(func.coalesce(func.sum(case((inside, 1), else_=0)), 0))
            for seconds in WINDOWS.values():
                inside = RiskSale.at > facts.at - timedelta(seconds=seconds)
                parts.append(
                    func.coalesce(func.sum(case((inside, RiskSale.amount_units), else_=0)), 0)
                )
            row = self.session.execute(
                select(*parts).where(column == value, RiskSale.at > start)
            ).one()
            counts = [int(x) for x in row]
            if not included:
                counts = [c + 1 for c in counts[:3]] + [s + facts.amount_units for s in counts[3:]]
            windows[scope] = Window(*counts)
        distinct = {}
        since = facts.at - timedelta(seconds=DISTINCT_WINDOW_S)
        for kind, owner, member in distinct_pairs(facts):
            owner_column, member_column = _DISTINCT_COLUMNS[kind]
            members = self.session.scalar(
                select(func.count(func.distinct(member_column))).where(
                    owner_column == owner, member_column != member, RiskSale.at > since
                )
            )
            distinct[kind] = int(members or 0) + 1
        buyer = facts.keys.buyer
        history_since = facts.at - timedelta(seconds=HISTORY_TTL_S)
        mine = and_(
            RiskSale.buyer == buyer,
            RiskSale.recorded.is_(True),
            RiskSale.ref != facts.ref,
            RiskSale.at > history_since,
        )
        count, units, top = self.session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(RiskSale.amount_units), 0),
                func.coalesce(func.max(RiskSale.amount_units), 0),
            ).where(mine)
        ).one()
        previous_region = self.session.scalar(
            select(RiskSale.region)
            .where(mine, RiskSale.region.is_not(None))
            .order_by(RiskSale.at.desc())
            .limit(1)
        )
        device = facts.keys.device
        device_seen = device is not None and (
            self.session.scalar(select(literal(1)).where(mine, RiskSale.device == device).limit(1))
            is not None
        )
        tainted = {
            kind
            for (kind,) in self.session.execute(
                select(RiskTaint.kind).where(
                    (
                        (RiskTaint.kind == TaintKind.INSTRUMENT.value)
                        & (RiskTaint.pseudonym == (facts.keys.instrument or ""))
                    )
                    | (
                        (RiskTaint.kind == TaintKind.DEVICE.value)
                        & (RiskTaint.pseudonym == (device or ""))
                    )
                )
            )
        }
        instrument = facts.keys.instrument
        if instrument is not None and TaintKind.INSTRUMENT.value not in tainted:
            # A partner's payment.stolen notice, as the card-code projection keeps it.
            reported = self.session.get(StolenPayment, (StolenKind.INSTRUMENT.value, instrument))
            if reported is not None:
                tainted.add(TaintKind.INSTRUMENT.value)
        return Observation(
            windows=windows,
            distinct=distinct,
            device_seen=device_seen,
            history_count=int(count),
            history_units=int(units),
            history_max_units=int(top),
            previous_region=previous_region,
            instrument_tainted=TaintKind.INSTRUMENT.value in tainted,
            device_tainted=TaintKind.DEVICE.value in tainted,
            held=held,
        )

    def release(self, facts: SaleFacts) -> None:
        self.session.execute(
            delete(RiskSale).where(RiskSale.ref == facts.ref, RiskSale.recorded.is_(False))
        )
        self.session.flush()

    def record(self, facts: SaleFacts) -> bool:
        self._lock(facts)
        row = self.session.get(RiskSale, facts.ref, with_for_update=True)
        if row is None:
            return self._insert(facts, recorded=True)
        if row.recorded:
            return False
        row.recorded = True
        if facts.region is not None:
            row.region = facts.region
        self.session.flush()
        return True

    def record_many(self, sales: Sequence[SaleFacts]) -> None:
        """Record sales in bulk (their ``code.sale`` entries were just appended).

        One upsert per 500 sales: a held sale becomes recorded (keeping the time, amount
        and region its hold saw), any other is inserted; recording twice changes nothing.
        """
        if not sales:
            return
        dialect = self.session.get_bind().dialect.name
        upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        for start in range(0, len(sales), 500):
            rows = [self._row(facts, recorded=True) for facts in sales[start : start + 500]]
            statement = upsert(RiskSale).values(rows)
            self.session.execute(
                statement.on_conflict_do_update(index_elements=["ref"], set_={"recorded": True})
            )
        self.session.flush()

    def mark_tainted(self, kind: TaintKind, pseudonym: str) -> None:
        if self.session.get(RiskTaint, (kind.value, pseudonym)) is None:
            self.session.add(RiskTaint(kind=kind.value, pseudonym=pseudonym))
            self.session.flush()

    def prune(self, before: datetime) -> int:
        """Forget sales older than ``before`` (history keeps 180 days)."""
        result = self.session.execute(delete(RiskSale).where(RiskSale.at < before))
        self.session.flush()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

"""Detectors over the ledger graph: stolen-payment taint, double sale and same serial with
a different PIN, unknown origin at volume, bursts and rings in the sales' buyer data,
and the account-to-account patterns in custody transfers between parties.

Each detector is a unit with documented parameters; each finding names its typology,
its subject (the node an alert is about, which with the typology makes the alert's
stable key), a score in [0, 1], a reason line and the evidence subgraph. ``members``
lists every node the finding involves (``kind:name``), for reviewers and for scoring
against a scenario's ground truth.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import networkx as nx
import numpy as np
import orjson
from networkx.readwrite import json_graph

from provenance.analysis.detectors import (
    BurstDetector,
    CycleDetector,
    Detector,
    FanDetector,
    GatherScatterDetector,
    ScatterGatherDetector,
    StackedChainDetector,
)
from provenance.analysis.detectors.bursts import burst_runs, short_lived
from provenance.analysis.findings import Finding, Typology, scaled_score
from provenance.analysis.ledger_graph import GraphMark, LedgerGraph, NodeKind, short_code
from provenance.analysis.pipeline import analyze_transfers
from provenance.entries import canonical

MAX_EVIDENCE_SALES = 50


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class LedgerFinding:
    """One pattern found in the ledger graph.

    Attributes:
        typology: which pattern.
        subject_kind, subject: the node the finding is about (``serial`` for a serial
            fingerprint, shown by its first 12 hex digits).
        score: in [0, 1].
        reason: one line a reviewer reads first.
        evidence: the subgraph behind it: given, or drawn from the graph the first time
            it is asked for (``evidence`` is then a function drawing it).
        members: every node involved, as ``kind:name`` (by default the evidence's).
        recipe: what the evidence is drawn from (JSON naming the edges,
            sales, codes and nodes, with typology, subject, score and reason), when the
            finding comes from a ledger detector: equal recipes over codes whose records
            did not change draw equal evidence.
        evidence_sha256: the SHA-256 of the canonical evidence, if known without
            drawing it (a previous run drew the same recipe); else computed when asked.
    """

    __slots__ = (
        "_evidence",
        "_members",
        "_sha256",
        "reason",
        "recipe",
        "score",
        "subject",
        "subject_kind",
        "typology",
    )

    def __init__(
        self,
        typology: Typology,
        subject_kind: str,
        subject: str,
        score: float,
        reason: str,
        evidence: nx.MultiDiGraph | Callable[[], nx.MultiDiGraph],
        members: frozenset[str] | None = None,
        *,
        recipe: str | None = None,
        evidence_sha256: str | None = None,
    ) -> None:
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score {score} is outside [0, 1]")
        self.typology = typology
        self.subject_kind = subject_kind
        self.subject = subject
        self.score = score
        self.reason = reason
        self.recipe = recipe
        self._evidence = evidence
        self._members = members
        self._sha256 = evidence_sha256

    def __repr__(self) -> str:
        return (
            f"LedgerFinding({self.typology.value}, {self.subject_kind}:{self.subject}, "
            f"{self.score:.3f}, {self.reason!r})"
        )

    @property
    def evidence(self) -> nx.MultiDiGraph:
        if not isinstance(self._evidence, nx.MultiDiGraph):
            self._evidence = self._evidence()
        return self._evidence

    @property
    def members(self) -> frozenset[str]:
        if self._members is None:
            self._members = frozenset(str(n) for n in self.evidence.nodes)
        return self._members

    def evidence_json(self) -> dict[str, Any]:
        """The evidence subgraph as node-link JSON."""
        data: dict[str, Any] = json_graph.node_link_data(self.evidence, edges="edges")
        return data

    @property
    def evidence_sha256(self) -> str:
        """The SHA-256 (hex) of the canonical evidence (floats as fixed-point strings)."""
        if self._sha256 is None:
            self.evidence_with_sha256()
        assert self._sha256 is not None
        return self._sha256

    def evidence_with_sha256(self) -> tuple[dict[str, Any], str]:
        """:meth:`evidence_json` and :attr:`evidence_sha256`, the evidence drawn once."""
        evidence = self.evidence_json()
        self._sha256 = evidence_digest(evidence)
        return evidence, self._sha256

    @property
    def known_evidence_sha256(self) -> str | None:
        """:attr:`evidence_sha256` if known without drawing the evidence, else ``None``."""
        return self._sha256

    @property
    def severity(self) -> Severity:
        """High from 0.8, medium from 0.6."""
        if self.score >= 0.8:
            return Severity.HIGH
        return Severity.MEDIUM if self.score >= 0.6 else Severity.LOW


def evidence_digest(evidence: dict[str, Any]) -> str:
    """The SHA-256 (hex) of node-link evidence as canonical JSON, floats written as
    fixed-point strings (canonical JSON here carries no floats)."""
    return hashlib.sha256(canonical(_canonical_ready(evidence))).hexdigest()


def _canonical_ready(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return {str(k): _canonical_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_ready(v) for v in value]
    return value


class LedgerDetector(Protocol):
    def detect(self, graph: LedgerGraph) -> list[LedgerFinding]: ...


def _finding(
    graph: LedgerGraph,
    typology: Typology,
    kind: str,
    subject: str,
    score: float,
    reason: str,
    *,
    edges: Sequence[int] = (),
    sales: Sequence[int] = (),
    codes: Sequence[int] = (),
    nodes: Sequence[int] = (),
    **attributes: int,
) -> LedgerFinding:
    """A finding whose evidence is :meth:`LedgerGraph.subgraph` of these edges, sales,
    codes and nodes, with typology, score and reason (and ``attributes``) on the
    graph, drawn when first asked for."""
    edges, sales, nodes = [int(e) for e in edges], [int(s) for s in sales], [int(n) for n in nodes]
    codes = [int(i) for i in codes]
    rounded = round(score, 4)

    def draw() -> nx.MultiDiGraph:
        evidence = graph.subgraph(edges=edges, sales=sales, codes=codes, nodes=nodes, **attributes)
        evidence.graph.update(typology=typology.value, score=rounded, reason=reason)
        return evidence

    recipe = orjson.dumps(
        [typology.value, kind, subject, score, reason, edges, sales, codes, nodes, attributes],
        option=orjson.OPT_SORT_KEYS,
    ).decode()
    return LedgerFinding(typology, kind, subject, score, reason, draw, recipe=recipe)


def _distinct(keys: np.ndarray) -> np.ndarray:
    """``numpy.unique(keys)`` by a plain sort (faster on a million keys than the hash
    table numpy tries first)."""
    ordered = np.sort(keys)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if ordered.shape[0] else ordered


def _ids(values: object) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int32)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True, slots=True)
class StolenPaymentTaint:
    """Codes bought with instruments or payment references reported stolen, and the
    buyers and merchants behind them by their share of tainted volume.

    Every reported instrument or reference that paid for codes is a finding (score 1).
    A merchant is one when at least ``min_tainted_sales`` of its sales and a share of
    at least ``min_share`` of its sales volume were paid that way (an honest shop hit by
    one stolen card among hundreds of sales is not); a buyer is one when at least
    ``min_share`` of what it paid was. Scores: 0.5 at ``min_share``, 1 at twice it.

    Attributes:
        min_share: the least tainted share of a merchant's or buyer's volume.
        min_tainted_sales: the fewest tainted sales that make a merchant a finding.
    """

    min_share: float = 0.2
    min_tainted_sales: int = 3

    def detect(self, graph: LedgerGraph) -> list[LedgerFinding]:
        graph.flush()
        if not graph.stolen or not graph.n_sales:
            return []
        reported = np.zeros(len(graph.names), dtype=bool)
        reported[list(graph.stolen)] = True
        instrument, reference = _ids(graph.sale_instrument), _ids(graph.sale_payment_ref)
        tainted = np.zeros(graph.n_sales, dtype=bool)
        for column in (instrument, reference):
            known = column >= 0
            tainted[known] |= reported[column[known]]
        if not tainted.any():
            return []
        amount = np.frombuffer(graph.sale_amount, dtype=np.float64)
        tainted_rows = np.flatnonzero(tainted)
        findings = []
        by_payment: dict[int, list[int]] = defaultdict(list)
        for s in tainted_rows:
            for column in (instrument, reference):
                if column[s] >= 0 and reported[column[s]]:
                    by_payment[int(column[s])].append(int(s))
        for payment, sales in by_payment.items():
            kind = graph.kind(payment)
            findings.append(
                _finding(
                    graph,
                    Typology.STOLEN_PAYMENT_TAINT,
                    kind.value,
                    graph.names[payment],
                    1.0,
                    f"{len(sales)} codes bought with "
                    f"{'an instrument' if kind is NodeKind.INSTRUMENT else 'a payment reference'}"
                    " reported stolen",
                    sales=sales[:MAX_EVIDENCE_SALES],
                )
            )
        for column, kind in (
            (_ids(graph.sale_merchant), NodeKind.PARTY),
            (_ids(graph.sale_buyer), NodeKind.BUYER),
        ):
            total = np.bincount(column, weights=amount, minlength=len(graph.names))
            bad = np.bincount(column[tainted], weights=amount[tainted], minlength=len(graph.names))
            count = np.bincount(column[tainted], minlength=len(graph.names))
            least = self.min_tainted_sales if kind is NodeKind.PARTY else 1
            what = "sales" if kind is NodeKind.PARTY else "purchases"
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(total > 0, bad / np.maximum(total, 1e-12), 0.0)
            for node in np.flatnonzero((count >= least) & (share >= self.min_share)):
                sales = tainted_rows[column[tainted_rows] == node].tolist()
                findings.append(
                    _finding(
                        graph,
                        Typology.STOLEN_PAYMENT_TAINT,
                        kind.value,
                        graph.names[int(node)],
                        scaled_score(float(share[node]), self.min_share),
                        f"{share[node]:.0%} of the {what} volume ({len(sales)} codes) paid "
                        "with payments reported stolen",
                        sales=sales[:MAX_EVIDENCE_SALES],
                    )
                )
        return findings


@dataclass(frozen=True, slots=True)
class DuplicateSerial:
    """Codes that share a serial fingerprint: the same serial with a different PIN (one
    finding per serial, score 1) and, when two or more of them were sold, a double sale
    (another finding on the same serial, score 1): the buyers cannot all redeem."""

    def detect(self, graph: LedgerGraph) -> list[LedgerFinding]:
        graph.flush()
        findings = []
        for serial, indices in graph.shared_serials.items():
            name = short_code(serial)
            findings.append(
                _finding(
                    graph,
                    Typology.SAME_SERIAL_DIFFERENT_PIN,
                    "serial",
                    name,
                    1.0,
                    f"{len(indices)} codes carry serial {name} with different PINs",
                    codes=indices,
                )
            )
            sales = [graph.code_sale[i] for i in indices if graph.code_sale[i] >= 0]
            if len(sales) >= 2:
                findings.append(
                    _finding(
                        graph,
                        Typology.DOUBLE_SALE,
                        "serial",
                        name,
                        1.0,
                        f"serial {name} sold {len(sales)} times",
                        sales=sales,
                    )
                )
        return findings


@dataclass(frozen=True, slots=True)
class UnknownOriginAtVolume:
    """Parties whose stock comes largely from codes only they vouch for.

    A supplier-attested code has no issuer's signature behind it, only the supplier's
    word and an evidence hash. A few (an invoice for a small lot) are ordinary; a party
    that attested at least ``min_codes`` codes, making up at least ``min_share`` of the
    codes it took in (attested plus received by transfer), is a finding. Score: 0.5 at
    ``min_share``, 1 at twice it.

    Attributes:
        min_codes: the fewest attested codes.
        min_share: the least attested share of the party's intake.
    """

    min_codes: int = 20
    min_share: float = 0.3

    def detect(self, graph: LedgerGraph) -> list[LedgerFinding]:
        graph.flush()
        findings = []
        attested_codes = np.frombuffer(graph.code_origin, dtype=np.int8) == 1
        holders = _ids(graph.code_holder)
        sale = _ids(graph.code_sale)
        for party, attested in graph.attested.items():
            intake = attested + graph.received.get(party, 0)
            share = attested / intake
            if attested < self.min_codes or share < self.min_share:
                continue
            mine = np.flatnonzero(attested_codes & (holders == party))
            sold = [int(sale[i]) for i in mine if sale[i] >= 0]
            unsold = [int(i) for i in mine if sale[i] < 0]
            findings.append(
                _finding(
                    graph,
                    Typology.UNKNOWN_ORIGIN,
                    NodeKind.PARTY.value,
                    graph.names[party],
                    scaled_score(share, self.min_share),
                    f"{attested} codes of origin vouched for only by this party "
                    f"({share:.0%} of its intake), {len(sold)} of them sold",
                    nodes=[party],
                    sales=sold[:MAX_EVIDENCE_SALES],
                    codes=unsold[: max(0, MAX_EVIDENCE_SALES - len(sold))],
                )
            )
        return findings


@dataclass(frozen=True, slots=True)
class SaleBursts:
    """The transfer-list :class:`~provenance.analysis.detectors.BurstDetector` over the
    sales (buyer to merchant, with device, IP and instrument): many purchases by one
    buyer, or on one device, IP or instrument, in a short span, from merchants the
    buyer does not use outside it.

    Run again on a graph that has grown since its last run (the bursts it found then
    are kept in the graph's memos), it recounts only the buyers, devices, IPs and
    instruments whose bursts can have changed, and keeps the others' bursts. Why that
    is exact: a key's bursts (one buyer's, one device's, ...) are a function of its
    *eligible* sales alone, those whose buyer-merchant pair trades only inside one
    window, in (time, row) order (:func:`~provenance.analysis.detectors.bursts.burst_runs`).
    New sales change a key's eligible sales in two ways only: a new sale carrying the
    key, or an old sale carrying it whose pair's span grew past the window with a new
    sale of the same buyer and merchant. Sales are only appended, so a pair's span
    only grows: an old sale never becomes eligible, it can only stop being so. Every
    key reached neither way has the same eligible sales, hence the same bursts.

    Attributes:
        burst: the detector and its parameters.
    """

    burst: BurstDetector = field(default_factory=BurstDetector)

    @property
    def memo_name(self) -> str:
        return f"bursts {self.burst.window_minutes!r} {self.burst.min_transfers}"

    def detect(self, graph: LedgerGraph) -> list[LedgerFinding]:
        graph.flush()
        columns = [
            _ids(graph.sale_buyer),
            _ids(graph.sale_device),
            _ids(graph.sale_ip),
            _ids(graph.sale_instrument),
        ]
        kept = graph.recall(self.memo_name)
        if kept is None:
            runs = self._runs(graph, columns, None)
        else:
            runs = self._update(graph, columns, *kept)
        graph.remember(self.memo_name, [[w, key, rows] for w, key, rows in runs])
        seqs = np.frombuffer(graph.sale_seq, dtype=np.int64)
        findings = []
        for what, key, rows in runs:
            label = "sender" if what == 0 else f"{_BURST_KEYS[what]} {graph.names[key]}"
            reason = (
                f"{len(rows)} transfers by one {label} within {self.burst.window_minutes:g} minutes"
            )
            kind, subject = _burst_subject(graph, rows)
            findings.append(
                _finding(
                    graph,
                    Typology.BURST,
                    kind,
                    subject,
                    scaled_score(len(rows), self.burst.min_transfers),
                    reason.replace("transfers", "purchases"),
                    sales=rows[:MAX_EVIDENCE_SALES],
                    first_seq=int(seqs[rows[0]]),
                )
            )
        return findings

    def _runs(
        self, graph: LedgerGraph, columns: list[np.ndarray], dirty: list[np.ndarray] | None
    ) -> list[tuple[int, int, list[int]]]:
        """The bursts of every key (``dirty`` is ``None``) or of the keys marked in
        ``dirty`` (per column, a boolean per node id and one more, false, for -1):
        ``(column, key, sale rows)``, by column, key and time."""
        time = np.frombuffer(graph.sale_time, dtype=np.int64)
        window = self.burst.window
        everywhere = None
        if dirty is None:
            everywhere = self._eligible(graph, columns[0], np.arange(graph.n_sales))
        runs = []
        for what, column in enumerate(columns):
            if everywhere is not None:
                rows = np.flatnonzero(everywhere & (column >= 0))
            else:
                rows = np.flatnonzero(dirty[what][column])  # type: ignore[index]
                rows = rows[self._eligible(graph, columns[0], rows)]
            for key, burst in burst_runs(column, time, rows, window, self.burst.min_transfers):
                runs.append((what, key, burst.tolist()))
        return runs

    def _eligible(self, graph: LedgerGraph, buyer: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Whether each of ``rows`` is eligible: its buyer-merchant pair trades only
        inside one window (over every sale of the pair, not only those in ``rows``)."""
        if rows.shape[0] == graph.n_sales:
            around = rows
        else:
            buyers = np.zeros(len(graph.names) + 1, dtype=bool)
            buyers[buyer[rows]] = True
            around = np.flatnonzero(buyers[buyer])
        short = self._short(graph, buyer, around)
        eligible = np.zeros(graph.n_sales, dtype=bool)
        eligible[around] = short
        chosen: np.ndarray = eligible[rows]
        return chosen

    def _short(self, graph: LedgerGraph, buyer: np.ndarray, rows: np.ndarray) -> np.ndarray:
        merchant = _ids(graph.sale_merchant)
        time = np.frombuffer(graph.sale_time, dtype=np.int64)
        pair = buyer[rows].astype(np.int64) * len(graph.names) + merchant[rows]
        return short_lived(pair, time[rows], self.burst.window)

    def _update(
        self, graph: LedgerGraph, columns: list[np.ndarray], mark: GraphMark, previous: Any
    ) -> list[tuple[int, int, list[int]]]:
        """The bursts after the sales from ``mark.sales`` on, from ``previous`` (the
        bursts at ``mark``): the keys those sales reach recounted, the others kept."""
        kept = [(int(w), int(key), [int(r) for r in rows]) for w, key, rows in previous]
        new = np.arange(mark.sales, graph.n_sales)
        if not new.shape[0]:
            return kept
        buyer = columns[0]
        # Every sale of the buyers with new sales: their pairs' spans before and after.
        touched = np.zeros(len(graph.names) + 1, dtype=bool)
        touched[buyer[new]] = True
        around = np.flatnonzero(touched[buyer])
        before = around[around < mark.sales]
        was_short = self._short(graph, buyer, before)
        now_short = self._short(graph, buyer, around)[: before.shape[0]]
        changed = np.concatenate([new, before[was_short & ~now_short]])
        dirty = []
        for column in columns:
            mask = np.zeros(len(graph.names) + 1, dtype=bool)
            values = column[changed]
            mask[values[values >= 0]] = True
            dirty.append(mask)
        fresh = self._runs(graph, columns, dirty)
        time = np.frombuffer(graph.sale_time, dtype=np.int64)
        runs = [run for run in kept if not dirty[run[0]][run[1]]] + fresh
        runs.sort(key=lambda run: (run[0], run[1], int(time[run[2][0]]), run[2][0]))
        return runs


_BURST_KEYS = ("account", "device", "ip", "instrument")


def _burst_subject(graph: LedgerGraph, rows: list[int]) -> tuple[str, str]:
    buyers = {graph.sale_buyer[r] for r in rows}
    if len(buyers) == 1:
        return NodeKind.BUYER.value, graph.names[buyers.pop()]
    for column in (graph.sale_device, graph.sale_instrument, graph.sale_ip):
        values = {column[r] for r in rows}
        if len(values) == 1 and (value := values.pop()) >= 0:
            return graph.kind(value).value, graph.names[value]
    return NodeKind.BUYER.value, graph.names[graph.sale_buyer[rows[0]]]


@dataclass(frozen=True, slots=True)
class SharedPaymentRing:
    """Buyer accounts sharing a device, payment instrument or IP that buy together.

    The transfer-list ring detector needs a shared counterparty that is not a business;
    every sale's counterparty is a shop, so here acting together means buying close in
    time: a device, instrument or IP used by ``min_accounts`` to ``max_accounts``
    buyer accounts (more is a shared network, not a ring), of which ``min_accounts`` or
    more made ``min_sales`` or more purchases inside one window of ``window_hours``, no
    one of them more than half. A family sharing a tablet, each buying now and then, is
    not a ring; one account's spree on a shared home IP is a burst, not a ring. Score: 0.5 at
    ``min_accounts`` accounts, 1 at twice as many.

    Attributes:
        window_hours: the span the ring's purchases fall in.
        min_accounts, max_accounts: the ring's size.
        min_sales: the fewest purchases in the window.
        attributes: which shared values are looked at. IPs are left out by default: a
            household, a dormitory or a carrier's NAT puts unrelated buyers on one IP
            often enough that a few of them buying on the same day means nothing.
    """

    window_hours: float = 24.0
    min_accounts: int = 3
    max_accounts: int = 50
    min_sales: int = 6
    attributes: tuple[str, ...] = ("device", "instrument")

    @property
    def memo_name(self) -> str:
        return (
            f"rings {self.window_hours!r} {self.min_accounts} {self.max_accounts} "
            f"{self.min_sales} {','.join(self.attributes)}"
        )

    def detect(self, graph: LedgerGraph) -> list[LedgerFinding]:
        """Run again on a graph that has grown since its last run (its rings kept in
        the graph's memos), it looks again only at the devices, instruments or IPs the
        new sales used: a value's ring is drawn from that value's sales alone (its
        buyer accounts, their purchases' times), which no sale of another value
        changes."""
        graph.flush()
        kept = graph.recall(self.memo_name)
        rings: list[tuple[int, int, list[int]]] = []
        for a, name in enumerate(self.attributes):
            values = _ids(_RING_COLUMNS[name](graph))
            if kept is None:
                rows = np.flatnonzero(values >= 0)
                rings += [(a, value, best) for value, best in self._rings(graph, values, rows)]
                continue
            mark, previous = kept
            touched = np.zeros(len(graph.names) + 1, dtype=bool)
            touched[values[mark.sales :]] = True
            touched[-1] = False
            rows = np.flatnonzero(touched[values])
            again = [(a, int(v), [int(r) for r in best]) for w, v, best in previous if w == a]
            again = [ring for ring in again if not touched[ring[1]]]
            again += [(a, value, best) for value, best in self._rings(graph, values, rows)]
            rings += sorted(again, key=lambda ring: ring[1])
        graph.remember(self.memo_name, [list(ring) for ring in rings])
        buyer = _ids(graph.sale_buyer)
        findings = []
        for _, value, best in rings:
            members = {int(buyer[s]) for s in best}
            kind = graph.kind(value)
            findings.append(
                _finding(
                    graph,
                    Typology.SHARED_ATTRIBUTE_RING,
                    kind.value,
                    graph.names[value],
                    scaled_score(len(members), self.min_accounts),
                    f"{len(members)} buyer accounts on one {kind.value.replace('_', ' ')} "
                    f"made {len(best)} purchases within {self.window_hours:g} hours",
                    sales=best[:MAX_EVIDENCE_SALES],
                )
            )
        return findings

    def _rings(
        self, graph: LedgerGraph, values: np.ndarray, rows: np.ndarray
    ) -> list[tuple[int, list[int]]]:
        """The ring of each value among ``rows`` (every sale of each value there), by
        value: ``(value, the ring's sales)``."""
        if not rows.shape[0]:
            return []
        window = int(self.window_hours * 3600)
        buyer = _ids(graph.sale_buyer)
        time = np.frombuffer(graph.sale_time, dtype=np.int64)
        pairs = _distinct(values[rows].astype(np.int64) * len(graph.names) + buyer[rows])
        accounts = np.bincount(pairs // len(graph.names), minlength=len(graph.names))
        candidates = np.flatnonzero(
            (accounts >= self.min_accounts) & (accounts <= self.max_accounts)
        )
        if not candidates.shape[0]:
            return []
        chosen = rows[np.isin(values[rows], candidates)]
        order = chosen[np.lexsort((time[chosen], values[chosen]))]
        starts = np.flatnonzero(np.r_[True, values[order][1:] != values[order][:-1]])
        ends = np.r_[starts[1:], order.shape[0]]
        rings = []
        for start, end in zip(starts, ends, strict=True):
            sales = order[start:end]
            best = self._window(sales, buyer, time, window)
            if best is not None:
                rings.append((int(values[sales[0]]), best.tolist()))
        return rings

    def _window(
        self, sales: np.ndarray, buyer: np.ndarray, time: np.ndarray, window: int
    ) -> np.ndarray | None:
        t = time[sales]
        ends = np.searchsorted(t, t + window, side="right")
        best: np.ndarray | None = None
        for i in np.flatnonzero(ends - np.arange(t.shape[0]) >= self.min_sales):
            inside = sales[i : ends[i]]
            _, counts = np.unique(buyer[inside], return_counts=True)
            # A window one account dominates is that account's burst, not a ring.
            spread = counts.shape[0] >= self.min_accounts and 2 * counts.max() <= inside.shape[0]
            if spread and (best is None or inside.shape[0] > best.shape[0]):
                best = inside
        return best


_RING_COLUMNS: dict[str, Callable[[LedgerGraph], object]] = {
    "device": lambda graph: graph.sale_device,
    "instrument": lambda graph: graph.sale_instrument,
    "ip": lambda graph: graph.sale_ip,
}


def custody_detectors() -> list[Detector]:
    """The transfer-list detectors as custody runs them. Parties are few and trade mostly
    along standing relationships, so the occasional traffic that sets the chance of a
    transfer is thin; fans and gather-scatter hubs accept a geometric-mean chance of up
    to 0.1 (not 0.01) there."""
    return [
        FanDetector(direction="out", max_edge_chance=0.1),
        FanDetector(direction="in", max_edge_chance=0.1),
        GatherScatterDetector(max_edge_chance=0.1),
        ScatterGatherDetector(),
        CycleDetector(),
        StackedChainDetector(),
    ]


@dataclass(frozen=True, slots=True)
class CustodyPatterns:
    """The account-to-account detectors (cycles, fans, gather-scatter, scatter-gather,
    stacked chains) on custody transfers between parties, each transfer weighted by the
    face value it moved (parameters: :func:`custody_detectors`).

    The subject is the pattern's centre; for a cycle its first member by name; for a
    stacked chain the first party that passed the codes on (the first is where they
    came from, often an issuer). A pattern is reported once, as the most specific
    typology: a chain through a cycle's members is the cycle, and a fan whose centre is
    a gather-scatter hub is the hub. An issuer supplying new partners is its business,
    not a fan-out.
    """

    def detect(self, graph: LedgerGraph) -> list[LedgerFinding]:
        graph.flush()
        table, edges = graph.custody_table()
        if len(table) == 0:
            return []
        report = analyze_transfers(table, detectors=custody_detectors())
        in_cycles = {a for f in report.findings if f.typology is Typology.CYCLE for a in f.accounts}
        hubs = {f.accounts[0] for f in report.findings if f.typology is Typology.GATHER_SCATTER}
        findings = []
        for found in report.findings:
            chain = found.typology is Typology.STACKED_CHAIN and len(found.accounts) > 1
            if chain and found.accounts[1] in in_cycles:
                continue
            if found.typology in (Typology.FAN_IN, Typology.FAN_OUT):
                centre = found.accounts[0]
                party = graph.find(NodeKind.PARTY, table.accounts[centre])
                issuer = party is not None and graph.party_kinds.get(party) == "issuer"
                if centre in hubs or (issuer and found.typology is Typology.FAN_OUT):
                    continue
            findings.append(self._convert(graph, table.accounts, edges, found))
        return findings

    @staticmethod
    def _convert(
        graph: LedgerGraph, accounts: Sequence[str], edges: list[int], found: Finding
    ) -> LedgerFinding:
        names = [accounts[a] for a in found.accounts]
        if found.typology is Typology.CYCLE:
            subject = min(names)
        elif found.typology is Typology.STACKED_CHAIN and len(names) > 1:
            subject = names[1]
        else:
            subject = names[0]
        return _finding(
            graph,
            found.typology,
            NodeKind.PARTY.value,
            subject,
            found.score,
            found.reason.replace("transfers", "custody transfers"),
            edges=[edges[r] for r in found.transfers],
        )


def default_ledger_detectors() -> list[LedgerDetector]:
    """Every ledger detector with its default parameters."""
    return [
        StolenPaymentTaint(),
        DuplicateSerial(),
        UnknownOriginAtVolume(),
        SaleBursts(),
        SharedPaymentRing(),
        CustodyPatterns(),
    ]


def analyze_ledger(
    graph: LedgerGraph, detectors: Sequence[LedgerDetector] | None = None
) -> list[LedgerFinding]:
    """Run the detectors (default: :func:`default_ledger_detectors`) over ``graph``,
    then :func:`reuse_evidence`."""
    graph.flush()
    findings: list[LedgerFinding] = []
    for detector in detectors if detectors is not None else default_ledger_detectors():
        findings.extend(detector.detect(graph))
    reuse_evidence(graph, findings)
    return findings


EVIDENCE_MEMO = "evidence"


def reuse_evidence(graph: LedgerGraph, findings: Sequence[LedgerFinding]) -> None:
    """Give each finding the evidence SHA-256 the last run computed for the same recipe,
    unless a code its evidence shows has changed since (its holder moved, or it is
    new), and keep the digests known at the end of this run for the next.

    Evidence is drawn from the recipe (edges, sales, codes, nodes: rows and ids that
    never change once written) and the current record of each code shown (its holder
    moves with custody; a code the graph did not know is drawn as of unknown origin),
    so an equal recipe over unchanged codes draws equal evidence. A finding with a
    known digest need not be drawn to tell that its alert's evidence is still right.
    """
    kept = graph.recall(EVIDENCE_MEMO)
    if kept is not None:
        mark, pairs = kept
        known = {str(recipe): str(digest) for recipe, digest in pairs}
        changed = graph.changed_codes(mark)
        for finding in findings:
            if finding.recipe is None or finding._sha256 is not None:
                continue
            digest = known.get(finding.recipe)
            if digest is None:
                continue
            if _shows_changed(finding.recipe, changed):
                continue
            finding._sha256 = digest
    graph.remember(
        EVIDENCE_MEMO,
        lambda: [[f.recipe, f._sha256] for f in findings if f.recipe is not None and f._sha256],
    )


def _shows_changed(recipe: str, changed: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether the evidence of ``recipe`` shows a code whose record changed (``changed``:
    per code and per sale, from :meth:`LedgerGraph.changed_codes`)."""
    sales, codes = orjson.loads(recipe)[6:8]
    codes_changed, sales_changed = changed
    return any(sales_changed[s] for s in sales) or any(codes_changed[i] for i in codes)

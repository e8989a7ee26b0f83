"""Short-time, high-frequency bursts by one sender (or one device, IP or instrument).

A burst is ``min_transfers`` or more transfers inside ``window_minutes``, counting only
transfers to counterparties the sender does not deal with outside that short span: a
payroll run or a standing order repeats across the list and is not a burst, a string of
top-ups to a new account is. When the list carries ``device``, ``ip`` or ``instrument``
columns, the same count runs per value of each, across every account that used it.

The two steps are functions over plain columns (:func:`short_lived`, :func:`burst_runs`)
so that the ledger's sales, whose columns hold node ids, use them without a table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from provenance.analysis.findings import Finding, Typology, scaled_score
from provenance.analysis.index import TransferIndex
from provenance.analysis.transfers import IntArray, TransferTable


@dataclass(frozen=True, slots=True)
class BurstDetector:
    """Attributes:
    window_minutes: the burst's length.
    min_transfers: the fewest transfers in a reported burst.
    """

    window_minutes: float = 60.0
    min_transfers: int = 10

    @property
    def typology(self) -> Typology:
        return Typology.BURST

    @property
    def window(self) -> int:
        """The burst's length in seconds."""
        return int(self.window_minutes * 60)

    def detect(self, index: TransferIndex) -> list[Finding]:
        return self.detect_table(index.table)

    def detect_table(self, table: TransferTable) -> list[Finding]:
        """As :meth:`detect`, from the table alone: bursts need none of the index's
        occasional views, so a caller with only a table need not build them."""
        n = table.n_accounts
        pair = table.source.astype(np.int64) * n + table.target.astype(np.int64)
        eligible = short_lived(pair, table.time, self.window)
        keys: list[tuple[str, IntArray]] = [("account", table.source.astype(np.int64))]
        keys += [(column, ids.astype(np.int64)) for column, ids in table.attributes.items()]
        findings = []
        for what, key in keys:
            rows = np.flatnonzero(eligible & (key >= 0))
            for value, burst in burst_runs(key, table.time, rows, self.window, self.min_transfers):
                findings.append(self._finding(table, what, value, burst))
        return findings

    def _finding(self, table: TransferTable, what: str, value: int, rows: IntArray) -> Finding:
        senders = sorted({int(table.source[r]) for r in rows})
        receivers = sorted({int(table.target[r]) for r in rows} - set(senders))
        label = "sender" if what == "account" else f"{what} {table.attribute_values[what][value]}"
        return Finding(
            Typology.BURST,
            scaled_score(len(rows), self.min_transfers),
            (*senders, *receivers),
            tuple(int(r) for r in rows),
            f"{len(rows)} transfers by one {label} within {self.window_minutes:g} minutes",
        )


def burst_runs(
    key: IntArray, time: IntArray, rows: IntArray, window: int, least: int
) -> list[tuple[int, IntArray]]:
    """The bursts among ``rows`` (ascending, each with ``key >= 0``), per key value: its
    rows in (time, row) order, taken greedily from the left, a burst starting at the
    first row whose ``window`` holds ``least`` rows or more and taking that window, the
    next starting only after it. A key's bursts depend on its own rows only. Returned
    by key ascending, then in time order: ``(key value, rows)``."""
    if rows.shape[0] == 0:
        return []
    order = rows[np.lexsort((time[rows], key[rows]))]
    k, t = key[order].astype(np.int64), time[order]
    # Keys are laid end to end on one axis with a gap wider than any window, so one
    # search finds every row's window without crossing into the next key.
    shift = int(t.max() - t.min()) + window + 1
    flat = k * shift + (t - t.min())
    ends = np.searchsorted(flat, flat + window, side="right")
    counts = ends - np.arange(flat.shape[0])
    runs = []
    resume = 0
    for i in np.flatnonzero(counts >= least).tolist():
        if i < resume:
            continue
        resume = int(ends[i])
        runs.append((int(k[i]), order[i:resume]))
    return runs


def short_lived(pair: IntArray, time: IntArray, window: int) -> np.ndarray:
    """Which rows' pair (any integer naming a sender-receiver pair) trades only inside
    one span of ``window``."""
    unique, inverse = np.unique(pair, return_inverse=True)
    first = np.full(unique.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(unique.shape[0], np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, inverse, time)
    np.maximum.at(last, inverse, time)
    short: np.ndarray = (last - first)[inverse] <= window
    return short

"""Fan-out, fan-in and gather-scatter: one account meeting many new counterparties.

A fan-out account sends occasional transfers to many distinct accounts inside one
window; a fan-in account receives them from many. How many is "many" depends on the
list: the threshold is the count that occasional traffic alone reaches for fewer than
``alpha`` of the accounts (a Poisson bound, see
:func:`provenance.analysis.index.poisson_threshold`), and never below
``min_counterparties``. An account with more than ``max_counterparties`` occasional
counterparties over the whole list is a business (a shop and its one-off customers, a
payroll office), not a fan: laundering fans are small and built for the purpose. A
fan whose accounts have a standing relationship with each other (one friend collecting
the others' shares of a bill: they pay each other back and forth at other dinners) is a
circle of acquaintances, not a fan (see
:meth:`provenance.analysis.index.TransferIndex.standing_ties`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from provenance.analysis.findings import Finding, Typology, scaled_score
from provenance.analysis.index import (
    DAY,
    Adjacency,
    TransferIndex,
    poisson_threshold,
    window_counts,
)


def _rate(degree: np.ndarray, cap: int, window: int, span: int) -> float:
    """Typical occasional transfers per active account within ``window``: the median,
    so that a minority of very active one-off payers (or the businesses above ``cap``,
    which are not tested) do not raise the bar for everyone."""
    kept = degree[(degree > 0) & (degree <= cap)]
    if kept.shape[0] == 0:
        return 0.0
    return float(np.median(kept)) * min(1.0, window / span)


def _window_rows(adjacency: Adjacency, start: int, count: int) -> tuple[list[int], list[int]]:
    rows = adjacency.rows[start : start + count]
    others = adjacency.other[start : start + count]
    return [int(r) for r in rows], [int(o) for o in others]


@dataclass(frozen=True, slots=True)
class FanDetector:
    """Fan-out (``direction="out"``) or fan-in (``"in"``).

    Attributes:
        direction: ``"out"`` for one sender and many receivers, ``"in"`` for the reverse.
        window_days: the window the counterparties must fall in.
        min_counterparties: the least fan ever reported.
        max_counterparties: above this many occasional counterparties over the whole
            list an account is treated as a business and not reported.
        alpha: the share of accounts that chance alone may push over the threshold.
        max_edge_chance: the largest geometric-mean chance of the fan's transfers (see
            :class:`GatherScatterDetector`).
    """

    direction: Literal["out", "in"] = "out"
    window_days: float = 30.0
    min_counterparties: int = 5
    max_counterparties: int = 20
    alpha: float = 0.01
    max_edge_chance: float = 0.01

    @property
    def typology(self) -> Typology:
        return Typology.FAN_OUT if self.direction == "out" else Typology.FAN_IN

    def detect(self, index: TransferIndex) -> list[Finding]:
        adjacency = index.out if self.direction == "out" else index.into
        window = int(self.window_days * DAY)
        best, start = window_counts(adjacency, index.table.time, window)
        total = adjacency.degree()
        degree_out, degree_in = index.out.degree(), index.into.degree()
        m = max(1, int(index.out.rows.shape[0]))
        limit = math.log(self.max_edge_chance)
        threshold = poisson_threshold(
            _rate(total, self.max_counterparties, window, index.span),
            index.n_accounts,
            self.alpha,
            self.min_counterparties,
        )
        findings = []
        for account in np.flatnonzero((best >= threshold) & (total <= self.max_counterparties)):
            rows, others = _window_rows(adjacency, int(start[account]), int(best[account]))
            distinct = len(set(others))
            if distinct < threshold:
                continue
            if self.direction == "out":
                pairs = [(int(account), o) for o in others]
            else:
                pairs = [(o, int(account)) for o in others]
            chance = [math.log(float(degree_out[s]) * float(degree_in[t]) / m) for s, t in pairs]
            if sum(chance) / len(chance) > limit or index.standing_ties((int(account), *others)):
                continue
            word = "to" if self.direction == "out" else "from"
            findings.append(
                Finding(
                    self.typology,
                    scaled_score(distinct, threshold),
                    (int(account), *sorted(set(others))),
                    tuple(rows),
                    f"occasional transfers {word} {distinct} distinct accounts within "
                    f"{self.window_days:g} days (threshold {threshold})",
                )
            )
        return findings


@dataclass(frozen=True, slots=True)
class GatherScatterDetector:
    """Many accounts pay one, which pays many others: fan-in then fan-out at one hub.

    Busy accounts meet many counterparties on both sides by chance, so, as for cycles
    (see :mod:`provenance.analysis.detectors.cycles`), the hub's transfers must be
    improbable: the geometric mean of ``d_out(sender) * d_in(receiver) / m`` over them
    is at most ``max_edge_chance``.

    Attributes:
        window_days: both sides must fall in one window of this length.
        min_side: the least number of distinct senders and of distinct receivers.
        max_counterparties: businesses (more occasional counterparties than this on
            either side over the whole list) are not reported.
        alpha: the share of accounts chance alone may push over both side thresholds
            (a Poisson bound, as for fans).
        max_edge_chance: the largest geometric-mean chance of the hub's transfers.
    """

    window_days: float = 30.0
    min_side: int = 3
    max_counterparties: int = 40
    alpha: float = 0.01
    max_edge_chance: float = 0.01

    @property
    def typology(self) -> Typology:
        return Typology.GATHER_SCATTER

    def detect(self, index: TransferIndex) -> list[Finding]:
        window = int(self.window_days * DAY)
        table = index.table
        time = table.time
        degree_in, degree_out = index.into.degree(), index.out.degree()
        m = max(1, int(index.out.rows.shape[0]))
        limit = math.log(self.max_edge_chance)
        rate = max(
            _rate(degree_in, self.max_counterparties, window, index.span),
            _rate(degree_out, self.max_counterparties, window, index.span),
        )
        threshold = poisson_threshold(rate, index.n_accounts, self.alpha, self.min_side, sides=2)
        candidates = np.flatnonzero(
            (degree_in >= threshold)
            & (degree_out >= threshold)
            & (degree_in <= self.max_counterparties)
            & (degree_out <= self.max_counterparties)
        )
        findings = []
        for account in candidates:
            a = int(account)
            rows_in = index.into.of(a)
            rows_out = index.out.of(a)
            # The window is anchored on each incoming transfer in turn; the best one wins.
            best: tuple[int, list[int], list[int]] | None = None
            for anchor in time[rows_in]:
                lo, hi = anchor, anchor + window
                chosen_in = [int(r) for r in rows_in if lo <= time[r] <= hi]
                chosen_out = [int(r) for r in rows_out if lo <= time[r] <= hi]
                senders = {int(table.source[r]) for r in chosen_in}
                receivers = {int(table.target[r]) for r in chosen_out}
                size = min(len(senders), len(receivers))
                if size >= threshold and (best is None or size > best[0]):
                    best = (size, chosen_in, chosen_out)
            if best is None:
                continue
            size, chosen_in, chosen_out = best
            chance = [
                math.log(float(degree_out[table.source[r]]) * float(degree_in[a]) / m)
                for r in chosen_in
            ] + [
                math.log(float(degree_out[a]) * float(degree_in[table.target[r]]) / m)
                for r in chosen_out
            ]
            senders = {int(table.source[r]) for r in chosen_in}
            receivers = {int(table.target[r]) for r in chosen_out}
            members = (senders | receivers) - {a}
            if sum(chance) / len(chance) > limit or index.standing_ties((a, *members)):
                continue
            findings.append(
                Finding(
                    Typology.GATHER_SCATTER,
                    scaled_score(size, threshold),
                    (a, *sorted(members)),
                    tuple(chosen_in + chosen_out),
                    f"gathers from {len(senders)} and scatters to {len(receivers)} accounts "
                    f"within {self.window_days:g} days",
                )
            )
        return findings

"""Scatter-gather: one account pays several intermediaries, who all pay one account.

Two accounts joined through ``min_intermediaries`` or more distinct intermediaries, by
occasional transfers inside one window: money split to cross a threshold and brought
together again. Chance rarely builds several such parallel paths between the same
pair, except through busy accounts, so, as for cycles, a pattern is reported only when a
random rewiring of the occasional transfers would make fewer than ``max_expected`` like
it (see :meth:`provenance.analysis.index.TransferIndex.expected_copies`), and not when
its accounts have dealt with each other outside it (a circle of friends, see
:meth:`provenance.analysis.index.TransferIndex.outside_ties`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from provenance.analysis.findings import Finding, Typology, scaled_score
from provenance.analysis.index import DAY, TransferIndex


@dataclass(frozen=True, slots=True)
class ScatterGatherDetector:
    """Attributes:
    window_days: every transfer of the pattern falls in one window this long.
    min_intermediaries: the least number of distinct parallel paths reported.
    max_branch: intermediaries with more occasional counterparties than this on
        either side (businesses) are not considered.
    max_expected: the most patterns like it that chance alone may be expected to make.
    """

    window_days: float = 30.0
    min_intermediaries: int = 3
    max_branch: int = 40
    max_expected: float = 1.0

    @property
    def typology(self) -> Typology:
        return Typology.SCATTER_GATHER

    def detect(self, index: TransferIndex) -> list[Finding]:
        window = int(self.window_days * DAY)
        table = index.table
        degree_in, degree_out = index.into.degree(), index.out.degree()
        middle = np.flatnonzero(
            (degree_in >= 1)
            & (degree_out >= 1)
            & (degree_in <= self.max_branch)
            & (degree_out <= self.max_branch)
        )
        paths: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
        for x in middle:
            ins, outs = index.into.of(int(x)), index.out.of(int(x))
            for r_in in ins:
                a = int(table.source[r_in])
                for r_out in outs:
                    b = int(table.target[r_out])
                    if a != b and abs(int(table.time[r_out]) - int(table.time[r_in])) <= window:
                        paths[(a, b)].append((int(x), int(r_in), int(r_out)))
        findings = []
        for (a, b), found in paths.items():
            if len({x for x, _, _ in found}) < self.min_intermediaries:
                continue
            chosen = _best_window(found, table.time, window)
            middles = sorted({x for x, _, _ in chosen})
            if len(middles) < self.min_intermediaries:
                continue
            rows = tuple(sorted({r for _, r_in, r_out in chosen for r in (r_in, r_out)}))
            pairs = [(int(table.source[r]), int(table.target[r])) for r in rows]
            times = [int(table.time[r]) for r in rows]
            if index.expected_copies(pairs, max(times) - min(times)) > math.log(
                self.max_expected
            ) or index.outside_ties((a, b, *middles), rows):
                continue
            findings.append(
                Finding(
                    Typology.SCATTER_GATHER,
                    scaled_score(len(middles), self.min_intermediaries),
                    (a, b, *middles),
                    rows,
                    f"{len(middles)} parallel paths through distinct intermediaries within "
                    f"{self.window_days:g} days",
                )
            )
        return findings


def _best_window(
    found: list[tuple[int, int, int]], time: np.ndarray, window: int
) -> list[tuple[int, int, int]]:
    """The largest set of paths whose transfers all fall in one window."""
    best: list[tuple[int, int, int]] = []
    for _, anchor_in, _ in found:
        lo = int(time[anchor_in])
        inside = [
            path
            for path in found
            if lo <= int(time[path[1]]) <= lo + window and lo <= int(time[path[2]]) <= lo + window
        ]
        if len({x for x, _, _ in inside}) > len({x for x, _, _ in best}):
            best = inside
    return best

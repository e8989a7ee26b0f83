"""Resale and transfer cycles: money (or codes) that comes back to where it started.

Directed cycles of ``min_length`` to ``max_length`` accounts over occasional transfers,
all inside one window. A refund is a cycle of two between the same pair, which the
occasional view already excludes when the pair trades more than once, and which
``min_length`` (3) excludes in any case. The search is bounded: each cycle is found once,
from its lowest account id, visiting only higher ids; accounts with more than
``max_branch`` occasional senders or receivers (hubs, through which chance closes
cycles easily) are not walked through, and each start explores at
most ``max_steps`` partial paths.

Chance closes cycles through busy accounts easily, so a cycle is reported only when a
random rewiring of the occasional transfers would make fewer than ``max_expected``
cycles like it (same length, same occasional degrees, no wider time spread; see
:meth:`provenance.analysis.index.TransferIndex.expected_copies`). For a cycle that
number does not depend on how many accounts the list has, so adding unrelated traffic
does not make a chance cycle look rarer. Friends who split bills close cycles too (one
pays the next, who pays the next, at different dinners), but they also pay each other
again and again: a cycle whose accounts have dealt with each other outside it
(see :meth:`provenance.analysis.index.TransferIndex.outside_ties`) is not reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from provenance.analysis.findings import Finding, Typology
from provenance.analysis.index import DAY, TransferIndex


@dataclass(frozen=True, slots=True)
class CycleDetector:
    """Attributes:
    window_days: the span from the earliest to the latest transfer of a cycle.
    min_length: the fewest accounts in a reported cycle.
    max_length: the most accounts in a cycle searched for.
    max_branch: accounts with more occasional senders or receivers are not walked.
    max_steps: partial paths explored per starting account.
    max_expected: the most cycles like it that chance alone may be expected to make.
    """

    window_days: float = 30.0
    min_length: int = 3
    max_length: int = 12
    max_branch: int = 30
    max_steps: int = 20_000
    max_expected: float = 1.0

    @property
    def typology(self) -> Typology:
        return Typology.CYCLE

    def detect(self, index: TransferIndex) -> list[Finding]:
        window = int(self.window_days * DAY)
        table = index.table
        out = index.out
        degree_out, degree_in = out.degree(), index.into.degree()
        busy = (degree_out > self.max_branch) | (degree_in > self.max_branch)
        time = table.time
        findings = []
        for start in np.flatnonzero((degree_out >= 1) & (degree_in >= 1)):
            u = int(start)
            if busy[u]:
                continue
            steps = 0
            # Stack of (account, path rows, accounts on path, earliest, latest).
            stack: list[tuple[int, tuple[int, ...], tuple[int, ...], int, int]] = []
            for position in range(int(out.ptr[u]), int(out.ptr[u + 1])):
                v = int(out.other[position])
                if v > u:
                    t = int(time[out.rows[position]])
                    stack.append((v, (int(out.rows[position]),), (u, v), t, t))
            while stack and steps < self.max_steps:
                steps += 1
                node, rows, members, lo, hi = stack.pop()
                if busy[node]:
                    continue
                for position in range(int(out.ptr[node]), int(out.ptr[node + 1])):
                    w = int(out.other[position])
                    row = int(out.rows[position])
                    t = int(time[row])
                    new_lo, new_hi = min(lo, t), max(hi, t)
                    if new_hi - new_lo > window:
                        continue
                    if w == u:
                        if len(members) >= self.min_length and self._improbable(
                            index, members, (*rows, row), new_hi - new_lo
                        ):
                            findings.append(self._finding(members, (*rows, row), new_hi - new_lo))
                    elif w > u and w not in members and len(members) < self.max_length:
                        stack.append((w, (*rows, row), (*members, w), new_lo, new_hi))
        return findings

    def _improbable(
        self, index: TransferIndex, members: tuple[int, ...], rows: tuple[int, ...], span: int
    ) -> bool:
        pairs = [(a, members[(i + 1) % len(members)]) for i, a in enumerate(members)]
        if index.expected_copies(pairs, span) > math.log(self.max_expected):
            return False
        return index.outside_ties(members, rows) == 0

    def _finding(self, members: tuple[int, ...], rows: tuple[int, ...], span: int) -> Finding:
        # Longer cycles are less likely by chance; a cycle of three is already unusual.
        score = min(1.0, 0.6 + 0.05 * len(members))
        return Finding(
            Typology.CYCLE,
            score,
            members,
            rows,
            f"a cycle through {len(members)} accounts within {span / DAY:.1f} days",
        )

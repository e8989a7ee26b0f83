"""Resale and transfer cycles: money (or codes) that comes back to where it started.

Directed cycles of ``min_length`` to ``max_length`` accounts over occasional transfers,
all inside one window. A refund is a cycle of two between the same pair, which the
occasional view already excludes when the pair trades more than once, and which
``min_length`` (3) excludes in any case. The search is bounded: accounts with more than
``max_branch`` occasional senders or receivers (busy accounts, whose many
counterparties would make the walk explode) are never walked through. A cycle of
accounts that are not busy is found once, from its lowest account id, visiting only
higher ids; a cycle through exactly one busy account (a mule ring that launders through
one established account) is found from that account, walking only towards accounts
that can still lead back to it in few enough hops. Each start explores at most
``max_steps`` partial paths; cycles through two or more busy accounts are not searched.

Chance closes cycles through busy accounts easily, so a cycle is reported only when a
random rewiring of the occasional transfers would make fewer than ``max_expected``
cycles like it (same length, same occasional degrees, no wider time spread; see
:meth:`provenance.analysis.index.TransferIndex.expected_copies`). For a cycle that
number does not depend on how many accounts the list has, so adding unrelated traffic
does not make a chance cycle look rarer. Friends who split bills close cycles too (one
pays the next, who pays the next, at different dinners), but they also pay each other
again and again: a cycle whose accounts have dealt with each other outside it
(see :meth:`provenance.analysis.index.TransferIndex.outside_ties`) is not reported.

**Closed through a pair that trades again.** A ring of mules may close through an
account that has paid the ring's first mule once before or pays it once again months
later: that pair trades twice, so the occasional view does not see the closing
transfer. A transfer between two accounts that trade exactly ``max_closing_pair``
times in the whole list, always the same way (a pair that paid each other back is a
refund or a shared bill, not a ring), may close a cycle whose other transfers are
occasional. Such a
cycle may have its one repeated pair at any of its ``L`` positions, so the expected
number of cycles like it is ``L`` times that of an occasional cycle; and its pair's one
other transfer is the only outside tie it may have (friends who pay each other now and
then have more).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from provenance.analysis.findings import Finding, Typology
from provenance.analysis.index import DAY, Adjacency, TransferIndex


@dataclass(frozen=True, slots=True)
class CycleDetector:
    """Attributes:
    window_days: the span from the earliest to the latest transfer of a cycle.
    min_length: the fewest accounts in a reported cycle.
    max_length: the most accounts in a cycle searched for.
    max_branch: accounts with more occasional senders or receivers are not walked.
    max_steps: partial paths explored per starting account.
    max_expected: the most cycles like it that chance alone may be expected to make.
    max_closing_pair: a cycle may close through one pair that trades this many times
        in the whole list (see the module docstring); below 2, none does.
    """

    window_days: float = 30.0
    min_length: int = 3
    max_length: int = 12
    max_branch: int = 30
    max_steps: int = 20_000
    max_expected: float = 1.0
    max_closing_pair: int = 2

    @property
    def typology(self) -> Typology:
        return Typology.CYCLE

    def detect(self, index: TransferIndex) -> list[Finding]:
        window = int(self.window_days * DAY)
        out = index.out
        degree_out, degree_in = out.degree(), index.into.degree()
        busy_mask = (degree_out > self.max_branch) | (degree_in > self.max_branch)
        # Plain lists: the walk below reads them millions of times.
        ptr: list[int] = out.ptr.tolist()
        other: list[int] = out.other.tolist()
        row_of: list[int] = out.rows.tolist()
        time_of: list[int] = index.table.time[out.rows].tolist()
        busy: list[bool] = busy_mask.tolist()
        longest = self.max_length
        findings = []
        for start in np.flatnonzero((degree_out >= 1) & (degree_in >= 1)):
            u = int(start)
            # A cycle of accounts that are not busy is found from its lowest id, visiting
            # higher ids only; a cycle through one busy account is found from that
            # account, through accounts of any id that are not busy. Each is found once;
            # cycles through two busy accounts are not searched.
            lowest = -1 if busy[u] else u
            # From a busy account, only accounts that can still lead back to it (in few
            # enough hops through accounts that are not busy) are walked: without this,
            # its many counterparties use up the search on paths that never return.
            back = _hops_to(u, index.into, busy_mask, longest - 1) if busy[u] else None
            steps = 0
            # Stack of (account, path rows, accounts on path, earliest, latest).
            stack: list[tuple[int, tuple[int, ...], tuple[int, ...], int, int]] = []
            for position in range(ptr[u], ptr[u + 1]):
                v = other[position]
                if v > lowest and not busy[v] and (back is None or v in back):
                    t = time_of[position]
                    stack.append((v, (row_of[position],), (u, v), t, t))
            while stack and steps < self.max_steps:
                steps += 1
                node, rows, members, lo, hi = stack.pop()
                size = len(members)
                for position in range(ptr[node], ptr[node + 1]):
                    w = other[position]
                    if w != u and (
                        w <= lowest
                        or busy[w]
                        or size >= longest
                        or w in members
                        or (back is not None and size + back.get(w, longest) > longest)
                    ):
                        continue
                    t = time_of[position]
                    new_lo = lo if lo < t else t
                    new_hi = hi if hi > t else t
                    if new_hi - new_lo > window:
                        continue
                    row = row_of[position]
                    if w != u:
                        stack.append((w, (*rows, row), (*members, w), new_lo, new_hi))
                    elif size >= self.min_length and self._improbable(
                        index, members, (*rows, row), new_hi - new_lo
                    ):
                        findings.append(self._finding(members, (*rows, row), new_hi - new_lo))
        if self.max_closing_pair >= 2:
            findings.extend(self._closed_by_repeat(index, busy))
        return findings

    def _closed_by_repeat(self, index: TransferIndex, busy: list[bool]) -> list[Finding]:
        """Cycles of occasional transfers closed by one transfer of a pair that trades
        ``max_closing_pair`` times (see the module docstring). For each such transfer
        ``u -> v``, the walk goes from ``v`` back to ``u`` over occasional transfers of
        accounts that are not busy, through accounts that can reach ``u`` in few enough
        hops within the window around the closing transfer."""
        window = int(self.window_days * DAY)
        table = index.table
        out, into = index.out, index.into
        ptr: list[int] = out.ptr.tolist()
        other: list[int] = out.other.tolist()
        row_of: list[int] = out.rows.tolist()
        time_of: list[int] = table.time[out.rows].tolist()
        back_ptr: list[int] = into.ptr.tolist()
        back_other: list[int] = into.other.tolist()
        back_time: list[int] = table.time[into.rows].tolist()
        longest = self.max_length
        seen: set[frozenset[int]] = set()
        findings = []
        closing = np.flatnonzero(
            (index.pair_count == self.max_closing_pair) & (table.source != table.target)
        )
        # Only a pair whose transfers all go one way: money that went back and forth
        # between two accounts was paid back (a refund, a shared bill, a loan).
        directed = table.source[closing].astype(np.int64) * index.n_accounts + table.target[
            closing
        ].astype(np.int64)
        _, inverse, counts = np.unique(directed, return_inverse=True, return_counts=True)
        closing = closing[counts[inverse] == self.max_closing_pair]
        for r in closing.tolist():
            u, v = int(table.source[r]), int(table.target[r])
            if busy[u] or busy[v] or ptr[v] == ptr[v + 1] or back_ptr[u] == back_ptr[u + 1]:
                continue
            t_close = int(table.time[r])
            # Accounts that reach u within the window around the closing transfer, with
            # the fewest hops each takes.
            hops = {u: 0}
            frontier = [u]
            for depth in range(1, longest):
                reached = []
                for account in frontier:
                    lo = bisect.bisect_left(
                        back_time, t_close - window, back_ptr[account], back_ptr[account + 1]
                    )
                    hi = bisect.bisect_right(
                        back_time, t_close + window, back_ptr[account], back_ptr[account + 1]
                    )
                    for position in range(lo, hi):
                        sender = back_other[position]
                        if sender not in hops and not busy[sender]:
                            hops[sender] = depth
                            reached.append(sender)
                if not reached:
                    break
                frontier = reached
            if v not in hops:
                continue
            steps = 0
            stack: list[tuple[int, tuple[int, ...], tuple[int, ...], int, int]] = [
                (v, (r,), (u, v), t_close, t_close)
            ]
            while stack and steps < self.max_steps:
                steps += 1
                node, rows, members, lo_t, hi_t = stack.pop()
                size = len(members)
                for position in range(ptr[node], ptr[node + 1]):
                    w = other[position]
                    if w != u and (
                        busy[w] or w in members or size + hops.get(w, longest) > longest
                    ):
                        continue
                    t = time_of[position]
                    new_lo = lo_t if lo_t < t else t
                    new_hi = hi_t if hi_t > t else t
                    if new_hi - new_lo > window:
                        continue
                    if w != u:
                        stack.append((w, (*rows, row_of[position]), (*members, w), new_lo, new_hi))
                        continue
                    key = frozenset(members)
                    if size < self.min_length or key in seen:
                        continue
                    cycle_rows = (*rows, row_of[position])
                    pairs = [(a, members[(i + 1) % size]) for i, a in enumerate(members)]
                    log_e = index.expected_copies(pairs, new_hi - new_lo) + math.log(size)
                    if log_e <= math.log(self.max_expected) and (
                        index.outside_ties(members, cycle_rows) <= 1
                    ):
                        seen.add(key)
                        findings.append(
                            self._finding(
                                members,
                                cycle_rows,
                                new_hi - new_lo,
                                f", closed through a pair that trades "
                                f"{self.max_closing_pair} times",
                            )
                        )
        return findings

    def _improbable(
        self, index: TransferIndex, members: tuple[int, ...], rows: tuple[int, ...], span: int
    ) -> bool:
        pairs = [(a, members[(i + 1) % len(members)]) for i, a in enumerate(members)]
        if index.expected_copies(pairs, span) > math.log(self.max_expected):
            return False
        return index.outside_ties(members, rows) == 0

    def _finding(
        self, members: tuple[int, ...], rows: tuple[int, ...], span: int, note: str = ""
    ) -> Finding:
        # Longer cycles are less likely by chance; a cycle of three is already unusual.
        score = min(1.0, 0.6 + 0.05 * len(members))
        return Finding(
            Typology.CYCLE,
            score,
            members,
            rows,
            f"a cycle through {len(members)} accounts within {span / DAY:.1f} days{note}",
        )


def _hops_to(target: int, into: Adjacency, busy: np.ndarray, most: int) -> dict[int, int]:
    """The accounts from which ``target`` can be reached in at most ``most`` occasional
    transfers through accounts that are not busy, with the fewest hops each takes."""
    hops = {target: 0}
    frontier = [target]
    for depth in range(1, most + 1):
        reached = []
        for account in frontier:
            for position in range(int(into.ptr[account]), int(into.ptr[account + 1])):
                sender = int(into.other[position])
                if sender not in hops and not busy[sender]:
                    hops[sender] = depth
                    reached.append(sender)
        if not reached:
            break
        frontier = reached
    return hops

"""Stacked (layered) chains: money pushed through layers of accounts.

Two signatures, both over occasional transfers:

* **Layers.** Two senders that both pay the same ``min_shared`` or more receivers
  inside one window: a complete bipartite block, the building stone of layered
  stacks. Receivers with more than ``max_branch`` occasional senders (shops) are
  skipped, so two customers of the same two popular shops are not a layer, and, as
  for cycles, chance alone must be expected to make fewer than ``max_expected``
  blocks like it (see :meth:`provenance.analysis.index.TransferIndex.expected_copies`;
  for two senders and two receivers that number does not depend on the list's size).
  Friends splitting bills make such blocks (two friends each pay back whoever paid,
  at two dinners), but friends also pay each other again and again: a block whose
  accounts have dealt with each other outside it is not a layer.
* **Flow-through chains.** A path of at least ``min_hops`` transfers in which each
  account passes on what it received: the next transfer follows within
  ``max_delay_days`` and carries between ``1 - margin`` and 1 times the previous amount.
  Busy accounts pass on similar sums by coincidence, so a chain, too, must be one chance
  would make fewer than ``max_expected`` times, among accounts with no standing
  relationship with each other.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from provenance.analysis.findings import Finding, Typology, scaled_score
from provenance.analysis.index import DAY, TransferIndex


class _Groups:
    """Union-find over account ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        root = a
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(a, a) != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def join(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


@dataclass(frozen=True, slots=True)
class StackedChainDetector:
    """Attributes:
    window_days: a layer's transfers fall in one window this long.
    min_shared: receivers two senders must share to form a layer.
    max_branch: receivers with more occasional senders than this are skipped.
    min_hops: the fewest transfers in a flow-through chain.
    max_delay_days: the longest wait between receiving and passing on.
    margin: the largest share an account keeps when passing on.
    max_expected: the most layers like it that chance alone may be expected to make.
    """

    window_days: float = 30.0
    min_shared: int = 2
    max_branch: int = 30
    min_hops: int = 3
    max_delay_days: float = 3.0
    margin: float = 0.1
    max_expected: float = 1.0

    @property
    def typology(self) -> Typology:
        return Typology.STACKED_CHAIN

    def detect(self, index: TransferIndex) -> list[Finding]:
        return self._layers(index) + self._chains(index)

    def _layers(self, index: TransferIndex) -> list[Finding]:
        table = index.table
        shared = self._shared(index)
        groups = _Groups()
        group_rows: dict[int, set[int]] = defaultdict(set)
        linked: list[tuple[int, int, list[tuple[int, int, int]]]] = []
        limit = math.log(self.max_expected)
        for (a, b), found in shared.items():
            receivers = {x for x, _, _ in found}
            if len(receivers) < self.min_shared:
                continue
            block = sorted({r for _, r1, r2 in found for r in (r1, r2)})
            pairs = [(int(table.source[r]), int(table.target[r])) for r in block]
            times = [int(table.time[r]) for r in block]
            if (
                index.expected_copies(pairs, max(times) - min(times)) <= limit
                and index.outside_ties((a, b, *receivers), block) == 0
            ):
                linked.append((a, b, found))
                groups.join(a, b)
                for shared_receiver, _, _ in found:
                    groups.join(a, shared_receiver)
        for a, _, found in linked:
            root = groups.find(a)
            for _, r1, r2 in found:
                group_rows[root].update((r1, r2))
        findings = []
        for group in group_rows.values():
            rows = sorted(group)
            members = sorted(
                {int(table.source[r]) for r in rows} | {int(table.target[r]) for r in rows}
            )
            senders = {int(table.source[r]) for r in rows}
            findings.append(
                Finding(
                    Typology.STACKED_CHAIN,
                    scaled_score(len(rows), 2 * self.min_shared),
                    tuple(members),
                    tuple(rows),
                    f"a layer of {len(senders)} senders paying {len(members) - len(senders)} "
                    f"shared receivers within {self.window_days:g} days",
                )
            )
        return findings

    def _shared(self, index: TransferIndex) -> dict[tuple[int, int], list[tuple[int, int, int]]]:
        """Per pair of senders (lower id first) that both pay a receiver with at most
        ``max_branch`` occasional senders within one window, each such receiver and the
        two rows: ``(receiver, row, row)``. Pairs come in the order of their first
        receiver (ascending), each receiver's row pairs in their order in time; only
        pairs sharing ``min_shared`` receivers or more are kept. The row pairs of all
        receivers are formed at once, receivers of one degree together."""
        table, into = index.table, index.into
        window = int(self.window_days * DAY)
        degree = into.degree()
        chosen = np.flatnonzero((degree >= 2) & (degree <= self.max_branch))
        parts = []
        for d in np.unique(degree[chosen]).tolist():
            receivers = chosen[degree[chosen] == d]
            first, second = np.triu_indices(d, 1)
            starts = into.ptr[receivers][:, None]
            place = np.broadcast_to(np.arange(first.shape[0]), (receivers.shape[0], first.shape[0]))
            parts.append(
                (
                    np.broadcast_to(receivers[:, None], place.shape).ravel(),
                    place.ravel(),
                    into.rows[starts + first].ravel(),
                    into.rows[starts + second].ravel(),
                )
            )
        if not parts:
            return {}
        x, place, r1, r2 = (np.concatenate(column) for column in zip(*parts, strict=True))
        order = np.lexsort((place, x))
        x, r1, r2 = x[order], r1[order], r2[order]
        a, b = table.source[r1].astype(np.int64), table.source[r2].astype(np.int64)
        keep = (a != b) & (np.abs(table.time[r1] - table.time[r2]) <= window)
        x, r1, r2, a, b = x[keep], r1[keep], r2[keep], a[keep], b[keep]
        if not x.shape[0]:
            return {}
        low, high = np.minimum(a, b), np.maximum(a, b)
        key = low * table.n_accounts + high
        _, first_at, which = np.unique(key, return_index=True, return_inverse=True)
        # Distinct receivers per sender pair.
        receivers = np.unique(which.astype(np.int64) * table.n_accounts + x)
        enough = np.bincount(receivers // table.n_accounts, minlength=first_at.shape[0])
        wanted = np.flatnonzero(enough >= self.min_shared)
        by_pair = np.argsort(which, kind="stable")
        bounds = np.zeros(first_at.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(which, minlength=first_at.shape[0]), out=bounds[1:])
        shared: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for k in wanted[np.argsort(first_at[wanted], kind="stable")].tolist():
            at = by_pair[bounds[k] : bounds[k + 1]]
            i = int(first_at[k])
            shared[(int(low[i]), int(high[i]))] = list(
                zip(x[at].tolist(), r1[at].tolist(), r2[at].tolist(), strict=True)
            )
        return shared

    def _chains(self, index: TransferIndex) -> list[Finding]:
        table = index.table
        time = table.time
        extends = self._extends(index)
        continued = {n for onward in extends.values() for n in onward}
        findings = []
        for first in extends:
            if first in continued:
                continue
            path = _longest(first, extends)
            if len(path) >= self.min_hops:
                members = [int(table.source[path[0]])] + [int(table.target[r]) for r in path]
                pairs = [(int(table.source[r]), int(table.target[r])) for r in path]
                times = [int(time[r]) for r in path]
                if index.expected_copies(pairs, max(times) - min(times)) > math.log(
                    self.max_expected
                ) or index.outside_ties(members, path):
                    continue
                findings.append(
                    Finding(
                        Typology.STACKED_CHAIN,
                        scaled_score(len(path), self.min_hops),
                        tuple(dict.fromkeys(members)),
                        tuple(path),
                        f"a chain of {len(path)} transfers, each passing on what it received "
                        f"within {self.max_delay_days:g} days",
                    )
                )
        return findings

    def _extends(self, index: TransferIndex) -> dict[int, list[int]]:
        """Per occasional row, the occasional rows that pass its money on (the receiver's
        next transfers within ``max_delay_days``, of ``1 - margin`` to 1 times the
        amount, not back to the sender), in time order; rows in the order of
        ``index.out``, those with none left out. Each row's candidates are one slice of
        the receiver's rows (sorted by time), found by one search for all rows."""
        table, out = index.table, index.out
        delay = int(self.max_delay_days * DAY)
        rows = out.rows
        if not rows.shape[0]:
            return {}
        time, amount = table.time, table.amount
        # out.rows is sorted by (source, time): one key orders them all.
        shift = int(time.max() - time.min()) + delay + 1
        sender = table.source[rows].astype(np.int64)
        keys = sender * shift + (time[rows] - time.min())
        receiver = table.target[rows].astype(np.int64)
        start = receiver * shift + (time[rows] - time.min())
        lo = np.searchsorted(keys, start, side="left")
        hi = np.searchsorted(keys, start + delay, side="right")
        counts = hi - lo
        which = np.repeat(np.arange(rows.shape[0]), counts)
        offsets = np.arange(which.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
        row, onward = rows[which], rows[lo[which] + offsets]
        value = amount[row]
        keep = (
            ((1.0 - self.margin) * value <= amount[onward])
            & (amount[onward] <= value)
            & (table.target[onward] != table.source[row])
        )
        which, onward = which[keep], onward[keep]
        extends: dict[int, list[int]] = {}
        if not which.shape[0]:
            return extends
        bounds = np.flatnonzero(np.r_[True, which[1:] != which[:-1]]).tolist()
        for begin, end in zip(bounds, [*bounds[1:], which.shape[0]], strict=True):
            extends[int(rows[which[begin]])] = onward[begin:end].tolist()
        return extends


def _longest(first: int, extends: dict[int, list[int]], limit: int = 50) -> list[int]:
    best: list[int] = [first]
    stack: list[list[int]] = [[first]]
    explored = 0
    while stack and explored < 10_000:
        explored += 1
        path = stack.pop()
        if len(path) > len(best):
            best = path
        if len(path) >= limit:
            continue
        for nxt in extends.get(path[-1], ()):
            if nxt not in path:
                stack.append([*path, nxt])
    return best

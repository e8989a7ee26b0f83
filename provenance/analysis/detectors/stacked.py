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
from itertools import combinations

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
        table, into = index.table, index.into
        window = int(self.window_days * DAY)
        shared: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
        degree = into.degree()
        for receiver in np.flatnonzero((degree >= 2) & (degree <= self.max_branch)):
            x = int(receiver)
            for r1, r2 in combinations((int(r) for r in into.of(x)), 2):
                a, b = int(table.source[r1]), int(table.source[r2])
                if a == b or abs(int(table.time[r1]) - int(table.time[r2])) > window:
                    continue
                key = (a, b) if a < b else (b, a)
                shared[key].append((x, r1, r2))
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

    def _chains(self, index: TransferIndex) -> list[Finding]:
        table, out = index.table, index.out
        delay = int(self.max_delay_days * DAY)
        time, amount = table.time, table.amount
        # next_hop[row] = the occasional rows that pass row's money on.
        extends: dict[int, list[int]] = {}
        for row in out.rows:
            r = int(row)
            after = out.of(int(table.target[r]))
            t, value = int(time[r]), float(amount[r])
            onward = [
                int(n)
                for n in after
                if t <= int(time[n]) <= t + delay
                and (1.0 - self.margin) * value <= float(amount[n]) <= value
                and int(table.target[n]) != int(table.source[r])
            ]
            if onward:
                extends[r] = onward
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

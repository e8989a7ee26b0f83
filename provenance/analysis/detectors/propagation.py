"""Risk propagated from known-bad seeds by personalised PageRank.

The seeds are accounts already known bad: given by the caller (for example accounts
behind reported stolen payments) or, when none are given, the accounts of earlier
findings scoring at least ``seed_score``. A random walk over occasional transfers
(both directions) restarts at the seeds with probability ``restart``; an account that
is not a seed is reported when it has occasional transfers with ``min_seed_links`` or
more distinct seeds that are not busy (at most ``max_seed_degree`` occasional
counterparties), its score being its visiting rate relative to the seeds' median.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from provenance.analysis.findings import Finding, Typology
from provenance.analysis.index import TransferIndex


def personalised_pagerank(
    n: int,
    source: np.ndarray,
    target: np.ndarray,
    seeds: Iterable[int],
    *,
    restart: float = 0.15,
    iterations: int = 30,
) -> np.ndarray:
    """Visiting rates of a walk over the undirected edges ``source[i] - target[i]`` that
    restarts at ``seeds`` (uniformly) with probability ``restart``."""
    seed_list = sorted(set(seeds))
    personal = np.zeros(n, dtype=np.float64)
    if not seed_list:
        return personal
    personal[seed_list] = 1.0 / len(seed_list)
    ends_a = np.concatenate([source, target]).astype(np.int64)
    ends_b = np.concatenate([target, source]).astype(np.int64)
    degree = np.bincount(ends_a, minlength=n).astype(np.float64)
    rank = personal.copy()
    for _ in range(iterations):
        share = np.divide(rank, degree, out=np.zeros(n), where=degree > 0)
        spread = np.bincount(ends_b, weights=share[ends_a], minlength=n)
        dangling = float(rank[degree == 0].sum())
        rank = restart * personal + (1.0 - restart) * (spread + dangling * personal)
    return rank


@dataclass(frozen=True, slots=True)
class RiskPropagation:
    """Attributes:
    seeds: known-bad account ids; empty means "the accounts of earlier findings".
    seed_score: the least score of a finding whose accounts become seeds.
    min_seed_links: distinct seeds an account must trade with to be reported.
    restart: the walk's restart probability.
    max_seed_degree: seeds with more occasional counterparties than this (busy accounts
        that meet everyone) still seed the walk but do not count as links.
    """

    seeds: frozenset[int] = field(default_factory=frozenset)
    seed_score: float = 0.5
    min_seed_links: int = 2
    restart: float = 0.15
    max_seed_degree: int = 30

    @property
    def typology(self) -> Typology:
        return Typology.RISK_PROPAGATION

    def detect(self, index: TransferIndex) -> list[Finding]:
        return self.propagate(index, [])

    def propagate(self, index: TransferIndex, earlier: list[Finding]) -> list[Finding]:
        """Findings for accounts near the seeds (explicit, or from ``earlier``)."""
        seeds = set(self.seeds) or {
            a for f in earlier if f.score >= self.seed_score for a in f.accounts
        }
        if not seeds:
            return []
        table = index.table
        rows = index.out.rows
        source, target = table.source[rows], table.target[rows]
        rank = personalised_pagerank(index.n_accounts, source, target, seeds, restart=self.restart)
        reference = float(np.median(rank[sorted(seeds)])) or 1.0
        degree = index.out.degree() + index.into.degree()
        quiet = {a for a in seeds if degree[a] <= self.max_seed_degree}
        links: dict[int, dict[int, int]] = {}
        for row, a, b in zip(rows, source, target, strict=True):
            a, b = int(a), int(b)
            if a in quiet and b not in seeds:
                links.setdefault(b, {})[a] = int(row)
            elif b in quiet and a not in seeds:
                links.setdefault(a, {})[b] = int(row)
        findings = []
        for account, by_seed in links.items():
            if len(by_seed) < self.min_seed_links:
                continue
            score = float(min(1.0, rank[account] / reference))
            findings.append(
                Finding(
                    Typology.RISK_PROPAGATION,
                    score,
                    (account, *sorted(by_seed)),
                    tuple(sorted(by_seed.values())),
                    f"trades occasionally with {len(by_seed)} accounts already flagged",
                )
            )
        return findings

"""Shared views of a transfer table that every detector reads.

Most benign money moves along standing relationships: payroll, rent, a wholesaler and
its retailers, a family. Laundering builds fresh paths through accounts that have no
such history with each other. So the pattern detectors look at *occasional* transfers:
those between two accounts that exchange at most ``max_pair_transfers`` transfers (in
either direction) in the whole list. Occasional transfers alone prove nothing (one-off
payments are everywhere); the detectors look for structure among them, and each
threshold rises with the amount of occasional traffic in the list (see
:func:`poisson_threshold`), so a list full of one-off payments does not flood them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from provenance.analysis.transfers import IntArray, TransferTable

DAY = 86_400


@dataclass(slots=True)
class Adjacency:
    """Occasional transfer rows grouped by account (CSR): account ``a``'s rows are
    ``rows[ptr[a]:ptr[a + 1]]``, in time order; ``other`` is the counterparty of each."""

    ptr: IntArray
    rows: IntArray
    other: IntArray

    def of(self, account: int) -> IntArray:
        return self.rows[self.ptr[account] : self.ptr[account + 1]]

    def degree(self) -> IntArray:
        return np.diff(self.ptr)


@dataclass(slots=True)
class TransferIndex:
    """The table plus the occasional-transfer views (built once per analysis).

    Attributes:
        table: the transfers.
        pair_count: per row, how many transfers its two accounts exchange in total.
        occasional: per row, whether it is occasional.
        out: occasional rows by source account; ``other`` is the target.
        into: occasional rows by target account; ``other`` is the source.
        span: seconds from the first to the last transfer (at least one day).
        pair_keys: the sorted keys (``low * n + high``) of the account pairs that
            exchange transfers, in either direction.
        pair_counts: how many transfers each of those pairs exchanges.
        activity: per account, how many transfers it sends or receives in the list.
        out_degree, in_degree: per account, its occasional transfers out and in.
        active: how many accounts have at least one occasional transfer.
    """

    table: TransferTable
    pair_count: IntArray
    occasional: np.ndarray
    out: Adjacency
    into: Adjacency
    span: int
    pair_keys: IntArray
    pair_counts: IntArray
    activity: IntArray
    out_degree: IntArray
    in_degree: IntArray
    active: int

    @classmethod
    def build(cls, table: TransferTable, *, max_pair_transfers: int = 1) -> TransferIndex:
        n = table.n_accounts
        low = np.minimum(table.source, table.target).astype(np.int64)
        high = np.maximum(table.source, table.target).astype(np.int64)
        keys, inverse, counts = np.unique(low * n + high, return_inverse=True, return_counts=True)
        pair_count = counts[inverse].astype(np.int64)
        occasional = (pair_count <= max_pair_transfers) & (table.source != table.target)
        rows = np.flatnonzero(occasional).astype(np.int64)
        span = int(table.time.max() - table.time.min()) if len(table) else 0
        out = _adjacency(table, rows, by_source=True)
        into = _adjacency(table, rows, by_source=False)
        out_degree, in_degree = out.degree(), into.degree()
        return cls(
            table=table,
            pair_count=pair_count,
            occasional=occasional,
            out=out,
            into=into,
            out_degree=out_degree,
            in_degree=in_degree,
            active=int(np.count_nonzero(out_degree + in_degree)),
            span=max(span, DAY),
            pair_keys=keys.astype(np.int64),
            pair_counts=counts.astype(np.int64),
            activity=(
                np.bincount(table.source, minlength=n) + np.bincount(table.target, minlength=n)
            ).astype(np.int64),
        )

    def outside_ties(self, members: Iterable[int], rows: Iterable[int]) -> int:
        """How many pairs of ``members`` have dealt with each other outside the pattern
        made of ``rows``: a standing relationship, or one more transfer of any kind.

        Friends who split bills, a family, colleagues pay each other again and again, in
        both directions, at other dinners and on other days; a detector may pick out a
        few occasional transfers among them, but the rest of their dealings give them
        away. Laundering builds its paths through accounts with no such history with
        each other.
        """
        accounts = sorted(set(members))
        if len(accounts) < 2:
            return 0
        n = self.table.n_accounts
        inside: dict[int, int] = {}
        for row in rows:
            a, b = int(self.table.source[row]), int(self.table.target[row])
            key = min(a, b) * n + max(a, b)
            inside[key] = inside.get(key, 0) + 1
        ids = np.asarray(accounts, dtype=np.int64)
        low, high = np.triu_indices(ids.shape[0], k=1)
        keys = ids[low] * n + ids[high]
        found = np.searchsorted(self.pair_keys, keys)
        found[found >= self.pair_keys.shape[0]] = 0
        hit = self.pair_keys[found] == keys
        ties = 0
        for key, position in zip(keys[hit].tolist(), found[hit].tolist(), strict=True):
            if int(self.pair_counts[position]) > inside.get(key, 0):
                ties += 1
        return ties

    @property
    def n_accounts(self) -> int:
        return self.table.n_accounts

    def expected_copies(self, pairs: Sequence[tuple[int, int]], span: int) -> float:
        """How many copies of a pattern chance alone would make: the natural log of the
        expected number of patterns with the same shape, the same occasional degrees and
        a time spread no wider than ``span`` seconds, in a random rewiring of the
        occasional transfers.

        ``pairs`` are the pattern's transfers as ``(sender, receiver)``. In a random
        rewiring of ``m`` occasional transfers among ``N`` active accounts, ``u -> v``
        appears with probability ``d_out(u) * d_in(v) / m``; the accounts can be chosen
        in about ``N ** nodes`` ways, so the expected count is ``N ** (nodes - edges)``
        times the product of ``d_out(u) * d_in(v) / <d>`` with ``<d> = m / N``. The
        number of accounts cancels for a cycle, and a complete bipartite block (two
        senders, two receivers) is independent of it too: adding unrelated traffic
        elsewhere does not make the same pattern look less likely. The transfers'
        times are then treated as independent and uniform over the list's span:
        ``edges * (span / list span) ** (edges - 1)`` of them fall within ``span``.
        """
        if not pairs:
            return 0.0
        out_degree, in_degree = self.out_degree, self.in_degree
        m = max(1, int(self.out.rows.shape[0]))
        active = max(1, self.active)
        mean = m / active
        nodes = len({a for pair in pairs for a in pair})
        edges = len(pairs)
        log_e = (nodes - edges) * math.log(active)
        for u, v in pairs:
            log_e += math.log(max(1, int(out_degree[u])) * max(1, int(in_degree[v])) / mean)
        spread = min(1.0, max(span, 3600) / self.span)
        log_e += min(0.0, math.log(edges) + (edges - 1) * math.log(spread))
        return log_e

    @property
    def active_accounts(self) -> int:
        """Accounts with at least one occasional transfer."""
        return self.active

    def occasional_rate(self, window: int) -> float:
        """Mean occasional transfers per account (in one direction) in ``window`` seconds."""
        total = float(self.out.rows.shape[0])
        active = max(1, self.active)
        return total / active * min(1.0, window / self.span)


def _adjacency(table: TransferTable, rows: IntArray, *, by_source: bool) -> Adjacency:
    key = table.source[rows] if by_source else table.target[rows]
    other = table.target[rows] if by_source else table.source[rows]
    order = np.lexsort((table.time[rows], key))
    sorted_rows = rows[order]
    counts = np.bincount(key, minlength=table.n_accounts)
    ptr = np.zeros(table.n_accounts + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return Adjacency(ptr=ptr, rows=sorted_rows, other=other[order].astype(np.int64))


def binomial_tail(k: int, n: int, p: float) -> float:
    """The probability that ``n`` independent trials, each succeeding with probability
    ``p``, succeed ``k`` or more times."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    if k <= n * p:
        # Below the mean the tail is most of the mass: one minus the k terms under it.
        below = sum(
            math.exp(
                math.lgamma(n + 1)
                - math.lgamma(j + 1)
                - math.lgamma(n - j + 1)
                + j * log_p
                + (n - j) * log_q
            )
            for j in range(k)
        )
        return max(0.0, 1.0 - below)
    total = 0.0
    for j in range(k, n + 1):
        log_term = (
            math.lgamma(n + 1)
            - math.lgamma(j + 1)
            - math.lgamma(n - j + 1)
            + j * log_p
            + (n - j) * log_q
        )
        term = math.exp(log_term)
        total += term
        if term < total * 1e-12:
            break
    return min(1.0, total)


def poisson_tail(k: int, rate: float) -> float:
    """The probability that a Poisson variable with mean ``rate`` is ``k`` or more."""
    if k <= 0:
        return 1.0
    if rate <= 0.0:
        return 0.0
    term = math.exp(-rate)
    below = 0.0
    for j in range(k):
        below += term
        term *= rate / (j + 1)
    return max(0.0, 1.0 - below) if below < 0.999 else _poisson_upper(k, rate)


def _poisson_upper(k: int, rate: float) -> float:
    # Summed from k upwards, so that tiny tails do not vanish in 1 - (1 - tail).
    log_term = -rate + k * math.log(rate) - math.lgamma(k + 1)
    total, j = 0.0, k
    while True:
        term = math.exp(log_term)
        total += term
        if term < total * 1e-12 or j > k + 10_000:
            return min(1.0, total)
        j += 1
        log_term += math.log(rate / j)


def poisson_threshold(rate: float, trials: int, alpha: float, floor: int, *, sides: int = 1) -> int:
    """The smallest count ``k >= floor`` that chance alone reaches with probability at
    most ``alpha / trials`` (a Bonferroni bound over the accounts tested), modelling the
    count as Poisson with mean ``rate``; with ``sides`` > 1, that many independent
    counts must all reach ``k``."""
    target = alpha / max(1, trials)
    k = 0
    term = math.exp(-rate)
    cdf = term
    while (1.0 - cdf) ** sides > target and k < 10_000:
        k += 1
        term *= rate / k
        cdf += term
    return max(floor, k + 1)


def window_counts(adjacency: Adjacency, times: IntArray, window: int) -> tuple[IntArray, IntArray]:
    """For every account, the largest number of its rows inside one window of ``window``
    seconds, and the position (into ``adjacency.rows``) where that window starts."""
    n = adjacency.ptr.shape[0] - 1
    degree = adjacency.degree()
    owner = np.repeat(np.arange(n, dtype=np.int64), degree)
    t = times[adjacency.rows]
    # One sorted key per row, accounts far apart, so a search never crosses accounts.
    shift = int(t.max() - t.min() + window + 1) if t.shape[0] else 1
    key = owner * shift + (t - (t.min() if t.shape[0] else 0))
    ends = np.searchsorted(key, key + window, side="right")
    inside = ends - np.arange(key.shape[0])
    best = np.zeros(n, dtype=np.int64)
    start = np.zeros(n, dtype=np.int64)
    if key.shape[0]:
        np.maximum.at(best, owner, inside)
        is_best = inside == best[owner]
        positions = np.flatnonzero(is_best)
        # The first window that reaches the maximum, per account.
        first = np.full(n, -1, dtype=np.int64)
        first[owner[positions[::-1]]] = positions[::-1]
        start = first
    return best, start

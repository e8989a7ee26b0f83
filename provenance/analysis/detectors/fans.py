"""Fan-out, fan-in and gather-scatter: one account meeting many new counterparties.

A fan-out account sends occasional transfers to many distinct accounts inside one
window; a fan-in account receives them from many. How many is "many" depends on the
list: the threshold is the count that occasional traffic alone reaches for fewer than
``alpha`` of the accounts (a Poisson bound, see
:func:`provenance.analysis.index.poisson_threshold`), and never below
``min_counterparties``. An account with more than ``max_counterparties`` occasional
counterparties over the whole list is a business (a shop and its one-off customers, a
payroll office), not a fan: laundering fans are small and built for the purpose. A
fan whose accounts have dealt with each other outside it (one friend collecting
the others' shares of a bill: they pay each other back and forth at other dinners) is a
circle of acquaintances, not a fan (see
:meth:`provenance.analysis.index.TransferIndex.outside_ties`).

**Fans of quiet accounts.** Mules are often accounts opened (or woken) for one job: in
the whole list they make at most ``quiet_activity`` transfers. An account whose
occasional counterparties are quiet far more often than everyone's are is a fan
whatever its size or pace: if a share ``q`` of all occasional transfers (in that
direction) reach a quiet account, then among an account's ``n`` occasional transfers
``k`` or more reach distinct quiet accounts with the binomial probability
``P(Bin(n, q) >= k)``; mules paid within weeks of each other amid a busy account's
year of everyday payments are judged in that window too (see :func:`_quiet_chance`).
Fans are reported by Benjamini-Hochberg at a false-discovery rate of ``fdr`` over the
accounts tested, which are only those with enough occasional
counterparties to make a fan at all (see :func:`_testable`); ``q`` is estimated
over those same accounts, without the fans found (see :func:`_null_share`). Where
quiet accounts are common (a marketplace full of one-time buyers), ``q`` is large and
the test asks for proportionately more; where every account also makes everyday
one-off payments, nobody is quiet and the test finds nothing, rather than something
false. A fan whose leaves were all fed by (or all paid) one other account is a
scatter-gather and left to that detector.

A gather-scatter hub is tested the same way on both sides, and gets the chance that
all its gathering comes before all its scattering (``a! b! / (a + b)!``, as a random
order would have it) on top; for a hub, a sender is quiet when it sends at most
``quiet_activity`` transfers and a receiver when it receives at most that many,
whatever else it does (see :func:`_quiet`), and ``q`` on each side is the share over
all occasional transfers. A hub of a few accounts, quiet or not, is also judged by the
expected number of hubs like it that chance would make (see
:meth:`GatherScatterDetector._improbable_hubs`).

**Who joins a fan found.** A fan found by count in one window takes the quiet
counterparties that the quiet test finds around the same centre, in or out of that
window. Once a fan or hub is found, two kinds of counterparty join
it without a test of their own, when their dealings with the centre fall inside the
pattern's time span (see :func:`_joined`): an account whose every transfer, at most
``quiet_activity`` of them, is with the centre (a mule paid twice by the fan it serves
trades more than once with it, so the occasional view misses it), and, for fans, a
counterparty quiet on the side facing the centre (a payee that receives nothing but
the centre's payment, whatever it pays out itself) or a drop paid once by the centre
(a payee that never pays anyone and, apart from that payment, would be quiet; see
:func:`_drops`).
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
    binomial_tail,
    poisson_tail,
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


def _without(adjacency: Adjacency, keep: np.ndarray) -> Adjacency:
    """The adjacency with only the rows where ``keep`` is true, order kept."""
    n = adjacency.ptr.shape[0] - 1
    owner = np.repeat(np.arange(n, dtype=np.int64), adjacency.degree())
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner[keep], minlength=n), out=ptr[1:])
    return Adjacency(ptr=ptr, rows=adjacency.rows[keep], other=adjacency.other[keep])


def _quiet_hits(adjacency: Adjacency, quiet: np.ndarray) -> np.ndarray:
    """Per account, how many of its occasional transfers have a quiet counterparty."""
    degree = adjacency.degree()
    owner = np.repeat(np.arange(degree.shape[0], dtype=np.int64), degree)
    hits: np.ndarray = np.bincount(owner[quiet[adjacency.other]], minlength=degree.shape[0])
    return hits


def _quiet_share(adjacency: Adjacency, quiet: np.ndarray) -> float:
    """The share of occasional transfers whose counterparty is quiet."""
    if adjacency.other.shape[0] == 0:
        return 0.0
    return float(np.count_nonzero(quiet[adjacency.other])) / int(adjacency.other.shape[0])


def _quiet_side(
    adjacency: Adjacency, account: int, quiet: np.ndarray
) -> tuple[list[int], list[int]]:
    """The account's occasional rows to (or from) quiet accounts, one per account."""
    lo, hi = int(adjacency.ptr[account]), int(adjacency.ptr[account + 1])
    rows: list[int] = []
    others: list[int] = []
    seen: set[int] = set()
    for position in range(lo, hi):
        other = int(adjacency.other[position])
        if quiet[other] and other not in seen:
            seen.add(other)
            rows.append(int(adjacency.rows[position]))
            others.append(other)
    return rows, others


def _quiet(index: TransferIndex, side: Literal["sent", "received"], most: int) -> np.ndarray:
    """Per account, whether it sends (``"sent"``) or receives (``"received"``) at most
    ``most`` transfers in the whole list.

    A mule paid by a gather-scatter hub is fed by nobody else; a mule paying into it
    pays nobody else. What such an account does the other way (its own pay coming in,
    its standing order going out) does not make it less of a mule, so each side of a
    hub is judged on the direction that faces the hub. This looser sense of quiet makes
    quiet counterparties commoner (``q`` larger) for everyone; a hub, which needs quiet
    accounts on both sides and its gathering before its scattering, can afford that,
    while a fan, with one side only, keeps the stricter sense (quiet both ways).
    """
    ids = index.table.source if side == "sent" else index.table.target
    counts: np.ndarray = np.bincount(ids, minlength=index.n_accounts)
    return counts <= most


def _quiet_fans(
    index: TransferIndex,
    adjacency: Adjacency,
    quiet: np.ndarray,
    min_quiet: int,
    max_quiet: int,
    alpha: float,
    window: int,
) -> list[tuple[int, list[int], list[int], float]]:
    """Accounts whose occasional counterparties are quiet far more often than chance
    would have it: (account, rows, quiet counterparties, chance per account).

    The share ``q`` that chance gives is estimated over the accounts tested, less
    those found: a fan's own quiet leaves are not what chance does, and where fans are
    many they would otherwise raise ``q`` and hide each other. Estimate and test
    alternate until the accounts found no longer change (see :func:`_null_share`).
    """
    degree = adjacency.degree()
    hits = _quiet_hits(adjacency, quiet)
    # Chance's share is that of the accounts tested: a quiet account (a mule paying the
    # next mule of a chain) or one with too few counterparties is never a centre, and
    # what its transfers reach says nothing of how often a centre's would.
    testable = (degree >= min_quiet) & ~quiet
    tested = max(1, int(np.count_nonzero(testable)))
    candidates = []
    for account in np.flatnonzero((hits >= min_quiet) & (hits <= max_quiet) & ~quiet):
        a = int(account)
        rows, others = _quiet_side(adjacency, a, quiet)
        if len(others) >= min_quiet:
            candidates.append((a, rows, others))
    found: list[tuple[int, list[int], list[int], float]] = []
    for _ in range(_NULL_ROUNDS):
        q = _null_share(hits, degree, [a for a, *_ in found], testable)
        tested_now = [
            (a, rows, others, _quiet_chance(index, adjacency, a, quiet, q, min_quiet, window))
            for a, rows, others in candidates
        ]
        keep = _discoveries([p for *_, p in tested_now], tested, alpha)
        now = [f for f, kept in zip(tested_now, keep, strict=True) if kept]
        if {a for a, *_ in now} == {a for a, *_ in found}:
            return now
        found = now
    return found


def _quiet_chance(
    index: TransferIndex,
    adjacency: Adjacency,
    account: int,
    quiet: np.ndarray,
    q: float,
    least: int,
    window: int,
) -> float:
    """The chance that an account reaches as many distinct quiet counterparties as this
    one does, over the whole list or packed into one window.

    Over the whole list it is ``P(Bin(n, q) >= k)``. Mules are often paid within weeks
    of each other, amid an account's everyday payments spread over the year; a window
    of ``window`` seconds holding ``k_w`` quiet counterparties among the account's
    ``n_w`` transfers in it has ``P(Bin(n_w, q) >= k_w)``, times the number of disjoint
    windows in the list (a scan over all of them, Bonferroni). The two looks count as
    two tests: the smaller chance, doubled.
    """
    lo, hi = int(adjacency.ptr[account]), int(adjacency.ptr[account + 1])
    times = index.table.time[adjacency.rows[lo:hi]]
    others = adjacency.other[lo:hi]
    is_quiet = quiet[others]
    whole = binomial_tail(len(set(others[is_quiet].tolist())), hi - lo, q)
    looks = max(1.0, index.span / window)
    best = 1.0
    for position in np.flatnonzero(is_quiet).tolist():
        end = int(np.searchsorted(times, times[position] + window, side="right"))
        inside = others[position:end]
        hits = len(set(inside[is_quiet[position:end]].tolist()))
        if hits >= least:
            best = min(best, binomial_tail(hits, end - position, q))
    return min(1.0, _LOOKS * min(whole, looks * best))


_LOOKS = 2


_NULL_ROUNDS = 10


def _null_share(
    hits: np.ndarray, degree: np.ndarray, found: list[int], population: np.ndarray
) -> float:
    """The share of occasional transfers that reach a quiet account, over the accounts
    of ``population`` except those in ``found``: chance's share among the accounts
    tested, with the patterns already found, which are not chance, left out."""
    keep = population.copy()
    keep[found] = False
    total = int(degree[keep].sum())
    return int(hits[keep].sum()) / total if total > 0 else 0.0


def _one_account_behind(
    index: TransferIndex, direction: Literal["out", "in"], centre: int, leaves: list[int]
) -> bool:
    """Whether one account (not the centre) is behind every leaf of a fan: it fed every
    sender of a fan-in, or every receiver of a fan-out paid it. That is a scatter-gather
    (money split and brought together again), reported as such, not a fan."""
    far = index.into if direction == "in" else index.out
    common: set[int] | None = None
    for leaf in leaves:
        behind = {int(a) for a in far.other[far.ptr[leaf] : far.ptr[leaf + 1]]} - {centre}
        common = behind if common is None else common & behind
        if not common:
            return False
    return bool(common)


def _devoted(
    index: TransferIndex, direction: Literal["out", "in"], most: int
) -> dict[int, list[int]]:
    """Rows to (``"out"``) or from (``"in"``) accounts that deal with one account alone,
    more than once and at most ``most`` times in the whole list, grouped by that
    account: ``{centre: rows}``.

    A mule paid twice by the fan it serves and by nobody else is no less quiet than one
    paid once, but its pair trades more than once, so the occasional view (and the
    quiet test built on it) does not see it. It never makes a fan; it joins one found
    by the test.
    """
    table = index.table
    leaf = table.target if direction == "out" else table.source
    centre = table.source if direction == "out" else table.target
    # Receiving (or sending) every one of its transfers means they all face one way;
    # the pair's count equal to its activity means they all involve one account.
    faces = np.bincount(leaf, minlength=index.n_accounts)
    mask = (
        (index.activity[leaf] <= most)
        & (faces[leaf] == index.activity[leaf])
        & (index.pair_count == index.activity[leaf])
        & ~index.occasional
        & (table.source != table.target)
    )
    rows = np.flatnonzero(mask)
    grouped: dict[int, list[int]] = {}
    for row, owner in zip(rows.tolist(), centre[rows].tolist(), strict=True):
        grouped.setdefault(int(owner), []).append(int(row))
    return grouped


def _drops(
    index: TransferIndex, direction: Literal["out", "in"], most: int
) -> dict[int, list[int]]:
    """Rows to (``"out"``) or from (``"in"``) drop accounts, grouped by the account on
    the other side: ``{centre: rows}``.

    A drop account only ever receives (for a fan-out; for a fan-in, it only ever
    pays): money lands there and leaves the ledger some other way. Such an account
    joins a fan found around a centre when the centre's transfer is occasional (a
    supplier paid every week by a wholesaler is no drop of its fan) and, apart from
    it, the account would be quiet: at most ``most`` other transfers.
    """
    table = index.table
    leaf = table.target if direction == "out" else table.source
    centre = table.source if direction == "out" else table.target
    faces = np.bincount(leaf, minlength=index.n_accounts)
    mask = (
        (faces[leaf] == index.activity[leaf])
        & (index.activity[leaf] <= most + 1)
        & index.occasional
    )
    rows = np.flatnonzero(mask)
    grouped: dict[int, list[int]] = {}
    for row, owner in zip(rows.tolist(), centre[rows].tolist(), strict=True):
        grouped.setdefault(int(owner), []).append(int(row))
    return grouped


def _joined(
    index: TransferIndex,
    adjacency: Adjacency | None,
    facing_quiet: np.ndarray | None,
    devoted: list[int],
    direction: Literal["out", "in"],
    centre: int,
    members: set[int],
    rows: list[int],
) -> tuple[list[int], list[int]]:
    """The counterparties that join a fan (or one side of a hub) already found, with
    their rows: those whose dealings with the centre fall inside the pattern's own time
    span and that are either devoted to the centre (see :func:`_devoted`) or, given
    ``facing_quiet``, quiet on the side facing it (a payee that receives nothing but
    this payment, whatever it pays out itself: an account lent for the job keeps its
    own standing orders).

    Joining a found pattern costs no test of its own: the centre is already judged, and
    the span and the facing side keep everyday counterparties out. Nothing joins when
    the newcomers have dealt with the pattern's accounts outside it (see
    :meth:`TransferIndex.outside_ties`).
    """
    time = index.table.time
    first = min(int(time[r]) for r in rows)
    last = max(int(time[r]) for r in rows)
    far = index.table.target if direction == "out" else index.table.source
    by_account: dict[int, list[int]] = {}
    for row in devoted:
        by_account.setdefault(int(far[row]), []).append(row)
    if adjacency is not None and facing_quiet is not None:
        for position in range(int(adjacency.ptr[centre]), int(adjacency.ptr[centre + 1])):
            other = int(adjacency.other[position])
            if facing_quiet[other]:
                by_account.setdefault(other, []).append(int(adjacency.rows[position]))
    added_rows: list[int] = []
    added: list[int] = []
    for other, its_rows in by_account.items():
        if other in members or other == centre:
            continue
        # A devoted account's every transfer is with the centre: all of them join,
        # so long as one falls inside the pattern's span.
        if any(first <= int(time[r]) <= last for r in its_rows):
            added.append(other)
            added_rows.extend(its_rows)
    if not added or index.outside_ties({centre, *members, *added}, rows + added_rows):
        return [], []
    return added_rows, added


def _with_joined(
    index: TransferIndex,
    finding: Finding,
    direction: Literal["out", "in"],
    adjacency: Adjacency | None,
    facing_quiet: np.ndarray | None,
    devoted: dict[int, list[int]],
) -> Finding:
    """``finding`` with the counterparties that join it (see :func:`_joined`)."""
    centre, *members = finding.accounts
    rows, added = _joined(
        index,
        adjacency,
        facing_quiet,
        devoted.get(centre, []),
        direction,
        centre,
        set(members),
        list(finding.transfers),
    )
    if not added:
        return finding
    return Finding(
        finding.typology,
        finding.score,
        (centre, *sorted({*members, *added})),
        (*finding.transfers, *rows),
        f"{finding.reason}; {len(added)} more within its span, dealing with nobody else "
        f"on that side",
    )


def _merged(index: TransferIndex, finding: Finding, more: Finding) -> Finding:
    """One finding around the same centre as two: ``finding`` with the accounts and
    transfers of ``more`` (found another way, or in another window), unless these
    have dealt with the pattern's accounts outside it."""
    centre, *members = finding.accounts
    accounts = set(members) | set(more.accounts[1:])
    transfers = tuple(dict.fromkeys((*finding.transfers, *more.transfers)))
    if len(transfers) == len(finding.transfers) or index.outside_ties(
        (centre, *accounts), transfers
    ):
        return finding
    return Finding(
        finding.typology,
        max(finding.score, more.score),
        (centre, *sorted(accounts)),
        transfers,
        f"{finding.reason}; {more.reason}",
    )


def _testable(enough: np.ndarray, quiet: np.ndarray) -> int:
    """How many accounts are tested: those with enough occasional counterparties to
    make the pattern at all (``enough``) and not quiet themselves. An account with fewer
    counterparties than the pattern needs cannot be found whatever chance does, so it
    is no test and does not raise the bar for the others (Tarone, 1990)."""
    return max(1, int(np.count_nonzero(enough & ~quiet)))


def _discoveries(chances: list[float], tested: int, fdr: float) -> list[bool]:
    """Benjamini-Hochberg: which of ``chances`` (p-values among ``tested`` tests, the
    rest not worth computing) to report so that the expected share of chance findings
    among those reported is at most ``fdr``."""
    order = sorted(range(len(chances)), key=lambda i: chances[i])
    cutoff = 0
    for rank, i in enumerate(order, start=1):
        if chances[i] <= fdr * rank / max(1, tested):
            cutoff = rank
    keep = [False] * len(chances)
    for i in order[:cutoff]:
        keep[i] = True
    return keep


def _beyond_own_pace(
    inside: int, total: int, window: int, rate: float, index: TransferIndex, alpha: float
) -> bool:
    """Whether ``inside`` occasional transfers in one window are more than chance gives an
    account with this one's own pace. An account that makes one-off payments all year
    round (AMLSim's busy payers, a freelancer paying suppliers) makes many in a month
    by its habit; its pace outside the window, ``(total - inside)`` spread over the
    rest of the list, sets the Poisson mean (never below the typical ``rate``), and the
    count must be improbable for fewer than ``alpha`` of the accounts."""
    rest = max(window, index.span - window)
    own = (total - inside) * window / rest
    chance = poisson_tail(inside, max(rate, own))
    return chance * max(1, index.n_accounts) <= alpha


def _quiet_score(p: float, alpha: float) -> float:
    """0.5 at the significance bound, 1 when the chance is a millionth of it."""
    if p <= 0.0:
        return 1.0
    return max(0.5, min(1.0, 0.5 + 0.5 * math.log10(alpha / p) / 6.0))


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
        quiet_activity: accounts with at most this many transfers in the whole list
            are quiet.
        min_quiet: the fewest quiet counterparties of a fan of quiet accounts.
    """

    direction: Literal["out", "in"] = "out"
    window_days: float = 30.0
    min_counterparties: int = 5
    max_counterparties: int = 20
    alpha: float = 0.01
    max_edge_chance: float = 0.01
    quiet_activity: int = 2
    min_quiet: int = 3
    fdr: float = 0.05

    @property
    def typology(self) -> Typology:
        return Typology.FAN_OUT if self.direction == "out" else Typology.FAN_IN

    def detect(self, index: TransferIndex) -> list[Finding]:
        degree_out, degree_in = index.out.degree(), index.into.degree()
        full = index.out if self.direction == "out" else index.into
        # A payment to a shop (or from a payroll office) is not a fan's leaf: leaves
        # with more occasional counterparties than a fan may have are left out.
        opposite = degree_in if self.direction == "out" else degree_out
        adjacency = _without(full, opposite[full.other] <= self.max_counterparties)
        window = int(self.window_days * DAY)
        best, start = window_counts(adjacency, index.table.time, window)
        total = adjacency.degree()
        m = max(1, int(index.out.rows.shape[0]))
        limit = math.log(self.max_edge_chance)
        rate = _rate(total, self.max_counterparties, window, index.span)
        threshold = poisson_threshold(
            rate,
            index.n_accounts,
            self.alpha,
            self.min_counterparties,
        )
        findings = []
        for account in np.flatnonzero((best >= threshold) & (total <= self.max_counterparties)):
            rows, others = _window_rows(adjacency, int(start[account]), int(best[account]))
            distinct = len(set(others))
            if distinct < threshold or not _beyond_own_pace(
                int(best[account]), int(total[account]), window, rate, index, self.alpha
            ):
                continue
            if self.direction == "out":
                pairs = [(int(account), o) for o in others]
            else:
                pairs = [(o, int(account)) for o in others]
            chance = [math.log(float(degree_out[s]) * float(degree_in[t]) / m) for s, t in pairs]
            if sum(chance) / len(chance) > limit or index.outside_ties(
                (int(account), *others), rows
            ):
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
        reported = {f.accounts[0]: i for i, f in enumerate(findings)}
        tested = _testable(full.degree() >= self.min_quiet, index.activity <= self.quiet_activity)
        for centre, rows, others, p in _quiet_fans(
            index,
            full,
            index.activity <= self.quiet_activity,
            self.min_quiet,
            self.max_counterparties,
            self.fdr,
            window,
        ):
            if index.outside_ties((centre, *others), rows) or _one_account_behind(
                index, self.direction, centre, others
            ):
                continue
            word = "to" if self.direction == "out" else "from"
            times = index.table.time[list(rows)]
            quiet_fan = Finding(
                self.typology,
                _quiet_score(p * tested, self.fdr),
                (centre, *sorted(others)),
                tuple(rows),
                f"occasional transfers {word} {len(others)} quiet accounts (at most "
                f"{self.quiet_activity} transfers each) within "
                f"{(int(times.max()) - int(times.min())) / DAY:.0f} days; chance "
                f"{p:.1e} per account",
            )
            if centre in reported:
                # Found by count in one window too: its quiet counterparties outside
                # that window belong to the same fan.
                at = reported[centre]
                findings[at] = _merged(index, findings[at], quiet_fan)
            else:
                findings.append(quiet_fan)
        facing = _quiet(
            index, "received" if self.direction == "out" else "sent", self.quiet_activity
        )
        devoted = _devoted(index, self.direction, self.quiet_activity)
        for centre, rows in _drops(index, self.direction, self.quiet_activity).items():
            devoted[centre] = list(dict.fromkeys((*devoted.get(centre, []), *rows)))
        return [
            _with_joined(index, finding, self.direction, full, facing, devoted)
            for finding in findings
        ]


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
        quiet_activity: accounts with at most this many transfers in the whole list
            are quiet (see the module docstring).
        min_quiet_side: the fewest quiet senders and quiet receivers of a hub of quiet
            accounts, and the fewest senders and receivers of a hub judged by expected
            copies.
        max_expected: the most hubs like it that chance alone may be expected to make
            (see :meth:`_improbable_hubs`).
    """

    window_days: float = 30.0
    min_side: int = 3
    max_counterparties: int = 40
    alpha: float = 0.01
    max_edge_chance: float = 0.01
    quiet_activity: int = 2
    min_quiet_side: int = 2
    fdr: float = 0.05
    max_expected: float = 1.0

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
            if not _beyond_own_pace(
                len(chosen_in) + len(chosen_out),
                int(degree_in[a] + degree_out[a]),
                window,
                2 * rate,
                index,
                self.alpha,
            ):
                continue
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
            if sum(chance) / len(chance) > limit or index.outside_ties(
                (a, *members), chosen_in + chosen_out
            ):
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
        findings.extend(self._quiet_hubs(index, {f.accounts[0] for f in findings}))
        # A hub found by count or by its quiet accounts may show, in another window or
        # with busy members, more of the same hub: one finding per hub.
        reported = {f.accounts[0]: i for i, f in enumerate(findings)}
        for hub in self._improbable_hubs(index):
            at = reported.get(hub.accounts[0])
            if at is None:
                findings.append(hub)
            else:
                findings[at] = _merged(index, findings[at], hub)
        devoted_in = _devoted(index, "in", self.quiet_activity)
        devoted_out = _devoted(index, "out", self.quiet_activity)
        return [
            _with_joined(
                index,
                _with_joined(index, finding, "in", None, None, devoted_in),
                "out",
                None,
                None,
                devoted_out,
            )
            for finding in findings
        ]

    def _improbable_hubs(self, index: TransferIndex) -> list[Finding]:
        """Hubs that chance would not make even once: a few senders and receivers, not
        necessarily quiet, judged as cycles and scatter-gathers are, by the expected
        number of patterns like it in a random rewiring of the occasional transfers
        (same shape, same occasional degrees, no wider time spread; see
        :meth:`TransferIndex.expected_copies`), divided by ``(a + b)! / (a! b!)`` when
        all ``a`` gathering transfers come before all ``b`` scattering ones, as a
        random order would have them with that chance.

        A hub of two senders and two receivers needs no threshold on counts or on
        quiet accounts: its accounts' own degrees and the days it spans say how often
        chance makes one. The window is anchored on each incoming transfer in turn and
        the least likely one is kept.
        """
        window = int(self.window_days * DAY)
        table = index.table
        time = table.time
        degree_in, degree_out = index.into.degree(), index.out.degree()
        limit = math.log(self.max_expected)
        least = self.min_quiet_side
        findings = []
        for account in np.flatnonzero(
            (degree_in >= least)
            & (degree_out >= least)
            & (degree_in <= self.max_counterparties)
            & (degree_out <= self.max_counterparties)
        ):
            a = int(account)
            rows_in, rows_out = index.into.of(a), index.out.of(a)
            times_in, times_out = time[rows_in], time[rows_out]
            best: tuple[float, list[int], list[int]] | None = None
            for anchor in times_in.tolist():
                lo_in = int(np.searchsorted(times_in, anchor, side="left"))
                hi_in = int(np.searchsorted(times_in, anchor + window, side="right"))
                lo_out = int(np.searchsorted(times_out, anchor, side="left"))
                hi_out = int(np.searchsorted(times_out, anchor + window, side="right"))
                if hi_in - lo_in < least or hi_out - lo_out < least:
                    continue
                chosen_in = rows_in[lo_in:hi_in].tolist()
                chosen_out = rows_out[lo_out:hi_out].tolist()
                pairs = [(int(table.source[r]), a) for r in chosen_in]
                pairs += [(a, int(table.target[r])) for r in chosen_out]
                first, last = int(times_in[lo_in]), int(times_in[hi_in - 1])
                start, end = int(times_out[lo_out]), int(times_out[hi_out - 1])
                log_e = index.expected_copies(pairs, max(last, end) - min(first, start))
                if last <= start:
                    log_e -= math.log(math.comb(len(pairs), len(chosen_in)))
                if best is None or log_e < best[0]:
                    best = (log_e, chosen_in, chosen_out)
            if best is None or best[0] > limit:
                continue
            log_e, chosen_in, chosen_out = best
            senders = {int(table.source[r]) for r in chosen_in}
            receivers = {int(table.target[r]) for r in chosen_out}
            if index.outside_ties((a, *senders, *receivers), chosen_in + chosen_out):
                continue
            times = [int(time[r]) for r in chosen_in + chosen_out]
            findings.append(
                Finding(
                    Typology.GATHER_SCATTER,
                    min(1.0, 0.6 + 0.05 * (len(senders) + len(receivers))),
                    (a, *sorted(senders | receivers)),
                    tuple(chosen_in + chosen_out),
                    f"gathers from {len(senders)} and scatters to {len(receivers)} accounts "
                    f"within {(max(times) - min(times)) / DAY:.0f} days; chance would make "
                    f"{math.exp(log_e):.1e} hubs like it",
                )
            )
        return findings

    def _quiet_hubs(self, index: TransferIndex, reported: set[int]) -> list[Finding]:
        quiet_senders = _quiet(index, "sent", self.quiet_activity)
        quiet_receivers = _quiet(index, "received", self.quiet_activity)
        quiet = index.activity <= self.quiet_activity
        time = index.table.time
        degree_in, degree_out = index.into.degree(), index.out.degree()
        tested = _testable(
            (degree_in >= self.min_quiet_side) & (degree_out >= self.min_quiet_side), quiet
        )
        shapes: list[tuple[int, list[int], list[int], list[int], list[int], bool]] = []
        for account in np.flatnonzero(
            (degree_in >= self.min_quiet_side) & (degree_out >= self.min_quiet_side) & ~quiet
        ):
            a = int(account)
            if a in reported:
                continue
            rows_in, senders = _quiet_side(index.into, a, quiet_senders)
            rows_out, receivers = _quiet_side(index.out, a, quiet_receivers)
            if (
                min(len(senders), len(receivers)) < self.min_quiet_side
                or max(len(senders), len(receivers)) > self.max_counterparties
            ):
                continue
            if not index.outside_ties((a, *senders, *receivers), rows_in + rows_out):
                ordered = max(int(time[r]) for r in rows_in) <= min(int(time[r]) for r in rows_out)
                shapes.append((a, rows_in, rows_out, senders, receivers, ordered))
        # The share over all occasional transfers, not over the hubs tested as for fans:
        # quiet in the looser, facing sense is rarer around accounts busy on both sides
        # than around everyone, and that lower share let benign hubs through.
        q_in = _quiet_share(index.into, quiet_senders)
        q_out = _quiet_share(index.out, quiet_receivers)
        candidates: list[tuple[int, list[int], list[int], list[int], list[int], float]] = []
        for a, rows_in, rows_out, senders, receivers, ordered in shapes:
            p = binomial_tail(len(senders), int(degree_in[a]), q_in) * binomial_tail(
                len(receivers), int(degree_out[a]), q_out
            )
            if ordered:
                p /= math.comb(len(senders) + len(receivers), len(senders))
            candidates.append((a, rows_in, rows_out, senders, receivers, p))
        keep = _discoveries([c[-1] for c in candidates], tested, self.fdr)
        findings = []
        for (a, rows_in, rows_out, senders, receivers, p), kept in zip(
            candidates, keep, strict=True
        ):
            if not kept:
                continue
            times = [int(time[r]) for r in rows_in + rows_out]
            findings.append(
                Finding(
                    Typology.GATHER_SCATTER,
                    _quiet_score(p * tested, self.fdr),
                    (a, *sorted(set(senders) | set(receivers))),
                    tuple(rows_in + rows_out),
                    f"gathers from {len(senders)} and scatters to {len(receivers)} quiet "
                    f"accounts within {(max(times) - min(times)) / DAY:.0f} days; chance "
                    f"{p:.1e} per account",
                )
            )
        return findings

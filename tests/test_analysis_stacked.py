"""The stacked-chain detector's two searches, formed for all rows at once, give what a
plain walk over each receiver's and each sender's transfers gives, in the same order."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from provenance.analysis.detectors import StackedChainDetector
from provenance.analysis.index import DAY, TransferIndex
from provenance.analysis.transfers import TransferTable


def random_table(seed: int, accounts: int = 60, rows: int = 900) -> TransferTable:
    """Dense enough that receivers share senders and money is passed on; times and
    amounts drawn from few values so that ties and the bounds occur."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, accounts, rows).astype(np.int32)
    target = rng.integers(0, accounts, rows).astype(np.int32)
    keep = source != target
    n = int(keep.sum())
    return TransferTable(
        accounts=[f"a{i}" for i in range(accounts)],
        source=source[keep],
        target=target[keep],
        amount=rng.choice([90.0, 95.0, 100.0, 100.0, 111.0], n),
        time=1_700_000_000 + rng.integers(0, 90, n).astype(np.int64) * DAY // 2,
    )


def shared_by_walking(
    detector: StackedChainDetector, index: TransferIndex
) -> dict[tuple[int, int], list[tuple[int, int, int]]]:
    table, into = index.table, index.into
    window = int(detector.window_days * DAY)
    shared: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    degree = into.degree()
    for receiver in np.flatnonzero((degree >= 2) & (degree <= detector.max_branch)):
        x = int(receiver)
        for r1, r2 in combinations((int(r) for r in into.of(x)), 2):
            a, b = int(table.source[r1]), int(table.source[r2])
            if a == b or abs(int(table.time[r1]) - int(table.time[r2])) > window:
                continue
            shared.setdefault((min(a, b), max(a, b)), []).append((x, r1, r2))
    return {
        key: found
        for key, found in shared.items()
        if len({x for x, _, _ in found}) >= detector.min_shared
    }


def extends_by_walking(
    detector: StackedChainDetector, index: TransferIndex
) -> dict[int, list[int]]:
    table, out = index.table, index.out
    delay = int(detector.max_delay_days * DAY)
    extends: dict[int, list[int]] = {}
    for row in out.rows:
        r = int(row)
        t, value = int(table.time[r]), float(table.amount[r])
        onward = [
            int(n)
            for n in out.of(int(table.target[r]))
            if t <= int(table.time[n]) <= t + delay
            and (1.0 - detector.margin) * value <= float(table.amount[n]) <= value
            and int(table.target[n]) != int(table.source[r])
        ]
        if onward:
            extends[r] = onward
    return extends


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_pair_transfers", [1, 3])
def test_layers_and_chains_match_a_plain_walk(seed: int, max_pair_transfers: int) -> None:
    index = TransferIndex.build(random_table(seed), max_pair_transfers=max_pair_transfers)
    detector = StackedChainDetector(max_branch=12)
    shared = detector._shared(index)
    walked = shared_by_walking(detector, index)
    assert walked
    assert list(shared.items()) == list(walked.items())
    extends = detector._extends(index)
    assert extends
    assert list(extends.items()) == list(extends_by_walking(detector, index).items())


def test_an_empty_list_has_no_layers_nor_chains() -> None:
    empty = TransferTable(
        accounts=[],
        source=np.zeros(0, np.int32),
        target=np.zeros(0, np.int32),
        amount=np.zeros(0),
        time=np.zeros(0, np.int64),
    )
    index = TransferIndex.build(empty)
    assert StackedChainDetector()._shared(index) == {}
    assert StackedChainDetector()._extends(index) == {}

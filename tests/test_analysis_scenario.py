"""The generated marketplace: every typology injected and labelled, found by the ledger
detectors; deterministic; bad parameters refused."""

from __future__ import annotations

import pytest

from provenance.analysis.ledger_detectors import analyze_ledger
from provenance.analysis.ledger_graph import LedgerGraph
from provenance.analysis.scenario import LEDGER_TYPOLOGIES, generate, score


def test_every_typology_is_injected_and_found() -> None:
    scenario, events = generate(30_000, fraud_rate=0.03, seed=2)
    graph = LedgerGraph()
    for event in events:
        graph.apply(*event)
    assert {case.typology for case in scenario.truth} == set(LEDGER_TYPOLOGIES)
    scores = score(analyze_ledger(graph), scenario.truth)
    weak = {t.value: round(s.f1, 2) for t, s in scores.items() if s.f1 < 0.9}
    assert weak == {}


def test_the_same_seed_makes_the_same_ledger() -> None:
    first = [e for _, e in zip(range(3000), generate(2000, seed=5)[1], strict=False)]
    again = [e for _, e in zip(range(3000), generate(2000, seed=5)[1], strict=False)]
    assert first == again


@pytest.mark.parametrize(("events", "rate"), [(100, 0.01), (5000, 0.0), (5000, 0.5)])
def test_bad_parameters_are_refused(events: int, rate: float) -> None:
    with pytest.raises(ValueError):
        generate(events, fraud_rate=rate)

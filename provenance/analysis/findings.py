"""What a detector reports: a typology, a score in [0, 1] and the evidence behind it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import networkx as nx

from provenance.analysis.transfers import TransferTable, format_epoch


class Typology(StrEnum):
    """The closed set of patterns the detectors name."""

    FAN_OUT = "fan-out"
    FAN_IN = "fan-in"
    SCATTER_GATHER = "scatter-gather"
    GATHER_SCATTER = "gather-scatter"
    STACKED_CHAIN = "stacked-chain"
    CYCLE = "cycle"
    BURST = "burst"
    SHARED_ATTRIBUTE_RING = "shared-attribute-ring"
    RISK_PROPAGATION = "risk-propagation"
    STOLEN_PAYMENT_TAINT = "stolen-payment-taint"
    DOUBLE_SALE = "double-sale"
    SAME_SERIAL_DIFFERENT_PIN = "same-serial-different-pin"
    UNKNOWN_ORIGIN = "unknown-origin"


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected pattern on a transfer list.

    Attributes:
        typology: which pattern.
        score: how strongly the evidence shows it, in [0, 1].
        accounts: the account ids involved (the pattern's centre first, where it has one).
        transfers: the row indices of the transfers that make up the pattern.
        reason: one line a reviewer reads first.
    """

    typology: Typology
    score: float
    accounts: tuple[int, ...]
    transfers: tuple[int, ...]
    reason: str

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score {self.score} is outside [0, 1]")

    def evidence(self, table: TransferTable) -> nx.MultiDiGraph:
        """The evidence subgraph: the finding's accounts and transfers, with amount, time
        and row on every edge."""
        graph: nx.MultiDiGraph = nx.MultiDiGraph(typology=self.typology.value, score=self.score)
        for account in self.accounts:
            graph.add_node(table.accounts[account], kind="account")
        for row in self.transfers:
            graph.add_edge(
                table.accounts[int(table.source[row])],
                table.accounts[int(table.target[row])],
                key=int(row),
                row=int(row),
                amount=float(table.amount[row]),
                time=format_epoch(int(table.time[row])),
            )
        return graph


def scaled_score(value: float, threshold: float) -> float:
    """0.5 at the detector's threshold, rising towards 1 at twice the threshold."""
    if threshold <= 0:
        return 1.0
    return max(0.0, min(1.0, 0.5 * value / threshold))

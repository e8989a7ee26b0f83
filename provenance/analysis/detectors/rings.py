"""Rings of accounts that share a device, payment instrument or IP and act together.

Sharing alone is ordinary: a family shares a tablet, a household an IP. A ring is
``min_accounts`` or more accounts on one device, instrument or IP (at most
``max_accounts``: a carrier-grade NAT is not a ring) of which ``min_accounts`` or more
send occasional transfers to the same account, or receive them from the same account,
inside one window. The shared counterparty must not be a business (more than
``max_branch`` occasional counterparties). Runs only on lists with such columns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from provenance.analysis.findings import Finding, Typology, scaled_score
from provenance.analysis.index import DAY, TransferIndex


@dataclass(frozen=True, slots=True)
class SharedAttributeRingDetector:
    """Attributes:
    window_days: the acting-together transfers fall in one window this long.
    min_accounts: the fewest accounts in a ring.
    max_accounts: values shared by more accounts than this are not rings.
    max_branch: counterparties with more occasional counterparties are businesses.
    """

    window_days: float = 30.0
    min_accounts: int = 3
    max_accounts: int = 50
    max_branch: int = 40

    @property
    def typology(self) -> Typology:
        return Typology.SHARED_ATTRIBUTE_RING

    def detect(self, index: TransferIndex) -> list[Finding]:
        table = index.table
        window = int(self.window_days * DAY)
        degree = index.out.degree() + index.into.degree()
        findings = []
        for column, ids in table.attributes.items():
            users: dict[int, set[int]] = defaultdict(set)
            for row in np.flatnonzero(ids >= 0):
                users[int(ids[row])].add(int(table.source[row]))
            for value, accounts in users.items():
                if not self.min_accounts <= len(accounts) <= self.max_accounts:
                    continue
                rows = self._together(index, accounts, degree, window)
                if rows:
                    members = sorted(accounts)
                    findings.append(
                        Finding(
                            Typology.SHARED_ATTRIBUTE_RING,
                            scaled_score(len(accounts), self.min_accounts),
                            tuple(members),
                            tuple(sorted(rows)),
                            f"{len(accounts)} accounts share {column} "
                            f"{table.attribute_values[column][value]} and move money with "
                            f"one counterparty within {self.window_days:g} days",
                        )
                    )
        return findings

    def _together(
        self, index: TransferIndex, accounts: set[int], degree: np.ndarray, window: int
    ) -> list[int]:
        table = index.table
        by_counterparty: dict[int, list[int]] = defaultdict(list)
        for account in accounts:
            for row in index.out.of(account):
                by_counterparty[int(table.target[row])].append(int(row))
            for row in index.into.of(account):
                by_counterparty[int(table.source[row])].append(int(row))
        rows: list[int] = []
        for counterparty, found in by_counterparty.items():
            if counterparty in accounts or degree[counterparty] > self.max_branch:
                continue
            found.sort(key=lambda r: int(table.time[r]))
            for i, anchor in enumerate(found):
                inside = [r for r in found[i:] if table.time[r] - table.time[anchor] <= window]
                members = {int(table.source[r]) for r in inside} | {
                    int(table.target[r]) for r in inside
                }
                if len(members & accounts) >= self.min_accounts:
                    rows.extend(inside)
                    break
        return rows

"""The shape every transfer-list detector has."""

from __future__ import annotations

from typing import Protocol

from provenance.analysis.findings import Finding, Typology
from provenance.analysis.index import TransferIndex


class Detector(Protocol):
    """Finds one typology in an indexed transfer list."""

    @property
    def typology(self) -> Typology: ...

    def detect(self, index: TransferIndex) -> list[Finding]:
        """Every instance found, each with its score and evidence rows."""
        ...

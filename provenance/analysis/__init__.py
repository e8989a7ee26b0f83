"""Graph analysis: find laundering, stolen-payment and double-sale flows, with evidence.

:mod:`.transfers` reads plain transfer lists into compact arrays; :mod:`.index` builds
the shared views; :mod:`.detectors` holds one unit per typology; :mod:`.pipeline` runs
them and writes the report.
"""

from __future__ import annotations

from provenance.analysis.findings import Finding, Typology
from provenance.analysis.pipeline import (
    AnalysisReport,
    analyze_transfers,
    default_detectors,
    write_report,
)
from provenance.analysis.transfers import TransferListError, TransferTable, read_transfers

__all__ = [
    "AnalysisReport",
    "Finding",
    "TransferListError",
    "TransferTable",
    "Typology",
    "analyze_transfers",
    "default_detectors",
    "read_transfers",
    "write_report",
]

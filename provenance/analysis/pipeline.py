"""Run the account-to-account detectors on a transfer list and write what they found.

``analyze_transfers`` runs every detector over one :class:`TransferIndex`, then, when
known-bad seed accounts are given, risk propagation from them. Unsupervised findings
are not used as seeds by default: on outside data that compounds their errors.
``write_report`` writes
``flagged_accounts.csv`` (``account, typology, score``: one row per account and
typology, the highest score), ``flagged_transfers.csv`` (``row, source, target, amount,
timestamp, typology, score``: ``row`` is the 0-based index of the data row in the input,
one row per transfer and typology) and ``summary.json`` (counts, parameters and the
strongest findings with their evidence subgraphs), into a directory it creates only
once everything is computed.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from networkx.readwrite import json_graph

from provenance.analysis.detectors import (
    BurstDetector,
    CycleDetector,
    Detector,
    FanDetector,
    GatherScatterDetector,
    RiskPropagation,
    ScatterGatherDetector,
    SharedAttributeRingDetector,
    StackedChainDetector,
)
from provenance.analysis.findings import Finding, Typology
from provenance.analysis.index import TransferIndex
from provenance.analysis.transfers import TransferTable, format_epoch

EVIDENCE_IN_SUMMARY = 50


def default_detectors() -> list[Detector]:
    """Every account-to-account detector with its default parameters."""
    return [
        FanDetector(direction="out"),
        FanDetector(direction="in"),
        GatherScatterDetector(),
        ScatterGatherDetector(),
        CycleDetector(),
        StackedChainDetector(),
        BurstDetector(),
        SharedAttributeRingDetector(),
    ]


@dataclass(slots=True)
class AnalysisReport:
    """The findings on one transfer list, and how they were made."""

    table: TransferTable
    findings: list[Finding]
    parameters: dict[str, Any]

    def flagged_accounts(self) -> dict[tuple[int, Typology], float]:
        """The highest score per (account, typology)."""
        flagged: dict[tuple[int, Typology], float] = {}
        for finding in self.findings:
            accounts = finding.accounts
            if finding.typology is Typology.RISK_PROPAGATION:
                accounts = accounts[:1]
            for account in accounts:
                key = (account, finding.typology)
                flagged[key] = max(flagged.get(key, 0.0), finding.score)
        return flagged

    def flagged_transfers(self) -> dict[tuple[int, Typology], float]:
        """The highest score per (row, typology)."""
        flagged: dict[tuple[int, Typology], float] = {}
        for finding in self.findings:
            for row in finding.transfers:
                key = (row, finding.typology)
                flagged[key] = max(flagged.get(key, 0.0), finding.score)
        return flagged


def _describe(detector: object) -> dict[str, Any]:
    values = asdict(detector) if is_dataclass(detector) and not isinstance(detector, type) else {}
    return {
        key: sorted(value) if isinstance(value, frozenset) else value
        for key, value in values.items()
    }


def analyze_transfers(
    table: TransferTable,
    *,
    detectors: Sequence[Detector] | None = None,
    propagation: RiskPropagation | None = None,
    seeds: Iterable[str] = (),
    max_pair_transfers: int = 1,
) -> AnalysisReport:
    """Run the detectors, then risk propagation, on ``table``.

    Args:
        table: the transfers.
        detectors: which detectors (default: :func:`default_detectors`).
        propagation: the propagation step (default: :class:`RiskPropagation`).
        seeds: names of accounts known bad; unknown names are ignored.
        max_pair_transfers: the most transfers two accounts may exchange for their
            transfers to count as occasional (see :mod:`provenance.analysis.index`).
    """
    chosen = list(detectors) if detectors is not None else default_detectors()
    index = TransferIndex.build(table, max_pair_transfers=max_pair_transfers)
    findings: list[Finding] = []
    for detector in chosen:
        findings.extend(detector.detect(index))
    ids = {name: i for i, name in enumerate(table.accounts)}
    seed_ids = frozenset(ids[name] for name in seeds if name in ids)
    step = propagation or RiskPropagation()
    if seed_ids:
        step = RiskPropagation(
            seeds=seed_ids,
            seed_score=step.seed_score,
            min_seed_links=step.min_seed_links,
            restart=step.restart,
            max_seed_degree=step.max_seed_degree,
        )
    if seed_ids or step.seeds:
        findings.extend(step.propagate(index, findings))
    parameters: dict[str, Any] = {
        "max_pair_transfers": max_pair_transfers,
        "detectors": [
            {"detector": type(d).__name__, "typology": d.typology.value, **_describe(d)}
            for d in chosen
        ],
        "propagation": {**_describe(step), "seeds": len(seed_ids)},
    }
    return AnalysisReport(table, findings, parameters)


def _summary(report: AnalysisReport) -> dict[str, Any]:
    table = report.table
    by_typology: dict[str, int] = {}
    for finding in report.findings:
        by_typology[finding.typology.value] = by_typology.get(finding.typology.value, 0) + 1
    strongest = sorted(report.findings, key=lambda f: (-f.score, f.typology.value, f.accounts))
    return {
        "transfers": len(table),
        "accounts": table.n_accounts,
        "first_transfer": format_epoch(int(table.time.min())),
        "last_transfer": format_epoch(int(table.time.max())),
        "findings": len(report.findings),
        "findings_by_typology": dict(sorted(by_typology.items())),
        "flagged_accounts": len({a for a, _ in report.flagged_accounts()}),
        "flagged_transfers": len({r for r, _ in report.flagged_transfers()}),
        "parameters": report.parameters,
        "strongest_findings": [
            {
                "typology": f.typology.value,
                "score": round(f.score, 4),
                "reason": f.reason,
                "accounts": [table.accounts[a] for a in f.accounts],
                "rows": list(f.transfers),
                "evidence": json_graph.node_link_data(f.evidence(table), edges="edges"),
            }
            for f in strongest[:EVIDENCE_IN_SUMMARY]
        ],
    }


def write_report(report: AnalysisReport, out_dir: str | os.PathLike[str]) -> Path:
    """Write the three files (see the module docstring) into ``out_dir``.

    The files are written into a fresh directory beside ``out_dir`` and moved into
    place at the end, so a failure leaves nothing half-written.

    Returns:
        The directory written.
    """
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        table = report.table
        with open(staging / "flagged_accounts.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["account", "typology", "score"])
            for (account, typology), score in sorted(
                report.flagged_accounts().items(), key=lambda item: (item[0][0], item[0][1])
            ):
                writer.writerow([table.accounts[account], typology.value, f"{score:.4f}"])
        with open(staging / "flagged_transfers.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["row", "source", "target", "amount", "timestamp", "typology", "score"])
            for (row, typology), score in sorted(report.flagged_transfers().items()):
                writer.writerow(
                    [
                        row,
                        table.accounts[int(table.source[row])],
                        table.accounts[int(table.target[row])],
                        repr(float(table.amount[row])),
                        table.format_time(row),
                        typology.value,
                        f"{score:.4f}",
                    ]
                )
        with open(staging / "summary.json", "w", encoding="utf-8") as f:
            json.dump(_summary(report), f, indent=2, ensure_ascii=False)
            f.write("\n")
        target.mkdir(exist_ok=True)
        for name in ("flagged_accounts.csv", "flagged_transfers.csv", "summary.json"):
            os.replace(staging / name, target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target

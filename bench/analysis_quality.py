"""Precision, recall and F1 of the transfer-list detectors on labelled outside data.

Reads a labelled transfer list made by a generator we did not write (AMLSim's output
directory, or any CSV with ``source, target, amount, timestamp, is_sar``), optionally
adds the benign traffic of :mod:`bench.analysis_benign`, writes the unlabelled list the
way ``cardtrace analyze`` reads it, runs the detectors with their fixed defaults and
scores:

* transfers: a flagged row is right when the generator labelled that transfer as
  laundering;
* accounts: a flagged account is right when it sends or receives a laundering transfer.

Usage::

    .venv/bin/python -m bench.analysis_quality --amlsim /tmp/outside/amlsimpy/outputs/bench10k
    .venv/bin/python -m bench.analysis_quality --amlsim ... --benign
    .venv/bin/python -m bench.analysis_quality --amlsim ... --copies 16 --edges million.csv

``--copies N`` scores N copies of the list over disjoint accounts (the size test of
docs/BENCHMARKS.md); ``--edges`` keeps the unlabelled list it analysed, for timing
``cardtrace analyze`` on it. With AMLSim's ``alert_transactions.csv``, the laundering
accounts found are also counted per AMLSim pattern (an account in two patterns counts
in both).
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bench.analysis_benign import Transfer, add_benign
from provenance.analysis import analyze_transfers, read_transfers, write_report


def _epoch(text: str) -> int:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def read_amlsim(directory: Path) -> list[Transfer]:
    """AMLSim's ``transactions.csv`` (orig_acct, bene_acct, base_amt, tran_timestamp,
    is_sar, alert_id), with each laundering transfer's pattern (fan_in, cycle, ...) from
    ``alert_transactions.csv`` when that file is there."""
    kinds: dict[str, str] = {}
    alerts = directory / "alert_transactions.csv"
    if alerts.exists():
        with open(alerts, newline="", encoding="utf-8") as f:
            kinds = {row["alert_id"]: row["alert_type"] for row in csv.DictReader(f)}
    with open(directory / "transactions.csv", newline="", encoding="utf-8") as f:
        return [
            Transfer(
                row["orig_acct"],
                row["bene_acct"],
                float(row["base_amt"]),
                _epoch(row["tran_timestamp"]),
                laundering := row["is_sar"].strip().lower() == "true",
                kinds.get(row.get("alert_id") or "", "") if laundering else "",
            )
            for row in csv.DictReader(f)
        ]


def disjoint_copies(transfers: list[Transfer], copies: int) -> list[Transfer]:
    """``copies`` copies of the list over disjoint accounts (``c0-``, ``c1-``, ...
    before every name), at the same times: a larger list with the same patterns."""
    if copies == 1:
        return transfers
    return [
        Transfer(f"c{c}-{t.source}", f"c{c}-{t.target}", t.amount, t.time, t.laundering, t.kind)
        for c in range(copies)
        for t in transfers
    ]


def read_labelled(path: Path) -> list[Transfer]:
    with open(path, newline="", encoding="utf-8") as f:
        return [
            Transfer(
                row["source"],
                row["target"],
                float(row["amount"]),
                _epoch(row["timestamp"]),
                row["is_sar"].strip().lower() in ("true", "1", "yes"),
            )
            for row in csv.DictReader(f)
        ]


def write_unlabelled(transfers: list[Transfer], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "target", "amount", "timestamp"])
        for t in transfers:
            stamp = datetime.fromtimestamp(t.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow([t.source, t.target, f"{t.amount:.2f}", stamp])


def prf(flagged: set[object], truth: set[object]) -> tuple[float, float, float]:
    hit = len(flagged & truth)
    precision = hit / len(flagged) if flagged else 0.0
    recall = hit / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--amlsim", type=Path, help="an AMLSim output directory")
    source.add_argument("--labelled", type=Path, help="CSV with an is_sar column")
    parser.add_argument("--benign", action="store_true", help="add benign traffic first")
    parser.add_argument("--seed", type=int, default=11, help="seed of the benign traffic")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument(
        "--copies", type=int, default=1, help="score this many disjoint copies of the list"
    )
    parser.add_argument("--edges", type=Path, help="also write the unlabelled list here")
    args = parser.parse_args(argv)
    if args.copies < 1:
        parser.error("--copies must be 1 or more")

    transfers = read_amlsim(args.amlsim) if args.amlsim else read_labelled(args.labelled)
    transfers = disjoint_copies(transfers, args.copies)
    if args.benign:
        transfers = add_benign(transfers, seed=args.seed)
    truth_rows = {i for i, t in enumerate(transfers) if t.laundering}
    truth_accounts = {a for t in transfers if t.laundering for a in (t.source, t.target)}
    with tempfile.TemporaryDirectory() as scratch:
        edges = args.edges or Path(scratch) / "edges.csv"
        write_unlabelled(transfers, edges)
        started = time.perf_counter()
        with open(edges, newline="", encoding="utf-8") as f:
            table = read_transfers(f)
        read_s = time.perf_counter() - started
        report = analyze_transfers(table)
        total_s = time.perf_counter() - started
    if args.out:
        write_report(report, args.out)
    flagged_rows = {row for row, _ in report.flagged_transfers()}
    flagged_accounts = {table.accounts[a] for a, _ in report.flagged_accounts()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(transfers):,} transfers ({len(truth_rows):,} laundering), "
        f"{table.n_accounts:,} accounts ({len(truth_accounts):,} laundering); "
        f"read {read_s:.1f} s, read+analyse {total_s:.1f} s, peak RSS {peak_mb:,.0f} MB"
    )
    p, r, f1 = prf(flagged_rows, truth_rows)  # type: ignore[arg-type]
    print(
        f"transfers: precision {p:.3f} recall {r:.3f} F1 {f1:.3f} ({len(flagged_rows):,} flagged)"
    )
    p, r, f1 = prf(flagged_accounts, truth_accounts)  # type: ignore[arg-type]
    print(
        f"accounts:  precision {p:.3f} recall {r:.3f} F1 {f1:.3f} "
        f"({len(flagged_accounts):,} flagged)"
    )
    rows_by: dict[str, set[int]] = defaultdict(set)
    for row, typology in report.flagged_transfers():
        rows_by[typology.value].add(row)
    for name, rows in sorted(rows_by.items()):
        hit = len(rows & truth_rows)
        print(f"  {name:<22} {len(rows):>6,} transfers flagged, {hit:>6,} laundering")
    kinds: dict[str, set[str]] = defaultdict(set)
    for t in transfers:
        if t.laundering and t.kind:
            kinds[t.kind] |= {t.source, t.target}
    if kinds:
        print("laundering accounts flagged, by the generator's pattern:")
    for kind, accounts in sorted(kinds.items()):
        print(f"  {kind:<22} {len(accounts & flagged_accounts):>6,} of {len(accounts):>6,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

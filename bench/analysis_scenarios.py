"""Ledger analysis on generated marketplaces (provenance.analysis.scenario).

``quality``: per-typology precision, recall and F1 of the ledger detectors, with their
fixed defaults, at several fraud rates.

``speed``: full analysis (read every event, build the graph, run every detector) at
several scales, each in a fresh process so that its peak resident memory is its own;
then an incremental run after 1 % new events (load the previous run's snapshot, read
only the new events, run the detectors again). Both count the evidence that recording
the findings as alerts draws (node-link JSON and its SHA-256): every finding's in a full
run, only those whose digest the last run did not leave in the snapshot in an
incremental one, which leaves the graph it read out of garbage collection as
``run_ledger_analysis`` does. Writing the snapshot is timed apart, outside the full run's total; the
incremental run's detectors are also timed one by one.
Events are read from a JSON-lines file of ledger entries, one ``{"entry": {...},
"seq": N}`` object a line, parsed as the ledger reader parses stored records.

``snapshot``: a graph of generated events written as a snapshot and read back, timed.

    .venv/bin/python -m bench.analysis_scenarios quality --events 100000
    .venv/bin/python -m bench.analysis_scenarios speed --scales 100000 300000 1000000
    .venv/bin/python -m bench.analysis_scenarios snapshot --events 1000000
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from provenance.analysis.findings import Typology
from provenance.analysis.ledger_detectors import (
    LedgerFinding,
    analyze_ledger,
    default_ledger_detectors,
    reuse_evidence,
)
from provenance.analysis.ledger_graph import LedgerGraph, heap_frozen
from provenance.analysis.scenario import generate, score
from provenance.entries import format_time

RATES = (0.005, 0.01, 0.05)


def quality(events: int, rates: tuple[float, ...], seed: int) -> None:
    typologies: list[Typology] = []
    rows: dict[float, dict[Typology, tuple[float, float, float, int, int]]] = {}
    for rate in rates:
        scenario, stream = generate(events, fraud_rate=rate, seed=seed)
        graph = LedgerGraph()
        for event in stream:
            graph.apply(*event)
        findings = analyze_ledger(graph)
        scores = score(findings, scenario.truth)
        typologies = sorted(scores)
        rows[rate] = {
            t: (s.precision, s.recall, s.f1, s.cases, s.findings) for t, s in scores.items()
        }
        print(
            f"fraud rate {rate:.3f}: {scenario.events:,} events, {scenario.sales:,} sales, "
            f"{len(scenario.truth)} cases, {len(findings)} findings",
            flush=True,
        )
    header = " | ".join(f"rate {r:g}: P / R / F1 (cases)" for r in rates)
    print(f"\n| typology | {header} |")
    print("| --- |" + " --- |" * len(rates))
    for t in typologies:
        cells = []
        for r in rates:
            p, rc, f1, cases, _ = rows[r][t]
            cells.append(f"{p:.2f} / {rc:.2f} / {f1:.2f} ({cases})")
        print(f"| {t.value} | " + " | ".join(cells) + " |")


def write_events(path: Path, later: Path, events: int, seed: int) -> tuple[int, int]:
    """The scenario's events as ledger entries, one JSON object a line: the first
    ``events`` into ``path``, 1 % more into ``later``."""
    scenario, stream = generate(events + events // 100, fraud_rate=0.01, seed=seed)
    with open(path, "wb") as first, open(later, "wb") as second:
        for seq, kind, moment, actor, body in stream:
            out = first if seq < events else second
            entry = {
                "v": 1,
                "type": kind,
                "time": format_time_epoch(moment),
                "actor": actor,
                "body": body,
            }
            out.write(orjson.dumps({"entry": entry, "seq": seq}))
            out.write(b"\n")
    return scenario.events, scenario.sales


def format_time_epoch(seconds: int) -> str:
    return format_time(datetime.fromtimestamp(seconds, UTC))


def _events(path: Path) -> Iterator[tuple[int, str, int, str, dict[str, Any]]]:
    from provenance.analysis.ledger_graph import _epoch

    with open(path, "rb") as f:
        for line in f:
            record = orjson.loads(line)
            entry = record["entry"]
            yield record["seq"], entry["type"], _epoch(entry["time"]), entry["actor"], entry["body"]


def _evidence(findings: list[LedgerFinding]) -> int:
    """What recording the findings as alerts draws: the node-link evidence and its
    SHA-256 of every finding whose digest is not known from the last run (all of them
    in a full run). Returns how many."""
    drawn = 0
    for finding in findings:
        if finding.known_evidence_sha256 is None:
            finding.evidence_with_sha256()
            drawn += 1
    return drawn


def child_full(path: Path, snapshot: Path) -> None:
    started = time.perf_counter()
    graph = LedgerGraph()
    count = 0
    for event in _events(path):
        graph.apply(*event)
        count += 1
    read = time.perf_counter()
    findings = analyze_ledger(graph)
    detected = time.perf_counter()
    _evidence(findings)
    done = time.perf_counter()
    raw = graph.to_bytes()
    snapshot.write_bytes(raw)
    written = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{count} {read - started:.2f} {detected - read:.2f} {done - detected:.2f} "
        f"{done - started:.2f} {peak:.0f} {len(findings)} {written - done:.2f} "
        f"{len(raw) / 1e6:.0f}"
    )


def child_incremental(path: Path, snapshot: Path) -> None:
    started = time.perf_counter()
    graph = LedgerGraph.from_bytes(snapshot.read_bytes())
    loaded = time.perf_counter()
    with heap_frozen():
        _incremental(path, graph, started, loaded)


def _incremental(path: Path, graph: LedgerGraph, started: float, loaded: float) -> None:
    count = 0
    for event in _events(path):
        graph.apply(*event)
        count += 1
    read = time.perf_counter()
    # analyze_ledger's loop, each detector timed.
    graph.flush()
    findings: list[LedgerFinding] = []
    spent = []
    flushed = time.perf_counter()
    spent.append(f"flush={flushed - read:.2f}")
    for detector in default_ledger_detectors():
        before = time.perf_counter()
        findings.extend(detector.detect(graph))
        spent.append(f"{type(detector).__name__}={time.perf_counter() - before:.2f}")
    before = time.perf_counter()
    reuse_evidence(graph, findings)
    detected = time.perf_counter()
    spent.append(f"reuse_evidence={detected - before:.2f}")
    drawn = _evidence(findings)
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{count} {loaded - started:.2f} {read - loaded:.2f} {detected - read:.2f} "
        f"{done - detected:.2f} {done - started:.2f} {peak:.0f} {len(findings)} {drawn} "
        f"{','.join(spent)}"
    )


def snapshot_speed(events: int, seed: int) -> None:
    """The snapshot alone: a graph of ``events`` generated events (sales flushed), then
    written and read back."""
    _, stream = generate(events, fraud_rate=0.01, seed=seed)
    graph = LedgerGraph()
    for event in stream:
        graph.apply(*event)
    graph.flush()
    started = time.perf_counter()
    raw = graph.to_bytes()
    written = time.perf_counter()
    LedgerGraph.from_bytes(raw)
    read = time.perf_counter()
    print(
        f"{events:,} events: write {written - started:.2f} s, read {read - written:.2f} s, "
        f"{len(raw) / 1e6:,.0f} MB"
    )


def _child(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.analysis_scenarios", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.split()


def speed(scales: list[int], seed: int) -> None:
    print(
        "| ledger events | sales | read + build | detectors | evidence | total | peak RSS "
        "| findings | snapshot: write, size |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    incremental = []
    with tempfile.TemporaryDirectory() as folder:
        for scale in scales:
            path = Path(folder) / f"events-{scale}.jsonl"
            later = Path(folder) / f"later-{scale}.jsonl"
            snapshot = Path(folder) / f"snapshot-{scale}"
            _, sales = write_events(path, later, scale, seed)
            full = _child("full", str(path), str(snapshot))
            count, read, detect, evidence, total, peak, findings, write, size = full
            print(
                f"| {int(count):,} | {sales:,} | {float(read):.2f} s | {float(detect):.2f} s | "
                f"{float(evidence):.2f} s | {float(total):.2f} s | {float(peak):,.0f} MB | "
                f"{int(findings):,} | {float(write):.2f} s, {int(size):,} MB |",
                flush=True,
            )
            inc = _child("incremental", str(later), str(snapshot))
            incremental.append((scale, inc, float(total), float(read) + float(detect)))
            path.unlink()
            later.unlink()
    print(
        "\n| after | new events | load snapshot | read new | detectors | evidence (drawn) "
        "| total | share of full (of its read + detectors) | peak RSS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for scale, inc, full_total, full_bare in incremental:
        count, load, read, detect, evidence, total, peak, findings, drawn, _ = inc
        print(
            f"| {scale:,} | {int(count):,} | {float(load):.2f} s | {float(read):.2f} s | "
            f"{float(detect):.2f} s | {float(evidence):.2f} s ({int(drawn):,} of "
            f"{int(findings):,}) | {float(total):.2f} s | {float(total) / full_total:.1%} "
            f"({float(total) / full_bare:.1%}) | {float(peak):,.0f} MB |"
        )
    print()
    for scale, inc, _, _ in incremental:
        print(f"detectors after {scale:,}: {inc[9].replace(',', ', ')} (s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--events", type=int, default=100_000)
    q.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    q.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("speed")
    s.add_argument("--scales", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    s.add_argument("--seed", type=int, default=1)
    f = sub.add_parser("full")
    f.add_argument("path", type=Path)
    f.add_argument("snapshot", type=Path)
    n = sub.add_parser("snapshot")
    n.add_argument("--events", type=int, default=1_000_000)
    n.add_argument("--seed", type=int, default=1)
    i = sub.add_parser("incremental")
    i.add_argument("path", type=Path)
    i.add_argument("snapshot", type=Path)
    args = parser.parse_args()
    if args.command == "quality":
        quality(args.events, tuple(args.rates), args.seed)
    elif args.command == "speed":
        speed(args.scales, args.seed)
    elif args.command == "snapshot":
        snapshot_speed(args.events, args.seed)
    elif args.command == "full":
        child_full(args.path, args.snapshot)
    else:
        child_incremental(args.path, args.snapshot)


if __name__ == "__main__":
    main()

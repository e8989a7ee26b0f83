"""Verify before sale, in-process, against a store of a million codes.

Setup (not measured; its rates are printed): the store of :mod:`bench._codes_common`,
one million codes by default, with a checkpoint over every entry, on SQLite and on a
fresh PostgreSQL database.

Measured, each on SQLite and PostgreSQL:

single
    One ``verify_codes`` call per code, its ``CodeQuery`` built by ``CodeQuery.from_raw``
    inside the timing, in a fresh ``Session`` (as a request has) on the engine the app's
    verify reads through (``webapp.database.read_engine``: on PostgreSQL autocommit
    without pre-ping), with the app's cache of tree hashes, merchant approved. The
    verdict carries the custody chain and the inclusion proofs of its entries against the
    checkpoint. The codes are drawn over the whole store: 80% allowed, 10% already sold,
    5% never issued, 5% a known serial with another PIN. Then the same codes again by
    fingerprint (``CodeQuery(fingerprint)``, no serial fingerprint). Baseline, timed
    alternately with each call: fetching the code's row by primary key through the same
    engine (one ``SELECT`` on a pooled connection). Targets: p50 <= 1 ms, p99 <= 5 ms.

batch
    One ``verify_codes`` call with 10,000 queries (built by ``from_raw`` inside the
    timing) drawn in the same mix, proofs included. Baseline: fetching those 10,000 code
    rows by primary key, 500 per ``SELECT ... IN``. Target: <= 1 s.

Every verdict is checked (decision, reasons, one proof per custody entry, nothing
pending) outside the timing. On PostgreSQL the store is analyzed once built (see
``bench._codes_common.analyze``; ``--no-analyze`` skips it). ``--profile`` adds where the
time of a single verify goes (session, statements, Python) and cProfile tables.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, bindparam, event, select
from sqlalchemy.orm import Session

from bench._codes_common import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CODES,
    EXPECTED,
    FINGERPRINT_KEY,
    ISSUER,
    MERCHANT,
    PRODUCT,
    Kind,
    Layout,
    Percentiles,
    Sample,
    StoreReport,
    add_store_options,
    ms,
    open_store,
    samples,
)
from bench._common import (
    NOW,
    Database,
    add_database_options,
    database_kinds,
    header,
    met,
    server_version,
    table,
)
from provenance.codes import Code
from provenance.fingerprints import code_fingerprint
from provenance.verdict import CodeQuery, NodeCache, VerifyResult, verify_codes
from webapp.database import read_engine

MODULE = "bench.codes_verify"
P50_TARGET_MS = 1.0
P99_TARGET_MS = 5.0
BATCH_TARGET_S = 1.0
_IN_CHUNK = 500


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- checks ----------------------------------------------------------------------------------


def check(result: VerifyResult, expected: Sequence[str]) -> None:
    """Raises AssertionError if a verdict is not the one its code should get, or if an
    entry behind it lacks an inclusion proof."""
    for verdict, want in zip(result.verdicts, expected, strict=True):
        got = (
            "allow"
            if verdict.decision.value == "allow"
            else ",".join(r.code.value for r in verdict.reasons)
        )
        if got != want:
            raise AssertionError(f"verdict {got!r}, expected {want!r}")
        for step in verdict.custody:
            if step.seq not in result.proofs.entries:
                raise AssertionError(f"entry {step.seq} behind a verdict has no inclusion proof")
    if result.proofs.pending:
        raise AssertionError("entries after the checkpoint: the store was not checkpointed")


def expected_by_fingerprint(kind: Kind) -> str:
    # Without the serial fingerprint, a known serial with another PIN is just unknown.
    return EXPECTED[Kind.UNKNOWN] if kind is Kind.WRONG_PIN else EXPECTED[kind]


# --- measurements ----------------------------------------------------------------------------


@dataclass(slots=True)
class SingleRun:
    verify: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    by_kind: dict[Kind, list[float]] = field(default_factory=dict)
    custody_steps: dict[Kind, int] = field(default_factory=dict)
    proof_hashes: dict[Kind, int] = field(default_factory=dict)


def _row_fetcher(engine: Engine) -> Callable[[bytes], None]:
    table_ = Code.__table__
    statement = select(table_).where(table_.c.fingerprint == bindparam("fp"))

    def fetch(fp: bytes) -> None:
        with engine.connect() as conn:
            conn.execute(statement, {"fp": fp}).all()

    return fetch


def _rows_fetcher(engine: Engine) -> Callable[[list[bytes]], int]:
    table_ = Code.__table__
    statement = select(table_).where(table_.c.fingerprint.in_(bindparam("fps", expanding=True)))

    def fetch(fps: list[bytes]) -> int:
        found = 0
        with engine.connect() as conn:
            for start in range(0, len(fps), _IN_CHUNK):
                found += len(conn.execute(statement, {"fps": fps[start : start + _IN_CHUNK]}).all())
        return found

    return fetch


def _fingerprint(sample: Sample) -> bytes:
    return code_fingerprint(FINGERPRINT_KEY, ISSUER, PRODUCT, sample.serial, sample.pin)


def single(
    engine: Engine, chosen: list[Sample], nodes: NodeCache, *, by_fingerprint: bool
) -> SingleRun:
    run = SingleRun()
    fetch_row = _row_fetcher(engine)
    label = "by fingerprint" if by_fingerprint else "by raw code"
    every = max(len(chosen) // 5, 1)
    start_all = time.perf_counter()
    for n, sample in enumerate(chosen, 1):
        fp = _fingerprint(sample)
        t0 = time.perf_counter()
        fetch_row(fp)
        t1 = time.perf_counter()
        if by_fingerprint:
            query = CodeQuery(fp)
        else:
            query = CodeQuery.from_raw(FINGERPRINT_KEY, ISSUER, PRODUCT, sample.serial, sample.pin)
        with Session(engine) as session:
            result = verify_codes(session, [query], merchant=MERCHANT, now=NOW, nodes=nodes)
        t2 = time.perf_counter()
        run.baseline.append(t1 - t0)
        run.verify.append(t2 - t1)
        run.by_kind.setdefault(sample.kind, []).append(t2 - t1)
        want = expected_by_fingerprint(sample.kind) if by_fingerprint else EXPECTED[sample.kind]
        check(result, [want])
        verdict = result.verdicts[0]
        run.custody_steps[sample.kind] = len(verdict.custody)
        run.proof_hashes[sample.kind] = sum(len(p.proof) for p in result.proofs.entries.values())
        if n % every == 0:
            elapsed = time.perf_counter() - start_all
            say(f"    single {label}: {n:,}/{len(chosen):,} ({elapsed:.0f} s)")
    return run


@dataclass(slots=True)
class BatchRun:
    verify: list[float] = field(default_factory=list)
    queries: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)
    proof_hashes: list[int] = field(default_factory=list)


def batch(engine: Engine, layout: Layout, nodes: NodeCache, size: int, rounds: int) -> BatchRun:
    run = BatchRun()
    fetch_rows = _rows_fetcher(engine)
    for r in range(-1, rounds):  # round -1 warms the caches up and is not counted
        chosen = samples(layout, size, seed=1000 + r)
        fps = [_fingerprint(s) for s in chosen]
        t0 = time.perf_counter()
        fetch_rows(fps)
        t1 = time.perf_counter()
        queries = [
            CodeQuery.from_raw(FINGERPRINT_KEY, ISSUER, PRODUCT, s.serial, s.pin) for s in chosen
        ]
        t2 = time.perf_counter()
        with Session(engine) as session:
            result = verify_codes(session, queries, merchant=MERCHANT, now=NOW, nodes=nodes)
        t3 = time.perf_counter()
        check(result, [EXPECTED[s.kind] for s in chosen])
        if r < 0:
            say(f"    batch warm-up: {t3 - t1:.2f} s (baseline {t1 - t0:.2f} s)")
            continue
        run.baseline.append(t1 - t0)
        run.queries.append(t2 - t1)
        run.verify.append(t3 - t1)
        run.entries.append(len(result.proofs.entries))
        run.proof_hashes.append(sum(len(p.proof) for p in result.proofs.entries.values()))
        say(
            f"    batch {r + 1}/{rounds}: {size:,} codes verified in {t3 - t1:.2f} s "
            f"(baseline {t1 - t0:.2f} s), {len(result.proofs.entries):,} entries proved"
        )
    return run


@dataclass(slots=True)
class _DriverClock:
    """Counts statements and the seconds spent inside the database driver."""

    statements: int = 0
    seconds: float = 0.0
    _start: float = 0.0

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def detach(self, engine: Engine) -> None:
        event.remove(engine, "before_cursor_execute", self._before)
        event.remove(engine, "after_cursor_execute", self._after)

    def _before(self, *_: object) -> None:
        self._start = time.perf_counter()

    def _after(self, *_: object) -> None:
        self.seconds += time.perf_counter() - self._start
        self.statements += 1


def breakdown(engine: Engine, layout: Layout, nodes: NodeCache) -> None:
    """Print, per single verify of an allowed code, the statements and the time in the driver."""
    chosen = [s for s in samples(layout, 600, seed=76) if s.kind is Kind.ALLOWED][:300]
    clock = _DriverClock()
    clock.attach(engine)
    sessions = verifying = in_driver = 0.0
    statements = 0
    try:
        for sample in chosen:
            query = sample.raw_query()
            t0 = time.perf_counter()
            with Session(engine) as session:
                session.connection()
                before = (clock.statements, clock.seconds)
                t1 = time.perf_counter()
                verify_codes(session, [query], merchant=MERCHANT, now=NOW, nodes=nodes)
                t2 = time.perf_counter()
                statements += clock.statements - before[0]
                in_driver += clock.seconds - before[1]
            sessions += (t1 - t0) + (time.perf_counter() - t2)
            verifying += t2 - t1
    finally:
        clock.detach(engine)
    n = len(chosen)
    print(
        f"Breakdown of {n} single verifies of allowed codes (from_raw excluded): "
        f"{(sessions + verifying) / n * 1000:.3f} ms each: "
        f"{sessions / n * 1000:.3f} ms opening and closing the session (pool checkout, BEGIN, "
        f"ROLLBACK); verify_codes {verifying / n * 1000:.3f} ms, of which "
        f"{statements / n:.1f} SELECTs take {in_driver / n * 1000:.3f} ms in the driver's "
        "execute (SQLite steps rows while fetching, which counts as Python here) and "
        f"{(verifying - in_driver) / n * 1000:.3f} ms go to Python (SQLAlchemy, verdict.py).\n"
    )


def profile(engine: Engine, layout: Layout, nodes: NodeCache, size: int) -> None:
    """Print where the time of single and batch verifies goes."""
    breakdown(engine, layout, nodes)
    chosen = samples(layout, 300, seed=77)
    profiler = cProfile.Profile()
    profiler.enable()
    for sample in chosen:
        with Session(engine) as session:
            verify_codes(session, [sample.raw_query()], merchant=MERCHANT, now=NOW, nodes=nodes)
    profiler.disable()
    _print_profile(f"profile: {len(chosen)} single verifies", profiler)
    chosen = samples(layout, size, seed=78)
    profiler = cProfile.Profile()
    profiler.enable()
    queries = [s.raw_query() for s in chosen]
    with Session(engine) as session:
        verify_codes(session, queries, merchant=MERCHANT, now=NOW, nodes=nodes)
    profiler.disable()
    _print_profile(f"profile: one batch of {size:,}", profiler)


def _print_profile(title: str, profiler: cProfile.Profile) -> None:
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(30)
        print(f"## {title}, by {order}\n```")
        print("\n".join(out.getvalue().splitlines()[:48]))
        print("```\n", flush=True)


# --- the run ---------------------------------------------------------------------------------


@dataclass(slots=True)
class DatabaseResult:
    label: str
    setup: StoreReport
    raw: SingleRun
    fingerprint: SingleRun
    batch: BatchRun


def measure(db: Database, setup: StoreReport, args: argparse.Namespace) -> DatabaseResult:
    layout = Layout(args.codes, args.batch_size)
    # As the app reads: one cache of tree hashes per process, and on PostgreSQL an engine
    # in autocommit without pre-ping (webapp.database.read_engine), which the baselines
    # use too.
    nodes = NodeCache()
    engine = read_engine(db.engine.url) or db.engine
    try:
        say(f"{db.label}: warming up")
        warm = samples(layout, min(300, args.single), seed=99)
        single(engine, warm, nodes, by_fingerprint=False)
        say(f"{db.label}: {args.single:,} single verifies by raw code")
        chosen = samples(layout, args.single, seed=2)
        raw = single(engine, chosen, nodes, by_fingerprint=False)
        say(f"{db.label}: {args.single:,} single verifies by fingerprint")
        by_fp = single(engine, chosen, nodes, by_fingerprint=True)
        say(f"{db.label}: {args.batches} batches of {args.batch_codes:,}")
        batches = batch(engine, layout, nodes, args.batch_codes, args.batches)
        if args.profile:
            profile(engine, layout, nodes, args.batch_codes)
    finally:
        if engine is not db.engine:
            engine.dispose()
    return DatabaseResult(db.label, setup, raw, by_fp, batches)


def report(result: DatabaseResult, args: argparse.Namespace) -> None:
    size = result.setup.checkpoint_size
    print(f"## {result.label}: {args.codes:,} codes, checkpoint of {size:,} entries\n")
    print(f"Setup (not measured by this benchmark); planner statistics: {result.setup.analyzed}.\n")
    table(
        ["phase", "codes", "seconds", "codes/s"],
        [
            [
                phase,
                f"{result.setup.counts[phase]:,}",
                f"{result.setup.seconds[phase]:.1f}",
                f"{result.setup.rate(phase):,.0f}",
            ]
            for phase in result.setup.seconds
        ],
    )
    rows = []
    for label, run in (("by raw code", result.raw), ("by fingerprint", result.fingerprint)):
        v, b = Percentiles.of(run.verify), Percentiles.of(run.baseline)
        rows.append(
            [
                f"single verify {label}, p50",
                ms(b.p50),
                ms(v.p50),
                f"{v.p50 / b.p50:.1f}x",
                "<= 1 ms",
                met(v.p50, P50_TARGET_MS, False),
            ]
        )
        rows.append(
            [f"single verify {label}, p90", ms(b.p90), ms(v.p90), f"{v.p90 / b.p90:.1f}x", "", ""]
        )
        rows.append(
            [
                f"single verify {label}, p99",
                ms(b.p99),
                ms(v.p99),
                f"{v.p99 / b.p99:.1f}x",
                "<= 5 ms",
                met(v.p99, P99_TARGET_MS, False),
            ]
        )
    bv = sorted(result.batch.verify)[len(result.batch.verify) // 2]
    bb = sorted(result.batch.baseline)[len(result.batch.baseline) // 2]
    bq = sorted(result.batch.queries)[len(result.batch.queries) // 2]
    rows.append(
        [
            f"batch verify of {args.batch_codes:,} (median of {len(result.batch.verify)})",
            f"{bb:.3f} s",
            f"{bv:.3f} s (from_raw {bq:.3f} s)",
            f"{bv / bb:.1f}x",
            "<= 1 s",
            met(bv, BATCH_TARGET_S, False),
        ]
    )
    print(
        f"Single verifies: {len(result.raw.verify):,} codes, each timed alternately with the "
        "baseline (the code's row by primary key). Batch: baseline is the 10,000 rows by "
        "primary key, 500 per SELECT.\n"
    )
    table(["figure", "baseline", "cardtrace", "ratio", "target", "met?"], rows)
    kinds = []
    for kind in Kind:
        for label, run in (("raw", result.raw), ("fingerprint", result.fingerprint)):
            if kind in run.by_kind:
                p = Percentiles.of(run.by_kind[kind])
                kinds.append(
                    [
                        kind.value,
                        label,
                        f"{p.n:,}",
                        ms(p.p50),
                        ms(p.p90),
                        ms(p.p99),
                        run.custody_steps[kind],
                        run.proof_hashes[kind],
                    ]
                )
    print("By kind of code (custody steps and proof hashes in the answer, per code):\n")
    table(["code", "query", "n", "p50", "p90", "p99", "custody steps", "proof hashes"], kinds)
    entries = sorted(result.batch.entries)[len(result.batch.entries) // 2]
    hashes = sorted(result.batch.proof_hashes)[len(result.batch.proof_hashes) // 2]
    print(
        f"A batch of {args.batch_codes:,} proves about {entries:,} entries "
        f"({hashes:,} proof hashes).\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--codes", type=int, default=DEFAULT_CODES, help="codes in the store (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="codes per issued batch (default: %(default)s)",
    )
    parser.add_argument(
        "--single",
        type=int,
        default=3000,
        help="single verifies timed, per query form (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-codes",
        type=int,
        default=10_000,
        help="codes per batch verify (default: %(default)s)",
    )
    parser.add_argument(
        "--batches", type=int, default=5, help="batch verifies timed (default: %(default)s)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 50,000 codes, 300 single verifies, 2 batches of 2,000",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print cProfile tables of single and batch verifies",
    )
    add_database_options(parser)
    add_store_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.codes, args.single, args.batches, args.batch_codes = 50_000, 300, 2, 2_000
    header("Verify before sale, in-process", MODULE)
    results = []
    for kind in database_kinds(args):
        with open_store(kind, args, say) as opened:
            if opened is None:
                continue
            db, setup = opened
            say(f"{db.label}: {server_version(db.engine)}")
            results.append(measure(db, setup, args))
            report(results[-1], args)


if __name__ == "__main__":
    main()

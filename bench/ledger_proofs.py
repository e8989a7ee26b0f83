"""Inclusion and consistency proof latency on a large log, read from the database.

Setup (not measured as proof time): a log of ``--size`` entries is built with
``Ledger.append_as_platform`` in transactions of ``--build-batch`` entries; its build
rate is reported beside pymerkle's append rate. On PostgreSQL, ``ANALYZE`` runs after
the first batch, as autovacuum would (``--no-analyze`` skips it).

Measured, per proof, on SQLite and PostgreSQL:

* ``Ledger.inclusion_proof(session, seq, size)`` for random ``seq`` at the full size,
* ``Ledger.consistency_proof(session, old, size)`` for random ``old``,

each in its own ``Session`` (pool checkout, BEGIN, the head and node SELECTs, ROLLBACK),
as a request would run it. Baselines in the same run:

* floor: the driver alone running one ``SELECT ... WHERE id IN (...)`` for the same node
  ids on a pooled connection (the irreducible database round trip);
* peer: pymerkle's ``SqliteTree`` holding the same records, ``prove_inclusion`` and
  ``prove_consistency`` with its in-memory subroot cache cleared before each proof
  ("cold", i.e. from the database, like ours) and, for information, warm.

Targets: <= 1 ms per proof on SQLite, <= 2 ms on PostgreSQL, >= 100x pymerkle.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymerkle import SqliteTree
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench._common import (
    NOTE_TYPE,
    NOW,
    Database,
    Latency,
    Progress,
    add_database_options,
    analyze,
    database_kinds,
    header,
    make_ledger,
    met,
    note_body,
    open_database,
    prepare_ledger,
    rate,
    server_version,
    table,
)
from provenance.db import write_transaction
from provenance.ledger import Ledger, LedgerEntry
from provenance.merkle import (
    consistency_plan,
    inclusion_plan,
    plan_node_ids,
    verify_consistency,
    verify_inclusion,
)

MODULE = "bench.ledger_proofs"
TARGET_MS = {"SQLite": 1.0, "PostgreSQL": 2.0}
PEER_TARGET = 100.0
CHECKED_PROOFS = 200


@dataclass(frozen=True, slots=True)
class ProofResult:
    database: str
    version: str
    size: int
    build_rate: float
    inclusion: Latency
    consistency: Latency
    inclusion_floor: Latency
    consistency_floor: Latency
    inclusion_shared: Latency
    consistency_shared: Latency


@dataclass(frozen=True, slots=True)
class PeerResult:
    size: int
    append_rate: float
    inclusion_cold: Latency
    consistency_cold: Latency
    inclusion_warm: Latency
    consistency_warm: Latency


def build(db: Database, ledger: Ledger, size: int, batch: int, stats: bool = True) -> float:
    """Append ``size`` entries in all (genesis included); returns entries per second.

    With ``stats``, PostgreSQL's planner statistics are collected after the first batch,
    as autovacuum would do on a default server.
    """
    prepare_ledger(db.engine, ledger, actors=())
    progress = Progress(f"{db.label}: building the log (setup)", size)
    with Session(db.engine) as session:
        done = ledger.tree_head(session).size
    elapsed = 0.0
    while done < size:
        n = min(batch, size - done)
        statements = [ledger.statement(NOTE_TYPE, note_body(done + i), now=NOW) for i in range(n)]
        start = time.perf_counter()
        with Session(db.engine) as session, write_transaction(session):
            ledger.append_as_platform(session, statements, now=NOW)
        elapsed += time.perf_counter() - start
        if stats and done <= 1:
            analyze(db.engine)
        done += n
        progress.update(done)
    return (size - 1) / elapsed


def _timed(calls: int, operation: Callable[[int], object], label: str) -> list[float]:
    times: list[float] = []
    progress = Progress(label, calls)
    for i in range(calls):
        start = time.perf_counter()
        operation(i)
        times.append(time.perf_counter() - start)
        progress.update(i + 1)
    return times


def measure_ours(
    db: Database, ledger: Ledger, size: int, proofs: int, seed: int, build_rate: float
) -> ProofResult:
    rng = random.Random(seed)
    leaves = [rng.randrange(size) for _ in range(proofs)]
    olds = [rng.randrange(1, size) for _ in range(proofs)]
    engine = db.engine

    def inclusion(i: int) -> list[bytes]:
        with Session(engine) as session:
            return ledger.inclusion_proof(session, leaves[i], size)

    def consistency(i: int) -> list[bytes]:
        with Session(engine) as session:
            return ledger.consistency_proof(session, olds[i], size)

    # Warm the pool, the statement caches and the database's pages alike for both sides.
    for i in range(min(50, proofs)):
        inclusion(i)
        consistency(i)
    _check(db, ledger, size, leaves[:CHECKED_PROOFS], olds[:CHECKED_PROOFS])

    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    floor_conn: Any = engine.raw_connection()

    def floor(ids: Sequence[int]) -> None:
        cur = floor_conn.cursor()
        marks = ", ".join([mark] * len(ids))
        # Only placeholders are formatted in; the ids are bound parameters.
        cur.execute(f"SELECT id, hash FROM merkle_node WHERE id IN ({marks})", ids)  # noqa: S608
        cur.fetchall()
        cur.close()
        floor_conn.rollback()

    inclusion_ids = [sorted(plan_node_ids(inclusion_plan(s, size))) for s in leaves]
    consistency_ids = [sorted(plan_node_ids(consistency_plan(o, size))) for o in olds]

    label = f"{db.label} at {size:,}"
    ours_inc: list[float] = []
    ours_con: list[float] = []
    floor_inc: list[float] = []
    floor_con: list[float] = []

    def one_round(r: int, part: range) -> None:
        n, at = len(part), part.start
        ours_inc.extend(_timed(n, lambda i: inclusion(at + i), f"{label}: inclusion {r}/4"))
        floor_inc.extend(_timed(n, lambda i: floor(inclusion_ids[at + i]), f"{label}: floor"))
        ours_con.extend(_timed(n, lambda i: consistency(at + i), f"{label}: consistency {r}/4"))
        floor_con.extend(_timed(n, lambda i: floor(consistency_ids[at + i]), f"{label}: floor"))

    # Alternate ours and the floor in rounds, so that both see the same machine load.
    step = -(-proofs // 4)
    for r, begin in enumerate(range(0, proofs, step), start=1):
        one_round(r, range(begin, min(proofs, begin + step)))
    floor_conn.close()

    with Session(engine) as session:
        shared_inc = _timed(
            proofs, lambda i: ledger.inclusion_proof(session, leaves[i], size), f"{label}: shared"
        )
        shared_con = _timed(
            proofs, lambda i: ledger.consistency_proof(session, olds[i], size), f"{label}: shared"
        )
    return ProofResult(
        db.label,
        server_version(engine),
        size,
        build_rate,
        Latency.of(ours_inc),
        Latency.of(ours_con),
        Latency.of(floor_inc),
        Latency.of(floor_con),
        Latency.of(shared_inc),
        Latency.of(shared_con),
    )


def _check(db: Database, ledger: Ledger, size: int, leaves: list[int], olds: list[int]) -> None:
    """The proofs being timed are real: a sample of them verifies."""
    with Session(db.engine) as session:
        root = ledger.root_at(session, size)
        for seq in leaves:
            leaf = session.scalar(select(LedgerEntry.leaf_hash).where(LedgerEntry.seq == seq))
            assert leaf is not None
            verify_inclusion(leaf, seq, size, ledger.inclusion_proof(session, seq, size), root)
        for old in olds:
            old_root = ledger.root_at(session, old)
            verify_consistency(
                old, size, old_root, root, ledger.consistency_proof(session, old, size)
            )


def _records(db: Database, size: int, page: int = 10_000) -> Iterator[list[bytes]]:
    with Session(db.engine) as session:
        for start in range(0, size, page):
            yield list(
                session.scalars(
                    select(LedgerEntry.record)
                    .where(LedgerEntry.seq >= start, LedgerEntry.seq < min(size, start + page))
                    .order_by(LedgerEntry.seq)
                )
            )


def measure_pymerkle(
    db: Database, ledger: Ledger, folder: Path, size: int, proofs: int, seed: int
) -> PeerResult:
    """pymerkle's SqliteTree over the same records; its root must equal ours."""
    tree = SqliteTree(str(folder / "pymerkle.db"))
    progress = Progress(f"pymerkle: appending {size:,} records (setup)", size)
    elapsed = 0.0
    done = 0
    for chunk in _records(db, size):
        start = time.perf_counter()
        tree.append_entries(chunk)
        elapsed += time.perf_counter() - start
        done += len(chunk)
        progress.update(done)
    with Session(db.engine) as session:
        if tree.get_root(size) != ledger.root_at(session, size):
            raise SystemExit("pymerkle and cardtrace disagree on the root: not comparable")
    rng = random.Random(seed + 1)
    leaves = [rng.randrange(size) for _ in range(proofs)]
    olds = [rng.randrange(1, size) for _ in range(proofs)]

    def inclusion_cold(i: int) -> None:
        tree.cache_clear()
        tree.prove_inclusion(leaves[i] + 1, size)

    def consistency_cold(i: int) -> None:
        tree.cache_clear()
        tree.prove_consistency(olds[i], size)

    inc_cold = _timed(proofs, inclusion_cold, "pymerkle: inclusion, cold")
    con_cold = _timed(proofs, consistency_cold, "pymerkle: consistency, cold")
    # Warm: the same proofs again, with the cache each earlier proof filled.
    for i in range(proofs):
        tree.prove_inclusion(leaves[i] + 1, size)
        tree.prove_consistency(olds[i], size)
    inc_warm = _timed(proofs, lambda i: tree.prove_inclusion(leaves[i] + 1, size), "warm")
    con_warm = _timed(proofs, lambda i: tree.prove_consistency(olds[i], size), "warm")
    tree.close()
    return PeerResult(
        size,
        size / elapsed,
        Latency.of(inc_cold),
        Latency.of(con_cold),
        Latency.of(inc_warm),
        Latency.of(con_warm),
    )


def report(results: list[ProofResult], peer: PeerResult | None) -> None:
    if not results:
        print("No database was measured.")
        return
    rows: list[list[object]] = []
    for r in results:
        target = TARGET_MS[r.database]
        for kind, ours, floor in (
            ("inclusion", r.inclusion, r.inclusion_floor),
            ("consistency", r.consistency, r.consistency_floor),
        ):
            rows.append(
                [
                    f"{r.version}, {kind} proof at {r.size:,}",
                    f"{ours.mean:.3f} ms mean (p50 {ours.p50:.3f}, p99 {ours.p99:.3f})",
                    f"driver floor {floor.mean:.3f} ms mean (p50 {floor.p50:.3f}, "
                    f"p99 {floor.p99:.3f})",
                    f"{ours.mean / floor.mean:.1f}x floor",
                    f"<= {target:g} ms",
                    met(ours.mean, target, higher_is_better=False),
                ]
            )
    if peer is not None:
        for r in results:
            if r.database != "SQLite":
                continue
            at = "" if peer.size == r.size else f" (pymerkle at {peer.size:,})"
            for kind, ours, cold, warm in (
                ("inclusion", r.inclusion, peer.inclusion_cold, peer.inclusion_warm),
                ("consistency", r.consistency, peer.consistency_cold, peer.consistency_warm),
            ):
                speedup = cold.mean / ours.mean
                rows.append(
                    [
                        f"{r.version}, {kind} proof at {r.size:,} vs pymerkle{at}",
                        f"{ours.mean:.3f} ms mean",
                        f"pymerkle SqliteTree, cold cache, {cold.mean:.1f} ms mean "
                        f"(p50 {cold.p50:.1f}, p99 {cold.p99:.1f})",
                        f"{speedup:,.0f}x faster",
                        f">= {PEER_TARGET:.0f}x",
                        met(speedup, PEER_TARGET),
                    ]
                )
                rows.append(
                    [
                        f"{r.version}, {kind} proof at {r.size:,} vs warm pymerkle{at}",
                        f"{ours.mean:.3f} ms mean",
                        f"pymerkle SqliteTree, warm in-memory cache, {warm.mean:.3f} ms mean "
                        f"(p50 {warm.p50:.3f}, p99 {warm.p99:.3f})",
                        f"{warm.mean / ours.mean:,.1f}x",
                        "(info)",
                        "",
                    ]
                )
    print("## Proof latency (each proof in its own Session)\n")
    table(["figure", "ours", "baseline", "ratio", "target", "met?"], rows)

    extra: list[list[object]] = []
    for r in results:
        extra.append(
            [
                f"{r.version}, all proofs in one Session",
                f"inclusion {r.inclusion_shared}",
                f"consistency {r.consistency_shared}",
            ]
        )
        extra.append([f"{r.version}, building the log", rate(r.build_rate), "append_as_platform"])
    if peer is not None:
        extra.append(
            [
                f"pymerkle SqliteTree, appending {peer.size:,} records",
                rate(peer.append_rate),
                "append_entries in chunks of 10,000: SHA-256 and INSERT only (no signing, "
                "chaining or tree nodes stored)",
            ]
        )
    table(["figure", "value", "note"], extra)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=1_000_000, help="log size (default 1,000,000)")
    parser.add_argument(
        "--proofs", type=int, default=2_000, help="proofs of each kind timed (default 2,000)"
    )
    parser.add_argument(
        "--build-batch", type=int, default=10_000, help="entries per build transaction"
    )
    parser.add_argument(
        "--pymerkle-size",
        type=int,
        default=None,
        help="pymerkle tree size (default: --size); 0 skips pymerkle",
    )
    parser.add_argument(
        "--pymerkle-proofs", type=int, default=40, help="pymerkle proofs of each kind (default 40)"
    )
    parser.add_argument("--seed", type=int, default=6962, help="random seed for the proof indices")
    parser.add_argument(
        "--quick", action="store_true", help="a 20,000-entry log and 300 proofs: seconds"
    )
    add_database_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.proofs, args.pymerkle_proofs = 20_000, 300, 20
    pymerkle_size = args.size if args.pymerkle_size is None else args.pymerkle_size
    if not 0 <= pymerkle_size <= args.size:
        raise SystemExit("--pymerkle-size must be between 0 and --size")

    header("Ledger proofs", MODULE)
    print(
        f"log of {args.size:,} entries, {args.proofs:,} proofs of each kind; pymerkle at "
        f"{pymerkle_size:,} entries, {args.pymerkle_proofs} proofs of each kind\n",
        flush=True,
    )
    results: list[ProofResult] = []
    peer: PeerResult | None = None
    for kind in database_kinds(args):
        with open_database(kind, args) as db:
            if db is None:
                continue
            ledger = make_ledger()
            try:
                build_rate = build(db, ledger, args.size, args.build_batch, not args.no_analyze)
                results.append(
                    measure_ours(db, ledger, args.size, args.proofs, args.seed, build_rate)
                )
                done = results[-1]
                print(
                    f"  {db.label}: built at {rate(build_rate)}; inclusion {done.inclusion}; "
                    f"consistency {done.consistency}",
                    flush=True,
                )
                if peer is None and pymerkle_size and kind == "sqlite":
                    folder = Path(str(db.engine.url.database)).parent
                    peer = measure_pymerkle(
                        db, ledger, folder, pymerkle_size, args.pymerkle_proofs, args.seed
                    )
                    print(
                        f"  pymerkle: appended at {rate(peer.append_rate)}; cold inclusion "
                        f"{peer.inclusion_cold}; cold consistency {peer.consistency_cold}",
                        flush=True,
                    )
            finally:
                ledger.close()
    print()
    report(results, peer)


if __name__ == "__main__":
    main()

"""Batched append throughput against a bare loop doing the irreducible work.

Two modes, each on SQLite and PostgreSQL, in transactions of ``--batch`` entries:

actor
    Entries arrive as a client sends them (statement JSON and base64 signature, signed
    beforehand: signing is setup). Measured: ``SignedStatement.from_json`` (RFC 8785
    canonicalisation) and ``Ledger.append`` (validate, authorise, verify the signature,
    chain, update the Merkle tree, write) and the commit. The bare loop does, per entry,
    ``rfc8785.dumps`` of the same statement JSON, one Ed25519 verification, SHA-256 of
    the bytes and a raw ``executemany`` INSERT of them into a plain table, committed
    per batch. Target: the ledger at >= 70% of the bare loop's rate.

platform
    ``Ledger.append_as_platform`` on statements (it signs them). The bare loop does
    ``rfc8785.dumps``, one Ed25519 signature, SHA-256 and the raw INSERT. Target >= 50%.

Ledger and bare batches alternate, so both see the same machine load. The first batch
of each is a warm-up and is not counted; after it, PostgreSQL's statistics are collected
(``ANALYZE``, as autovacuum would do; ``--no-analyze`` skips it).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import pstats
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from sqlalchemy.orm import Session

from bench._common import (
    ACTOR,
    NOTE_TYPE,
    NOW,
    Database,
    Progress,
    RawTable,
    actor_key_id,
    add_database_options,
    analyze,
    database_kinds,
    header,
    make_ledger,
    met,
    note_body,
    open_database,
    party_key,
    prepare_ledger,
    rate,
    server_version,
    table,
)
from provenance.db import write_transaction
from provenance.entries import SIGNATURE_CONTEXT, SignedStatement, Statement
from provenance.ledger import Ledger

MODULE = "bench.ledger_append"
ACTOR_TARGET = 0.70
PLATFORM_TARGET = 0.50


@dataclass(slots=True)
class Phases:
    """Seconds spent in each phase, summed over the counted batches."""

    entries: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def total(self, *names: str) -> float:
        return sum(self.seconds[n] for n in names)


@dataclass(frozen=True, slots=True)
class ModeResult:
    database: str
    mode: str
    entries: int
    ledger: Phases
    bare: Phases


def _verify_split(pool: ThreadPoolExecutor, public: Any, pairs: list[tuple[bytes, bytes]]) -> None:
    half = len(pairs) // 2

    def check(part: list[tuple[bytes, bytes]]) -> None:
        for message, signature in part:
            public.verify(signature, message)

    list(pool.map(check, [pairs[:half], pairs[half:]]))


def run_actor(
    db: Database, ledger: Ledger, raw: RawTable, args: argparse.Namespace, seq0: int
) -> ModeResult:
    key = party_key(ACTOR)
    public = key.public_key()
    key_id = actor_key_id()
    batches = args.entries // args.batch + 1  # the first is the warm-up
    setup = Progress(f"{db.label} actor: signing entries (setup)", batches * args.batch)
    jsons: list[dict[str, Any]] = []
    sigs: list[bytes] = []
    for i in range(batches * args.batch):
        statement = Statement(NOTE_TYPE, NOW, ACTOR, key_id, False, note_body(i))
        jsons.append(statement.to_json())
        sigs.append(key.sign(SIGNATURE_CONTEXT + statement.to_bytes()))
        setup.update(i + 1)
    sigs_b64 = [base64.b64encode(s).decode("ascii") for s in sigs]

    ours, bare = Phases(), Phases()
    profiler = cProfile.Profile() if args.profile else None
    pool = ThreadPoolExecutor(2)
    progress = Progress(f"{db.label} actor", args.entries)
    seq = seq0
    for b in range(batches):
        lo, hi = b * args.batch, (b + 1) * args.batch
        counted = b > 0

        # The bare loop.
        t0 = time.perf_counter()
        payloads = [rfc8785.dumps(j) for j in jsons[lo:hi]]
        t1 = time.perf_counter()
        messages = [SIGNATURE_CONTEXT + p for p in payloads]
        for message, signature in zip(messages, sigs[lo:hi], strict=True):
            public.verify(signature, message)
        t2 = time.perf_counter()
        hashes = [hashlib.sha256(p).digest() for p in payloads]
        t3 = time.perf_counter()
        raw.insert(list(zip(range(seq, seq + len(payloads)), hashes, payloads, strict=True)))
        t4 = time.perf_counter()
        _verify_split(pool, public, list(zip(messages, sigs[lo:hi], strict=True)))
        t5 = time.perf_counter()
        seq += len(payloads)

        # The ledger.
        if profiler and counted:
            profiler.enable()
        u0 = time.perf_counter()
        batch = [
            SignedStatement.from_json(j, s)
            for j, s in zip(jsons[lo:hi], sigs_b64[lo:hi], strict=True)
        ]
        u1 = time.perf_counter()
        with Session(db.engine) as session, write_transaction(session):
            ledger.append(session, batch, now=NOW)
        u2 = time.perf_counter()
        if profiler:
            profiler.disable()

        if counted:
            bare.entries += hi - lo
            bare.add("canonicalise", t1 - t0)
            bare.add("verify", t2 - t1)
            bare.add("sha256", t3 - t2)
            bare.add("insert", t4 - t3)
            bare.add("verify_2_threads", t5 - t4)
            ours.entries += hi - lo
            ours.add("from_json", u1 - u0)
            ours.add("append_commit", u2 - u1)
            progress.update(ours.entries)
        elif not args.no_analyze:
            analyze(db.engine)
    pool.shutdown()
    if profiler:
        _print_profile(profiler, f"{db.label} actor: from_json + Ledger.append")
    return ModeResult(db.label, "actor", ours.entries, ours, bare)


def run_platform(
    db: Database, ledger: Ledger, raw: RawTable, args: argparse.Namespace, seq0: int
) -> ModeResult:
    key = ledger.platform.private_key
    batches = args.entries // args.batch + 1
    offset = 10 * batches * args.batch  # bodies distinct from the actor mode's
    statements = [
        ledger.statement(NOTE_TYPE, note_body(offset + i), now=NOW)
        for i in range(batches * args.batch)
    ]
    ours, bare = Phases(), Phases()
    profiler = cProfile.Profile() if args.profile else None
    progress = Progress(f"{db.label} platform", args.entries)
    seq = seq0
    for b in range(batches):
        part = statements[b * args.batch : (b + 1) * args.batch]
        counted = b > 0

        t0 = time.perf_counter()
        payloads = [rfc8785.dumps(s.to_json()) for s in part]
        t1 = time.perf_counter()
        signatures = [key.sign(SIGNATURE_CONTEXT + p) for p in payloads]
        t2 = time.perf_counter()
        hashes = [hashlib.sha256(p + s).digest() for p, s in zip(payloads, signatures, strict=True)]
        t3 = time.perf_counter()
        raw.insert(list(zip(range(seq, seq + len(payloads)), hashes, payloads, strict=True)))
        t4 = time.perf_counter()
        seq += len(payloads)

        if profiler and counted:
            profiler.enable()
        u0 = time.perf_counter()
        with Session(db.engine) as session, write_transaction(session):
            ledger.append_as_platform(session, part, now=NOW)
        u1 = time.perf_counter()
        if profiler:
            profiler.disable()

        if counted:
            bare.entries += len(part)
            bare.add("canonicalise", t1 - t0)
            bare.add("sign", t2 - t1)
            bare.add("sha256", t3 - t2)
            bare.add("insert", t4 - t3)
            ours.entries += len(part)
            ours.add("append_commit", u1 - u0)
            progress.update(ours.entries)
        elif not args.no_analyze:
            analyze(db.engine)
    if profiler:
        _print_profile(profiler, f"{db.label} platform: Ledger.append_as_platform")
    return ModeResult(db.label, "platform", ours.entries, ours, bare)


def _print_profile(profiler: cProfile.Profile, title: str) -> None:
    print(f"\n## Profile: {title} (timings under the profiler are inflated)\n", flush=True)
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)


def report(results: list[ModeResult], versions: dict[str, str]) -> None:
    if not results:
        print("No database was measured.")
        return
    rows: list[list[object]] = []
    for r in results:
        if r.mode == "actor":
            ours_s = r.ledger.total("from_json", "append_commit")
            bare_s = r.bare.total("canonicalise", "verify", "sha256", "insert")
            bare2_s = r.bare.total("canonicalise", "verify_2_threads", "sha256", "insert")
            append_only = r.entries / r.ledger.total("append_commit")
            ratio = (r.entries / ours_s) / (r.entries / bare_s)
            rows.append(
                [
                    f"{versions[r.database]}, actor-signed",
                    rate(r.entries / ours_s),
                    f"bare loop {rate(r.entries / bare_s)}",
                    f"{ratio:.0%}",
                    f">= {ACTOR_TARGET:.0%}",
                    met(ratio, ACTOR_TARGET),
                ]
            )
            rows.append(
                [
                    f"{versions[r.database]}, actor-signed, same but bare loop verifies "
                    "on 2 threads like Ledger.append",
                    rate(r.entries / ours_s),
                    f"bare loop {rate(r.entries / bare2_s)}",
                    f"{(bare2_s / ours_s):.0%}",
                    "(info)",
                    "",
                ]
            )
            rows.append(
                [
                    f"{versions[r.database]}, actor-signed, Ledger.append + commit only "
                    "(statements parsed beforehand)",
                    rate(append_only),
                    f"bare loop {rate(r.entries / bare_s)}",
                    f"{append_only / (r.entries / bare_s):.0%}",
                    "(info)",
                    "",
                ]
            )
        else:
            ours_s = r.ledger.total("append_commit")
            bare_s = r.bare.total("canonicalise", "sign", "sha256", "insert")
            ratio = bare_s / ours_s
            rows.append(
                [
                    f"{versions[r.database]}, platform-signed",
                    rate(r.entries / ours_s),
                    f"bare loop {rate(r.entries / bare_s)}",
                    f"{ratio:.0%}",
                    f">= {PLATFORM_TARGET:.0%}",
                    met(ratio, PLATFORM_TARGET),
                ]
            )
    print("## Append throughput\n")
    table(["figure", "ours", "baseline", "ratio", "target", "met?"], rows)

    print("## Where the time goes (microseconds per entry)\n")
    detail: list[list[object]] = []
    for r in results:
        for side, phases in (("ledger", r.ledger), ("bare", r.bare)):
            parts = ", ".join(
                f"{name} {1e6 * s / phases.entries:.1f}" for name, s in phases.seconds.items()
            )
            detail.append([f"{versions[r.database]}, {r.mode}", side, parts])
    table(["run", "side", "µs per entry"], detail)
    for r in results:
        if r.mode == "actor":
            one_core = r.entries / r.bare.seconds["verify"]
            two = r.entries / r.bare.seconds["verify_2_threads"]
            print(
                f"Ed25519 verification in the bare loop ({r.database}): one core "
                f"{rate(one_core)}, two threads {rate(two)}"
            )
        else:
            print(
                f"Ed25519 signing in the bare loop ({r.database}): one core "
                f"{rate(r.entries / r.bare.seconds['sign'])}"
            )
    print(flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument(
        "--entries", type=int, default=50_000, help="entries per mode (default 50,000)"
    )
    parser.add_argument(
        "--batch", type=int, default=1_000, help="entries per transaction (default 1,000)"
    )
    parser.add_argument(
        "--mode", default="actor,platform", help="comma-separated: actor, platform (default both)"
    )
    parser.add_argument("--quick", action="store_true", help="2,000 entries per mode: seconds")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run the ledger side under cProfile and print where its time goes",
    )
    add_database_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.entries = 2_000
    if args.entries < args.batch:
        raise SystemExit("--entries must be at least --batch")
    args.entries -= args.entries % args.batch
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]

    header("Ledger append", MODULE)
    print(f"{args.entries:,} entries per mode, batches of {args.batch:,}\n", flush=True)
    results: list[ModeResult] = []
    versions: dict[str, str] = {}
    for kind in database_kinds(args):
        with open_database(kind, args) as db:
            if db is None:
                continue
            versions[db.label] = server_version(db.engine)
            ledger = make_ledger()
            prepare_ledger(db.engine, ledger)
            raw = RawTable(db.engine)
            try:
                seq = 0
                if "actor" in modes:
                    results.append(run_actor(db, ledger, raw, args, seq))
                    seq += 10 * (args.entries + args.batch)
                if "platform" in modes:
                    results.append(run_platform(db, ledger, raw, args, seq))
            finally:
                raw.close()
                ledger.close()
    report(results, versions)


if __name__ == "__main__":
    main()

"""Issuance import: ``import_issuance`` against a raw INSERT of the same code rows.

For each size (``--sizes``, default 200,000 and 1,000,000 codes in batches of 10,000)
an issuance CSV (batch, product, serial, pin) is written once to a temporary folder.
Then, on SQLite and on PostgreSQL, each in a fresh database and a subprocess of its
own (so that its peak memory is its own):

raw (the baseline)
    Reads the CSV with ``csv.DictReader``, computes each code's two keyed fingerprints
    (``code_fingerprint``, ``serial_fingerprint``: the rows cannot be known without
    them) and INSERTs the rows into the migrated ``code`` table itself (same columns,
    same indexes) with the driver's ``executemany``, committing every 5,000 rows.

import
    Parties and product registered first (not measured); then what ``cardtrace codes
    import --kind issuance`` does: ``import_issuance`` over the ``csv.DictReader``, signed
    by the issuer's own key, in one transaction, committed. That also signs and appends
    the chunk and issue entries, verifies their signatures, builds each batch's Merkle
    root twice (issuer side and projection) and writes the ledger and its tree.

Target: the import at >= 50% of the raw rate, and memory that does not grow with the
file. Both runs start on empty tables, so no ``ANALYZE`` is run (``--no-analyze`` changes
nothing here). Memory is the subprocess's resident set (``/proc/self/status``): before the
import, sampled at each tenth of the rows, and the peak (``VmHWM``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench._codes_common import (
    DEFAULT_BATCH_SIZE,
    FINGERPRINT_KEY,
    ISSUER,
    issuance_rows,
    make_ledger,
)
from bench._common import (
    Unavailable,
    add_database_options,
    database_kinds,
    header,
    met,
    postgres_database,
    sqlite_database,
    table,
)

MODULE = "bench.codes_import"
TARGET = 0.50
RAW_TRANSACTION = 5_000


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def peak_mb() -> float:
    return _status_kb("VmHWM") / 1024


def write_csv(path: Path, codes: int, batch_size: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["batch", "product", "serial", "pin"])
        writer.writeheader()
        writer.writerows(issuance_rows(codes, batch_size))


# --- the children: one measured run each -----------------------------------------------------


class _Memory:
    """Samples the resident set at each tenth of the rows."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.samples: list[tuple[int, float]] = []
        self.every = max(total // 10, 1)
        self.start = time.perf_counter()

    def __call__(self, rows: int) -> None:
        if rows % self.every == 0:
            self.samples.append((rows, rss_mb()))
            elapsed = time.perf_counter() - self.start
            say(
                f"    {self.label}: {rows:,}/{self.total:,} rows ({rows / elapsed:,.0f}/s), "
                f"RSS {self.samples[-1][1]:.0f} MB"
            )


def child_import(url: str, csv_path: str, rows: int, profile: bool) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    from bench._codes_common import prepare_parties
    from provenance.db import write_transaction
    from provenance.imports import Signers, import_issuance
    from webapp.database import make_engine

    engine = make_engine(make_url(url))
    ledger = make_ledger()
    keys = prepare_parties(engine, ledger)
    signers = Signers(ledger.platform, {ISSUER: keys[ISSUER]})
    memory = _Memory(rows, "import")
    before = rss_mb()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    memory.start = start
    with (
        open(csv_path, encoding="utf-8-sig", newline="") as f,
        Session(engine) as session,
        write_transaction(session),
    ):
        report = import_issuance(
            session,
            ledger,
            csv.DictReader(f),
            fingerprint_key=FINGERPRINT_KEY,
            signers=signers,
            now=_now(),
            progress=memory,
        )
    seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        _print_profile(profiler)
    ledger.close()
    engine.dispose()
    return {
        "rows": report.rows,
        "entries": report.entries,
        "seconds": seconds,
        "rss_before": before,
        "rss_samples": memory.samples,
        "peak": peak_mb(),
    }


def _now() -> Any:
    from bench._common import NOW

    return NOW


def child_raw(url: str, csv_path: str, rows: int) -> dict[str, Any]:
    from provenance.fingerprints import code_fingerprint, normalise_part, serial_fingerprint
    from webapp.database import make_engine, upgrade

    engine = make_engine(make_url(url))
    upgrade(engine)
    sqlite = engine.dialect.name == "sqlite"
    columns = (
        "fingerprint, serial_fp, product, batch, batch_index, origin, holder, state, frozen, "
        "tainted, issued_seq, last_seq, sale_instrument, sale_payment_ref"
    )
    mark = "?" if sqlite else "%s"
    insert = f"INSERT INTO code ({columns}) VALUES ({', '.join([mark] * 14)})"  # noqa: S608
    conn: Any = engine.raw_connection()
    memory = _Memory(rows, "raw")
    before = rss_mb()
    db_seconds = 0.0
    start = time.perf_counter()
    memory.start = start
    pending: list[tuple[Any, ...]] = []

    def flush() -> None:
        nonlocal db_seconds
        t0 = time.perf_counter()
        cur = conn.cursor()
        if sqlite:
            cur.execute("BEGIN IMMEDIATE")
            cur.executemany(insert, pending)
            cur.execute("COMMIT")
        else:
            cur.executemany(insert, pending)
            conn.commit()
        cur.close()
        db_seconds += time.perf_counter() - t0
        pending.clear()

    index: dict[str, int] = {}
    count = 0
    with open(csv_path, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            batch, product = row["batch"], row["product"]
            serial = normalise_part(row["serial"], "serial")
            pin = normalise_part(row["pin"], "pin")
            position = index.get(batch, 0)
            index[batch] = position + 1
            pending.append(
                (
                    code_fingerprint(FINGERPRINT_KEY, ISSUER, product, serial, pin),
                    serial_fingerprint(FINGERPRINT_KEY, ISSUER, product, serial),
                    product,
                    batch,
                    position,
                    "issuer-signed",
                    ISSUER,
                    "issued",
                    False,
                    False,
                    1,
                    1,
                    None,
                    None,
                )
            )
            count += 1
            if len(pending) >= RAW_TRANSACTION:
                flush()
            memory(count)
    if pending:
        flush()
    seconds = time.perf_counter() - start
    conn.close()
    engine.dispose()
    return {
        "rows": count,
        "seconds": seconds,
        "db_seconds": db_seconds,
        "rss_before": before,
        "rss_samples": memory.samples,
        "peak": peak_mb(),
    }


def _print_profile(profiler: Any) -> None:
    import io
    import pstats

    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(30)
        say(f"## profile of the import, by {order}\n" + "\n".join(out.getvalue().splitlines()[:48]))


# --- the parent -------------------------------------------------------------------------------


@contextmanager
def fresh_url(kind: str, args: argparse.Namespace) -> Iterator[str | None]:
    if kind == "sqlite":
        with sqlite_database(args.tmpdir) as db:
            yield db.engine.url.render_as_string(hide_password=False)
            db.engine.dispose()
        return
    try:
        with postgres_database(args.postgres_url) as db:
            db.engine.dispose()
            yield db.engine.url.render_as_string(hide_password=False)
    except Unavailable as e:
        say(f"  {e}")
        yield None


def run_child(mode: str, url: str, csv_path: Path, rows: int, profile: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        MODULE,
        "--child",
        mode,
        "--url",
        url,
        "--csv",
        str(csv_path),
        "--rows",
        str(rows),
    ]
    if profile:
        command.append("--profile")
    out = subprocess.run(
        command, check=True, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@dataclass(frozen=True, slots=True)
class Pair:
    label: str
    size: int
    raw: dict[str, Any]
    imported: dict[str, Any]


def report(pairs: list[Pair]) -> None:
    rows = []
    for p in pairs:
        raw_rate = p.raw["rows"] / p.raw["seconds"]
        rate = p.imported["rows"] / p.imported["seconds"]
        db_rate = p.raw["rows"] / p.raw["db_seconds"]
        rows.append(
            [
                p.label,
                f"{p.size:,}",
                f"{raw_rate:,.0f}/s ({p.raw['seconds']:.1f} s; INSERTs alone {db_rate:,.0f}/s)",
                f"{rate:,.0f}/s ({p.imported['seconds']:.1f} s, {p.imported['entries']:,} entries)",
                f"{rate / raw_rate:.0%}",
                ">= 50%",
                met(rate / raw_rate, TARGET),
            ]
        )
    table(
        [
            "database",
            "codes",
            "raw INSERT (baseline)",
            "import_issuance",
            "ratio",
            "target",
            "met?",
        ],
        rows,
    )
    mem = []
    for p in pairs:
        for name, run in (("raw", p.raw), ("import", p.imported)):
            tenths = run["rss_samples"]
            mid = tenths[len(tenths) // 2 - 1][1] if tenths else 0.0
            last = tenths[-1][1] if tenths else 0.0
            mem.append(
                [
                    p.label,
                    f"{p.size:,}",
                    name,
                    f"{run['rss_before']:.0f} MB",
                    f"{mid:.0f} MB",
                    f"{last:.0f} MB",
                    f"{run['peak']:.0f} MB",
                    f"{run['peak'] - run['rss_before']:+.0f} MB",
                ]
            )
    print("Resident memory of each subprocess (before the rows, at half and all of them, peak):\n")
    table(["database", "codes", "run", "before", "at 50%", "at 100%", "peak", "peak - before"], mem)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        default="200000,1000000",
        help="comma-separated numbers of codes (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="codes per batch (default: %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 and 60,000 codes")
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of each import to stderr"
    )
    parser.add_argument("--child", choices=["import", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    add_database_options(parser)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "import":
            result = child_import(args.url, args.csv, args.rows, args.profile)
        else:
            result = child_raw(args.url, args.csv, args.rows)
        print(json.dumps(result))
        return
    if args.quick:
        args.sizes = "20000,60000"
    sizes = [int(s) for s in args.sizes.split(",")]
    header("Issuance import against a raw INSERT", MODULE)
    pairs: list[Pair] = []
    with tempfile.TemporaryDirectory(prefix="cardtrace-import-", dir=args.tmpdir) as tmp:
        for size in sizes:
            path = Path(tmp) / f"issuance-{size}.csv"
            say(f"writing {path.name} ({size:,} codes)")
            write_csv(path, size, args.batch_size)
            say(f"  {path.stat().st_size / 1e6:.0f} MB")
            for kind in database_kinds(args):
                results: dict[str, dict[str, Any]] = {}
                label = "SQLite" if kind == "sqlite" else "PostgreSQL"
                for mode in ("raw", "import"):
                    with fresh_url(kind, args) as url:
                        if url is None:
                            break
                        say(f"{label}, {size:,} codes: {mode}")
                        results[mode] = run_child(
                            mode, url, path, size, args.profile and mode == "import"
                        )
                        done = results[mode]
                        say(f"  {mode}: {done['rows'] / done['seconds']:,.0f} rows/s")
                if len(results) == 2:
                    pairs.append(Pair(label, size, results["raw"], results["import"]))
            os.unlink(path)
    report(pairs)


if __name__ == "__main__":
    main()

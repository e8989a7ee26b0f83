"""What reading a record costs beside its signature check, in instructions.

Wall-clock rates on a shared machine move with the load; instruction counts under
valgrind's callgrind do not (the same binary, input and environment give the same
count). This benchmark counts, in the same run:

* the instructions ``verify_bundle`` spends per entry on everything but the Ed25519
  check (reading the record, the canonical-form check, the envelope and body checks, the
  key rules, the chain and the tree), with signature checking switched off in the child;
* the instructions of one raw Ed25519 verification of the same statements.

Each count is the difference of two runs of the same child (verifying a bundle of
``--count`` records, and stopping before it), so start-up and imports cancel out; the
bundle's few fixed checks (its checkpoint signature, the tree's right edge) are spread
over the records. The log and bundle are built as in
:mod:`bench.ledger_verify`. Needs ``valgrind`` on the PATH.

Usage::

    .venv/bin/python -m bench.ledger_verify_cost [--count 3000]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MODULE = "bench.ledger_verify_cost"
_COLLECTED = re.compile(r"Collected : ([0-9,]+)")


def _child_read(bundle: Path, count: int) -> None:
    import provenance.verify as verify_module
    from bench._common import bench_catalog
    from provenance.bundle import verify_bundle

    catalog = bench_catalog()
    if count == 0:
        return
    # Reading only: the signature checks are what the other count measures.
    verify_module._check = lambda part: None
    with open(bundle, "rb") as stream:
        report = verify_bundle(stream, catalog, threads=0)
    if report.stop - report.first != count:
        raise SystemExit(f"the bundle holds {report.stop - report.first} entries, not {count}")


def _child_sign(count: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = key.public_key()
    message = b"cardtrace/entry/v1\n" + b'{"actor":"bench-distributor"}' * 12
    signature = key.sign(message)
    for _ in range(count):
        public.verify(signature, message)


def _instructions(args: list[str]) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, "-m", MODULE, *args]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    match = _COLLECTED.search(out.stderr)
    if match is None:
        raise SystemExit(f"valgrind printed no instruction count:\n{out.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--count", type=int, default=3000, help="records read (default 3,000)")
    parser.add_argument("--child-read", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-sign", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_read:
        _child_read(args.child_read, args.count)
        return
    if args.child_sign:
        _child_sign(args.count)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.count < 100:
        raise SystemExit("--count must be at least 100")

    # Imported here so that the signing child does not load them under callgrind.
    from bench._common import header, table
    from bench.ledger_verify import build

    header("Ledger bundle verification: instructions per entry", MODULE)
    with tempfile.TemporaryDirectory(prefix="cardtrace-bench-") as tmp:
        bundles, _, _ = build(Path(tmp), args.count, args.count)
        bundle = bundles[args.count]
        print(f"counting instructions under callgrind ({args.count:,} records)...", flush=True)
        read = (
            _instructions(["--child-read", str(bundle), "--count", str(args.count)])
            - _instructions(["--child-read", str(bundle), "--count", "0"])
        ) / args.count
        signs = 200
        sign = (
            _instructions(["--child-sign", "--count", str(signs)])
            - _instructions(["--child-sign", "--count", "0"])
        ) / signs
    print()
    table(
        ["figure", "instructions per entry", "share of one Ed25519 verification"],
        [
            ["reading and checking a record (no signature)", f"{read:,.0f}", f"{read / sign:.1%}"],
            ["raw Ed25519 verification (baseline)", f"{sign:,.0f}", "100%"],
        ],
    )


if __name__ == "__main__":
    main()

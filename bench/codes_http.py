"""Verify before sale over HTTP: gunicorn, concurrent clients, a store of a million codes.

Setup (not measured): the store of :mod:`bench._codes_common` (one million codes by
default, checkpointed) on SQLite and on a fresh PostgreSQL database, a key directory
whose ``fingerprint.key`` is the one the store was built with (``tests.keys``), and
``cardtrace serve`` (gunicorn with its default workers, access log on) against it.

Measured: requests/s and latency of ``POST /api/v1/codes/verify`` (one raw code per
request, drawn in the mix of ``bench.codes_verify``: 80% allowed, 10% sold, 10%
unknown or with a wrong PIN; answers carry custody and inclusion proofs; each request
carries the platform sale system's API key, as verify requires) against
``GET /problems/not-found``, a trivial JSON route of the same app, with the same
gunicorn, the same load generator and the same number of connections. The two
alternate, ``--rounds`` times each, so both see the same machine load. Target: verify
at >= 50% of the trivial route's requests/s.

The load generator is ``wrk`` (Debian: ``apt-get install wrk``) with a Lua script that
rotates through ``--bodies`` request bodies; without ``wrk``, a Python generator of
keep-alive threads on 127.0.0.1 bounded in requests and in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from bench._codes_common import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CODES,
    EXPECTED,
    ISSUER,
    MERCHANT,
    PRODUCT,
    Layout,
    Percentiles,
    Sample,
    StoreReport,
    add_store_options,
    open_store,
    samples,
)
from bench._common import (
    Database,
    add_database_options,
    database_kinds,
    header,
    met,
    server_version,
    table,
)
from provenance.db import write_transaction
from provenance.parties import PLATFORM_PARTY
from tests.keys import write_key_dir
from webapp.accounts.apikeys import MAX_RATE_PER_MINUTE, create_key
from webapp.accounts.roles import Scope
from webapp.cli import default_workers

MODULE = "bench.codes_http"
TARGET = 0.50
VERIFY_PATH = "/api/v1/codes/verify"
TRIVIAL_PATH = "/problems/not-found"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def verify_body(sample: Sample) -> str:
    code = {"issuer": ISSUER, "product": PRODUCT, "serial": sample.serial, "pin": sample.pin}
    return json.dumps({"merchant": MERCHANT, "code": code}, separators=(",", ":"))


# --- the server ------------------------------------------------------------------------------


def workers_label(args: argparse.Namespace) -> str:
    workers = args.workers if args.workers is not None else default_workers()
    return f"{workers} sync workers" + ("" if args.workers is not None else " (serve's default)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(db: Database, folder: Path, workers: int | None) -> Iterator[str]:
    """Run ``cardtrace serve`` against ``db``; yields its base URL, stops it on exit."""
    key_dir = write_key_dir(folder / "keys")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDTRACE_")}
    env.update(
        CARDTRACE_ENV="production",
        CARDTRACE_DATABASE_URL=db.engine.url.render_as_string(hide_password=False),
        CARDTRACE_INSTANCE=str(folder / "instance"),
        CARDTRACE_KEY_DIR=str(key_dir),
    )
    command = [
        str(Path(sys.executable).with_name("cardtrace")),
        "serve",
        "--bind",
        f"127.0.0.1:{port}",
        *(["--workers", str(workers)] if workers is not None else []),
        "--no-migrate",
    ]
    log = open(folder / "gunicorn.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"cardtrace serve exited: see {folder / 'gunicorn.log'}")
            try:
                status, _ = request(base, "GET", TRIVIAL_PATH)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("cardtrace serve did not answer within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# The platform's sale system's API key (``codes:verify``), made for each store by
# :func:`sale_system_key`: verify needs one, the trivial route none.
AUTHORIZATION: dict[str, str] = {}


def sale_system_key(db: Database) -> None:
    """Issue the platform an API key allowed to verify, as an administrator would."""
    with Session(db.engine) as session, write_transaction(session):
        issued = create_key(
            session,
            "bench sale system",
            PLATFORM_PARTY,
            frozenset({Scope.CODES_VERIFY}),
            now=datetime.now(UTC),
            actor="bench",
            rate_per_minute=MAX_RATE_PER_MINUTE,
        )
    AUTHORIZATION["Authorization"] = f"Bearer {issued.token}"


def request(base: str, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
    host, port = base.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {"Content-Type": "application/json", **AUTHORIZATION} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_answers(base: str, chosen: list[Sample]) -> None:
    """Raises SystemExit if the server's verdicts are not the expected ones or lack proofs."""
    for sample in chosen:
        status, raw = request(base, "POST", VERIFY_PATH, verify_body(sample))
        if status != 200:
            raise SystemExit(f"POST {VERIFY_PATH} answered {status}: {raw[:300]!r}")
        answer = json.loads(raw)
        reasons = ",".join(r["code"] for r in answer["reasons"]) or "allow"
        if reasons != EXPECTED[sample.kind]:
            raise SystemExit(f"verdict {reasons!r}, expected {EXPECTED[sample.kind]!r}")
        seqs = {str(step["seq"]) for step in answer["custody"]}
        if not seqs <= set(answer["proofs"]["entries"]) or answer["proofs"]["pending"]:
            raise SystemExit("a verdict lacks inclusion proofs of its custody entries")


# --- load generators ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise SystemExit(f"cannot read the latency {text!r} in wrk's output")
    number, unit = match.groups()
    return float(number) * _UNITS[unit]


def wrk_script(folder: Path, bodies: list[str]) -> Path:
    path = folder / "verify.lua"
    # Long brackets: the JSON bodies hold quotes but never "]==]".
    items = ",\n".join(f"[==[{b}]==]" for b in bodies)
    path.write_text(
        f"""local bodies = {{
{items}
}}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{AUTHORIZATION["Authorization"]}"
function init(args)
  i = tonumber(args[1] or "0")
end
function request()
  i = i + 1
  return wrk.format(nil, "{VERIFY_PATH}", nil, bodies[(i % #bodies) + 1])
end
"""
    )
    return path


def run_wrk(base: str, path: str, script: Path | None, args: argparse.Namespace) -> Load:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    if script is not None:
        command += ["-s", str(script)]
    command.append(f"http://{base}{path}")
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if done is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    seconds = float(done.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[done.group(3)]
    percent = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    return Load(
        int(done.group(1)),
        seconds,
        _ms(percent["50"]),
        _ms(percent["90"]),
        _ms(percent["99"]),
        failed,
    )


def run_python(base: str, path: str, bodies: list[str] | None, args: argparse.Namespace) -> Load:
    """Keep-alive client threads on loopback, bounded by ``--duration`` and ``--max-requests``."""
    host, port = base.split(":")
    deadline = time.perf_counter() + args.duration
    budget = iter(range(args.max_requests))
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        n = index
        mine: list[float] = []
        while time.perf_counter() < deadline:
            with lock:
                if next(budget, None) is None:
                    break
            n += 1
            try:
                t0 = time.perf_counter()
                if bodies is None:
                    conn.request("GET", path)
                else:
                    conn.request(
                        "POST",
                        path,
                        body=bodies[n % len(bodies)],
                        headers={"Content-Type": "application/json", **AUTHORIZATION},
                    )
                response = conn.getresponse()
                response.read()
                mine.append(time.perf_counter() - t0)
                if response.status != 200:
                    errors[0] += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except OSError:
                errors[0] += 1
                conn.close()
        conn.close()
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i * 7919,)) for i in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    p = Percentiles.of(latencies)
    return Load(len(latencies), seconds, p.p50, p.p90, p.p99, errors[0])


# --- the run -----------------------------------------------------------------------------------


@dataclass(slots=True)
class DatabaseResult:
    label: str
    setup: StoreReport
    trivial: list[Load]
    verify: list[Load]


def measure(
    db: Database, setup: StoreReport, args: argparse.Namespace, folder: Path
) -> DatabaseResult:
    layout = Layout(args.codes, args.batch_size)
    sale_system_key(db)
    db.engine.dispose()
    chosen = samples(layout, args.bodies, seed=5)
    bodies = [verify_body(s) for s in chosen]
    script = wrk_script(folder, bodies) if args.generator == "wrk" else None
    trivial: list[Load] = []
    verify: list[Load] = []
    with serve(db, folder, args.workers) as base:
        say(f"{db.label}: cardtrace serve on {base} ({workers_label(args)}); checking answers")
        check_answers(base, chosen[:50])

        def load(path: str, verifying: bool) -> Load:
            if args.generator == "wrk":
                return run_wrk(base, path, script if verifying else None, args)
            return run_python(base, path, bodies if verifying else None, args)

        say(f"{db.label}: warming up ({args.duration} s each)")
        load(TRIVIAL_PATH, False)
        load(VERIFY_PATH, True)
        for r in range(args.rounds):
            for name, path, verifying, into in (
                ("trivial", TRIVIAL_PATH, False, trivial),
                ("verify", VERIFY_PATH, True, verify),
            ):
                result = load(path, verifying)
                into.append(result)
                say(
                    f"    round {r + 1}/{args.rounds} {name}: {result.rps:,.0f} req/s, "
                    f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                    f"errors {result.errors}"
                )
    return DatabaseResult(db.label, setup, trivial, verify)


def _total(loads: list[Load]) -> tuple[float, float, float, float, int]:
    rps = sum(x.requests for x in loads) / sum(x.seconds for x in loads)
    return (
        rps,
        statistics.median(x.p50_ms for x in loads),
        statistics.median(x.p90_ms for x in loads),
        statistics.median(x.p99_ms for x in loads),
        sum(x.errors for x in loads),
    )


def report(result: DatabaseResult, args: argparse.Namespace) -> None:
    t_rps, t50, t90, t99, t_err = _total(result.trivial)
    v_rps, v50, v90, v99, v_err = _total(result.verify)
    ratio = v_rps / t_rps
    print(
        f"## {result.label}: {args.codes:,} codes; gunicorn {workers_label(args)}; "
        f"{args.generator} with {args.connections} connections"
        + (f", {args.threads} thread(s)" if args.generator == "wrk" else "")
        + f"; {args.rounds} alternating rounds of {args.duration} s each; planner statistics: "
        f"{result.setup.analyzed}\n"
    )
    table(
        ["figure", "trivial route (baseline)", "verify", "ratio", "target", "met?"],
        [
            [
                "requests/s",
                f"{t_rps:,.0f}",
                f"{v_rps:,.0f}",
                f"{ratio:.0%}",
                ">= 50%",
                met(ratio, TARGET),
            ],
            ["latency p50", f"{t50:.2f} ms", f"{v50:.2f} ms", f"{v50 / t50:.1f}x", "", ""],
            ["latency p90", f"{t90:.2f} ms", f"{v90:.2f} ms", f"{v90 / t90:.1f}x", "", ""],
            ["latency p99", f"{t99:.2f} ms", f"{v99:.2f} ms", f"{v99 / t99:.1f}x", "", ""],
            [
                "errors (non-200, socket)",
                t_err,
                v_err,
                "",
                "0",
                "yes" if t_err + v_err == 0 else "**no**",
            ],
        ],
    )
    rounds = [
        [r + 1, f"{t.rps:,.0f}", f"{v.rps:,.0f}", f"{v.rps / t.rps:.0%}"]
        for r, (t, v) in enumerate(zip(result.trivial, result.verify, strict=True))
    ]
    table(["round", "trivial req/s", "verify req/s", "ratio"], rounds)


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
        "--workers",
        type=int,
        default=None,
        help="gunicorn workers (default: what cardtrace serve runs, 2 per core plus 1)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=8,
        help="concurrent client connections (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default: %(default)s)")
    parser.add_argument(
        "--duration", type=int, default=15, help="seconds per load run (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of each route (default: %(default)s)",
    )
    parser.add_argument(
        "--bodies",
        type=int,
        default=5000,
        help="distinct verify request bodies (default: %(default)s)",
    )
    parser.add_argument(
        "--generator",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator (default: wrk if installed, else python)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=200_000,
        help="python generator: requests per run at most (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 50,000 codes, 1 round of 5 s"
    )
    add_database_options(parser)
    add_store_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.codes, args.rounds, args.duration, args.bodies = 50_000, 1, 5, 500
    header("Verify before sale over HTTP (gunicorn)", MODULE)
    for kind in database_kinds(args):
        with open_store(kind, args, say) as opened:
            if opened is None:
                continue
            db, setup = opened
            say(f"{db.label}: {server_version(db.engine)}")
            with tempfile.TemporaryDirectory(prefix="cardtrace-http-", dir=args.tmpdir) as tmp:
                report(measure(db, setup, args, Path(tmp)), args)


if __name__ == "__main__":
    main()

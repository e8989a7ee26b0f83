"""Where a verify request's time goes, in the process, without a server in front.

Setup (not measured): the store of :mod:`bench._codes_common` (one million codes by
default; ``--sqlite-store`` / ``--postgres-store`` take a store already built), a key
directory whose ``fingerprint.key`` is the one the store was built with, the platform's
sale-system API key, and the app as ``cardtrace serve`` builds it (production settings,
the app's own engines: on PostgreSQL verify and the key check read through the read
engine).

Measured, through the Flask test client, alternating in rounds of 200 so that both see
the same machine: ``POST /api/v1/codes/verify`` (one raw code per request, in the mix of
:mod:`bench.codes_verify`) against ``GET /problems/not-found``, the trivial JSON route
:mod:`bench.codes_http` compares with. Then the parts of a verify request, each timed
alone in the app's context on the same codes: the API-key check
(``authenticate_bearer_key``: its read and the key's rate limit) and the verify with its
risk step (``verify_for_sale``, ``from_raw`` included, its session closed after each as
a request's is). ``--profile`` adds cProfile tables of 1,000 verify requests.

What it tells: over HTTP the verify route's rate is at least half the trivial route's
only if verify's own work costs no more than a whole trivial request; the test client
leaves out gunicorn's parsing and access log, which both routes pay alike. The app has
its own engines, as in production, so the plain verify request is answered in front of
Flask (:mod:`webapp.verify_fast`); the parts timed alone are those of the Flask view
(which reads the key's row every time), so with the fast path "the rest" comes out near
zero or below.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench._codes_common import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CODES,
    Layout,
    add_store_options,
    open_store,
    samples,
)
from bench._common import (
    Database,
    add_database_options,
    database_kinds,
    header,
    server_version,
    table,
)
from bench.codes_http import AUTHORIZATION, TRIVIAL_PATH, VERIFY_PATH, sale_system_key, verify_body
from provenance.verdict import CodeQuery
from tests.keys import write_key_dir
from webapp import create_app
from webapp.accounts.api import authenticate_bearer_key
from webapp.api_codes import VerifyRequest, verify_for_sale
from webapp.runtime import close_db_session, current_runtime

MODULE = "bench.codes_request"


def say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def app_environment(db: Database, folder: Path) -> Iterator[None]:
    """The settings ``cardtrace serve`` would run with against ``db``."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("CARDTRACE_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(
        CARDTRACE_ENV="production",
        CARDTRACE_DATABASE_URL=db.engine.url.render_as_string(hide_password=False),
        CARDTRACE_INSTANCE=str(folder / "instance"),
        CARDTRACE_KEY_DIR=str(write_key_dir(folder / "keys")),
    )
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("CARDTRACE_")]:
            del os.environ[name]
        os.environ.update(saved)


def per_call_ms(run: Callable[[int], object], start: int, n: int) -> float:
    begin = time.perf_counter()
    for i in range(start, start + n):
        run(i)
    return (time.perf_counter() - begin) / n * 1000


def measure(db: Database, args: argparse.Namespace, folder: Path) -> None:
    sale_system_key(db)
    token = AUTHORIZATION["Authorization"].removeprefix("Bearer ")
    headers = {**AUTHORIZATION, "Content-Type": "application/json"}
    bodies = [verify_body(s) for s in samples(Layout(args.codes, args.batch_size), args.bodies)]
    with app_environment(db, folder):
        app = create_app()
        client = app.test_client()

        def verify(i: int) -> None:
            answer = client.post(VERIFY_PATH, data=bodies[i % len(bodies)], headers=headers)
            if answer.status_code != 200:
                raise SystemExit(f"verify answered {answer.status_code}: {answer.text[:300]}")

        def trivial(_: int) -> None:
            client.get(TRIVIAL_PATH)

        for i in range(300):  # warm: connections, statements, the tree-hash cache
            verify(i)
            trivial(i)
        rounds = max(1, args.requests // 200)
        verify_ms: list[float] = []
        trivial_ms: list[float] = []
        for r in range(rounds):
            trivial_ms.append(per_call_ms(trivial, r * 200, 200))
            verify_ms.append(per_call_ms(verify, r * 200, 200))
        with app.test_request_context(VERIFY_PATH, method="POST", headers=headers):
            requests = [VerifyRequest.model_validate_json(b) for b in bodies]
            key = current_runtime().secrets.fingerprint_key

            def check_key(_: int) -> None:
                authenticate_bearer_key(token)

            def verify_alone(i: int) -> None:
                body = requests[i % len(requests)]
                code = body.code
                assert code is not None
                query = CodeQuery.from_raw(key, code.issuer, code.product, code.serial, code.pin)
                verify_for_sale([query], body.merchant, [None])
                close_db_session()  # as the request's teardown does

            key_ms = [per_call_ms(check_key, r * 200, 200) for r in range(rounds)]
            alone_ms = [per_call_ms(verify_alone, r * 200, 200) for r in range(rounds)]

        def median(values: list[float]) -> float:
            return sorted(values)[len(values) // 2]

        t, v = median(trivial_ms), median(verify_ms)
        k, a = median(key_ms), median(alone_ms)
        say(f"\n## {db.label}: {args.codes:,} codes, {rounds} rounds of 200 requests\n")
        table(
            ["figure", "ms per request (median of rounds)", "share of verify's extra"],
            [
                ["trivial route (test client)", f"{t:.3f}", ""],
                ["verify route (test client)", f"{v:.3f}", ""],
                ["verify's extra over the trivial route", f"{v - t:.3f}", "100%"],
                ["of which the API-key check (read, rate limit)", f"{k:.3f}", f"{k / (v - t):.0%}"],
                [
                    "of which verify_for_sale (from_raw, verify, risk, session)",
                    f"{a:.3f}",
                    f"{a / (v - t):.0%}",
                ],
                [
                    "the rest (body, answer as JSON, Flask's handling)",
                    f"{v - t - k - a:.3f}",
                    f"{(v - t - k - a) / (v - t):.0%}",
                ],
            ],
        )
        say(
            f"\nverify / trivial: {v / t:.1f}x; for verify at 50% of the trivial route's rate "
            f"its extra would have to be at most {t:.3f} ms (here {v - t:.3f} ms)"
        )
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for i in range(1000):
                verify(i)
            profile.disable()
            say("\n## profile: 1,000 verify requests, by cumulative time\n```")
            pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
            say("```")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--codes", type=int, default=DEFAULT_CODES)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests of each route (default: %(default)s)"
    )
    parser.add_argument("--bodies", type=int, default=3000, help="distinct verify bodies")
    parser.add_argument("--profile", action="store_true", help="cProfile 1,000 verify requests")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 codes")
    add_database_options(parser)
    add_store_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.codes, args.batch_size, args.requests, args.bodies = 20_000, 2_000, 600, 500
    header("Where a verify request's time goes (Flask test client)", MODULE)
    for kind in database_kinds(args):
        with open_store(kind, args, say) as opened:
            if opened is None:
                continue
            db, _setup = opened
            say(f"{db.label}: {server_version(db.engine)}")
            with tempfile.TemporaryDirectory(prefix="cardtrace-request-", dir=args.tmpdir) as tmp:
                measure(db, args, Path(tmp))


if __name__ == "__main__":
    main()

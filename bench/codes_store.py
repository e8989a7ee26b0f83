"""Build the card-code store of the verify benchmarks once, and keep it.

``bench.codes_verify`` and ``bench.codes_http`` each build the store of
:mod:`bench._codes_common` (6-11 minutes at one million codes) unless given one with
``--sqlite-store`` or ``--postgres-store``; this builds it, prints each phase's rate and
the options to pass. The store is kept: delete the SQLite file, or drop the PostgreSQL
database, when done.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench._codes_common import DEFAULT_BATCH_SIZE, DEFAULT_CODES, Layout, build_store
from bench._common import DEFAULT_POSTGRES_URL, header, server_version
from webapp.database import make_engine

MODULE = "bench.codes_store"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--codes", type=int, default=DEFAULT_CODES)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--sqlite", metavar="PATH", help="build a SQLite store in this new file")
    parser.add_argument(
        "--postgres-db", metavar="NAME", help="build a PostgreSQL store in this new database"
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="the server")
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="no VACUUM (ANALYZE) once the PostgreSQL store is built",
    )
    args = parser.parse_args(argv)
    header("The card-code store of the verify benchmarks", MODULE)
    layout = Layout(args.codes, args.batch_size)
    targets = []
    if args.sqlite:
        targets.append(("--sqlite-store", args.sqlite, make_url(f"sqlite:///{args.sqlite}")))
    if args.postgres_db:
        server = make_url(args.postgres_url).set(drivername="postgresql+psycopg")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{args.postgres_db}"'))
        admin.dispose()
        url = server.set(database=args.postgres_db)
        targets.append(("--postgres-store", url.render_as_string(hide_password=False), url))
    for option, value, url in targets:
        engine = make_engine(url)
        say(f"{server_version(engine)}: building a store of {args.codes:,} codes")
        report = build_store(engine, layout, say, analyze_stats=not args.no_analyze)
        engine.dispose()
        print("\n".join(f"- {line}" for line in report.lines()))
        print(f"- checkpoint of {report.checkpoint_size:,} entries; {report.analyzed}")
        print(f"\nPass `{option} {value}` to bench.codes_verify or bench.codes_http.\n")


if __name__ == "__main__":
    main()

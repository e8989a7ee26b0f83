"""Shared pieces of the card-code benchmarks: a store of many codes, and latency figures.

The store is built the way a platform fills it (setup, not measured by the verify
benchmarks, but its rates are printed): the platform's genesis, an issuer, a
distributor and a merchant approved by a ``party.status`` entry, one product; batches
of ``--batch-size`` codes issued through :func:`provenance.imports.import_issuance`;
then, in every batch, the same custody story::

    j (position in its batch)     custody                                     verdict
    [0, 1%)                        issuer -> distributor -> merchant, listed, sold     already-sold
    [1%, 80%)                      issuer -> distributor -> merchant, listed           allow
    [80%, 90%)                     issuer -> distributor                               custody-break
    [90%, 100%)                    issuer                                              custody-break

Transfers and listings are entries of up to 1,000 codes, each sale is one entry, every
entry is signed by its actor's own key. A checkpoint is issued last, so verdicts carry
inclusion proofs. Raw codes are a pure function of their index (:func:`serial`,
:func:`pin`), so a sample can be queried by raw code without keeping a million PINs.
"""

from __future__ import annotations

import argparse
import base64
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench._common import NOW, Database, open_database, party_key, platform_key
from provenance.codes import MAX_CODES_PER_ENTRY, Code
from provenance.core import core_catalog
from provenance.db import write_transaction
from provenance.entries import (
    SignedStatement,
    Statement,
    key_id_for,
    raw_public_key,
    sign_statement,
)
from provenance.fingerprints import code_fingerprint, pseudonym
from provenance.imports import Signers, import_issuance
from provenance.ledger import Ledger, PlatformSigner, StoredCheckpoint
from provenance.parties import key_body
from provenance.verdict import CodeQuery

# Re-exported: the fingerprint key of the store (the one tests.keys.write_key_dir writes).
from tests.keys import FINGERPRINT_KEY as FINGERPRINT_KEY
from webapp.database import make_engine, upgrade

ISSUER = "bench-cards"
DISTRIBUTOR = "bench-wholesale"
MERCHANT = "bench-shop"
PRODUCT = "bench-cards.game-100"
DEFAULT_CODES = 1_000_000
DEFAULT_BATCH_SIZE = 10_000
SOLD_SHARE = 0.01
MERCHANT_SHARE = 0.80
DISTRIBUTOR_SHARE = 0.90
_ENTRIES_PER_APPEND = 20  # transfer/list entries per ledger call and transaction
_SALES_PER_APPEND = 500

Say = Callable[[str], None]

PRODUCT_BODY: dict[str, Any] = {
    "product": PRODUCT,
    "issuer": ISSUER,
    "sku": "GAME-100",
    "name": "Game points 100",
    "face_value": "100.00",
    "currency": "CNY",
    "serial": {"charset": "digits", "min_length": 12, "max_length": 16},
    "pin": {"charset": "digits", "min_length": 12, "max_length": 18},
}


def make_ledger() -> Ledger:
    """The ledger as the app builds it: the core catalog, the fixed platform key (the same
    RFC 8032 key ``tests.keys.write_key_dir`` writes), the default origin."""
    return Ledger(core_catalog(), PlatformSigner(platform_key()))


# --- the codes ----------------------------------------------------------------------------


def serial(i: int) -> str:
    """The serial of code ``i``: 14 digits."""
    return f"88{i:012d}"


def pin(i: int) -> str:
    """The PIN of code ``i``: 16 digits, a bijection of ``i`` (the multiplier is prime to 10)."""
    return f"{(i * 7_919_000_009 + 104_729) % 10**16:016d}"


def fingerprint(i: int) -> bytes:
    return code_fingerprint(FINGERPRINT_KEY, ISSUER, PRODUCT, serial(i), pin(i))


def batch_name(b: int) -> str:
    return f"{PRODUCT}.b{b:05d}"


def issuance_rows(codes: int, batch_size: int) -> Iterator[dict[str, str]]:
    """The rows of an issuance CSV (batch, product, serial, pin), a batch's rows together."""
    for i in range(codes):
        yield {
            "batch": batch_name(i // batch_size),
            "product": PRODUCT,
            "serial": serial(i),
            "pin": pin(i),
        }


class Kind(StrEnum):
    """What a verify query asks about, and the verdict it expects."""

    ALLOWED = "allowed"  # listed by the merchant: allow
    SOLD = "sold"  # already-sold
    UNKNOWN = "unknown"  # never issued: unknown-origin
    WRONG_PIN = "wrong-pin"  # a known serial with another PIN: same-serial-different-pin


EXPECTED = {
    Kind.ALLOWED: "allow",
    Kind.SOLD: "already-sold",
    Kind.UNKNOWN: "unknown-origin",
    Kind.WRONG_PIN: "same-serial-different-pin",
}
# The query mix of the verify benchmarks: mostly clean codes, as at a till.
MIX: tuple[tuple[Kind, float], ...] = (
    (Kind.ALLOWED, 0.80),
    (Kind.SOLD, 0.10),
    (Kind.UNKNOWN, 0.05),
    (Kind.WRONG_PIN, 0.05),
)


@dataclass(frozen=True, slots=True)
class Layout:
    """Which codes the store holds, and where each one is."""

    codes: int
    batch_size: int

    @property
    def batches(self) -> int:
        return -(-self.codes // self.batch_size)

    def _bounds(self, b: int) -> tuple[int, int, int, int, int]:
        start = b * self.batch_size
        size = min(self.batch_size, self.codes - start)
        return (
            start,
            start + int(size * SOLD_SHARE),
            start + int(size * MERCHANT_SHARE),
            start + int(size * DISTRIBUTOR_SHARE),
            start + size,
        )

    def to_distributor(self, b: int) -> range:
        start, _, _, dist, _ = self._bounds(b)
        return range(start, dist)

    def to_merchant(self, b: int) -> range:
        start, _, merchant, _, _ = self._bounds(b)
        return range(start, merchant)

    def sold(self, b: int) -> range:
        start, sold, _, _, _ = self._bounds(b)
        return range(start, sold)

    def allowed(self, b: int) -> range:
        _, sold, merchant, _, _ = self._bounds(b)
        return range(sold, merchant)


@dataclass(frozen=True, slots=True)
class Sample:
    """One code asked about: its raw parts (kept in memory) and what it should get."""

    kind: Kind
    serial: str
    pin: str = field(repr=False)

    def raw_query(self) -> CodeQuery:
        return CodeQuery.from_raw(FINGERPRINT_KEY, ISSUER, PRODUCT, self.serial, self.pin)

    def fingerprint_query(self) -> CodeQuery:
        """The query of a caller that sends the fingerprint only (no serial fingerprint)."""
        return CodeQuery(code_fingerprint(FINGERPRINT_KEY, ISSUER, PRODUCT, self.serial, self.pin))


def samples(layout: Layout, n: int, seed: int = 1) -> list[Sample]:
    """``n`` codes drawn over the whole store in the proportions of :data:`MIX`, shuffled."""
    rng = random.Random(seed)
    out: list[Sample] = []
    for kind, share in MIX:
        for _ in range(round(n * share)):
            b = rng.randrange(layout.batches)
            if kind is Kind.ALLOWED:
                i = rng.choice(layout.allowed(b))
                out.append(Sample(kind, serial(i), pin(i)))
            elif kind is Kind.SOLD:
                i = rng.choice(layout.sold(b))
                out.append(Sample(kind, serial(i), pin(i)))
            elif kind is Kind.UNKNOWN:
                i = layout.codes + rng.randrange(10**9)
                out.append(Sample(kind, serial(i), pin(i)))
            else:
                i = rng.randrange(layout.codes)
                out.append(Sample(kind, serial(i), pin(i + 1)))
    rng.shuffle(out)
    return out[:n]


# --- building the store ---------------------------------------------------------------------


@dataclass(slots=True)
class StoreReport:
    """How long each setup phase took."""

    codes: int = 0
    entries: int = 0
    checkpoint_size: int = 0
    analyzed: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def rate(self, phase: str) -> float:
        return self.counts[phase] / self.seconds[phase]

    def lines(self) -> list[str]:
        return [
            f"{phase}: {self.counts[phase]:,} codes in {self.seconds[phase]:.1f} s "
            f"({self.rate(phase):,.0f} codes/s)"
            for phase in self.seconds
        ]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _signed(key: Ed25519PrivateKey, actor: str, kind: str, body: dict[str, Any]) -> SignedStatement:
    statement = Statement(kind, NOW, actor, key_id_for(raw_public_key(key)), False, body)
    return sign_statement(statement, key)


def prepare_parties(engine: Engine, ledger: Ledger) -> dict[str, Ed25519PrivateKey]:
    """Migrate; write the genesis, the three parties (the merchant approved) and the product.

    Returns:
        Each party's signing key.
    """
    upgrade(engine)
    keys = {party: party_key(party) for party in (ISSUER, DISTRIBUTOR, MERCHANT)}
    with Session(engine) as session, write_transaction(session):
        ledger.ensure_genesis(session, name="bench", now=NOW)
        for party, kind in (
            (ISSUER, "issuer"),
            (DISTRIBUTOR, "distributor"),
            (MERCHANT, "merchant"),
        ):
            body = {
                "party": party,
                "kind": kind,
                "name": f"{party} Ltd",
                "keys": [key_body(raw_public_key(keys[party]), NOW - timedelta(days=1))],
            }
            ledger.append_as_platform(
                session, [ledger.statement("party.register", body, now=NOW)], now=NOW
            )
        status = {"party": MERCHANT, "status": "approved", "reason": "merchant vetting decision"}
        ledger.append_as_platform(
            session, [ledger.statement("party.status", status, now=NOW)], now=NOW
        )
        ledger.append(
            session, [_signed(keys[ISSUER], ISSUER, "product.register", PRODUCT_BODY)], now=NOW
        )
    return keys


def issue(
    engine: Engine,
    ledger: Ledger,
    keys: dict[str, Ed25519PrivateKey],
    rows: Any,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Issue the batches in ``rows`` with ``import_issuance``, in one transaction (as the
    ``cardtrace codes import`` command does), signed by the issuer's own key.

    Returns:
        The number of ledger entries appended.
    """
    signers = Signers(ledger.platform, {ISSUER: keys[ISSUER]})
    with Session(engine) as session, write_transaction(session):
        report = import_issuance(
            session,
            ledger,
            rows,
            fingerprint_key=FINGERPRINT_KEY,
            signers=signers,
            now=NOW,
            progress=progress,
        )
    return report.entries


def _append_all(
    engine: Engine, ledger: Ledger, statements: Iterator[SignedStatement], per_append: int
) -> int:
    count = 0
    batch: list[SignedStatement] = []

    def flush() -> None:
        nonlocal count
        with Session(engine) as session, write_transaction(session):
            ledger.append(session, batch, now=NOW)
        count += len(batch)
        batch.clear()

    for statement in statements:
        batch.append(statement)
        if len(batch) >= per_append:
            flush()
    if batch:
        flush()
    return count


def _moves(
    key: Ed25519PrivateKey, actor: str, kind: str, ranges: Iterator[range], extra: dict[str, Any]
) -> Iterator[SignedStatement]:
    for codes in ranges:
        for start in range(codes.start, codes.stop, MAX_CODES_PER_ENTRY):
            part = range(start, min(start + MAX_CODES_PER_ENTRY, codes.stop))
            body = {"codes": [_b64(fingerprint(i)) for i in part], **extra}
            yield _signed(key, actor, kind, body)


def _sales(key: Ed25519PrivateKey, layout: Layout) -> Iterator[SignedStatement]:
    for b in range(layout.batches):
        for i in layout.sold(b):
            body = {
                "code": _b64(fingerprint(i)),
                "buyer": pseudonym(FINGERPRINT_KEY, "buyer", f"buyer-{i % 5000}"),
                "instrument": pseudonym(FINGERPRINT_KEY, "instrument", f"token-{i % 7000}"),
                "amount": "100.00",
                "currency": "CNY",
            }
            yield _signed(key, MERCHANT, "code.sale", body)


def build_store(
    engine: Engine, layout: Layout, say: Say, *, analyze_stats: bool = True
) -> StoreReport:
    """Fill an empty database with the store described in the module docstring.

    Args:
        analyze_stats: on PostgreSQL, run ``ANALYZE`` once the store is built (see
            :func:`analyze`); ``--no-analyze`` turns it off.

    Returns:
        The duration and size of each phase.
    """
    ledger = make_ledger()
    report = StoreReport(codes=layout.codes)
    try:
        keys = prepare_parties(engine, ledger)

        def phase(name: str, count: int, run: Callable[[], int]) -> None:
            say(f"  setup: {name} ({count:,} codes) ...")
            start = time.perf_counter()
            report.entries += run()
            report.seconds[name] = time.perf_counter() - start
            report.counts[name] = count
            say(f"  setup: {report.lines()[-1]}")

        every = max(layout.codes // 10, 1)

        def issued(rows: int) -> None:
            if rows % every == 0:
                say(f"    issued {rows:,}/{layout.codes:,}")

        phase(
            "issue (import_issuance)",
            layout.codes,
            lambda: issue(
                engine,
                ledger,
                keys,
                issuance_rows(layout.codes, layout.batch_size),
                progress=issued,
            ),
        )
        batches = range(layout.batches)
        phase(
            "transfer issuer -> distributor",
            sum(len(layout.to_distributor(b)) for b in batches),
            lambda: _append_all(
                engine,
                ledger,
                _moves(
                    keys[ISSUER],
                    ISSUER,
                    "code.transfer",
                    (layout.to_distributor(b) for b in batches),
                    {"from": ISSUER, "to": DISTRIBUTOR},
                ),
                _ENTRIES_PER_APPEND,
            ),
        )
        phase(
            "transfer distributor -> merchant",
            sum(len(layout.to_merchant(b)) for b in batches),
            lambda: _append_all(
                engine,
                ledger,
                _moves(
                    keys[DISTRIBUTOR],
                    DISTRIBUTOR,
                    "code.transfer",
                    (layout.to_merchant(b) for b in batches),
                    {"from": DISTRIBUTOR, "to": MERCHANT},
                ),
                _ENTRIES_PER_APPEND,
            ),
        )
        phase(
            "list by merchant",
            sum(len(layout.to_merchant(b)) for b in batches),
            lambda: _append_all(
                engine,
                ledger,
                _moves(
                    keys[MERCHANT],
                    MERCHANT,
                    "code.list",
                    (layout.to_merchant(b) for b in batches),
                    {},
                ),
                _ENTRIES_PER_APPEND,
            ),
        )
        phase(
            "sell (one entry each)",
            sum(len(layout.sold(b)) for b in batches),
            lambda: _append_all(engine, ledger, _sales(keys[MERCHANT], layout), _SALES_PER_APPEND),
        )
        with Session(engine) as session, write_transaction(session):
            size = ledger.issue_checkpoint(session, now=NOW).size
        report.checkpoint_size = size
        say(f"  setup: checkpoint of size {size:,} issued")
        if analyze_stats:
            report.analyzed = analyze(engine, say)
        else:
            report.analyzed = "none (--no-analyze)"
    finally:
        ledger.close()
    return report


def analyze(engine: Engine, say: Say) -> str:
    """On PostgreSQL, vacuum and gather planner statistics as autovacuum does after a bulk
    load.

    Without statistics the planner guesses: verifying 10,000 codes then scans
    ``code_event`` in full for each chunk of 500 (8 s instead of 2 s in our runs). Without
    a vacuum no page is marked all-visible, so every index lookup also reads the table,
    and the first read of each row writes its hint bits. Autovacuum does both after a
    large insert (``autovacuum_vacuum_insert_threshold``), but not within a benchmark's
    seconds, and it is off on some servers. SQLite is left as cardtrace runs it (no
    ``ANALYZE``).

    Returns:
        What was done, for the report.
    """
    if engine.dialect.name != "postgresql":
        return "none (SQLite, as cardtrace runs it)"
    with engine.connect() as conn:
        autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar_one()
    start = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")
    seconds = time.perf_counter() - start
    say(f"  setup: VACUUM (ANALYZE) in {seconds:.1f} s (autovacuum is {autovacuum} here)")
    return (
        f"VACUUM (ANALYZE) after the load ({seconds:.1f} s; autovacuum is {autovacuum} "
        "on this server)"
    )


# --- figures ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Latency percentiles, in milliseconds (nearest-rank)."""

    n: int
    p50: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def of(cls, seconds: list[float]) -> Percentiles:
        ms = sorted(s * 1000 for s in seconds)

        def rank(p: int) -> float:
            return ms[min(len(ms) - 1, max(0, math.ceil(len(ms) * p / 100) - 1))]

        return cls(len(ms), rank(50), rank(90), rank(99), statistics.fmean(ms))

    def __str__(self) -> str:
        return f"p50 {self.p50:.3f} ms, p90 {self.p90:.3f} ms, p99 {self.p99:.3f} ms"


def ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


# --- a store built beforehand ------------------------------------------------------------------


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sqlite-store",
        metavar="PATH",
        help="use this SQLite store, built by bench.codes_store with the same --codes and "
        "--batch-size, instead of building one",
    )
    parser.add_argument(
        "--postgres-store",
        metavar="URL",
        help="use this PostgreSQL store (a database URL), built by bench.codes_store, "
        "instead of building one",
    )


def _built_report(engine: Engine, layout: Layout, origin: str) -> StoreReport:
    with engine.connect() as conn:
        codes = conn.execute(select(func.count()).select_from(Code)).scalar_one()
        size = conn.execute(select(func.max(StoredCheckpoint.size))).scalar_one()
    if codes != layout.codes or size is None:
        raise SystemExit(
            f"{origin} holds {codes:,} codes and checkpoint size {size}; expected a store of "
            f"{layout.codes:,} codes built by bench.codes_store"
        )
    return StoreReport(
        codes=codes, checkpoint_size=size, analyzed=f"as left by bench.codes_store ({origin})"
    )


@contextmanager
def open_store(
    kind: str, args: argparse.Namespace, say: Say
) -> Iterator[tuple[Database, StoreReport] | None]:
    """The store to measure on ``kind``: the one given by ``--sqlite-store`` or
    ``--postgres-store``, or else a fresh database filled by :func:`build_store`.

    Yields:
        The database and its setup report, or ``None`` if the server is unreachable.
    """
    layout = Layout(args.codes, args.batch_size)
    given = args.sqlite_store if kind == "sqlite" else args.postgres_store
    if given:
        url = make_url(f"sqlite:///{given}" if kind == "sqlite" else given)
        engine = make_engine(url)
        try:
            label = "SQLite" if kind == "sqlite" else "PostgreSQL"
            say(f"{label}: using the store at {url.render_as_string(hide_password=True)}")
            yield Database(label, engine), _built_report(engine, layout, given)
        finally:
            engine.dispose()
        return
    with open_database(kind, args) as db:
        if db is None:
            yield None
            return
        say(f"{db.label}: building a store of {args.codes:,} codes")
        no_analyze = getattr(args, "no_analyze", False)
        yield db, build_store(db.engine, layout, say, analyze_stats=not no_analyze)

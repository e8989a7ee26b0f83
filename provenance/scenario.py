"""A realistic supply chain, written to the ledger, with known frauds in it.

Issuers issue batches, distributors buy them, merchants buy from distributors, list
and sell; buyers pay with instruments, some of which anti-fraud partners later report
stolen. Into this go the frauds a platform must catch: codes of unknown origin, a
serial sold again with another PIN, double-sale attempts, codes bought with stolen
payments, voided and frozen codes, an expired batch, supplier-attested codes, sales by
unapproved or suspended merchants. Every injected case is labelled, so the demo can
show it and tests can check it. Deterministic for a given seed and scale.
"""

from __future__ import annotations

import base64
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from provenance.codes import MAX_CODES_PER_ENTRY, Product
from provenance.db import write_transaction
from provenance.entries import (
    SignedStatement,
    Statement,
    format_time,
    key_id_for,
    raw_public_key,
    sign_statement,
)
from provenance.errors import CardtraceError
from provenance.fingerprints import code_fingerprint, pseudonym, serial_fingerprint
from provenance.issuance import BatchBuilder
from provenance.ledger import Ledger
from provenance.parties import Party, key_body

Say = Callable[[str], None]

ISSUERS = (
    (
        "tencent-cards",
        "Tencent Game Card Issuing",
        (("qq-coin-100", "QQ Coins 100", "100.00"), ("wegame-50", "WeGame 50", "50.00")),
    ),
    (
        "netease-points",
        "NetEase Points Issuing",
        (
            ("netease-30", "NetEase Points 30", "30.00"),
            ("netease-100", "NetEase Points 100", "100.00"),
        ),
    ),
    (
        "china-mobile-topup",
        "China Mobile Top-up Cards",
        (
            ("cm-topup-50", "Mobile top-up 50", "50.00"),
            ("cm-topup-100", "Mobile top-up 100", "100.00"),
        ),
    ),
)
DISTRIBUTORS = (
    ("hua-distribution", "Huaxia Card Distribution Co."),
    ("east-wholesale", "East Coast Card Wholesale"),
)
MERCHANTS = (
    ("shop-longmen", "Longmen Game Shop", "approved"),
    ("shop-xinyue", "Xinyue Top-up Store", "approved"),
    ("shop-fastcard", "FastCard Online", "approved"),
    ("shop-jade", "Jade Rabbit Cards", "approved"),
    ("shop-pearl", "Pearl River Points", "approved"),
    ("shop-newcomer", "Newcomer Cards (awaiting vetting)", "pending"),
    ("shop-vanished", "Vanished Cards Ltd (suspended)", "suspended"),
)
PARTNER = ("antifraud-alliance", "Payment Anti-Fraud Alliance")
BATCH_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Example:
    """A labelled case: what the verify call should say about this code and merchant."""

    label: str
    merchant: str
    issuer: str
    product: str
    serial: str
    pin: str = field(repr=False)
    expect: str  # the reason code expected, or "allow"


@dataclass(slots=True)
class ScenarioResult:
    codes: int = 0
    entries: int = 0
    sales: int = 0
    double_sales_refused: int = 0
    stolen_instruments: int = 0
    examples: list[Example] = field(default_factory=list)
    # What the ledger analysis should flag: (typology, subject kind, subject).
    analysis_cases: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Code:
    issuer: str
    product: str
    serial: str
    pin: str
    holder: str
    state: str = "issued"

    def fingerprint(self, key: bytes) -> bytes:
        return code_fingerprint(key, self.issuer, self.product, self.serial, self.pin)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class SupplyChain:
    """Builds the scenario; see the module docstring."""

    def __init__(
        self,
        session: Session,
        ledger: Ledger,
        *,
        fingerprint_key: bytes,
        party_keys: Callable[[str], Ed25519PrivateKey],
        clock: Callable[[], datetime],
        scale: float = 1.0,
        seed: int = 7,
        say: Say = lambda _: None,
    ) -> None:
        self.session = session
        self.ledger = ledger
        self.key = fingerprint_key
        self.party_keys = party_keys
        self.clock = clock
        self.scale = scale
        self.rng = random.Random(seed)  # noqa: S311 (synthetic data, not secrets)
        self.say = say
        self.result = ScenarioResult()
        self.codes: list[_Code] = []

    # --- plumbing ---------------------------------------------------------------------

    def _signed(self, party: str, kind: str, body: dict[str, Any]) -> SignedStatement:
        key = self.party_keys(party)
        statement = Statement(
            kind, self.clock(), party, key_id_for(raw_public_key(key)), False, body
        )
        return sign_statement(statement, key)

    def _append(self, batch: list[SignedStatement]) -> None:
        for start in range(0, len(batch), 2000):
            part = batch[start : start + 2000]
            with write_transaction(self.session):
                self.ledger.append(self.session, part, now=self.clock())
            self.result.entries += len(part)

    def _platform(self, kind: str, body: dict[str, Any], actor: str | None = None) -> None:
        with write_transaction(self.session):
            self.ledger.append_as_platform(
                self.session,
                [self.ledger.statement(kind, body, now=self.clock(), actor=actor)],
                now=self.clock(),
            )
        self.result.entries += 1

    # --- the story --------------------------------------------------------------------

    def run(self) -> ScenarioResult:
        if self.session.get(Party, ISSUERS[0][0]) is not None:
            raise CardtraceError(
                "the demo supply chain is already in this store", code="demo-exists"
            )
        self._cast()
        self._issue()
        self._distribute()
        self._sell()
        self._inject()
        self._inject_for_analysis()
        return self.result

    def _cast(self) -> None:
        now = self.clock()
        statements = []
        people = [(i, "issuer", n) for i, n, _ in ISSUERS] + [
            (d, "distributor", n) for d, n in DISTRIBUTORS
        ]
        people += [(m, "merchant", n) for m, n, _ in MERCHANTS] + [
            (PARTNER[0], "partner", PARTNER[1])
        ]
        for party, kind, name in people:
            key = self.party_keys(party)
            body = {
                "party": party,
                "kind": kind,
                "name": name,
                "keys": [key_body(raw_public_key(key), now - timedelta(seconds=1))],
            }
            statements.append(self.ledger.statement("party.register", body, now=now))
        with write_transaction(self.session):
            self.ledger.append_as_platform(self.session, statements, now=now)
        self.result.entries += len(statements)
        for merchant, _, status in MERCHANTS:
            if status != "pending":
                self._platform(
                    "party.status",
                    {"party": merchant, "status": status, "reason": "merchant vetting decision"},
                )
        products = []
        for issuer, _, items in ISSUERS:
            for sku, name, value in items:
                product_body: dict[str, Any] = {
                    "product": f"{issuer}.{sku}",
                    "issuer": issuer,
                    "sku": sku.upper(),
                    "name": name,
                    "face_value": value,
                    "currency": "CNY",
                    "serial": {"charset": "digits", "min_length": 12, "max_length": 16},
                    "pin": {"charset": "digits", "min_length": 12, "max_length": 18},
                }
                products.append(self._signed(issuer, "product.register", product_body))
        self._append(products)
        self.say(f"  cast: {len(people)} parties registered, {len(products)} products")

    def _new_code(self, issuer: str, product: str) -> _Code:
        serial = f"{self.rng.randrange(10**13, 10**14)}"
        pin = f"{self.rng.randrange(10**15, 10**16)}"
        return _Code(issuer, product, serial, pin, holder=issuer)

    def _issue(self) -> None:
        total = max(int(200_000 * self.scale), 600)
        products = [
            (issuer, f"{issuer}.{sku}") for issuer, _, items in ISSUERS for sku, _, _ in items
        ]
        per_batch = min(BATCH_SIZE, max(total // (2 * len(products)), 50))
        batch_number = 0
        while len(self.codes) < total:
            for issuer, product_id in products:
                if len(self.codes) >= total:
                    break
                batch_number += 1
                product = self.session.get(Product, product_id)
                assert product is not None
                builder = BatchBuilder(self.key, product, f"{product_id}.b{batch_number:04d}")
                statements = []
                for _ in range(per_batch):
                    code = self._new_code(issuer, product_id)
                    self.codes.append(code)
                    chunk = builder.add(code.serial, code.pin)
                    if chunk is not None:
                        statements.append(self._signed(issuer, "batch.codes", chunk))
                last = builder.flush()
                if last is not None:
                    statements.append(self._signed(issuer, "batch.codes", last))
                expires = self.clock() + timedelta(days=730)
                statements.append(
                    self._signed(issuer, "batch.issue", builder.issue_body(expires_at=expires))
                )
                self._append(statements)
            self.say(f"  issued {len(self.codes):,} codes")
        self.result.codes = len(self.codes)

    def _transfer(self, sender: str, recipient: str, codes: list[_Code]) -> None:
        statements = []
        for start in range(0, len(codes), MAX_CODES_PER_ENTRY):
            part = codes[start : start + MAX_CODES_PER_ENTRY]
            body = {
                "codes": [_b64(c.fingerprint(self.key)) for c in part],
                "from": sender,
                "to": recipient,
            }
            statements.append(self._signed(sender, "code.transfer", body))
            for code in part:
                code.holder, code.state = recipient, "held"
        self._append(statements)

    def _distribute(self) -> None:
        approved = [m for m, _, status in MERCHANTS if status == "approved"]
        for issuer, _, _ in ISSUERS:
            mine = [c for c in self.codes if c.issuer == issuer]
            wholesale = mine[: int(len(mine) * 0.9)]
            half = len(wholesale) // 2
            for distributor, part in (
                (DISTRIBUTORS[0][0], wholesale[:half]),
                (DISTRIBUTORS[1][0], wholesale[half:]),
            ):
                self._transfer(issuer, distributor, part)
        for distributor, _ in DISTRIBUTORS:
            held = [c for c in self.codes if c.holder == distributor]
            onward = held[: int(len(held) * 0.8)]
            for index, merchant in enumerate(approved):
                self._transfer(distributor, merchant, onward[index :: len(approved)])
        self.say("  distributed: issuers -> 2 distributors -> 5 approved merchants")

    def _sale_body(self, code: _Code, buyer: str, instrument: str, amount: str) -> dict[str, Any]:
        return {
            "code": _b64(code.fingerprint(self.key)),
            "buyer": pseudonym(self.key, "buyer", buyer),
            "instrument": pseudonym(self.key, "instrument", instrument),
            "device": pseudonym(self.key, "device", f"device-{buyer}"),
            "ip": pseudonym(self.key, "ip", f"198.51.100.{zlib.crc32(buyer.encode()) % 250}"),
            "amount": amount,
            "currency": "CNY",
        }

    def _sell(self) -> None:
        merchants = [m for m, _, status in MERCHANTS if status == "approved"]
        statements = []
        for merchant in merchants:
            held = [c for c in self.codes if c.holder == merchant]
            listed = held[: int(len(held) * 0.6)]
            for start in range(0, len(listed), MAX_CODES_PER_ENTRY):
                part = listed[start : start + MAX_CODES_PER_ENTRY]
                statements.append(
                    self._signed(
                        merchant,
                        "code.list",
                        {"codes": [_b64(c.fingerprint(self.key)) for c in part]},
                    )
                )
                for code in part:
                    code.state = "listed"
        self._append(statements)
        sales = []
        for merchant in merchants:
            listed = [c for c in self.codes if c.holder == merchant and c.state == "listed"]
            for code in listed[: int(len(listed) * 0.5)]:
                buyer = f"buyer-{self.rng.randrange(max(int(20_000 * self.scale), 50))}"
                instrument = f"token-{self.rng.randrange(max(int(30_000 * self.scale), 80))}"
                sales.append(
                    self._signed(
                        merchant, "code.sale", self._sale_body(code, buyer, instrument, "100.00")
                    )
                )
                code.state = "sold"
        self._append(sales)
        self.result.sales = len(sales)
        self.say(f"  sold {len(sales):,} codes to buyers")

    def _pick(self, merchant: str, state: str) -> _Code:
        return next(c for c in self.codes if c.holder == merchant and c.state == state)

    def _example(
        self, label: str, merchant: str, code: _Code, expect: str, pin: str | None = None
    ) -> None:
        self.result.examples.append(
            Example(
                label, merchant, code.issuer, code.product, code.serial, pin or code.pin, expect
            )
        )

    def _inject(self) -> None:
        shop, other = MERCHANTS[0][0], MERCHANTS[1][0]
        # A clean code, listed by the shop that holds it.
        clean = self._pick(shop, "listed")
        self._example("clean code, listed by its holder", shop, clean, "allow")
        clean.state = "checked"

        # Double selling: a second sale of a sold code is refused by the ledger.
        sold = self._pick(shop, "sold")
        try:
            self._append(
                [
                    self._signed(
                        shop, "code.sale", self._sale_body(sold, "buyer-x", "token-x", "100.00")
                    )
                ]
            )
        except CardtraceError:
            self.result.double_sales_refused += 1
        self._example("double sale: the code was sold before", shop, sold, "already-sold")

        # A code the supply chain never saw.
        ghost = self._new_code(ISSUERS[0][0], f"{ISSUERS[0][0]}.{ISSUERS[0][2][0][0]}")
        self._example("unknown origin: never issued", shop, ghost, "unknown-origin")

        # The same serial with a different PIN.
        twin = self._pick(shop, "listed")
        self._example(
            "same serial, different PIN",
            shop,
            twin,
            "same-serial-different-pin",
            pin=str(int(twin.pin) + 1),
        )
        twin.state = "checked"

        # Stolen payments: a batch of purchases with instruments later reported stolen.
        stolen = [f"stolen-token-{i}" for i in range(3)]
        listed = [c for c in self.codes if c.holder == other and c.state == "listed"][: 3 * 6]
        purchases = [
            self._signed(
                other, "code.sale", self._sale_body(c, f"mule-{i % 2}", stolen[i % 3], "100.00")
            )
            for i, c in enumerate(listed)
        ]
        self._append(purchases)
        for code in listed:
            code.state = "sold"
        for instrument in stolen:
            body = {
                "kind": "instrument",
                "pseudonym": pseudonym(self.key, "instrument", instrument),
                "reported_at": format_time(self.clock()),
                "reason": "cardholder reported the card stolen",
            }
            self._append([self._signed(PARTNER[0], "payment.stolen", body)])
        self.result.stolen_instruments = len(stolen)
        self._example(
            "bought with a card reported stolen", other, listed[0], "tainted-stolen-payment"
        )

        # Voided by the issuer, frozen by the platform.
        voided = self._pick(other, "listed")
        self._append(
            [
                self._signed(
                    voided.issuer,
                    "code.void",
                    {
                        "codes": [_b64(voided.fingerprint(self.key))],
                        "reason": "issuer recalled the batch",
                    },
                )
            ]
        )
        voided.state = "voided"
        self._example("voided by its issuer", other, voided, "voided")
        frozen = self._pick(other, "listed")
        self._platform(
            "code.freeze",
            {"codes": [_b64(frozen.fingerprint(self.key))], "reason": "under investigation"},
        )
        frozen.state = "frozen"
        self._example("frozen by the platform", other, frozen, "frozen")

        # A code held by a distributor, offered by a shop: the custody chain breaks.
        with_distributor = next(c for c in self.codes if c.holder == DISTRIBUTORS[0][0])
        self._example(
            "custody break: the shop never received it", shop, with_distributor, "custody-break"
        )

        # Codes whose origin only a merchant vouches for.
        issuer, product = ISSUERS[1][0], f"{ISSUERS[1][0]}.{ISSUERS[1][2][0][0]}"
        attested = [self._new_code(issuer, product) for _ in range(5)]
        pairs = [
            [
                _b64(c.fingerprint(self.key)),
                _b64(serial_fingerprint(self.key, c.issuer, c.product, c.serial)),
            ]
            for c in attested
        ]
        self._append(
            [
                self._signed(
                    shop,
                    "code.attest",
                    {
                        "product": product,
                        "codes": pairs,
                        "evidence_sha256": "3f" * 32,
                        "note": "purchase invoice INV-2026-0117",
                    },
                )
            ]
        )
        for code in attested:
            code.holder = shop
        self._example(
            "origin only attested by a supplier", shop, attested[0], "supplier-attested-only"
        )

        # An old batch whose codes have expired.
        issuer, product_id = ISSUERS[2][0], f"{ISSUERS[2][0]}.{ISSUERS[2][2][0][0]}"
        expiring = self.session.get(Product, product_id)
        assert expiring is not None
        builder = BatchBuilder(self.key, expiring, f"{product_id}.expired")
        old = [self._new_code(issuer, product_id) for _ in range(5)]
        for code in old:
            builder.add(code.serial, code.pin)
        last = builder.flush()
        assert last is not None
        expired = self.clock() - timedelta(days=1)
        self._append(
            [
                self._signed(issuer, "batch.codes", last),
                self._signed(issuer, "batch.issue", builder.issue_body(expires_at=expired)),
            ]
        )
        self._transfer(issuer, shop, old)
        self._example("expired batch", shop, old[0], "expired")

        # Merchants that may not sell.
        self._example(
            "merchant awaiting vetting",
            MERCHANTS[5][0],
            self._pick(shop, "listed"),
            "merchant-not-approved",
        )
        self._example(
            "suspended merchant", MERCHANTS[6][0], self._pick(shop, "listed"), "merchant-suspended"
        )
        self.say(
            f"  injected: double sale, unknown origin, same serial with another PIN, "
            f"{len(stolen)} stolen cards, void, freeze, custody break, attested origin"
        )

    def _inject_for_analysis(self) -> None:
        """Frauds only the ledger analysis sees: a serial cloned under another PIN and
        sold twice, a shop stocked by its own attestations; and what it should name of
        the stolen cards: the cards and the mules who paid with them."""
        shop, cloner = MERCHANTS[0][0], MERCHANTS[3][0]
        sold = next(c for c in self.codes if c.holder == shop and c.state == "sold")
        clone = _Code(sold.issuer, sold.product, sold.serial, str(int(sold.pin) + 7), cloner)
        serial = serial_fingerprint(self.key, clone.issuer, clone.product, clone.serial)
        pair = [_b64(clone.fingerprint(self.key)), _b64(serial)]
        attest = {
            "product": clone.product,
            "codes": [pair],
            "evidence_sha256": "5a" * 32,
            "note": "bought from a private seller",
        }
        self._append([self._signed(cloner, "code.attest", attest)])
        body = self._sale_body(clone, "buyer-clone", "token-clone", "100.00")
        self._append([self._signed(cloner, "code.sale", body)])
        clone.state = "sold"
        for typology in ("double-sale", "same-serial-different-pin"):
            self.result.analysis_cases.append((typology, "serial", serial[:6].hex()))

        ghost = "shop-ghost"
        key = self.party_keys(ghost)
        now = self.clock()
        register = {
            "party": ghost,
            "kind": "merchant",
            "name": "Ghost Cards (stocks itself)",
            "keys": [key_body(raw_public_key(key), now - timedelta(seconds=1))],
        }
        self._platform("party.register", register)
        self._platform(
            "party.status",
            {"party": ghost, "status": "approved", "reason": "merchant vetting decision"},
        )
        issuer, product = ISSUERS[0][0], f"{ISSUERS[0][0]}.{ISSUERS[0][2][0][0]}"
        stock = [self._new_code(issuer, product) for _ in range(30)]
        pairs = [
            [
                _b64(c.fingerprint(self.key)),
                _b64(serial_fingerprint(self.key, c.issuer, c.product, c.serial)),
            ]
            for c in stock
        ]
        attest = {
            "product": product,
            "codes": pairs,
            "evidence_sha256": "6b" * 32,
            "note": "stock from a wholesaler abroad",
        }
        self._append([self._signed(ghost, "code.attest", attest)])
        sales = [
            self._signed(
                ghost,
                "code.sale",
                self._sale_body(code, f"buyer-{i}", f"token-{i}", "100.00"),
            )
            for i, code in enumerate(stock[:20])
        ]
        self._append(sales)
        self.result.analysis_cases.append(("unknown-origin", "party", ghost))
        for mule in range(2):
            self.result.analysis_cases.append(
                ("stolen-payment-taint", "buyer", pseudonym(self.key, "buyer", f"mule-{mule}"))
            )
        for card in range(self.result.stolen_instruments):
            instrument = pseudonym(self.key, "instrument", f"stolen-token-{card}")
            self.result.analysis_cases.append(("stolen-payment-taint", "instrument", instrument))
        self.say("  injected for the analysis: a cloned serial sold twice, a self-stocked shop")

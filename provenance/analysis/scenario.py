"""A generated card-code marketplace with labelled frauds, as ledger events.

Issuers issue batches; distributors take lots from every issuer; merchants restock from
their one or two usual distributors and sell to returning buyers, each with a device,
one or two cards and a home IP (households share one). Around that, what honest
ledgers also have: merchants trading a lot with each other now and then, small lots a
merchant vouches for with an invoice, a family sharing a tablet, a heavy but steady
buyer, a lone stolen card at an honest shop, a lot returned to its distributor.

Into it go the frauds, spread evenly over the typologies, as many as ``fraud_rate``
(the share of events that are fraud) asks: dump shops selling to mules paying with
stolen cards, cloned serials sold twice, ghost shops stocked by their own attestations,
purchase bursts, rings of accounts on one card, and custody laundering between
resellers (cycles, fans, gather-scatter, scatter-gather, pass-through chains).

:func:`generate` yields ``(seq, type, time, actor, body)`` in ledger order, the shape
:meth:`provenance.analysis.ledger_graph.LedgerGraph.apply` takes, without holding the
events in memory; :attr:`Scenario.truth` lists each injected case with the nodes it
involves (``kind:name``). Deterministic for a given seed.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from provenance.analysis.findings import Typology
from provenance.analysis.ledger_detectors import LedgerFinding
from provenance.analysis.ledger_graph import short_code

DAY = 86_400
START = 1_767_225_600  # 2026-01-01T00:00:00Z
DAYS = 90
LEDGER_TYPOLOGIES = (
    Typology.STOLEN_PAYMENT_TAINT,
    Typology.DOUBLE_SALE,
    Typology.UNKNOWN_ORIGIN,
    Typology.BURST,
    Typology.SHARED_ATTRIBUTE_RING,
    Typology.CYCLE,
    Typology.FAN_OUT,
    Typology.FAN_IN,
    Typology.GATHER_SCATTER,
    Typology.SCATTER_GATHER,
    Typology.STACKED_CHAIN,
)
Event = tuple[int, str, int, str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Case:
    """One injected fraud: its typology and every node it involves (``kind:name``)."""

    typology: Typology
    members: frozenset[str]


@dataclass(slots=True)
class Scenario:
    """What :func:`generate` made: the injected cases and counts."""

    truth: list[Case] = field(default_factory=list)
    events: int = 0
    sales: int = 0


@dataclass(frozen=True, slots=True)
class Score:
    typology: Typology
    findings: int
    true_findings: int
    cases: int
    found_cases: int

    @property
    def precision(self) -> float:
        return self.true_findings / self.findings if self.findings else 1.0

    @property
    def recall(self) -> float:
        return self.found_cases / self.cases if self.cases else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(findings: list[LedgerFinding], truth: list[Case]) -> dict[Typology, Score]:
    """Per typology: a finding is true when its subject is a node of a case of its
    typology (same-serial-different-pin is scored against the double-sale cases, which
    are cloned serials); a case is found when some such finding points into it."""
    result = {}
    for typology in {*LEDGER_TYPOLOGIES, Typology.SAME_SERIAL_DIFFERENT_PIN}:
        wanted = (
            Typology.DOUBLE_SALE if typology is Typology.SAME_SERIAL_DIFFERENT_PIN else typology
        )
        cases = [c for c in truth if c.typology is wanted]
        subjects = {f"{f.subject_kind}:{f.subject}" for f in findings if f.typology is typology}
        true = {s for s in subjects if any(s in c.members for c in cases)}
        found = sum(1 for c in cases if c.members & subjects)
        result[typology] = Score(typology, len(subjects), len(true), len(cases), found)
    return result


class _Maker:
    def __init__(self, events: int, fraud_rate: float, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 (synthetic data, not secrets)
        self.target = events
        self.fraud_rate = fraud_rate
        self.seq = -1
        self.scenario = Scenario()
        self.merchants = [f"shop-{i:05d}" for i in range(max(40, events // 500))]
        self.distributors = [f"dist-{i:03d}" for i in range(max(4, len(self.merchants) // 25))]
        self.issuers = ["issuer-tencent", "issuer-netease", "issuer-mobile"]
        self.products = [f"{i}.card-{v}" for i in self.issuers for v in (50, 100)]
        self.stock: dict[str, list[str]] = {}
        self.serial_of: dict[str, str] = {}
        self.usual = {
            m: self.rng.sample(self.distributors, self.rng.choice((1, 2))) for m in self.merchants
        }
        self.buyers = max(200, events // 6)
        self.batch = 0

    # --- names and events ----------------------------------------------------------------

    def token(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode("ascii")

    @staticmethod
    def person(kind: str, name: str) -> str:
        return hashlib.blake2b(f"{kind}/{name}".encode(), digest_size=16).hexdigest()

    def event(self, kind: str, time: int, actor: str, body: dict[str, Any]) -> Event:
        self.seq += 1
        self.scenario.events += 1
        return self.seq, kind, time, actor, body

    def register(self, party: str, kind: str, time: int) -> Event:
        return self.event("party.register", time, "platform", {"party": party, "kind": kind})

    # --- supply ------------------------------------------------------------------------------

    def issue(self, issuer: str, product: str, n: int, time: int) -> Iterator[Event]:
        self.batch += 1
        codes = [(self.token(), self.token()) for _ in range(n)]
        for start in range(0, n, 500):
            part = codes[start : start + 500]
            body = {"batch": f"{product}.b{self.batch}", "product": product, "codes": part}
            yield self.event("batch.codes", time, issuer, body)
        for code, serial in codes:
            self.serial_of[code] = serial
        self.stock.setdefault(issuer, []).extend(c for c, _ in codes)

    def move(self, sender: str, recipient: str, n: int, time: int) -> Iterator[Event]:
        held = self.stock.setdefault(sender, [])
        if len(held) < n:
            return
        lot = held[-n:]
        del held[-n:]
        self.stock.setdefault(recipient, []).extend(lot)
        yield self.event(
            "code.transfer", time, sender, {"codes": lot, "from": sender, "to": recipient}
        )

    def attest(
        self, party: str, n: int, time: int, serials: list[str] | None = None
    ) -> Iterator[Event]:
        codes = [(self.token(), (serials or [])[i] if serials else self.token()) for i in range(n)]
        body = {"product": self.products[1], "codes": codes}
        yield self.event("code.attest", time, party, body)
        for code, serial in codes:
            self.serial_of[code] = serial
        self.stock.setdefault(party, []).extend(c for c, _ in codes)

    def sell(
        self,
        merchant: str,
        buyer: str,
        time: int,
        *,
        instrument: str | None = None,
        device: str | None = None,
        ip: str | None = None,
    ) -> Iterator[Event]:
        held = self.stock.get(merchant)
        if not held:
            return
        body = {
            "code": held.pop(),
            "buyer": buyer,
            "instrument": instrument or self.person("card", buyer),
            "device": device or self.person("device", buyer),
            "ip": ip or self.person("ip", str(int(buyer, 16) % (self.buyers // 2 + 1))),
            "amount": "100.00",
            "currency": "CNY",
        }
        self.scenario.sales += 1
        yield self.event("code.sale", time, merchant, body)

    def buyer(self, i: int) -> str:
        return self.person("buyer", str(i))

    # --- the story ---------------------------------------------------------------------------

    def run(self) -> Iterator[Event]:
        for party, kind in (
            *((i, "issuer") for i in self.issuers),
            *((d, "distributor") for d in self.distributors),
            *((m, "merchant") for m in self.merchants),
            ("alliance", "partner"),
        ):
            yield self.register(party, kind, START)
        for product in self.products:
            body = {"product": product, "issuer": product.split(".")[0], "face_value": "100.00"}
            yield self.event("product.register", START, product.split(".")[0], body)
        frauds = self._plan_frauds()
        per_day = max(1, int(self.target * 0.96) // DAYS)
        for day in range(DAYS):
            now = START + day * DAY
            yield from self._restock(now, per_day)
            for _ in range(per_day):
                if self.scenario.events >= self.target:
                    break
                merchant = self.rng.choice(self.merchants)
                who = self.rng.randrange(self.buyers)
                yield from self.sell(merchant, self.buyer(who), now + self.rng.randrange(DAY))
            yield from self._benign_day(day, now)
            for make in frauds.get(day, []):
                yield from make(now)

    def _restock(self, now: int, per_day: int) -> Iterator[Event]:
        need = per_day * 2
        for issuer in self.issuers:
            if len(self.stock.get(issuer, [])) < need:
                for product in self.products:
                    if product.startswith(issuer):
                        yield from self.issue(issuer, product, need, now)
        lot = max(20, need // len(self.distributors))
        for distributor in self.distributors:
            if len(self.stock.get(distributor, [])) < lot:
                for issuer in self.issuers:
                    yield from self.move(issuer, distributor, lot, now)
        shop_lot = max(10, need // len(self.merchants) * 3)
        for merchant in self.merchants:
            if len(self.stock.get(merchant, [])) < shop_lot // 2:
                yield from self.move(self.rng.choice(self.usual[merchant]), merchant, shop_lot, now)

    def _benign_day(self, day: int, now: int) -> Iterator[Event]:
        rng = self.rng
        # Merchants trade a lot with each other now and then, one-off.
        for _ in range(max(1, len(self.merchants) // 45)):
            a, b = rng.sample(self.merchants, 2)
            yield from self.move(a, b, rng.randint(5, 20), now + rng.randrange(DAY))
        if day % 7 == 3:
            # A small lot vouched for with an invoice; a lot returned to its distributor.
            shop = rng.choice(self.merchants)
            yield from self.attest(shop, 5, now)
            back = rng.choice(self.merchants)
            yield from self.move(back, self.usual[back][0], 10, now + 3600)
            # A family sharing a tablet, each buying now and then.
            family = [self.person("family", f"{day}-{i}") for i in range(3)]
            tablet = self.person("tablet", str(day))
            for i, member in enumerate(family):
                yield from self.sell(
                    rng.choice(self.merchants), member, now + i * 2 * DAY, device=tablet
                )
            # A lone stolen card at an honest shop (its instrument is still a true case).
            thief = self.person("thief", str(day))
            card = self.person("stolen", f"lone-{day}")
            yield from self.sell(rng.choice(self.merchants), thief, now + 7200, instrument=card)
            yield from self._report(card, now + DAY // 2)
            self._case(Typology.STOLEN_PAYMENT_TAINT, f"instrument:{card}", f"buyer:{thief}")
        # A heavy but steady buyer.
        steady = self.person("steady", "one")
        yield from self.sell(self.merchants[0], steady, now + 3600)

    def _report(self, instrument: str, time: int) -> Iterator[Event]:
        body = {"kind": "instrument", "pseudonym": instrument}
        yield self.event("payment.stolen", time, "alliance", body)

    def _case(self, typology: Typology, *members: str) -> None:
        self.scenario.truth.append(Case(typology, frozenset(members)))

    # --- frauds --------------------------------------------------------------------------------

    _SIZE: ClassVar[dict[Typology, int]] = {
        Typology.STOLEN_PAYMENT_TAINT: 22,
        Typology.DOUBLE_SALE: 6,
        Typology.UNKNOWN_ORIGIN: 45,
        Typology.BURST: 14,
        Typology.SHARED_ATTRIBUTE_RING: 8,
        Typology.CYCLE: 4,
        Typology.FAN_OUT: 8,
        Typology.FAN_IN: 8,
        Typology.GATHER_SCATTER: 9,
        Typology.SCATTER_GATHER: 9,
        Typology.STACKED_CHAIN: 5,
    }

    def _plan_frauds(self) -> dict[int, list[Any]]:
        plan: dict[int, list[Any]] = {}
        budget = self.target * self.fraud_rate / len(LEDGER_TYPOLOGIES)
        makers = {
            Typology.STOLEN_PAYMENT_TAINT: self._dump_shop,
            Typology.DOUBLE_SALE: self._clone,
            Typology.UNKNOWN_ORIGIN: self._ghost_shop,
            Typology.BURST: self._burst,
            Typology.SHARED_ATTRIBUTE_RING: self._ring,
            Typology.CYCLE: self._cycle,
            Typology.FAN_OUT: self._fan_out,
            Typology.FAN_IN: self._fan_in,
            Typology.GATHER_SCATTER: self._gather_scatter,
            Typology.SCATTER_GATHER: self._scatter_gather,
            Typology.STACKED_CHAIN: self._chain,
        }
        for typology, make in makers.items():
            count = max(1, round(budget / self._SIZE[typology]))
            for i in range(count):
                day = self.rng.randrange(5, DAYS - 12)
                plan.setdefault(day, []).append(self._bind(make, f"{typology.value}-{i}"))
        return plan

    @staticmethod
    def _bind(make: Any, name: str) -> Any:
        return lambda now: make(name, now)

    def _new_party(self, name: str, kind: str, now: int) -> Iterator[Event]:
        yield self.register(name, kind, now)

    def _dump_shop(self, name: str, now: int) -> Iterator[Event]:
        shop = f"dump-{name}"
        yield from self._new_party(shop, "merchant", now)
        yield from self.move(self.issuers[0], shop, 30, now)
        for i in range(10):
            yield from self.sell(shop, self.buyer(self.rng.randrange(self.buyers)), now + i * DAY)
        members = {f"party:{shop}"}
        for m in range(2):
            mule = self.person("mule", f"{name}-{m}")
            card = self.person("stolen", f"{name}-{m}")
            for i in range(5):
                yield from self.sell(shop, mule, now + DAY + m * 7200 + i * 1500, instrument=card)
            yield from self._report(card, now + 3 * DAY)
            members |= {f"buyer:{mule}", f"instrument:{card}"}
        self._case(Typology.STOLEN_PAYMENT_TAINT, *members)

    def _clone(self, name: str, now: int) -> Iterator[Event]:
        seller, cloner = self.rng.sample(self.merchants, 2)
        held = self.stock.get(seller) or []
        if not held:
            return
        original = held[-1]
        serial = self.serial_of[original]
        yield from self.sell(seller, self.person("buyer-a", name), now)
        yield from self.attest(cloner, 1, now + 3600, serials=[serial])
        yield from self.sell(cloner, self.person("buyer-b", name), now + 7200)
        self._case(Typology.DOUBLE_SALE, f"serial:{short_code(serial)}")

    def _ghost_shop(self, name: str, now: int) -> Iterator[Event]:
        shop = f"ghost-{name}"
        yield from self._new_party(shop, "merchant", now)
        yield from self.move(self.issuers[0], shop, 10, now)
        yield from self.attest(shop, 40, now + 3600)
        for i in range(25):
            yield from self.sell(shop, self.buyer(self.rng.randrange(self.buyers)), now + i * 4000)
        self._case(Typology.UNKNOWN_ORIGIN, f"party:{shop}")

    def _ensure(self, merchant: str, n: int, now: int) -> Iterator[Event]:
        if len(self.stock.get(merchant, [])) < n:
            yield from self.move(self.rng.choice(self.usual[merchant]), merchant, 2 * n, now)

    def _burst(self, name: str, now: int) -> Iterator[Event]:
        fresh = self.person("burst", name)
        shop = self.rng.choice(self.merchants)
        yield from self._ensure(shop, 14, now)
        for i in range(14):
            yield from self.sell(shop, fresh, now + 1000 + i * 150)
        members = [f"buyer:{fresh}", f"device:{self.person('device', fresh)}"]
        members += [f"instrument:{self.person('card', fresh)}"]
        self._case(Typology.BURST, *members)

    def _ring(self, name: str, now: int) -> Iterator[Event]:
        card = self.person("ring-card", name)
        accounts = [self.person("ring", f"{name}-{i}") for i in range(4)]
        for i in range(8):
            shop = self.rng.choice(self.merchants)
            yield from self._ensure(shop, 1, now)
            yield from self.sell(shop, accounts[i % 4], now + i * 6000, instrument=card)
        self._case(
            Typology.SHARED_ATTRIBUTE_RING, f"instrument:{card}", *(f"buyer:{a}" for a in accounts)
        )

    def _resellers(self, name: str, n: int, now: int) -> Iterator[Event]:
        for i in range(n):
            yield from self._new_party(f"{name}-r{i}", "distributor", now)

    def _seed(self, party: str, n: int, now: int) -> Iterator[Event]:
        yield from self.move(self.rng.choice(self.issuers), party, n, now)

    def _cycle(self, name: str, now: int) -> Iterator[Event]:
        size = self.rng.randint(3, 5)
        parties = [f"{name}-r{i}" for i in range(size)]
        yield from self._resellers(name, size, now)
        yield from self._seed(parties[0], 10, now)
        for i in range(size):
            yield from self.move(parties[i], parties[(i + 1) % size], 10, now + (i + 1) * DAY)
        self._case(Typology.CYCLE, *(f"party:{p}" for p in parties))

    def _fronts(self, name: str, n: int, now: int, *, stocked: bool) -> Iterator[Event]:
        """``n`` new resellers fronting for the launderer; when ``stocked``, each got a
        lot from some distributor more than a month before."""
        for i in range(n):
            front = f"{name}-f{i}"
            yield from self._new_party(front, "distributor", now)
            if stocked:
                source = self.rng.choice(self.issuers)
                yield from self.move(source, front, 5, now - self.rng.randint(35, 60) * DAY)

    def _fan_out(self, name: str, now: int) -> Iterator[Event]:
        centre = f"{name}-hub"
        yield from self._new_party(centre, "distributor", now)
        yield from self._seed(centre, 40, now)
        yield from self._fronts(name, 8, now, stocked=False)
        for i in range(8):
            yield from self.move(centre, f"{name}-f{i}", 5, now + (i + 1) * 3 * 3600)
        fronts = [f"party:{name}-f{i}" for i in range(8)]
        self._case(Typology.FAN_OUT, f"party:{centre}", *fronts)

    def _fan_in(self, name: str, now: int) -> Iterator[Event]:
        centre = f"{name}-hub"
        yield from self._new_party(centre, "distributor", now)
        yield from self._fronts(name, 8, now, stocked=True)
        for i in range(8):
            yield from self.move(f"{name}-f{i}", centre, 5, now + (i + 1) * 3 * 3600)
        fronts = [f"party:{name}-f{i}" for i in range(8)]
        self._case(Typology.FAN_IN, f"party:{centre}", *fronts)

    def _gather_scatter(self, name: str, now: int) -> Iterator[Event]:
        hub = f"{name}-hub"
        yield from self._new_party(hub, "distributor", now)
        yield from self._fronts(name, 4, now, stocked=True)
        yield from self._fronts(f"{name}-out", 5, now, stocked=False)
        for i in range(4):
            yield from self.move(f"{name}-f{i}", hub, 5, now + i * 3600)
        for i in range(5):
            yield from self.move(hub, f"{name}-out-f{i}", 4, now + DAY + i * 3600)
        fronts = [f"party:{name}-f{i}" for i in range(4)]
        fronts += [f"party:{name}-out-f{i}" for i in range(5)]
        self._case(Typology.GATHER_SCATTER, f"party:{hub}", *fronts)

    def _scatter_gather(self, name: str, now: int) -> Iterator[Event]:
        size = 6
        yield from self._resellers(name, size, now)
        parties = [f"{name}-r{i}" for i in range(size)]
        origin, middles, sink = parties[0], parties[1:-1], parties[-1]
        yield from self._seed(origin, 40, now)
        for i, middle in enumerate(middles):
            yield from self.move(origin, middle, 10, now + i * 3600)
            yield from self.move(middle, sink, 10, now + DAY + i * 3600)
        self._case(Typology.SCATTER_GATHER, *(f"party:{p}" for p in parties))

    def _chain(self, name: str, now: int) -> Iterator[Event]:
        size = 5
        yield from self._resellers(name, size, now)
        parties = [f"{name}-r{i}" for i in range(size)]
        yield from self._seed(parties[0], 20, now)
        for i in range(size - 1):
            yield from self.move(parties[i], parties[i + 1], 20, now + (i + 1) * DAY)
        self._case(Typology.STACKED_CHAIN, *(f"party:{p}" for p in parties))


def generate(
    events: int, *, fraud_rate: float = 0.01, seed: int = 1
) -> tuple[Scenario, Iterator[Event]]:
    """A scenario of about ``events`` ledger events (see the module docstring).

    Returns:
        The scenario (its ``truth`` complete only once the events are consumed) and the
        events, in ledger order.

    Raises:
        ValueError: ``events`` below 2,000 or ``fraud_rate`` outside (0, 0.2].
    """
    if events < 2000:
        raise ValueError("a scenario needs at least 2,000 events")
    if not 0 < fraud_rate <= 0.2:
        raise ValueError("fraud_rate must be in (0, 0.2]")
    maker = _Maker(events, fraud_rate, seed)
    return maker.scenario, maker.run()

"""Benign traffic that real ledgers have and laundering generators often lack.

Added to a labelled transfer list (every added row is benign), over the list's own
accounts and time span:

* one-off payments between random accounts;
* shops, each paid once by many different accounts, some of whom get a refund;
* a shopping-festival day on which the shops take several times their usual trade;
* monthly payroll from employers to the same employees;
* bill splitting: groups of friends who meet now and then, one pays, the others pay
  that friend back an equal share the same day.

Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DAY = 86_400


@dataclass(frozen=True, slots=True)
class Transfer:
    source: str
    target: str
    amount: float
    time: int  # seconds since the epoch, UTC
    laundering: bool
    kind: str = ""  # the generator's name for the laundering pattern, when it gives one


@dataclass(frozen=True, slots=True)
class BenignMix:
    """How much of each kind to add, relative to the list (see the module docstring)."""

    one_off_share: float = 0.10  # one-off payments, as a share of the list's rows
    shops: int = 40
    payers_per_shop: tuple[int, int] = (50, 300)
    refund_share: float = 0.05
    festival_payments: int = 3000
    employers: int = 15
    employees_per_employer: tuple[int, int] = (10, 40)
    friend_groups: int = 300
    group_size: tuple[int, int] = (3, 6)
    meetings_per_group: tuple[int, int] = (3, 8)


def add_benign(
    transfers: list[Transfer], mix: BenignMix | None = None, seed: int = 11
) -> list[Transfer]:
    """``transfers`` plus benign traffic, sorted by time (stable)."""
    mix = mix or BenignMix()
    rng = random.Random(seed)
    accounts = sorted({t.source for t in transfers} | {t.target for t in transfers})
    start = min(t.time for t in transfers)
    end = max(t.time for t in transfers)

    def when() -> int:
        return rng.randint(start, end)

    added: list[Transfer] = []
    for _ in range(int(len(transfers) * mix.one_off_share)):
        a, b = rng.sample(accounts, 2)
        added.append(Transfer(a, b, round(rng.uniform(5, 2000), 2), when(), False))
    festival = start + (end - start) // 2
    for s in range(mix.shops):
        shop = f"benign-shop-{s}"
        payers = rng.sample(accounts, rng.randint(*mix.payers_per_shop))
        for payer in payers:
            t, price = when(), round(rng.uniform(5, 300), 2)
            added.append(Transfer(payer, shop, price, t, False))
            if rng.random() < mix.refund_share:
                added.append(Transfer(shop, payer, price, t + rng.randint(3600, 7 * DAY), False))
    for _ in range(mix.festival_payments):
        shop = f"benign-shop-{rng.randrange(mix.shops)}"
        t = festival + rng.randint(0, DAY - 1)
        added.append(Transfer(rng.choice(accounts), shop, round(rng.uniform(5, 500), 2), t, False))
    for e in range(mix.employers):
        employer = f"benign-employer-{e}"
        staff = rng.sample(accounts, rng.randint(*mix.employees_per_employer))
        salary = {person: round(rng.uniform(3000, 15000), 2) for person in staff}
        payday = start + rng.randint(0, 27) * DAY
        while payday <= end:
            for i, person in enumerate(staff):
                added.append(Transfer(employer, person, salary[person], payday + 5 * i, False))
            payday += 30 * DAY
    for _ in range(mix.friend_groups):
        group = rng.sample(accounts, rng.randint(*mix.group_size))
        for _ in range(rng.randint(*mix.meetings_per_group)):
            payer, t = rng.choice(group), when()
            share = round(rng.uniform(20, 200), 2)
            for friend in group:
                if friend != payer:
                    added.append(
                        Transfer(friend, payer, share, t + rng.randint(60, 6 * 3600), False)
                    )
    return sorted(transfers + added, key=lambda t: t.time)

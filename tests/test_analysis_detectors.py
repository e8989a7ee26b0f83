"""Each transfer-list detector finds its typology in a small graph and stays quiet on
the legitimate twin. Every graph sits on a background of one-off payments between
random accounts, as real ledgers have."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from provenance.analysis import TransferTable, Typology, analyze_transfers
from provenance.analysis.detectors import (
    BurstDetector,
    CycleDetector,
    Detector,
    FanDetector,
    GatherScatterDetector,
    RiskPropagation,
    ScatterGatherDetector,
    SharedAttributeRingDetector,
    StackedChainDetector,
)
from provenance.analysis.findings import Finding
from provenance.analysis.index import TransferIndex, binomial_tail, poisson_tail

START = datetime(2024, 3, 1, tzinfo=UTC)
Row = tuple[str, str, float, datetime]


def background(seed: int = 1, accounts: int = 3000, transfers: int = 1500) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for _ in range(transfers):
        a, b = rng.sample(range(accounts), 2)
        when = START + timedelta(days=rng.uniform(0, 90))
        rows.append((f"p{a}", f"p{b}", round(rng.uniform(10, 500), 2), when))
    return rows


def at(days: float) -> datetime:
    return START + timedelta(days=days)


def found(detector: Detector, pattern: list[Row], **attributes: list[str | None]) -> set[str]:
    """The accounts ``detector`` reports, over the background plus ``pattern``."""
    rows = background() + pattern
    columns: dict[str, list[str | None]] = {}
    for column, values in attributes.items():
        padding: list[str | None] = [None] * (len(rows) - len(values))
        columns[column] = padding + values
    table = TransferTable.from_rows(rows, columns or None)
    index = TransferIndex.build(table)
    return {
        table.accounts[a]
        for finding in detector.detect(index)
        for a in finding.accounts
        if finding.typology is detector.typology
    }


def detected(detector: Detector, pattern: list[Row]) -> list[Finding]:
    """The findings of ``detector`` over the background plus ``pattern``."""
    index = TransferIndex.build(TransferTable.from_rows(background() + pattern))
    return detector.detect(index)


def test_fan_out_to_new_accounts_is_found() -> None:
    pattern = [("boss", f"mule{i}", 900.0, at(10 + i)) for i in range(8)]
    assert {"boss", "mule0", "mule7"} <= found(FanDetector(direction="out"), pattern)


def test_wholesaler_paying_its_retailers_every_week_is_quiet() -> None:
    pattern = [
        ("wholesaler", f"retailer{i}", 1200.0, at(week * 7 + 0.1 * i))
        for week in range(12)
        for i in range(10)
    ]
    assert "wholesaler" not in found(FanDetector(direction="out"), pattern)


def test_fan_in_from_new_accounts_is_found() -> None:
    pattern = [(f"mule{i}", "collector", 700.0, at(20 + i)) for i in range(9)]
    assert "collector" in found(FanDetector(direction="in"), pattern)


def test_shop_with_many_one_off_payers_is_quiet() -> None:
    pattern = [(f"buyer{i}", "shop", 35.0, at(i * 0.3)) for i in range(200)]
    assert "shop" not in found(FanDetector(direction="in"), pattern)


def established(seed: int = 2) -> list[Row]:
    """A background where every account is established: 400 accounts each making about
    fifteen one-off payments over three months, so none of them is quiet."""
    return background(seed=seed, accounts=400, transfers=3000)


def found_among_established(detector: Detector, pattern: list[Row]) -> set[str]:
    table = TransferTable.from_rows(established() + pattern)
    index = TransferIndex.build(table)
    return {
        table.accounts[a]
        for finding in detector.detect(index)
        for a in finding.accounts
        if finding.typology is detector.typology
    }


def test_slow_fan_out_to_fresh_accounts_is_found() -> None:
    # A busy payer (25 one-off payments to established accounts) also pays six fresh
    # accounts, one every two weeks: too slow for a fan by count, but fresh accounts
    # are rare among everyone's counterparties.
    pattern = [("payer", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(25)]
    pattern += [("payer", f"fresh{i}", 900.0, at(14 * i + 1)) for i in range(6)]
    assert {"payer", "fresh0", "fresh5"} <= found_among_established(
        FanDetector(direction="out"), pattern
    )


def with_regulars(pattern: list[Row]) -> list[Row]:
    """``pattern`` among 3,000 regulars, each paying one partner monthly and making one
    one-off payment, and 150 one-off payments from established accounts to accounts
    that are never seen again."""
    rng = random.Random(7)
    rows = list(pattern)
    for i in range(3000):
        rows += [(f"reg{i}", f"partner{i}", 500.0, at(30 * month + 1)) for month in range(3)]
        rows.append((f"reg{i}", f"p{rng.randrange(400)}", 40.0, at(rng.uniform(0, 90))))
    rows += [
        (f"p{rng.randrange(400)}", f"once{i}", 40.0, at(rng.uniform(0, 90))) for i in range(150)
    ]
    return rows


def test_fan_out_to_fresh_accounts_is_found_among_many_one_off_payers() -> None:
    # The regulars, with one one-off payment each, could never pay three fresh accounts:
    # they are no test, and do not raise the bar for the payer.
    pattern = [("payer", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(25)]
    pattern += [("payer", f"fresh{i}", 900.0, at(10 * i + 1)) for i in range(9)]
    assert {"payer", "fresh0", "fresh8"} <= found_among_established(
        FanDetector(direction="out"), with_regulars(pattern)
    )


def test_busy_payer_paying_a_few_fresh_accounts_among_many_is_quiet() -> None:
    pattern = [("payer", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(25)]
    pattern += [("payer", f"fresh{i}", 900.0, at(14 * i + 1)) for i in range(3)]
    assert "payer" not in found_among_established(
        FanDetector(direction="out"), with_regulars(pattern)
    )


def busy_payer_with_fresh(days_apart: float) -> list[Row]:
    """A busy payer (25 one-off payments to established accounts over three months)
    that also pays seven fresh accounts, ``days_apart`` days apart from day 40."""
    pattern = [("payer", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(25)]
    return pattern + [("payer", f"fresh{i}", 900.0, at(40 + days_apart * i)) for i in range(7)]


def test_fresh_accounts_paid_within_one_week_make_a_fan_out_among_many_payments() -> None:
    # Seven of 32 payees fresh is what chance gives some busy payer here; seven within
    # a week, among the eight other payments of that month, is not.
    assert {"payer", "fresh0", "fresh6"} <= found_among_established(
        FanDetector(direction="out"), with_regulars(busy_payer_with_fresh(0.7))
    )


def test_fresh_accounts_paid_over_three_months_among_many_payments_are_quiet() -> None:
    assert "payer" not in found_among_established(
        FanDetector(direction="out"), with_regulars(busy_payer_with_fresh(13))
    )


def test_busy_payer_paying_established_accounts_is_quiet() -> None:
    pattern = [("payer", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(25)]
    assert "payer" not in found_among_established(FanDetector(direction="out"), pattern)


def slow_fan_out() -> list[Row]:
    """The busy payer of :func:`test_slow_fan_out_to_fresh_accounts_is_found`: six fresh
    accounts paid between days 1 and 71, among 25 established ones."""
    pattern = [("payer", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(25)]
    return pattern + [("payer", f"fresh{i}", 900.0, at(14 * i + 1)) for i in range(6)]


def test_account_paid_twice_by_a_fan_and_by_nobody_else_joins_it() -> None:
    pattern = [*slow_fan_out(), ("payer", "kept", 700.0, at(20)), ("payer", "kept", 650.0, at(90))]
    assert {"payer", "fresh0", "kept"} <= found_among_established(
        FanDetector(direction="out"), pattern
    )


def test_account_paid_twice_by_a_fan_that_others_pay_too_stays_out() -> None:
    pattern = [*slow_fan_out(), ("payer", "kept", 700.0, at(20)), ("payer", "kept", 650.0, at(90))]
    pattern += [("p7", "kept", 40.0, at(50))]
    flagged = found_among_established(FanDetector(direction="out"), pattern)
    assert "fresh0" in flagged
    assert "kept" not in flagged


def test_account_paid_twice_by_a_payer_that_is_no_fan_is_not_reported() -> None:
    pattern = [("payer", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(25)]
    pattern += [("payer", f"kept{i}", 700.0, at(10 * i + d)) for i in range(3) for d in (1, 2)]
    assert not found_among_established(FanDetector(direction="out"), pattern)


def test_payee_fed_only_by_a_fan_inside_its_span_joins_it() -> None:
    # The payee pays its own bills every week, but the fan's centre is the only account
    # that ever pays it, and it did so while paying its fresh accounts.
    pattern = [*slow_fan_out(), ("payer", "lent", 800.0, at(40))]
    pattern += [("lent", f"p{30 + week}", 50.0, at(7 * week + 2)) for week in range(12)]
    assert {"payer", "fresh0", "lent"} <= found_among_established(
        FanDetector(direction="out"), pattern
    )


def test_payee_fed_only_by_a_fan_outside_its_span_stays_out() -> None:
    pattern = [*slow_fan_out(), ("payer", "lent", 800.0, at(85))]
    pattern += [("lent", f"p{30 + week}", 50.0, at(7 * week + 2)) for week in range(12)]
    flagged = found_among_established(FanDetector(direction="out"), pattern)
    assert "fresh0" in flagged
    assert "lent" not in flagged


def test_drop_account_paid_once_by_a_fan_joins_it() -> None:
    # The drop pays nobody, ever; besides the fan's one payment it is paid twice.
    pattern = [*slow_fan_out(), ("payer", "drop", 800.0, at(40))]
    pattern += [("p8", "drop", 90.0, at(10)), ("p9", "drop", 70.0, at(60))]
    assert {"payer", "fresh0", "drop"} <= found_among_established(
        FanDetector(direction="out"), pattern
    )


def test_account_that_keeps_a_fans_payment_among_others_stays_out() -> None:
    # Paid by the fan once and by three others (a savings account), or paid by the fan
    # three times and by nobody else (a supplier that keeps the money): neither is a
    # drop of the fan.
    pattern = [*slow_fan_out(), ("payer", "saver", 800.0, at(40))]
    pattern += [(f"p{8 + i}", "saver", 90.0, at(10 + 20 * i)) for i in range(3)]
    pattern += [("payer", "supplier", 300.0, at(20 + 20 * i)) for i in range(3)]
    flagged = found_among_established(FanDetector(direction="out"), pattern)
    assert "fresh0" in flagged
    assert not flagged & {"saver", "supplier"}


def test_hub_gathering_from_and_scattering_to_fresh_accounts_is_found() -> None:
    pattern = [(f"in{i}", "hub", 500.0, at(30 + i)) for i in range(3)]
    pattern += [("hub", f"out{i}", 480.0, at(36 + i)) for i in range(3)]
    pattern += [("hub", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(10)]
    pattern += [(f"p{i}", "hub", 60.0, at(3 * i + 1.5)) for i in range(10, 20)]
    assert {"hub", "in0", "out2"} <= found_among_established(GatherScatterDetector(), pattern)


def test_account_paid_twice_by_a_hub_and_by_nobody_else_joins_it() -> None:
    pattern = [(f"in{i}", "hub", 500.0, at(30 + i)) for i in range(3)]
    pattern += [("hub", f"out{i}", 480.0, at(36 + i)) for i in range(3)]
    pattern += [("hub", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(10)]
    pattern += [(f"p{i}", "hub", 60.0, at(3 * i + 1.5)) for i in range(10, 20)]
    kept = [("hub", "kept", 300.0, at(37.5)), ("hub", "kept", 200.0, at(70))]
    assert {"hub", "out2", "kept"} <= found_among_established(
        GatherScatterDetector(), pattern + kept
    )
    paid_by_others = found_among_established(
        GatherScatterDetector(), pattern + kept + [("p3", "kept", 40.0, at(50))]
    )
    assert "hub" in paid_by_others
    assert "kept" not in paid_by_others


def small_hub(senders: list[str], receivers: list[str]) -> list[Row]:
    """A hub paid by two accounts and paying two others within five days; it keeps a
    weekly standing order of its own."""
    pattern = [(sender, "hub", 500.0, at(30 + i)) for i, sender in enumerate(senders)]
    pattern += [("hub", receiver, 480.0, at(33 + i)) for i, receiver in enumerate(receivers)]
    return pattern + [("hub", "landlord-hub", 90.0, at(7 * week + 3)) for week in range(12)]


def test_small_hub_of_accounts_with_standing_orders_is_found() -> None:
    # Nobody here is quiet (each keeps a weekly standing order) and two a side is below
    # any count threshold; but accounts with no other one-off dealings, gathered and
    # scattered in five days, are what chance does not make.
    pattern = small_hub(["in0", "in1"], ["out0", "out1"])
    pattern += [
        (name, f"landlord-{name}", 90.0, at(7 * week + 2))
        for name in ("in0", "in1", "out0", "out1")
        for week in range(12)
    ]
    assert {"hub", "in0", "in1", "out0", "out1"} <= found_among_established(
        GatherScatterDetector(), pattern
    )


def test_hub_found_by_its_quiet_accounts_and_by_expected_copies_is_reported_once() -> None:
    # Fresh senders and receivers make the hub both a hub of quiet accounts and one that
    # chance would not make; a busy sender inside its window joins the same finding.
    pattern = [(f"in{i}", "hub", 500.0, at(30 + i)) for i in range(3)]
    pattern += [("hub", f"out{i}", 480.0, at(36 + i)) for i in range(3)]
    pattern += [("lender", "hub", 700.0, at(31.5))]
    pattern += [("lender", f"landlord{i}", 90.0, at(7 * i + 2)) for i in range(12)]
    table = TransferTable.from_rows(established() + pattern)
    hubs = [
        finding
        for finding in GatherScatterDetector().detect(TransferIndex.build(table))
        if table.accounts[finding.accounts[0]] == "hub"
    ]
    assert len(hubs) == 1
    assert {"in0", "out2", "lender"} <= {table.accounts[a] for a in hubs[0].accounts}


def test_small_hub_among_accounts_with_many_one_off_dealings_is_quiet() -> None:
    # The same hub, but its senders and receivers make a dozen one-off payments each:
    # chance puts two of them on each side of some account every few days.
    assert "hub" not in found_among_established(
        GatherScatterDetector(), small_hub(["p30", "p31"], ["p32", "p33"])
    )


def busy_collector(quiet_payers: int) -> list[Row]:
    """A collector paid once by each of 40 established accounts and by ``quiet_payers``
    accounts that never pay anyone else."""
    pattern = [(f"p{i}", "collector", 80.0, at(2 * i + 0.5)) for i in range(40)]
    pattern += [(f"quiet{i}", "collector", 900.0, at(3 * i + 20)) for i in range(quiet_payers)]
    return pattern


def test_fan_in_of_quiet_accounts_is_found_among_many_others() -> None:
    # Forty small fans of quiet accounts make quiet payers common in the list; chance's
    # share is estimated without them, so the busy collector's six quiet payers stand out.
    pattern = busy_collector(6)
    pattern += [
        (f"mule{k}-{i}", f"boss{k}", 500.0, at(k + 0.1 * i)) for k in range(40) for i in range(5)
    ]
    pattern += [(f"p{k + 100}", f"boss{k}", 50.0, at(k + 1)) for k in range(40)]
    assert {"collector", "quiet0", "quiet5"} <= found_among_established(
        FanDetector(direction="in"), pattern
    )


def test_fan_in_of_quiet_accounts_is_found_among_chains_of_quiet_accounts() -> None:
    # 300 one-off payments between accounts never seen again make quiet payers common
    # in the list, but among accounts that could be a fan's centre they are rare.
    pattern = busy_collector(6)
    pattern += [(f"first{i}", f"second{i}", 300.0, at(i * 0.3)) for i in range(300)]
    assert {"collector", "quiet0", "quiet5"} <= found_among_established(
        FanDetector(direction="in"), pattern
    )


def test_quiet_payers_common_everywhere_make_no_fan_in() -> None:
    # The same collector in a list where 200 one-time payers pay established accounts
    # at random: six of them at one busy account is what chance gives.
    rng = random.Random(5)
    pattern = busy_collector(6)
    pattern += [
        (f"once{i}", f"p{rng.randrange(400)}", 40.0, at(rng.uniform(0, 90))) for i in range(200)
    ]
    assert "collector" not in found_among_established(FanDetector(direction="in"), pattern)


def test_hub_scattering_to_accounts_fed_by_nobody_else_is_found() -> None:
    # Its receivers are busy payers (a standing order each, every week), but the hub is
    # the only account that ever pays them: quiet on the side that faces the hub.
    pattern = [(f"in{i}", "hub", 500.0, at(30 + i)) for i in range(3)]
    pattern += [("hub", f"out{i}", 480.0, at(36 + i)) for i in range(3)]
    pattern += [
        (f"out{i}", "landlord", 90.0, at(7 * week + i)) for i in range(3) for week in range(12)
    ]
    pattern += [("hub", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(10)]
    pattern += [(f"p{i}", "hub", 60.0, at(3 * i + 1.5)) for i in range(10, 20)]
    assert {"hub", "in0", "out2"} <= found_among_established(GatherScatterDetector(), pattern)


def test_hub_paying_accounts_fed_by_others_is_quiet() -> None:
    # The same hub, but its receivers are paid by other people too.
    pattern = [(f"in{i}", "hub", 500.0, at(30 + i)) for i in range(3)]
    pattern += [("hub", f"out{i}", 480.0, at(36 + i)) for i in range(3)]
    pattern += [
        (f"p{20 + week}", f"out{i}", 90.0, at(7 * week + i)) for i in range(3) for week in range(12)
    ]
    pattern += [("hub", f"p{i}", 60.0, at(3 * i + 0.5)) for i in range(10)]
    pattern += [(f"p{i}", "hub", 60.0, at(3 * i + 1.5)) for i in range(10, 20)]
    assert "hub" not in found_among_established(GatherScatterDetector(), pattern)


def found_among_many(detector: Detector, pattern: list[Row]) -> set[str]:
    """As :func:`found`, over a sparser background of 20,000 accounts."""
    table = TransferTable.from_rows(background(accounts=20_000, transfers=10_000) + pattern)
    index = TransferIndex.build(table)
    return {
        table.accounts[a]
        for finding in detector.detect(index)
        for a in finding.accounts
        if finding.typology is detector.typology
    }


def test_steady_one_off_payer_is_not_a_fan_out() -> None:
    # A freelancer paying a new supplier every four and a half days for three months:
    # seven in a month is its habit, not a fan.
    pattern = [("freelancer", f"supplier{i}", 150.0, at(4.5 * i)) for i in range(20)]
    assert "freelancer" not in found_among_many(FanDetector(direction="out"), pattern)


def test_same_payments_in_one_month_are_a_fan_out() -> None:
    pattern = [("boss", f"supplier{i}", 150.0, at(30 + 0.5 * i)) for i in range(9)]
    assert "boss" in found_among_many(FanDetector(direction="out"), pattern)


def test_quiet_payee_outside_the_month_of_a_fan_found_by_count_belongs_to_it() -> None:
    # Twelve fresh suppliers in a month is a fan by count among established accounts;
    # a thirteenth, paid seven weeks later and never seen again, is one of its leaves.
    pattern = [("boss", f"supplier{i}", 150.0, at(30 + 0.5 * i)) for i in range(12)]
    pattern += [("boss", "late", 150.0, at(80))]
    assert {"boss", "supplier0", "late"} <= found_among_established(
        FanDetector(direction="out"), pattern
    )


def test_busy_payee_outside_the_month_of_a_fan_found_by_count_stays_out() -> None:
    pattern = [("boss", f"supplier{i}", 150.0, at(30 + 0.5 * i)) for i in range(12)]
    pattern += [("boss", "late", 150.0, at(80))]
    pattern += [("late", f"p{i}", 20.0, at(2 * i)) for i in range(5)]
    flagged = found_among_established(FanDetector(direction="out"), pattern)
    assert "boss" in flagged
    assert "late" not in flagged


def test_paying_friends_and_shops_in_a_festival_is_not_a_fan_out() -> None:
    # Five friends and four busy shops in one week: the shops, with their thirty other
    # customers each, are not leaves of a fan.
    pattern = [("shopper", f"friend{i}", 40.0, at(50 + 0.1 * i)) for i in range(5)]
    pattern += [("shopper", f"shop{i}", 40.0, at(51 + 0.1 * i)) for i in range(4)]
    pattern += [(f"c{i}-{j}", f"shop{i}", 30.0, at(2 * j)) for i in range(4) for j in range(30)]
    assert "shopper" not in found_among_many(FanDetector(direction="out"), pattern)


def test_gather_scatter_hub_is_found() -> None:
    pattern = [(f"src{i}", "hub", 500.0, at(30 + i)) for i in range(4)]
    pattern += [("hub", f"dst{i}", 480.0, at(36 + i)) for i in range(4)]
    assert "hub" in found(GatherScatterDetector(), pattern)


def test_shop_paying_its_regular_suppliers_is_not_a_gather_scatter() -> None:
    pattern = [(f"buyer{i}", "shop", 35.0, at(i * 0.3)) for i in range(60)]
    pattern += [("shop", f"supplier{i}", 400.0, at(day)) for i in range(4) for day in (5, 35, 65)]
    assert "shop" not in found(GatherScatterDetector(), pattern)


def test_scatter_gather_through_parallel_intermediaries_is_found() -> None:
    pattern = []
    for i in range(4):
        pattern.append(("origin", f"middle{i}", 1000.0, at(40 + i)))
        pattern.append((f"middle{i}", "sink", 950.0, at(45 + i)))
    assert {"origin", "sink", "middle0"} <= found(ScatterGatherDetector(), pattern)


def test_sink_of_a_scatter_gather_is_not_a_fan_in() -> None:
    # Four fresh middlemen, all fed by one origin, pay the sink: a scatter-gather,
    # reported as one, not a fan-in of quiet accounts as well.
    pattern = [("origin", f"middle{i}", 1000.0, at(40 + i)) for i in range(4)]
    pattern += [(f"middle{i}", "sink", 950.0, at(45 + i)) for i in range(4)]
    pattern += [(f"p{i}", "sink", 60.0, at(3 * i + 0.5)) for i in range(10)]
    assert "sink" in found_among_established(ScatterGatherDetector(), pattern)
    assert "sink" not in found_among_established(FanDetector(direction="in"), pattern)


def test_parent_paying_children_who_pay_the_same_landlord_every_month_is_quiet() -> None:
    pattern = []
    for month in range(3):
        for i in range(3):
            pattern.append(("parent", f"child{i}", 300.0, at(month * 30 + 1)))
            pattern.append((f"child{i}", "landlord", 800.0, at(month * 30 + 3)))
    assert not found(ScatterGatherDetector(), pattern) & {"parent", "landlord"}


def test_cycle_of_new_transfers_is_found() -> None:
    ring = ["c0", "c1", "c2", "c3", "c4"]
    pattern = [(ring[i], ring[(i + 1) % 5], 600.0, at(50 + 2 * i)) for i in range(5)]
    assert set(ring) <= found(CycleDetector(), pattern)


def test_refund_and_friends_paying_each_other_back_are_quiet() -> None:
    pattern = [("customer", "store", 80.0, at(5)), ("store", "customer", 80.0, at(6))]
    friends = ["f0", "f1", "f2"]
    pattern += [
        (friends[i], friends[(i + 1) % 3], 25.0, at(week * 7 + i))
        for week in range(8)
        for i in range(3)
    ]
    assert not found(CycleDetector(), pattern) & {"customer", "store", *friends}


def dinners(plan: list[tuple[str, list[str]]], day: float) -> list[Row]:
    """Friends splitting bills: at each dinner in ``plan``, (payer, others), each of the
    others pays the payer back a share the same evening."""
    return [
        (friend, payer, 30.0 + i, at(day + 3 * i + 0.1))
        for i, (payer, others) in enumerate(plan)
        for friend in others
    ]


def test_cycle_among_friends_who_split_bills_is_quiet() -> None:
    # A pays B back, B and A pay C, C pays D, D and C pay A: the one-off paybacks close
    # the cycle A -> B -> C -> D -> A, but A and C paid each other back twice (a
    # standing relationship inside the circle).
    plan = [("B", ["A"]), ("C", ["B", "A"]), ("D", ["C"]), ("A", ["D", "C"])]
    assert not found(CycleDetector(), dinners(plan, 20)) & {"A", "B", "C", "D"}


def test_chance_cycle_through_busy_accounts_is_quiet() -> None:
    # The same cycle of five, but each account also sends and receives twenty one-off
    # payments: random traffic through such accounts closes cycles by itself.
    ring = ["b0", "b1", "b2", "b3", "b4"]
    pattern = [(ring[i], ring[(i + 1) % 5], 600.0, at(50 + 2 * i)) for i in range(5)]
    for name in ring:
        for k in range(20):
            pattern.append((name, f"{name}-payee{k}", 50.0, at(1 + 4 * k)))
            pattern.append((f"{name}-payer{k}", name, 50.0, at(2 + 4 * k)))
    assert not found(CycleDetector(), pattern) & set(ring)


def test_cycle_through_one_busy_account_is_found() -> None:
    # A busy payee (forty one-off payers) is the one busy account of a cycle of six
    # fresh accounts: it is walked from, not through.
    ring = ["busy", "r1", "r2", "r3", "r4", "r5"]
    pattern = [(ring[i], ring[(i + 1) % 6], 600.0, at(50 + 2 * i)) for i in range(6)]
    pattern += [(f"payer{k}", "busy", 50.0, at(1 + 2 * k)) for k in range(40)]
    assert set(ring) <= found(CycleDetector(), pattern)


def test_chance_cycle_through_one_busy_account_is_quiet() -> None:
    # The busy account's one-off counterparties are themselves busy one-off payers and
    # payees, so chance closes cycles through them: none is reported.
    pattern = []
    for name in ("busy", "b1", "b2", "b3"):
        for k in range(40 if name == "busy" else 20):
            pattern.append((name, f"{name}-payee{k}", 50.0, at(1 + 2 * k)))
            pattern.append((f"{name}-payer{k}", name, 50.0, at(2 + 2 * k)))
    pattern += [("busy", "b1", 600.0, at(50)), ("b1", "b2", 600.0, at(52))]
    pattern += [("b2", "b3", 600.0, at(54)), ("b3", "busy", 600.0, at(56))]
    assert not found(CycleDetector(), pattern) & {"busy", "b1", "b2", "b3"}


def test_cycle_is_found_however_much_unrelated_traffic_there_is() -> None:
    ring = ["c0", "c1", "c2", "c3", "c4"]
    pattern = [(ring[i], ring[(i + 1) % 5], 600.0, at(50 + 2 * i)) for i in range(5)]
    rows = background(accounts=30_000, transfers=15_000) + pattern
    index = TransferIndex.build(TransferTable.from_rows(rows))
    table = index.table
    assert set(ring) <= {
        table.accounts[a] for f in CycleDetector().detect(index) for a in f.accounts
    }


def test_cycle_closed_through_a_pair_that_trades_again_is_found() -> None:
    # A ring of six fresh accounts whose closing pair trades once more, two months
    # later: the closing transfer is not occasional, the rest of the ring is.
    ring = ["m0", "m1", "m2", "m3", "m4", "m5"]
    pattern = [(ring[i], ring[(i + 1) % 6], 600.0, at(20 + 2 * i)) for i in range(6)]
    pattern.append(("m5", "m0", 450.0, at(80)))
    findings = [
        f for f in detected(CycleDetector(), pattern) if "closed through a pair" in f.reason
    ]
    assert len(findings) == 1
    assert set(ring) <= found(CycleDetector(), pattern)
    assert not found(CycleDetector(max_closing_pair=1), pattern) & set(ring)


def test_friends_ring_with_more_than_one_repeated_pair_is_quiet() -> None:
    # The same ring, but two of its pairs trade again (friends paying each other now and
    # then): more ties than the one closing pair may have.
    ring = ["g0", "g1", "g2", "g3", "g4", "g5"]
    pattern = [(ring[i], ring[(i + 1) % 6], 60.0, at(20 + 2 * i)) for i in range(6)]
    pattern += [("g5", "g0", 45.0, at(80)), ("g2", "g3", 45.0, at(70))]
    assert not found(CycleDetector(), pattern) & set(ring)


def test_chance_cycle_of_busy_accounts_closed_through_a_repeated_pair_is_quiet() -> None:
    # Four accounts that each make and receive twenty one-off payments close a cycle
    # through a pair that trades twice: chance makes such cycles.
    ring = ["d0", "d1", "d2", "d3"]
    pattern = [(ring[i], ring[(i + 1) % 4], 600.0, at(50 + 2 * i)) for i in range(4)]
    pattern.append(("d3", "d0", 450.0, at(85)))
    for name in ring:
        for k in range(20):
            pattern.append((name, f"{name}-payee{k}", 50.0, at(1 + 4 * k)))
            pattern.append((f"{name}-payer{k}", name, 50.0, at(2 + 4 * k)))
    assert not found(CycleDetector(), pattern) & set(ring)


def test_friends_splitting_bills_are_not_a_layer() -> None:
    # h0 and h1 pay back h2, then h3: two senders sharing two receivers, but h2 and h3
    # paid each other back too.
    plan = [("h2", ["h0", "h1", "h3"]), ("h3", ["h0", "h1", "h2"])]
    assert not found(StackedChainDetector(), dinners(plan, 30)) & {"h0", "h1", "h2", "h3"}


def test_colleagues_collecting_for_a_gift_are_not_a_fan_in() -> None:
    # Eight colleagues each pay the organiser once, but they pay each other for lunch
    # week after week.
    staff = [f"k{i}" for i in range(8)]
    pattern = [(name, "organiser", 20.0, at(40 + 0.01 * i)) for i, name in enumerate(staff)]
    for week in range(4):
        for i in range(0, 8, 2):
            pattern.append((staff[i], staff[i + 1], 12.0, at(7 * week + 1)))
    assert not found(FanDetector(direction="in"), pattern) & {"organiser", *staff}


def test_layer_of_senders_sharing_receivers_is_found() -> None:
    pattern = [
        (f"layer1_{i}", f"layer2_{j}", 400.0, at(60 + i + j)) for i in range(3) for j in range(3)
    ]
    assert {"layer1_0", "layer2_2"} <= found(StackedChainDetector(), pattern)


def test_flow_through_chain_is_found() -> None:
    hops = ["s0", "s1", "s2", "s3", "s4"]
    pattern = [(hops[i], hops[i + 1], 1000.0 * 0.97**i, at(70 + 0.5 * i)) for i in range(4)]
    assert set(hops) <= found(StackedChainDetector(), pattern)


def test_chain_whose_accounts_keep_the_money_is_quiet() -> None:
    hops = ["s0", "s1", "s2", "s3", "s4"]
    pattern = [(hops[i], hops[i + 1], 1000.0 / (i + 1), at(70 + 10 * i)) for i in range(4)]
    assert not found(StackedChainDetector(), pattern) & set(hops)


def test_burst_of_top_ups_to_a_new_account_is_found() -> None:
    pattern = [
        ("taker", "topup-target", 50.0, at(80) + timedelta(minutes=3 * i)) for i in range(15)
    ]
    assert "taker" in found(BurstDetector(), pattern)


def test_monthly_payroll_run_is_not_a_burst() -> None:
    pattern = [
        ("employer", f"employee{i}", 3000.0, at(month * 30) + timedelta(seconds=20 * i))
        for month in range(3)
        for i in range(50)
    ]
    assert "employer" not in found(BurstDetector(), pattern)


def test_ring_sharing_a_device_and_paying_one_collector_is_found() -> None:
    pattern = [(f"ring{i}", "collector", 300.0, at(15 + i)) for i in range(4)]
    detected = found(SharedAttributeRingDetector(), pattern, device=["dev-x"] * 4)
    assert {"ring0", "ring3"} <= detected


def test_family_sharing_a_device_is_quiet() -> None:
    family = [f"family{i}" for i in range(4)]
    pattern = [
        (member, "utility", 60.0, at(month * 30 + i))
        for month in range(3)
        for i, member in enumerate(family)
    ]
    detected = found(SharedAttributeRingDetector(), pattern, device=["tablet"] * len(pattern))
    assert not detected & set(family)


def test_risk_propagates_to_an_account_trading_with_two_seeds() -> None:
    pattern = [("seed-a", "shared", 100.0, at(5)), ("seed-b", "shared", 100.0, at(6))]
    pattern += [("seed-a", "bystander", 100.0, at(7))]
    table = TransferTable.from_rows(background() + pattern)
    report = analyze_transfers(table, detectors=[], seeds=["seed-a", "seed-b"])
    flagged = {table.accounts[a] for a, _ in report.flagged_accounts()}
    assert "shared" in flagged
    assert "bystander" not in flagged
    assert {f.typology for f in report.findings} == {Typology.RISK_PROPAGATION}


def test_without_seeds_nothing_is_propagated() -> None:
    table = TransferTable.from_rows(background())
    report = analyze_transfers(table, detectors=[], propagation=RiskPropagation())
    assert report.findings == []


def test_background_alone_raises_no_finding() -> None:
    table = TransferTable.from_rows(background())
    assert analyze_transfers(table).findings == []


def test_every_finding_has_a_score_in_range_and_its_evidence() -> None:
    pattern = [("boss", f"mule{i}", 900.0, at(10 + i)) for i in range(8)]
    table = TransferTable.from_rows(background() + pattern)
    report = analyze_transfers(table)
    assert report.findings
    for finding in report.findings:
        assert 0.0 <= finding.score <= 1.0
        evidence = finding.evidence(table)
        assert evidence.number_of_edges() == len(finding.transfers)
        assert {table.accounts[a] for a in finding.accounts} <= set(evidence.nodes)


def test_chance_tails_match_their_sums() -> None:
    def binomial(k: int, n: int, p: float) -> float:
        return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))

    for k, n, p in [(3, 10, 0.1), (5, 10, 0.5), (1, 10, 0.3), (8, 35, 0.107), (3, 3, 0.2)]:
        assert math.isclose(binomial_tail(k, n, p), binomial(k, n, p), rel_tol=1e-9)
    assert binomial_tail(6, 5, 0.1) == 0.0
    below = sum(math.exp(-0.5) * 0.5**j / math.factorial(j) for j in range(10))
    assert math.isclose(poisson_tail(10, 0.5), 1.0 - below, rel_tol=1e-6)
    assert 0.0 < poisson_tail(30, 2.0) < 1e-20

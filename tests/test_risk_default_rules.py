"""Each shipped rule fires on its case and stays quiet on a look-alike (a family sharing a
device for small amounts, a shop's point-of-sale device), on the memory and Redis stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from provenance.risk import MemoryStore, RiskDecision, TaintKind
from provenance.risk.store import StateStore
from tests.keys import FINGERPRINT_KEY
from tests.ledger_support import NOW
from tests.risk_support import BJ_IP, GD_IP, US_IP, Shop, context, make_engine


@pytest.fixture(params=["memory", "redis"])
def shop(request: pytest.FixtureRequest) -> Iterator[Shop]:
    store: StateStore = (
        MemoryStore() if request.param == "memory" else request.getfixturevalue("redis_store")
    )
    yield Shop(make_engine(store))


from tests.risk_support import redis_store_fixture  # noqa: E402, F401


def codes(assessment: object) -> set[str]:
    return {r.code for r in assessment.reasons}  # type: ignore[attr-defined]


def second(i: int) -> object:
    return NOW + timedelta(seconds=i)


def test_burst_by_one_buyer_is_blocked_at_the_sixth_purchase_in_a_minute(shop: Shop) -> None:
    results = [
        shop.sell(context(instrument=f"card-{i % 2}", device="phone", amount="10.00"), second(i))
        for i in range(6)
    ]
    assert [r.decision for r in results[:5]] == [RiskDecision.ALLOW] * 5
    assert results[5].decision is RiskDecision.BLOCK
    assert "burst-buyer" in codes(results[5])


def test_five_purchases_by_a_buyer_spread_over_an_hour_pass(shop: Shop) -> None:
    results = [
        shop.sell(context(instrument=f"card-{i % 2}", amount="10.00"), second(i * 600))
        for i in range(6)
    ]
    assert all(r.decision is RiskDecision.ALLOW for r in results)


def test_burst_on_one_card_is_blocked_at_the_fifth_use(shop: Shop) -> None:
    results = [shop.sell(context(amount="10.00"), second(i)) for i in range(5)]
    assert results[3].decision is RiskDecision.ALLOW
    assert results[4].decision is RiskDecision.BLOCK
    assert "burst-instrument" in codes(results[4])


def test_burst_from_one_device_goes_to_review(shop: Shop) -> None:
    results = [
        shop.sell(
            context(f"buyer-{i}", instrument=f"card-{i % 4}", device="emulator", ip=f"192.0.2.{i}"),
            second(i),
        )
        for i in range(8)
    ]
    assert results[6].decision is RiskDecision.ALLOW
    assert "burst-device" in codes(results[7])


def test_a_shops_point_of_sale_device_is_not_a_device_burst(shop: Shop) -> None:
    results = [
        shop.sell(
            context(
                f"walk-in-{i}", instrument=f"card-{i}", device="till-1", ip=BJ_IP, channel="pos"
            ),
            second(i * 5),
        )
        for i in range(12)
    ]
    assert all(r.decision is RiskDecision.ALLOW for r in results)
    assert results[-1].features["device.distinct_instruments_24h"] == 12


def test_burst_from_one_ip_goes_to_review(shop: Shop) -> None:
    results = [
        shop.sell(
            context(f"buyer-{i}", instrument=f"card-{i}", device=f"d-{i}", ip=US_IP), second(i)
        )
        for i in range(12)
    ]
    assert results[10].decision is RiskDecision.ALLOW
    assert "burst-ip" in codes(results[11])


def test_one_card_across_three_buyers_is_blocked(shop: Shop) -> None:
    results = [
        shop.sell(
            context(f"buyer-{i}", instrument="passed-around", device=f"d-{i}"), second(i * 120)
        )
        for i in range(3)
    ]
    assert results[1].decision is RiskDecision.ALLOW
    assert results[2].decision is RiskDecision.BLOCK
    assert "instrument-many-buyers" in codes(results[2])


def test_a_couple_sharing_one_card_passes(shop: Shop) -> None:
    results = [
        shop.sell(context(who, instrument="joint-card", device=f"phone-{who}"), second(i * 300))
        for i, who in enumerate(["wife", "husband", "wife", "husband"])
    ]
    assert all(r.decision is RiskDecision.ALLOW for r in results)


def test_many_cards_on_one_device_are_blocked(shop: Shop) -> None:
    results = [
        shop.sell(
            context("mule", instrument=f"card-{i}", device="burner", amount="30.00"),
            second(i * 120),
        )
        for i in range(5)
    ]
    assert results[3].decision is RiskDecision.ALLOW
    assert results[4].decision is RiskDecision.BLOCK
    assert "device-many-instruments" in codes(results[4])


def test_three_cards_on_one_device_for_large_amounts_are_blocked(shop: Shop) -> None:
    results = [
        shop.sell(
            context("mule", instrument=f"card-{i}", device="burner", amount="900.00"),
            second(i * 600),
        )
        for i in range(3)
    ]
    assert results[2].decision is RiskDecision.BLOCK
    assert "device-many-instruments" in codes(results[2])


def test_a_family_sharing_a_tablet_for_small_amounts_passes(shop: Shop) -> None:
    family = [("mum", "card-mum"), ("dad", "card-dad"), ("kid", "card-mum"), ("gran", "card-gran")]
    results = [
        shop.sell(
            context(who, instrument=card, device="family-tablet", amount="20.00"), second(i * 900)
        )
        for i, (who, card) in enumerate(family)
    ]
    assert all(r.decision is RiskDecision.ALLOW for r in results)
    assert results[-1].features["device.distinct_buyers_24h"] == 4


def test_new_device_and_new_region_on_a_high_value_sale_goes_to_review(shop: Shop) -> None:
    shop.sell(context(device="home-phone", ip=GD_IP, amount="80.00"), NOW - timedelta(days=5))
    result = shop.sell(context(device="unknown-laptop", ip=US_IP, amount="800.00"))
    assert result.decision is RiskDecision.REVIEW
    assert "new-device-region-change" in codes(result)


@pytest.mark.parametrize(
    "device,ip,amount",
    [
        ("home-phone", US_IP, "800.00"),  # travelling with the usual phone
        ("unknown-laptop", GD_IP, "800.00"),  # a new laptop at home
        ("unknown-laptop", US_IP, "60.00"),  # new device abroad, small amount
    ],
)
def test_only_one_of_new_device_region_change_or_high_value_passes(
    shop: Shop, device: str, ip: str, amount: str
) -> None:
    shop.sell(context(device="home-phone", ip=GD_IP, amount="80.00"), NOW - timedelta(days=5))
    assert shop.sell(context(device=device, ip=ip, amount=amount)).decision is RiskDecision.ALLOW


def test_a_card_reported_stolen_is_blocked(shop: Shop) -> None:
    stolen = context(instrument="stolen-card")
    shop.engine.mark_tainted(TaintKind.INSTRUMENT, stolen.keys(FINGERPRINT_KEY).instrument or "")
    result = shop.sell(stolen)
    assert result.decision is RiskDecision.BLOCK
    assert "instrument-stolen" in codes(result)
    assert shop.sell(context("bob", instrument="clean-card")).decision is RiskDecision.ALLOW


def test_a_device_named_by_a_partner_goes_to_review(shop: Shop) -> None:
    sale = context(device="bad-phone")
    shop.engine.mark_tainted(TaintKind.DEVICE, sale.keys(FINGERPRINT_KEY).device or "")
    assert "device-reported" in codes(shop.sell(sale))


def test_an_amount_far_above_the_buyers_habit_goes_to_review(shop: Shop) -> None:
    for day in range(3):
        shop.sell(context(amount="20.00"), NOW - timedelta(days=day + 1))
    result = shop.sell(context(amount="500.00"))
    assert "amount-unusual" in codes(result)


def test_a_big_spender_buying_big_again_passes(shop: Shop) -> None:
    for day in range(3):
        shop.sell(context(amount="300.00"), NOW - timedelta(days=day + 1))
    assert shop.sell(context(amount="500.00")).decision is RiskDecision.ALLOW


def test_a_stolen_card_is_blocked_in_the_middle_of_a_burst_with_its_reasons(shop: Shop) -> None:
    sale = context("thief", instrument="victims-card", device="burner", amount="100.00")
    first = [shop.sell(sale, second(i)) for i in range(2)]
    shop.engine.mark_tainted(TaintKind.INSTRUMENT, sale.keys(FINGERPRINT_KEY).instrument or "")
    then = shop.sell(sale, second(3))
    assert [r.decision for r in first] == [RiskDecision.ALLOW, RiskDecision.ALLOW]
    assert then.decision is RiskDecision.BLOCK
    stolen = next(r for r in then.reasons if r.code == "instrument-stolen")
    assert stolen.en == "This payment card was reported stolen."
    assert stolen.zh == "该支付卡已被报告为被盗卡。"
    assert then.to_json()["reasons"][0]["action"] == "block"
    assert then.held is False  # a blocked sale is not counted
    assert shop.look(sale, second(4)).features["buyer.count_1m"] == 3

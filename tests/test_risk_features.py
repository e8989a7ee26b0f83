"""Each feature, from every state store: one case that moves it and a look-alike that doesn't."""

from __future__ import annotations

from datetime import timedelta

import pytest

from provenance.fingerprints import pseudonym
from provenance.risk import RuleSet, TaintKind
from provenance.risk.store import StateStore
from tests.keys import FINGERPRINT_KEY
from tests.ledger_support import NOW
from tests.risk_support import (
    BJ_IP,
    GD_IP,
    SH_IP,
    US_IP,
    Shop,
    context,
    make_engine,
    redis_store_fixture,  # noqa: F401
    store_fixture,  # noqa: F401
)


def shop(store: StateStore) -> Shop:
    # No rules: these tests read features, and every sale goes through.
    return Shop(make_engine(store, RuleSet([])))


def test_buyer_window_counts_and_sums_include_the_sale(store: StateStore) -> None:
    s = shop(store)
    s.sell(context(amount="10.00"), NOW - timedelta(hours=25))
    s.sell(context(amount="20.00"), NOW - timedelta(minutes=30))
    s.sell(context(amount="30.00"), NOW - timedelta(seconds=30))
    features = s.sell(context(amount="40.00")).features
    assert (
        features["buyer.count_1m"],
        features["buyer.count_1h"],
        features["buyer.count_24h"],
    ) == (
        2,
        3,
        3,
    )
    assert (features["buyer.sum_1m"], features["buyer.sum_1h"], features["buyer.sum_24h"]) == (
        70.0,
        90.0,
        90.0,
    )


def test_another_buyers_sales_do_not_count_for_this_buyer(store: StateStore) -> None:
    s = shop(store)
    for _ in range(3):
        s.sell(context("bob", instrument="card-bob", device="phone-bob", ip=BJ_IP))
    features = s.sell(context("alice")).features
    assert features["buyer.count_1m"] == 1
    assert features["merchant.count_1m"] == 4


@pytest.mark.parametrize("scope", ["instrument", "device", "ip"])
def test_instrument_device_and_ip_windows_follow_their_own_key(
    store: StateStore, scope: str
) -> None:
    s = shop(store)
    s.sell(context("bob", instrument="shared", device="shared", ip=US_IP))
    s.sell(context("carol", instrument="shared", device="shared", ip=US_IP))
    same = s.look(context("dave", instrument="shared", device="shared", ip=US_IP)).features
    other = s.look(context("dave", instrument="own", device="own", ip=BJ_IP)).features
    assert same[f"{scope}.count_1m"] == 3
    assert other[f"{scope}.count_1m"] == 1


def test_a_sale_that_names_no_device_reads_zero(store: StateStore) -> None:
    s = shop(store)
    features = s.sell(context(device=None, ip=None)).features
    assert features["device.count_1m"] == 0
    assert features["ip.count_1h"] == 0
    assert features["device.new_for_buyer"] is False


def test_merchant_windows_count_every_buyer(store: StateStore) -> None:
    s = shop(store)
    for i in range(4):
        s.sell(context(f"buyer-{i}", instrument=f"card-{i}", device=f"d-{i}", amount="25.00"))
    other_shop = Shop(s.engine, "shop-other")
    features = s.look(context("eve", instrument="card-eve", device="d-eve")).features
    assert features["merchant.count_1m"] == 5
    assert features["merchant.sum_1h"] == 150.0
    assert other_shop.look(context("eve")).features["merchant.count_1m"] == 1


def test_distinct_instruments_per_device_and_buyer(store: StateStore) -> None:
    s = shop(store)
    for name in ("card-1", "card-2", "card-2"):
        s.sell(context(instrument=name))
    features = s.look(context(instrument="card-3")).features
    assert features["device.distinct_instruments_24h"] == 3
    assert features["buyer.distinct_instruments_24h"] == 3
    again = s.look(context(instrument="card-1")).features
    assert again["device.distinct_instruments_24h"] == 2


def test_distinct_buyers_per_instrument_device_and_ip(store: StateStore) -> None:
    s = shop(store)
    s.sell(context("bob", instrument="shared", device="tablet", ip=US_IP))
    s.sell(context("carol", instrument="shared", device="tablet", ip=US_IP))
    features = s.look(context("dave", instrument="shared", device="tablet", ip=US_IP)).features
    assert features["instrument.distinct_buyers_24h"] == 3
    assert features["device.distinct_buyers_24h"] == 3
    assert features["ip.distinct_buyers_24h"] == 3
    repeat = s.look(context("bob", instrument="shared", device="tablet", ip=US_IP)).features
    assert repeat["instrument.distinct_buyers_24h"] == 2


def test_distinct_sets_forget_after_a_day(store: StateStore) -> None:
    s = shop(store)
    s.sell(context(instrument="old-card"), NOW - timedelta(hours=25))
    features = s.look(context(instrument="new-card")).features
    assert features["device.distinct_instruments_24h"] == 1


def test_first_sighting_of_a_device_for_a_buyer(store: StateStore) -> None:
    s = shop(store)
    assert s.sell(context(device="phone")).features["device.new_for_buyer"] is True
    assert s.look(context(device="phone")).features["device.new_for_buyer"] is False
    assert s.look(context(device="laptop")).features["device.new_for_buyer"] is True


def test_a_device_seen_with_another_buyer_is_still_new_for_this_one(store: StateStore) -> None:
    s = shop(store)
    s.sell(context("bob", device="family-tablet"))
    assert s.look(context("alice", device="family-tablet")).features["device.new_for_buyer"]


def test_region_change_since_the_buyers_previous_sale(store: StateStore) -> None:
    s = shop(store)
    s.sell(context(ip=GD_IP), NOW - timedelta(days=2))
    moved = s.look(context(ip=US_IP)).features
    assert moved["sale.ip_region"] == "US-CA"
    assert moved["buyer.previous_region"] == "CN-GD"
    assert moved["buyer.region_changed"] is True


def test_same_region_or_unknown_address_is_no_region_change(store: StateStore) -> None:
    s = shop(store)
    s.sell(context(ip=SH_IP), NOW - timedelta(days=2))
    assert s.look(context(ip="2001:db8::42")).features["buyer.region_changed"] is False
    unknown = s.look(context(ip="10.0.0.1")).features
    assert unknown["sale.ip_region"] == ""
    assert unknown["buyer.region_changed"] is False


def test_declared_region_is_used_when_the_address_is_unknown(store: StateStore) -> None:
    s = shop(store)
    s.sell(context(ip=None, region="CN-GD"), NOW - timedelta(days=1))
    features = s.look(context(ip=None, region="FR")).features
    assert features["sale.region"] == "FR"
    assert features["buyer.region_changed"] is True


def test_declared_and_address_regions_in_different_countries(store: StateStore) -> None:
    s = shop(store)
    assert s.look(context(ip=US_IP, region="CN")).features["sale.region_mismatch"] is True
    assert s.look(context(ip=GD_IP, region="CN")).features["sale.region_mismatch"] is False


@pytest.mark.parametrize("kind", [TaintKind.INSTRUMENT, TaintKind.DEVICE])
def test_tainted_by_a_partner_notice(store: StateStore, kind: TaintKind) -> None:
    s = shop(store)
    name = "stolen-card" if kind is TaintKind.INSTRUMENT else "bad-phone"
    reported = context(instrument=name) if kind is TaintKind.INSTRUMENT else context(device=name)
    keys = reported.keys(FINGERPRINT_KEY)
    s.engine.mark_tainted(kind, keys.instrument if kind is TaintKind.INSTRUMENT else keys.device)  # type: ignore[arg-type]
    assert s.look(reported).features[f"{kind.value}.tainted"] is True
    assert s.look(context()).features[f"{kind.value}.tainted"] is False


def test_amount_against_the_buyers_own_history(store: StateStore) -> None:
    s = shop(store)
    for amount in ("10.00", "20.00", "30.00"):
        s.sell(context(amount=amount), NOW - timedelta(days=3))
    features = s.look(context(amount="400.00")).features
    assert features["buyer.history_count"] == 3
    assert features["buyer.history_avg"] == 20.0
    assert features["buyer.history_max"] == 30.0
    assert features["buyer.amount_ratio"] == 20.0
    assert s.look(context("newcomer", amount="400.00")).features["buyer.amount_ratio"] == 0.0


def test_recording_a_sale_twice_counts_it_once(store: StateStore) -> None:
    engine = make_engine(store, RuleSet([]))
    sale = context()
    ref = "ab" * 32
    held = engine.assess(sale, merchant="shop-good", now=NOW, hold=ref)
    assert held.held is True
    assert engine.record_sale(sale, merchant="shop-good", now=NOW, ref=ref) is True
    assert engine.record_sale(sale, merchant="shop-good", now=NOW, ref=ref) is False
    features = engine.assess(sale, merchant="shop-good", now=NOW, hold=ref).features
    assert features["buyer.count_1m"] == 1
    assert features["merchant.count_1m"] == 1


def test_release_takes_a_hold_back(store: StateStore) -> None:
    engine = make_engine(store, RuleSet([]))
    first, second = context(instrument="card-1"), context(instrument="card-2")
    engine.assess(first, merchant="shop-good", now=NOW, hold="01" * 32)
    engine.release(first, merchant="shop-good", now=NOW, ref="01" * 32)
    features = engine.assess(second, merchant="shop-good", now=NOW).features
    assert features["buyer.count_1m"] == 1
    assert features["merchant.count_1m"] == 1
    assert features["device.distinct_instruments_24h"] == 1


def test_a_held_sale_counts_for_the_next_one(store: StateStore) -> None:
    engine = make_engine(store, RuleSet([]))
    engine.assess(context(), merchant="shop-good", now=NOW, hold="02" * 32)
    assert engine.assess(context(), merchant="shop-good", now=NOW).features["buyer.count_1m"] == 2


def test_pseudonyms_match_the_ones_in_sale_entries() -> None:
    keys = context(device="phone-1", ip="203.0.113.7").keys(FINGERPRINT_KEY)
    assert keys.device == pseudonym(FINGERPRINT_KEY, "device", "phone-1")
    assert keys.ip == pseudonym(FINGERPRINT_KEY, "ip", "203.0.113.7")


def test_a_sale_timed_before_a_later_one_still_counts_its_window(store: StateStore) -> None:
    s = shop(store)
    s.sell(context(amount="10.00"), NOW - timedelta(seconds=100))
    s.sell(context(amount="20.00"), NOW + timedelta(seconds=50))
    # Concurrent sales reach the state out of order: this one is timed 50 s earlier.
    features = s.sell(context(amount="40.00")).features
    assert (features["buyer.count_1m"], features["buyer.sum_1m"]) == (2, 60.0)
    assert (features["buyer.count_1h"], features["buyer.sum_1h"]) == (3, 70.0)
    assert (
        s.look(context(amount="1.00"), NOW + timedelta(seconds=51)).features["buyer.count_1m"] == 3
    )

"""The sale context at the boundary, the region table, rebuilding from the ledger, no PII."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.entries import format_time
from provenance.ledger import Ledger
from provenance.risk import MemoryStore, RuleSet, SaleContext, SqlStore, rebuild_state
from provenance.risk.errors import CardNumberRefusedError, RegionTableError, SaleContextError
from provenance.risk.redis_store import RedisStore
from provenance.risk.regions import import_region_table, load_region_table, parse_csv
from provenance.risk.store import RiskSale, StateStore
from tests.codes_support import PARTNER, SHOP, build_chain, person, sale_body
from tests.ledger_support import NOW
from tests.risk_support import (
    REGIONS_CSV,
    Shop,
    buyer,
    card,
    context,
    make_engine,
    redis_store_fixture,  # noqa: F401
    store_fixture,  # noqa: F401
)

VISA_TEST_PAN = "4111 1111 1111 1111"


def raw(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"buyer": buyer("alice"), "amount": "10.00", "instrument": card("c")}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


# --- the sale context -------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("instrument", "4111111111111111"),
        ("device", VISA_TEST_PAN),
        ("instrument", {"fingerprint": "4111-1111-1111-1111", "bin": "411111", "last4": "1111"}),
    ],
)
def test_a_full_card_number_is_refused_without_repeating_it(field: str, value: Any) -> None:
    with pytest.raises(CardNumberRefusedError) as caught:
        SaleContext.parse(raw(**{field: value}))
    assert caught.value.code == "card-number-refused"
    assert "4111" not in str(caught.value)
    assert caught.value.field is not None and caught.value.field.startswith(field)


def test_a_number_that_fails_luhn_is_not_called_a_card_number() -> None:
    with pytest.raises(SaleContextError) as caught:
        SaleContext.parse(raw(instrument="4111111111111112"))
    assert caught.value.code == "bad-sale-context"


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"amount": "-1"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"amount": "01.00"}, "amount"),
        ({"buyer": "alice"}, "buyer"),
        ({"ip": "300.1.1.1"}, "ip"),
        ({"region": "china"}, "region"),
        ({"channel": "fax"}, "channel"),
        ({"instrument": {"fingerprint": "a" * 32, "bin": "12", "last4": "1234"}}, "instrument.bin"),
        (
            {"instrument": {"fingerprint": "a" * 32, "bin": "123456", "last4": "12345"}},
            "instrument.last4",
        ),
        ({"device": ""}, "device"),
        ({"email": "a@example.com"}, "email"),
    ],
)
def test_a_malformed_context_is_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(SaleContextError) as caught:
        SaleContext.parse(raw(**changes))
    assert caught.value.field == field
    assert caught.value.code == "bad-sale-context"


def test_an_ipv6_context_parses() -> None:
    sale = SaleContext.parse(raw(ip="2001:db8::1", region="CN-GD", channel="pos"))
    assert sale.ip is not None and sale.ip.version == 6
    assert sale.amount_units == 100_000


# --- the region table -------------------------------------------------------------------


def test_region_lookup_over_ipv4_and_ipv6_ranges() -> None:
    table = parse_csv(REGIONS_CSV.splitlines())
    from ipaddress import ip_address

    assert table.region_of(ip_address("192.0.2.0")) == "CN-GD"
    assert table.region_of(ip_address("192.0.2.255")) == "CN-GD"
    assert table.region_of(ip_address("192.0.3.0")) is None
    assert table.region_of(ip_address("203.0.113.127")) == "US-CA"
    assert table.region_of(ip_address("203.0.113.128")) is None
    assert table.region_of(ip_address("2001:db8:0:ffff::1")) == "CN-SH"
    assert table.region_of(ip_address("2001:db8:1::9")) == "DE"
    assert table.region_of(ip_address("2001:db9::1")) is None
    assert table.size == 5


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "empty"),
        ("cidr,country\n192.0.2.0/24,CN\n", "line 1: the first line must be the header"),
        ("network,region\n192.0.2.1/24,CN\n", "line 2: network must be"),
        ("network,region\n192.0.2.0/24,China\n", "line 2: region must be"),
        ("network,region\n192.0.2.0/24\n", "line 2: expected two columns"),
        ("network,region\n192.0.2.0/24,CN\n192.0.2.128/25,US\n", "ranges overlap at 192.0.2.128"),
        (
            "network,region\n2001:db8::/32,CN\n2001:db8:5::/48,US\n",
            "ranges overlap at 2001:db8:5::",
        ),
    ],
)
def test_a_bad_region_table_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(RegionTableError) as caught:
        parse_csv(text.splitlines())
    assert message in str(caught.value)
    assert caught.value.code == "bad-region-table"


def test_importing_a_bad_table_keeps_the_stored_one(session: Session) -> None:
    assert import_region_table(session, REGIONS_CSV.splitlines()) == 5
    with pytest.raises(RegionTableError):
        import_region_table(session, ["network,region", "192.0.2.0/24,CN", "bad,CN"])
    from ipaddress import ip_address

    assert load_region_table(session).region_of(ip_address("198.51.100.1")) == "CN-BJ"


# --- rebuilding from the ledger -----------------------------------------------------------


def test_state_rebuilt_from_the_ledgers_sales(
    session: Session, ledger: Ledger, store: StateStore
) -> None:
    chain = build_chain(session, ledger)
    for i in range(3):
        chain.append(session, SHOP, "code.sale", sale_body(i, instrument="card-1"))
    chain.append(
        session,
        PARTNER,
        "payment.stolen",
        {
            "kind": "instrument",
            "pseudonym": person("instrument", "card-1"),
            "reported_at": format_time(NOW),
            "reason": "reported by the card holder",
        },
    )
    assert rebuild_state(session, store, since=NOW - timedelta(days=180)) == 3
    shop = Shop(make_engine(store, RuleSet([])), SHOP)
    next_sale = SaleContext.parse(
        {
            "buyer": person("buyer", "buyer-3"),
            "instrument": {
                "fingerprint": person("instrument", "card-1"),
                "bin": "622202",
                "last4": "0001",
            },
            "device": "device-1",
            "ip": "203.0.113.7",
            "amount": "100.00",
        }
    )
    features = shop.look(next_sale).features
    assert features["instrument.count_1m"] == 4
    assert features["instrument.distinct_buyers_24h"] == 4
    assert features["device.distinct_buyers_24h"] == 4
    assert features["merchant.sum_1h"] == 400.0
    assert features["instrument.tainted"] is True


# --- nothing in clear ---------------------------------------------------------------------

CLEAR = ("192.0.2.10", "phone-of-alice")


def test_no_clear_ip_or_device_in_the_sql_state(session: Session) -> None:
    Shop(make_engine(SqlStore(session))).sell(context(device=CLEAR[1], ip=CLEAR[0]))
    rows = session.execute(select(RiskSale)).scalars().all()
    assert rows
    dumped = repr([vars(row) for row in rows])
    assert not any(value in dumped for value in CLEAR)


def test_no_clear_ip_or_device_in_redis(redis_store: RedisStore) -> None:
    Shop(make_engine(redis_store)).sell(context(device=CLEAR[1], ip=CLEAR[0]))
    client: redis.Redis = redis_store.client
    dumped = []
    for key in client.scan_iter(match=f"{redis_store.prefix}*"):
        dumped.append(key)
        kind = client.type(key)
        if kind == b"zset":
            dumped.extend(client.zrange(key, 0, -1))
        elif kind == b"hash":
            dumped.extend(client.hgetall(key).items())
        elif kind == b"string":
            dumped.append(client.get(key))
    assert len(dumped) > 10
    assert not any(value.encode() in repr(dumped).encode() for value in CLEAR)


def test_memory_store_reset_forgets_everything() -> None:
    store = MemoryStore()
    shop = Shop(make_engine(store, RuleSet([])))
    shop.sell(context())
    store.reset()
    assert shop.look(context()).features["buyer.count_1m"] == 1


def test_the_local_store_sees_a_partners_stolen_card_notice_at_once(
    session: Session, ledger: Ledger
) -> None:
    chain = build_chain(session, ledger)
    stolen = person("instrument", "card-9")
    chain.append(
        session,
        PARTNER,
        "payment.stolen",
        {
            "kind": "instrument",
            "pseudonym": stolen,
            "reported_at": format_time(NOW),
            "reason": "reported by the card holder",
        },
    )
    shop = Shop(make_engine(SqlStore(session)), SHOP)
    sale = SaleContext.parse(
        {
            "buyer": person("buyer", "buyer-9"),
            "instrument": {"fingerprint": stolen, "bin": "622202", "last4": "0009"},
            "amount": "100.00",
        }
    )
    result = shop.sell(sale)
    assert result.features["instrument.tainted"] is True
    assert "instrument-stolen" in {r.code for r in result.reasons}

"""The features a rule can read, their types, and how they come from the state.

Features are grouped by what they describe: ``sale``, ``buyer``, ``instrument``,
``device``, ``ip`` and ``merchant``; a rule names them as ``buyer.count_1m``. Window
counts and sums include the sale being assessed, so ``buyer.count_1m > 5`` means "this
is at least the sixth purchase by this buyer within a minute". A party the context does
not name (no device, say) reads as zero, ``false`` or ``""``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from provenance.risk.context import AMOUNT_SCALE, SaleFacts


class FeatureType(StrEnum):
    INT = "int"
    DOUBLE = "double"
    BOOL = "bool"
    STRING = "string"


class Scope(StrEnum):
    BUYER = "buyer"
    INSTRUMENT = "instrument"
    DEVICE = "device"
    IP = "ip"
    MERCHANT = "merchant"


WINDOWS = {"1m": 60, "1h": 3600, "24h": 86400}
DISTINCT_WINDOW_S = 86400
HISTORY_TTL_S = 180 * 86400


class Distinct(StrEnum):
    """Distinct-count sets: ``<owner>.distinct_<members>_24h``."""

    DEVICE_INSTRUMENTS = "device.distinct_instruments_24h"
    BUYER_INSTRUMENTS = "buyer.distinct_instruments_24h"
    INSTRUMENT_BUYERS = "instrument.distinct_buyers_24h"
    DEVICE_BUYERS = "device.distinct_buyers_24h"
    IP_BUYERS = "ip.distinct_buyers_24h"


def _schema() -> dict[str, tuple[FeatureType, str]]:
    schema: dict[str, tuple[FeatureType, str]] = {
        "sale.amount": (FeatureType.DOUBLE, "the sale's amount"),
        "sale.channel": (FeatureType.STRING, "web, app, api, pos or other"),
        "sale.declared_region": (FeatureType.STRING, "the region the buyer declared"),
        "sale.ip_region": (FeatureType.STRING, "the IP address's region from the table"),
        "sale.region": (FeatureType.STRING, "the IP's region, else the declared one"),
        "sale.region_mismatch": (
            FeatureType.BOOL,
            "declared and IP regions are both known and name different countries",
        ),
        "buyer.first_sale": (FeatureType.BOOL, "no earlier sale to this buyer is known"),
        "buyer.history_count": (FeatureType.INT, "earlier sales to this buyer (180 days)"),
        "buyer.history_avg": (FeatureType.DOUBLE, "their average amount"),
        "buyer.history_max": (FeatureType.DOUBLE, "their largest amount"),
        "buyer.amount_ratio": (
            FeatureType.DOUBLE,
            "this amount divided by the buyer's average (0.0 without history)",
        ),
        "buyer.previous_region": (FeatureType.STRING, "region of the buyer's previous sale"),
        "buyer.region_changed": (
            FeatureType.BOOL,
            "this sale's region and the previous sale's are both known and differ",
        ),
        "device.new_for_buyer": (
            FeatureType.BOOL,
            "a device is named and was never seen with this buyer before",
        ),
        "instrument.tainted": (FeatureType.BOOL, "reported stolen by a partner notice"),
        "device.tainted": (FeatureType.BOOL, "reported by a partner notice"),
        "instrument.bin": (FeatureType.STRING, "the card's BIN (6-8 digits)"),
    }
    for scope in Scope:
        for window in WINDOWS:
            schema[f"{scope.value}.count_{window}"] = (
                FeatureType.INT,
                f"sales by this {scope.value} within {window}, this one included",
            )
            schema[f"{scope.value}.sum_{window}"] = (
                FeatureType.DOUBLE,
                f"their total amount within {window}",
            )
    for distinct in Distinct:
        owner, name = distinct.value.split(".")
        members = name.removeprefix("distinct_").removesuffix("_24h")
        schema[distinct.value] = (
            FeatureType.INT,
            f"distinct {members} seen with this {owner} within 24h, this sale's included",
        )
    return schema


FEATURES: dict[str, tuple[FeatureType, str]] = _schema()
GROUPS = frozenset(name.split(".")[0] for name in FEATURES)


@dataclass(frozen=True, slots=True)
class Window:
    """Counts and sums (in amount units) over the three windows."""

    count_1m: int = 0
    count_1h: int = 0
    count_24h: int = 0
    sum_1m: int = 0
    sum_1h: int = 0
    sum_24h: int = 0


@dataclass(frozen=True, slots=True)
class Observation:
    """What a state store knows about a sale, this sale included where noted.

    Attributes:
        windows: per scope present in the sale, counts and sums including this sale.
        distinct: per distinct set present, its size including this sale's member.
        device_seen: the device was seen with this buyer before this sale.
        history_count, history_units, history_max_units: the buyer's earlier sales.
        previous_region: the region of the buyer's previous sale, if known.
        instrument_tainted, device_tainted: partner notices.
        held: this call put the sale into the windows (see ``StateStore.observe``).
    """

    windows: dict[Scope, Window] = field(default_factory=dict)
    distinct: dict[Distinct, int] = field(default_factory=dict)
    device_seen: bool = False
    history_count: int = 0
    history_units: int = 0
    history_max_units: int = 0
    previous_region: str | None = None
    instrument_tainted: bool = False
    device_tainted: bool = False
    held: bool = False


_WINDOW_NAMES = tuple(
    (
        scope,
        tuple(f"{scope.value}.count_{name}" for name in WINDOWS),
        tuple(f"{scope.value}.sum_{name}" for name in WINDOWS),
    )
    for scope in Scope
)
_DISTINCT_NAMES = tuple((distinct, distinct.value) for distinct in Distinct)
assert tuple(WINDOWS) == ("1m", "1h", "24h")


def _money(units: int) -> float:
    return units / AMOUNT_SCALE


def compute_features(
    facts: SaleFacts,
    observation: Observation,
    *,
    channel: str,
    declared_region: str | None,
    ip_region: str | None,
    bin: str | None,
) -> dict[str, Any]:
    """Every feature in :data:`FEATURES`, as a flat mapping of name to value."""
    amount = _money(facts.amount_units)
    average = (
        _money(observation.history_units) / observation.history_count
        if observation.history_count
        else 0.0
    )
    region = facts.region or ""
    previous = observation.previous_region or ""
    declared = declared_region or ""
    values: dict[str, Any] = {
        "sale.amount": amount,
        "sale.channel": channel,
        "sale.declared_region": declared,
        "sale.ip_region": ip_region or "",
        "sale.region": region,
        "sale.region_mismatch": bool(declared and ip_region and declared[:2] != ip_region[:2]),
        "buyer.first_sale": observation.history_count == 0,
        "buyer.history_count": observation.history_count,
        "buyer.history_avg": average,
        "buyer.history_max": _money(observation.history_max_units),
        "buyer.amount_ratio": amount / average if average > 0 else 0.0,
        "buyer.previous_region": previous,
        "buyer.region_changed": bool(region and previous and region != previous),
        "device.new_for_buyer": facts.keys.device is not None and not observation.device_seen,
        "instrument.tainted": observation.instrument_tainted,
        "device.tainted": observation.device_tainted,
        "instrument.bin": bin or "",
    }
    empty = Window()
    for scope, counts, sums in _WINDOW_NAMES:
        window = observation.windows.get(scope, empty)
        values[counts[0]], values[counts[1]], values[counts[2]] = (
            window.count_1m,
            window.count_1h,
            window.count_24h,
        )
        values[sums[0]], values[sums[1]], values[sums[2]] = (
            window.sum_1m / AMOUNT_SCALE,
            window.sum_1h / AMOUNT_SCALE,
            window.sum_24h / AMOUNT_SCALE,
        )
    for distinct, name in _DISTINCT_NAMES:
        values[name] = observation.distinct.get(distinct, 0)
    return values


def nest(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"buyer.count_1m": 3}`` as ``{"buyer": {"count_1m": 3}}``, the shape rules read."""
    nested: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        group, _, leaf = name.partition(".")
        nested.setdefault(group, {})[leaf] = value
    return nested

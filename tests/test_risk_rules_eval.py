"""The engine's own evaluation of rule conditions agrees with CEL's runtime: the same
answer, or an error where CEL reports one, for every condition below on any features."""

from __future__ import annotations

from typing import Any

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance.risk.features import FEATURES, FeatureType
from provenance.risk.language import check_condition, variable
from provenance.risk.rules import DEFAULT_RULES

CONDITIONS = [
    *(spec.condition for spec in DEFAULT_RULES),
    "buyer.count_1m / instrument.count_1m > 2",
    "buyer.count_1m % instrument.count_1m == 1",
    "-buyer.count_1m < -3 || buyer.history_count * 4611686018427387904 > 0",
    "buyer.count_1h - 9223372036854775807 < ip.count_1h",
    "sale.amount / buyer.history_avg > 3.0",
    "int(buyer.amount_ratio) >= 2",
    "double(buyer.count_24h) * 1.5 > sale.amount",
    'sale.channel in ["web", "app"] && !device.tainted',
    "buyer.count_1m in [1, 2, 3]",
    'instrument.bin.startsWith("62") || instrument.bin.endsWith("11")',
    'sale.region.contains("CN") && size(sale.region) > 2',
    'sale.region + "-" + sale.declared_region == "CN-GD-CN"',
    "(buyer.first_sale ? buyer.count_1m : ip.count_1m) >= 2",
    "buyer.count_1m / instrument.count_1m > 2 && false",
    "false && buyer.count_1m / instrument.count_1m > 2",
    "true || buyer.count_1m % ip.count_1m == 0",
    "buyer.count_1m % ip.count_1m == 0 || true",
    "sale.region < sale.declared_region",
    "size([1, 2, buyer.count_1m]) == 3",
    "0x10 == buyer.count_1m && 1e3 > sale.amount",
    'sale.channel == "p\\x6fs"',
]

INTS = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.sampled_from([0, 2**62, 2**63 - 1, -(2**63)]),
)
DOUBLES = st.one_of(
    st.sampled_from([0.0, -0.0, 0.5, 3.0, 1e300, -1e300, 9.3e18]),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
STRINGS = st.sampled_from(["", "CN", "CN-GD", "US-CA", "622202", "411111", "web", "pos"])
VALUES = {FeatureType.INT: INTS, FeatureType.DOUBLE: DOUBLES, FeatureType.STRING: STRINGS}


def features() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            name: st.booleans() if kind is FeatureType.BOOL else VALUES[kind]
            for name, (kind, _) in FEATURES.items()
        }
    )


def outcome(call: Any) -> Any:
    try:
        return ("value", call())
    except Exception:
        return ("error", None)


@pytest.mark.parametrize("condition", CONDITIONS)
@settings(max_examples=80, deadline=None)
@given(values=features())
def test_the_engine_evaluates_a_condition_as_cel_does(
    condition: str, values: dict[str, Any]
) -> None:
    checked = check_condition(condition)
    program = cel.compile(checked.executable)
    context = cel.Context({variable(name): values[name] for name in checked.features})
    assert outcome(lambda: checked.run(values)) == outcome(lambda: program.execute(context))

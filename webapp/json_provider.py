"""JSON responses written by orjson.

Every API answer goes through ``jsonify``; verify before sale answers thousands of times
a second with a custody chain and inclusion proofs. :class:`FastJSONProvider` writes the
same JSON as Flask's default provider (keys sorted; dates, UUIDs, dataclasses and
decimals as Flask writes them, through its own ``default``), in a fraction of the time.
Non-ASCII text is written as UTF-8 rather than ``\\u`` escapes: the same JSON value.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)

# What Flask's ``response`` asks for out of debug mode; orjson writes no spaces anyway.
_COMPACT = {"separators": (",", ":")}


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, serialising with orjson where it writes the same JSON."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs and kwargs != _COMPACT:
            # An indent, a custom default, ...: the standard library's encoder.
            return super().dumps(obj, **kwargs)
        try:
            return orjson.dumps(obj, default=self.default, option=_OPTIONS).decode()
        except orjson.JSONEncodeError:
            # What orjson refuses and the standard encoder takes (integers beyond 64 bits)
            # or refuses with its own error.
            return super().dumps(obj)

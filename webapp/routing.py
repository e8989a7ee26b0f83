"""URL converters shared by every blueprint."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import Map
from werkzeug.routing.converters import IntegerConverter

# The largest id a row can have: SQL BIGINT, and SQLite's INTEGER.
MAX_ID = 2**63 - 1
# The largest number a 32-bit INTEGER column holds on PostgreSQL (risk rule versions).
MAX_INT32 = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<int:...>`` with an upper bound the database can hold by default.

    Without it, ``/api/v1/alerts/99999999999999999999`` reached the database, which
    refused the number with an error (a 500); now the URL matches no route (a 404).
    """

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)

"""The app's JSON responses (orjson) are the JSON Flask's default provider writes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from webapp.json_provider import FastJSONProvider


class Colour(StrEnum):
    RED = "red"


@dataclass
class Point:
    x: int
    label: str


DOCUMENTS: list[Any] = [
    {"b": 1, "a": [1, 2.5, None, True, False], "c": {"z": "中文", "y": 'e\u0301\n\t"\\'}},
    {"when": datetime(2026, 11, 27, 12, 30, tzinfo=UTC), "day": date(2026, 11, 27)},
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "amount": Decimal("12.50")},
    {"point": Point(3, "p"), "colour": Colour.RED, "tuple": (1, "two")},
    {2: "two", 1: "one"},
    {"big": 2**70, "small": -(2**63)},
    [],
    "text",
    0.1,
]


@pytest.fixture()
def providers() -> tuple[DefaultJSONProvider, FastJSONProvider]:
    app = Flask(__name__)
    return DefaultJSONProvider(app), FastJSONProvider(app)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_same_json_as_flask_writes(
    providers: tuple[DefaultJSONProvider, FastJSONProvider], document: Any
) -> None:
    default, fast = providers
    written = fast.dumps(document)
    assert json.loads(written) == json.loads(default.dumps(document))
    compact = {"separators": (",", ":")}  # as Flask's response asks out of debug mode
    assert fast.dumps(document, **compact) == written
    assert json.loads(written) == json.loads(default.dumps(document, **compact))
    # Keys sorted as the default provider sorts them.
    if isinstance(document, dict) and all(isinstance(k, str) for k in document):
        assert list(json.loads(written)) == sorted(document)


def test_what_flask_cannot_write_is_refused_alike(
    providers: tuple[DefaultJSONProvider, FastJSONProvider],
) -> None:
    default, fast = providers
    for document in ({"s": {1, 2}}, {"o": object()}):
        with pytest.raises(TypeError):
            default.dumps(document)
        with pytest.raises(TypeError):
            fast.dumps(document)


def test_compact_output_is_written_by_orjson(
    providers: tuple[DefaultJSONProvider, FastJSONProvider],
) -> None:
    default, fast = providers
    compact = {"separators": (",", ":")}
    # The standard encoder escapes non-ASCII text (ensure_ascii); orjson writes UTF-8.
    assert fast.dumps({"name": "中文"}, **compact) == '{"name":"中文"}'
    assert default.dumps({"name": "中文"}, **compact) == '{"name":"\\u4e2d\\u6587"}'


def test_indented_output_still_takes_the_standard_options(
    providers: tuple[DefaultJSONProvider, FastJSONProvider],
) -> None:
    _, fast = providers
    assert fast.dumps({"b": 1, "a": 2}, indent=2) == '{\n  "a": 2,\n  "b": 1\n}'


def test_the_app_answers_through_it(app: Flask) -> None:
    assert isinstance(app.json, FastJSONProvider)
    answer = app.test_client().get("/problems/not-found")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.get_json()["title"]

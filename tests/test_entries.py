"""Entries and records: canonical bytes (RFC 8785), signatures, and malformed input."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance.entries import (
    EntryFormatError,
    SignatureError,
    SignedStatement,
    Statement,
    canonical,
    decode_record,
    encode_record,
    format_time,
    key_id_for,
    parse_time,
    raw_public_key,
    sign_statement,
)
from tests.ledger_support import NOW, PLATFORM_KEY

KEY_ID = key_id_for(raw_public_key(PLATFORM_KEY))

json_leaf = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.dictionaries(st.text(max_size=8), json_value, max_size=5)


GOOD = {
    "v": 1,
    "type": "test.note",
    "time": "2026-11-26T12:00:00.000000Z",
    "actor": "a",
    "key": KEY_ID,
    "on_behalf": False,
    "body": {},
}


def statement(body: dict[str, object]) -> Statement:
    return Statement("test.note", NOW, "acme", KEY_ID, False, body)


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_canonical_equals_rfc8785_for_every_body(body: dict[str, object]) -> None:
    value = statement(body).to_json()
    assert canonical(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"amount": 1.5},
        {"nested": [{"deep": (1, 2.0)}]},
        {"big": 2**53},
        {"\u00e9t\u00e9": [-(2**60)]},
    ],
    ids=["float", "float-in-a-tuple", "integer-beyond-2-53", "huge-integer-under-non-ascii-key"],
)
def test_canonical_refuses_numbers_that_would_not_read_back(value: object) -> None:
    with pytest.raises(EntryFormatError):
        canonical(value)


def test_canonical_refuses_lone_surrogates_and_foreign_types() -> None:
    with pytest.raises(EntryFormatError):
        canonical({"text": "\ud800"})
    with pytest.raises(EntryFormatError):
        canonical({"when": NOW})
    with pytest.raises(EntryFormatError):
        canonical({1: "integer key"})


@settings(max_examples=200, deadline=None)
@given(bodies, st.integers(0, 2**40), st.binary(min_size=32, max_size=32), st.data())
def test_record_is_the_canonical_json_of_its_fields(
    body: dict[str, object], seq: int, prev: bytes, data: st.DataObject
) -> None:
    keyprev = data.draw(st.integers(-1, seq - 1))
    signed = sign_statement(statement(body), PLATFORM_KEY)
    raw = encode_record(signed, seq, prev, keyprev)
    expected = rfc8785.dumps(
        {
            "entry": json.loads(signed.payload),
            "keyprev": keyprev,
            "prev": prev.hex(),
            "seq": seq,
            "sig": base64.b64encode(signed.signature).decode(),
        }
    )
    assert raw == expected
    decoded = decode_record(raw)
    assert (decoded.seq, decoded.prev, decoded.keyprev) == (seq, prev, keyprev)
    assert decoded.signed.payload == signed.payload
    decoded.signed.verify(raw_public_key(PLATFORM_KEY))


def test_rfc8785_published_example_is_reproduced() -> None:
    # RFC 8785 section 3.2.3 sorting example (keys sorted by UTF-16 code units).
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O '
        'With Diaeresis","\u20ac":"Euro Sign","\U0001f600":"Emoji: Grinning Face",'
        '"\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    ).encode()
    assert rfc8785.dumps(value) == expected
    assert canonical(value) == expected


def _record(**changes: object) -> bytes:
    signed = sign_statement(statement({"text": "x"}), PLATFORM_KEY)
    value = {
        "entry": json.loads(signed.payload),
        "keyprev": 0,
        "prev": "00" * 32,
        "seq": 1,
        "sig": base64.b64encode(signed.signature).decode(),
    }
    value.update(changes)
    return rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "exactly the fields"),
        (_record(extra=1), "exactly the fields"),
        (_record(seq=-1), "non-negative"),
        (_record(seq="1"), "non-negative"),
        (_record(seq=True), "non-negative"),
        (_record(keyprev=1), "keyprev"),
        (_record(keyprev=-2), "keyprev"),
        (_record(prev="zz" * 32), "hex"),
        (_record(sig="AAAA"), "64-byte"),
        (_record(sig="not base64!"), "base64"),
        (_record(sig="A" * 85 + "B=="), "64-byte"),
        (_record(sig="A" * 86), "base64"),
        (_record(sig="_" * 86 + "=="), "base64"),
        (_record(sig="é" * 88), "base64"),
        (_record(sig=12), "base64 string"),
        (_record().replace(b'"seq":1', b'"seq":1.0'), "integers"),
        (_record().replace(b'"seq":1', b'"seq":9007199254740993'), "2\\*\\*53"),
        (_record().replace(b'{"entry":', b'{ "entry":'), "canonical"),
        (_record().replace(b'"text":"x"', b'"text":"x","text":"y"'), "canonical"),
        (_record().replace(b'"text":"x"', b'"text":"\\u0078"'), "canonical"),
        (_record().replace(b'"v":1', b'"v":2'), "version"),
        (_record().replace(b'"text":"x"', b'"text":"x","n":1.5'), "integers"),
        (_record().replace(b'"text":"x"', b'"n":1e5,"text":"x"'), "integers"),
        (_record().replace(b'"text":"x"', b'"n":9007199254740992,"text":"x"'), "2\\*\\*53"),
        (_record().replace(b'"text":"x"', b'"n":18446744073709551616,"text":"x"'), "integers"),
        (_record().replace(b'"text":"x"', b'"n":NaN,"text":"x"'), "not JSON"),
        (_record().replace(b'"text":"x"', b'"text":"\\ud800"'), "not JSON"),
        (_record().replace(b'"text":"x"', b'"text":"\xff"'), "not JSON"),
        (_record().replace(b'"keyprev":0', b'"keyprev":-0'), "canonical"),
    ],
    ids=[
        "garbage",
        "array",
        "extra-field",
        "negative-seq",
        "string-seq",
        "boolean-seq",
        "keyprev-not-earlier",
        "keyprev-below-minus-one",
        "bad-prev",
        "short-sig",
        "sig-not-base64",
        "sig-stray-bits",
        "sig-unpadded",
        "sig-url-alphabet",
        "sig-not-ascii",
        "sig-a-number",
        "float-smuggled",
        "integer-beyond-2-53",
        "whitespace-padding",
        "duplicate-key",
        "needless-escape",
        "future-version",
        "float-in-body",
        "exponent-in-body",
        "body-integer-beyond-2-53",
        "body-integer-beyond-2-64",
        "nan",
        "lone-surrogate",
        "invalid-utf-8",
        "negative-zero",
    ],
)
def test_malformed_record_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(EntryFormatError, match=reason):
        decode_record(raw)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (
            {
                "v": 1,
                "type": "test.note",
                "time": "2026-11-26T12:00:00Z",
                "actor": "a",
                "key": KEY_ID,
                "on_behalf": False,
                "body": {},
            },
            "time",
        ),
        (
            {
                "v": 1,
                "type": "Test",
                "time": format_time(NOW),
                "actor": "a",
                "key": KEY_ID,
                "on_behalf": False,
                "body": {},
            },
            "type",
        ),
        (
            {
                "v": 1,
                "type": "test.note",
                "time": format_time(NOW),
                "actor": "A B",
                "key": KEY_ID,
                "on_behalf": False,
                "body": {},
            },
            "actor",
        ),
        (
            {
                "v": 1,
                "type": "test.note",
                "time": format_time(NOW),
                "actor": "a",
                "key": "xyz",
                "on_behalf": False,
                "body": {},
            },
            "key",
        ),
        (
            {
                "v": 1,
                "type": "test.note",
                "time": format_time(NOW),
                "actor": "a",
                "key": KEY_ID,
                "on_behalf": 0,
                "body": {},
            },
            "on_behalf",
        ),
        (
            {
                "v": 1,
                "type": "test.note",
                "time": format_time(NOW),
                "actor": "a",
                "key": KEY_ID,
                "on_behalf": False,
                "body": [],
            },
            "body",
        ),
        (
            {
                "v": 1,
                "type": "test.note",
                "time": format_time(NOW),
                "actor": "a",
                "key": KEY_ID,
                "on_behalf": False,
            },
            "body",
        ),
        (
            {
                "v": 1,
                "type": "test.note",
                "time": format_time(NOW),
                "actor": "a",
                "key": KEY_ID,
                "on_behalf": False,
                "body": {},
                "seq": 5,
            },
            "seq",
        ),
        ({**GOOD, "actor": "issuer\n"}, "actor"),
        ({**GOOD, "time": "\u0662\u0660\u0662\u0666-11-26T12:00:00.000000Z"}, "time"),
        ({**GOOD, "type": "test.note\n"}, "type"),
    ],
    ids=[
        "time-without-microseconds",
        "bad-type",
        "actor-with-space",
        "bad-key-id",
        "on-behalf-not-bool",
        "body-not-object",
        "missing-body",
        "smuggled-seq",
        "actor-with-trailing-newline",
        "time-in-arabic-indic-digits",
        "type-with-newline",
    ],
)
def test_malformed_statement_names_the_field(value: dict[str, object], field: str) -> None:
    with pytest.raises(EntryFormatError) as info:
        Statement.from_json(value)
    assert info.value.field == field


def test_client_statement_is_canonicalised_before_verifying() -> None:
    signed = sign_statement(statement({"b": 1, "a": 2}), PLATFORM_KEY)
    reordered = json.loads(json.dumps(json.loads(signed.payload), sort_keys=False))
    accepted = SignedStatement.from_json(reordered, base64.b64encode(signed.signature).decode())
    accepted.verify(raw_public_key(PLATFORM_KEY))


@pytest.mark.parametrize("number", [1.5, 1e3, 2**60, -(2**60)])
def test_client_numbers_that_are_not_safe_integers_are_refused(number: object) -> None:
    value = statement({"amount": number}).to_json()
    with pytest.raises(EntryFormatError, match="integer"):
        SignedStatement.from_json(value, base64.b64encode(bytes(64)).decode())


def test_oversized_client_statement_is_refused() -> None:
    value = statement({"text": "x" * 70_000}).to_json()
    with pytest.raises(EntryFormatError, match="limit"):
        SignedStatement.from_json(value, base64.b64encode(bytes(64)).decode())


def test_signature_over_other_bytes_fails() -> None:
    signed = sign_statement(statement({"a": 1}), PLATFORM_KEY)
    other = sign_statement(statement({"a": 2}), PLATFORM_KEY)
    with pytest.raises(SignatureError):
        SignedStatement(signed.statement, signed.payload, other.signature).verify(
            raw_public_key(PLATFORM_KEY)
        )


def test_time_round_trips_and_is_strict() -> None:
    moment = datetime(2026, 1, 31, 23, 59, 59, 123456, tzinfo=UTC)
    assert parse_time(format_time(moment)) == moment
    for bad in ("2026-02-30T00:00:00.000000Z", "2026-01-31T23:59:59.123456+00:00", "yesterday"):
        with pytest.raises(EntryFormatError):
            parse_time(bad)
    with pytest.raises(EntryFormatError):
        format_time(datetime(2026, 1, 1))


def test_early_years_are_zero_padded() -> None:
    early = datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert format_time(early) == "0999-01-02T03:04:05.000006Z"
    assert parse_time(format_time(early)) == early

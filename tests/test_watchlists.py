"""Importing watch lists: CSV and FollowTheMoney files, all or nothing, replaced whole."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchant_onboarding.errors import ScreeningInputError, WatchlistImportError
from merchant_onboarding.screening import (
    PartyKind,
    import_watchlist,
    list_watchlists,
    screen_name,
)
from merchant_onboarding.screening_models import WatchlistEntry, WatchlistName
from merchant_onboarding.watchlists import MAX_REPORTED_ERRORS, open_reader
from tests.ledger_support import NOW
from tests.screening_support import (
    EMPTY,
    EXTRACT,
    SANCTIONS_CSV,
    csv_reader,
    ftm_reader,
    import_csv,
    table_counts,
)

PERSON = {
    "id": "NK-person-1",
    "schema": "Person",
    "caption": "Ivan Petrov",
    "properties": {
        "name": ["Ivan Petrov", "Иван Петров"],
        "alias": ["Vanya Petrov"],
        "weakAlias": ["Vanya"],
        "nationality": ["ru"],
        "birthDate": ["1970-01-01"],
    },
    "datasets": ["us_ofac_sdn"],
    "referents": ["ofac-1234"],
    "target": True,
    "first_seen": "2024-01-01T00:00:00",
    "last_seen": "2026-11-01T00:00:00",
    "last_change": "2025-01-01T00:00:00",
}
COMPANY = {
    "id": "NK-company-1",
    "schema": "Company",
    "properties": {
        "name": ["Northern Star Shipping LLC"],
        "previousName": ["Polar Star Shipping"],
        "jurisdiction": ["ae"],
        # The nested export puts adjacent entities inside properties.
        "sanctions": [{"id": "s1", "schema": "Sanction", "properties": {"program": ["X"]}}],
    },
    "datasets": ["eu_fsf"],
}
LEGAL_ENTITY = {"id": "NK-le-1", "schema": "LegalEntity", "properties": {"name": ["Kestrel"]}}
SANCTION = {"id": "s2", "schema": "Sanction", "properties": {"entity": ["NK-person-1"]}}
ADDRESS = {"id": "a1", "schema": "Address", "properties": {"full": ["1 Main St"]}}


def entries(session: Session) -> dict[str, WatchlistEntry]:
    return {e.entry_id: e for e in session.scalars(select(WatchlistEntry))}


# --- good files ---------------------------------------------------------------------------


def test_csv_import_stores_entries_names_and_list_details(session: Session) -> None:
    result = import_csv(session)
    assert result.replaced == 0
    info = result.watchlist
    assert (info.name, info.source, info.extract_date, info.format) == (
        "test-sanctions",
        "tests",
        EXTRACT,
        "csv",
    )
    # "OAO Gazprom Neft" is "Gazprom Neft JSC" once normalised: stored once.
    assert (info.entries, info.names) == (8, 11)
    stored = entries(session)
    assert stored["E2"].countries == "cn; hk"
    assert stored["E2"].note == "listed for the tests"
    assert stored["P1"].kind == "person"
    assert stored["U1"].kind == "unspecified"
    assert list_watchlists(session) == [info]


def test_ftm_import_reads_names_aliases_and_previous_names(session: Session) -> None:
    reader = ftm_reader([PERSON, COMPANY, LEGAL_ENTITY, SANCTION, ADDRESS])
    result = import_watchlist(session, "os-default", "OpenSanctions", EXTRACT, reader, now=NOW)
    assert result.watchlist.entries == 3
    assert reader.skipped == {"Sanction": 1, "Address": 1}
    stored = entries(session)
    assert stored["NK-person-1"].caption == "Ivan Petrov"
    assert stored["NK-person-1"].datasets == "us_ofac_sdn"
    assert stored["NK-person-1"].countries == "ru"
    assert stored["NK-company-1"].kind == "entity"
    assert stored["NK-company-1"].caption == "Northern Star Shipping LLC"
    assert stored["NK-le-1"].kind == "unspecified"
    names = {(n.name, n.role) for n in session.scalars(select(WatchlistName))}
    assert ("Vanya Petrov", "alias") in names
    assert ("Polar Star Shipping", "previous-name") in names
    assert not any(name == "Vanya" for name, _ in names)


def test_ftm_import_skips_blank_lines(session: Session) -> None:
    reader = ftm_reader([LEGAL_ENTITY, "", "   "])
    assert import_watchlist(session, "l", "s", EXTRACT, reader, now=NOW).watchlist.entries == 1


def test_reimport_replaces_the_list_and_leaves_other_lists(session: Session) -> None:
    import_csv(session)
    import_csv(session, "id,name,kind\nX1,Other Corp,entity\n", name="other")
    result = import_csv(session, "id,name,kind\nN1,Brand New Trading Ltd,entity\n")
    assert result.replaced == 8
    assert result.watchlist.entries == 1
    assert set(entries(session)) == {"N1", "X1"}
    assert screen_name(session, "Tencent Holdings Limited", kind=PartyKind.ENTITY) == []
    assert [h.entry_id for h in screen_name(session, "Other Corp", kind="entity")] == ["X1"]
    assert [h.entry_id for h in screen_name(session, "Brand New Trading", kind="entity")] == ["N1"]


def test_a_refused_reimport_leaves_the_previous_list(session: Session) -> None:
    import_csv(session)
    before = table_counts(session)
    with pytest.raises(WatchlistImportError):
        import_csv(session, "id,name,kind\nN1,New Co,entity\nN2,Bad Co,robot\n")
    assert table_counts(session) == before
    assert list_watchlists(session)[0].entries == 8
    assert screen_name(session, "Tencent Holdings", kind="entity")[0].entry_id == "E2"


def test_a_name_that_is_only_punctuation_among_aliases_is_skipped(session: Session) -> None:
    result = import_csv(session, 'id,name,kind,aliases\nA,Acme Corp,entity,"--;Acme Co"\n')
    assert result.watchlist.names == 1


# --- bad files: every bad line named, nothing written ---------------------------------------


def refused(session: Session, reader: Any) -> WatchlistImportError:
    with pytest.raises(WatchlistImportError) as caught:
        import_watchlist(session, "bad", "tests", EXTRACT, reader, now=NOW)
    assert table_counts(session) == EMPTY
    assert caught.value.code == "watchlist-import-failed"
    assert "nothing imported" in caught.value.message
    return caught.value


def problems(error: WatchlistImportError) -> list[tuple[int, str | None, str]]:
    return [(e.line, e.field, e.message) for e in error.errors]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id,name,kind,colour\nA,Acme,entity,red\n", (1, "colour", "unknown column")),
        ("id,name\nA,Acme\n", (1, "kind", "required column missing")),
        ("id,name,kind,name\nA,Acme,entity,B\n", (1, None, "a column appears twice")),
        ("", (1, None, "empty file")),
        ("id,name,kind\nA,Acme,entity\nB,Beta,robot\n", (3, "kind", "Input should be")),
        ("id,name,kind\nA,,entity\n", (2, "name", "required")),
        ("id,name,kind\n,Acme,entity\n", (2, "id", "required")),
        ("id,name,kind\nA,Acme,entity,extra\n", (2, None, "more fields than the header")),
        ("id,name,kind\nA,Acme\n", (2, None, "fewer fields than the header")),
        ("id,name,kind\nA,Acme,entity\nA,Acme Two,entity\n", (3, "id", "duplicate id")),
        ("id,name,kind\nA,---,entity\n", (2, "name", "no letters or digits")),
        (f"id,name,kind\nA,{'x' * 501},entity\n", (2, "name", "at most 500")),
        (f"id,name,kind,aliases\nA,Acme,entity,{'x' * 501}\n", (2, "aliases", "longer than")),
        ("id,name,kind\n", (1, None, "no person or organisation")),
        ('id,name,kind\nA,"Acme,entity\n', (2, None, "fewer fields")),
    ],
    ids=[
        "unknown-column",
        "missing-column",
        "column-twice",
        "empty-file",
        "bad-kind",
        "empty-name",
        "empty-id",
        "extra-field",
        "missing-field",
        "duplicate-id",
        "punctuation-name",
        "name-too-long",
        "alias-too-long",
        "header-only",
        "unclosed-quote",
    ],
)
def test_bad_csv_is_refused_with_its_line(
    session: Session, text: str, expected: tuple[int, str | None, str]
) -> None:
    error = refused(session, csv_reader(text))
    line, field, message = problems(error)[0]
    assert (line, field) == expected[:2]
    assert expected[2] in message


def test_csv_that_is_not_utf8_is_refused(session: Session) -> None:
    raw = b"id,name,kind\nA,Acme,entity\nB,\xff\xfe,entity\n"
    stream = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", newline="")
    error = refused(session, open_reader("csv", stream))
    assert problems(error)[0][2] == "not UTF-8 text"


def test_every_bad_line_is_reported_up_to_the_limit(session: Session) -> None:
    rows = "".join(f"R{i},Name {i},robot\n" for i in range(150))
    error = refused(session, csv_reader("id,name,kind\nA,Acme,entity\n" + rows))
    assert error.total == 150
    assert len(error.errors) == MAX_REPORTED_ERRORS
    assert [e.line for e in error.errors[:3]] == [3, 4, 5]
    assert "and 145 more" in error.message


def test_a_duplicate_and_a_bad_kind_are_both_reported_in_line_order(session: Session) -> None:
    text = "id,name,kind\nA,Acme,entity\nB,Beta,robot\nA,Acme again,entity\n"
    error = refused(session, csv_reader(text))
    assert [(e.line, e.field) for e in error.errors] == [(3, "kind"), (4, "id")]


def test_messages_do_not_repeat_values_from_the_file(session: Session) -> None:
    error = refused(session, csv_reader("id,name,kind\nA,Secret Name,secretkind\n"))
    assert "secretkind" not in error.message
    assert "Secret Name" not in error.message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", (None, "not JSON")),
        ("[1, 2]", (None, "not a JSON object")),
        ({**LEGAL_ENTITY, "colour": "red"}, ("colour", "unknown field")),
        ({"schema": "Person", "properties": {"name": ["A"]}}, ("id", "required")),
        ({"id": "x", "properties": {"name": ["A"]}}, ("schema", "required")),
        ({"id": "x", "schema": "person", "properties": {"name": ["A"]}}, ("schema", "pattern")),
        ({"id": "x", "schema": "Person", "properties": {"alias": ["A"]}}, ("properties.name", "")),
        ({"id": "x", "schema": "Person", "properties": {"name": "A"}}, ("properties.name", "list")),
        ({"id": "x", "schema": "Person", "properties": {"name": [5]}}, ("properties.name.0", "")),
        (
            {"id": "x", "schema": "Company", "properties": {"name": [{"id": "n"}]}},
            ("properties.name", "a name must be a string"),
        ),
        (
            {"id": "x", "schema": "Company", "properties": {"name": ["A"], "Bad Prop": ["b"]}},
            ("properties", "not a FollowTheMoney name"),
        ),
        ({**LEGAL_ENTITY, "target": "maybe"}, ("target", "boolean")),
        ({**LEGAL_ENTITY, "datasets": "eu_fsf"}, ("datasets", "list")),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "unknown-top-level-key",
        "no-id",
        "no-schema",
        "schema-not-a-name",
        "person-without-name",
        "property-not-a-list",
        "name-not-a-string",
        "name-is-an-entity",
        "bad-property-name",
        "target-not-boolean",
        "datasets-not-a-list",
    ],
)
def test_bad_ftm_is_refused_with_its_line(
    session: Session, line: Any, expected: tuple[str | None, str]
) -> None:
    error = refused(session, ftm_reader([LEGAL_ENTITY, line]))
    number, field, message = problems(error)[0]
    assert number == 2
    assert field == expected[0] or (field or "").startswith(expected[0] or "\0")
    assert expected[1] in message


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "empty file"), ("\n", "no person or organisation")],
)
def test_an_ftm_file_without_parties_is_refused(
    session: Session, content: str, message: str
) -> None:
    error = refused(session, ftm_reader(content))
    assert message in error.errors[0].message


def test_an_ftm_file_of_only_sanctions_is_refused(session: Session) -> None:
    error = refused(session, ftm_reader([SANCTION, ADDRESS]))
    assert "no person or organisation" in error.errors[0].message


# --- bad list details ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source", "extract_date", "field"),
    [
        ("", "s", EXTRACT, "name"),
        ("bad name", "s", EXTRACT, "name"),
        ("-leading", "s", EXTRACT, "name"),
        ("x" * 65, "s", EXTRACT, "name"),
        ("列表", "s", EXTRACT, "name"),
        ("ok", "   ", EXTRACT, "source"),
        ("ok", "x" * 201, EXTRACT, "source"),
        ("ok", "line\nbreak", EXTRACT, "source"),
        ("ok", "s", date(2026, 11, 27), "extract_date"),
        ("ok", "s", datetime(2026, 11, 1, tzinfo=UTC), "extract_date"),
    ],
)
def test_bad_list_details_are_refused_before_reading(
    session: Session, name: str, source: str, extract_date: date, field: str
) -> None:
    with pytest.raises(ScreeningInputError) as caught:
        import_watchlist(session, name, source, extract_date, csv_reader(SANCTIONS_CSV), now=NOW)
    assert caught.value.field == field
    assert caught.value.code == "invalid-screening-input"
    assert table_counts(session) == EMPTY


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ScreeningInputError) as caught:
        open_reader("xml", io.StringIO(""))
    assert caught.value.field == "format"

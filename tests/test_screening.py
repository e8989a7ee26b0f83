"""Screening names against imported watch lists: variants found, unrelated names not."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchant_onboarding.errors import (
    NoWatchlistError,
    ScreeningInputError,
    WatchlistNotFoundError,
)
from merchant_onboarding.names import Normalisation, key_hash
from merchant_onboarding.screening import (
    DEFAULT_THRESHOLD,
    PartyKind,
    ScreeningHit,
    import_watchlist,
    screen_name,
)
from merchant_onboarding.screening_models import FREQUENT_KEY, WatchlistKeyStat
from tests.ledger_support import NOW
from tests.screening_support import EXTRACT, csv_reader, import_csv

N = Normalisation


@pytest.fixture()
def listed(session: Session) -> Session:
    import_csv(session)
    return session


def best(session: Session, name: str, kind: str = "entity") -> ScreeningHit:
    hits = screen_name(session, name, kind=kind)
    assert hits, f"no hit for {name!r}"
    return hits[0]


@pytest.mark.parametrize(
    ("name", "entry", "steps"),
    [
        ("Tencent Holdings Limited", "E2", {N.CASE, N.SUFFIX}),
        ("TENCENT HOLDINGS", "E2", {N.CASE, N.SUFFIX}),
        ("ＴＥＮＣＥＮＴ　ＨＯＬＤＩＮＧＳ　ＬＩＭＩＴＥＤ", "E2", {N.WIDTH, N.CASE, N.SUFFIX}),
        ("Tencent  Holdings, Ltd.", "E2", {N.WHITESPACE, N.PUNCTUATION, N.SUFFIX}),
        ("Tencent Holdings Co Ltd", "E2", {N.SUFFIX}),
        ("Tencent Holdngs", "E2", {N.CASE, N.SUFFIX}),
        ("AlphaBeta Trading", "E4", {N.SPACING}),
        ("Alpha-Beta Trading Ltd", "E4", {N.PUNCTUATION}),
        ("Gazprom Neft", "E3", {N.SUFFIX}),
        ("PJSC Gazprom Neft", "E3", {N.SUFFIX}),
        ("深圳市腾讯计算机系统有限公司", "E1", {N.SUFFIX}),
        ("深圳市 腾讯计算机系统 有限公司", "E1", {N.WHITESPACE, N.SUFFIX}),
        ("深圳市腾讯计算机系统股份有限公司", "E1", {N.SUFFIX}),
        ("腾讯计算机系统有限公司", "E1", {N.REGION_PREFIX}),
        ("Shenzhen Tengxun Jisuanji Xitong Youxian Gongsi", "E1", {N.PINYIN}),
        ("Shenzhen Tencent Computer Systems Company Limited", "E1", {N.SUFFIX}),
        ("深圳市华为技术有限公司", "E5", {N.REGION_PREFIX}),
        ("华为技术有限公司", "E5", {N.REGION_PREFIX}),
    ],
)
def test_a_listed_entity_is_found_however_it_is_written(
    listed: Session, name: str, entry: str, steps: set[Normalisation]
) -> None:
    hit = best(listed, name)
    assert hit.entry_id == entry
    assert hit.score >= DEFAULT_THRESHOLD
    assert steps <= set(hit.normalisations)


@pytest.mark.parametrize(
    ("name", "entry"),
    [
        ("Zhang Wei", "P1"),
        ("ZHANG WEI", "P1"),
        ("Wei Zhang", "P1"),
        ("张 伟", "P1"),
        ("John Michael Doe", "P2"),
        ("Doe, John Michael", "P2"),
        ("Johnny Doe", "P2"),
    ],
)
def test_a_listed_person_is_found_however_it_is_written(
    listed: Session, name: str, entry: str
) -> None:
    assert best(listed, name, "person").entry_id == entry


@pytest.mark.parametrize(
    "name",
    [
        "Alibaba Group Holding",
        "Tencent Music Entertainment",
        "Huawei Device Co Ltd",
        "深圳市腾讯网络科技有限公司",
        "北京市腾讯计算机系统有限公司",
        "阿里巴巴集团控股有限公司",
        "Gazprom Bank",
        "Beta Trading",
        "Northwind Traders",
        "Acme Widgets Ltd",
        "Mary Jane Smith",
        "张伟明",
        "Jane Doe",
    ],
)
def test_unrelated_names_are_not_flagged(listed: Session, name: str) -> None:
    kind = "person" if name in ("Mary Jane Smith", "张伟明", "Jane Doe") else "entity"
    assert screen_name(listed, name, kind=kind) == []


def test_a_chinese_name_is_not_matched_by_a_homophone(session: Session) -> None:
    import_csv(session, "id,name,kind\nP,张伟,person\n")
    assert screen_name(session, "章伟", kind="person") == []
    # A romanised alias cannot tell the two apart: "Zhang Wei" is both.
    import_csv(session, "id,name,kind,aliases\nP,张伟,person,Zhang Wei\n")
    assert [h.matched_name for h in screen_name(session, "章伟", kind="person")] == ["Zhang Wei"]


def test_a_hit_carries_the_list_the_entry_and_the_matched_alias(listed: Session) -> None:
    hit = best(listed, "Johnny Doe", "person")
    assert hit == ScreeningHit(
        watchlist="test-sanctions",
        source="tests",
        extract_date=EXTRACT,
        entry_id="P2",
        kind=PartyKind.PERSON,
        caption="John Michael Doe",
        matched_name="Johnny Doe",
        score=100.0,
        normalisations=(N.CASE,),
        countries=("us",),
    )
    assert hit.to_dict()["extract_date"] == "2026-11-20"
    assert hit.to_dict()["normalisations"] == ["case"]


def test_a_person_is_not_matched_against_companies_nor_a_company_against_persons(
    listed: Session,
) -> None:
    assert screen_name(listed, "Tencent Holdings", kind=PartyKind.PERSON) == []
    assert screen_name(listed, "Zhang Wei", kind=PartyKind.ENTITY) == []


def test_an_entry_of_unspecified_kind_is_matched_by_both_kinds(listed: Session) -> None:
    for kind in PartyKind:
        assert [h.entry_id for h in screen_name(listed, "Northwind Logistics", kind=kind)] == ["U1"]


def test_unspecified_kind_screens_every_entry(listed: Session) -> None:
    assert best(listed, "Zhang Wei", "unspecified").entry_id == "P1"
    assert best(listed, "Tencent Holdings", "unspecified").entry_id == "E2"


def test_one_hit_per_entry_with_its_best_name(listed: Session) -> None:
    hits = screen_name(listed, "Gazprom Neft", kind="entity")
    assert [h.entry_id for h in hits] == ["E3"]
    assert hits[0].matched_name == "Gazprom Neft JSC"


def test_hits_are_best_first_and_limited(session: Session) -> None:
    text = "id,name,kind\nA,Acme Trading,entity\nB,Acme Tradeing,entity\nC,Acme Tradin,entity\n"
    import_csv(session, text)
    hits = screen_name(session, "Acme Trading", kind="entity")
    assert [h.entry_id for h in hits] == ["A", "B", "C"] or [h.entry_id for h in hits] == [
        "A",
        "C",
        "B",
    ]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(screen_name(session, "Acme Trading", kind="entity", limit=1)) == 1


def test_the_threshold_decides_what_is_a_hit(listed: Session) -> None:
    assert screen_name(listed, "Tencent Holdings Asia", kind="entity") == []
    hits = screen_name(listed, "Tencent Holdings Asia", kind="entity", threshold=80)
    assert [h.entry_id for h in hits] == ["E2"]
    assert 80 <= hits[0].score < DEFAULT_THRESHOLD


def test_screening_against_named_lists_only(listed: Session) -> None:
    import_csv(listed, "id,name,kind\nO1,Tencent Holdings,entity\n", name="other")
    both = screen_name(listed, "Tencent Holdings", kind="entity")
    assert {(h.watchlist, h.entry_id) for h in both} == {("test-sanctions", "E2"), ("other", "O1")}
    only = screen_name(listed, "Tencent Holdings", kind="entity", watchlists=["other"])
    assert [(h.watchlist, h.entry_id) for h in only] == [("other", "O1")]


def test_screening_an_unknown_list_is_refused(listed: Session) -> None:
    with pytest.raises(WatchlistNotFoundError) as caught:
        screen_name(listed, "Tencent", kind="entity", watchlists=["test-sanctions", "nope"])
    assert caught.value.code == "watchlist-not-found"
    assert "nope" in caught.value.message


def test_screening_without_any_list_is_refused(session: Session) -> None:
    with pytest.raises(NoWatchlistError) as caught:
        screen_name(session, "Tencent", kind="entity")
    assert caught.value.code == "no-watchlist"


@pytest.mark.parametrize(
    ("name", "kind", "threshold", "limit", "field"),
    [
        ("", "entity", 90.0, 20, "name"),
        ("   ", "entity", 90.0, 20, "name"),
        ("-- ., !", "entity", 90.0, 20, "name"),
        ("x" * 501, "entity", 90.0, 20, "name"),
        ("Acme", "robot", 90.0, 20, "kind"),
        ("Acme", "entity", 49.9, 20, "threshold"),
        ("Acme", "entity", 100.5, 20, "threshold"),
        ("Acme", "entity", True, 20, "threshold"),
        ("Acme", "entity", 90.0, 0, "limit"),
        ("Acme", "entity", 90.0, 1001, "limit"),
    ],
)
def test_bad_screening_requests_are_refused(
    listed: Session, name: str, kind: str, threshold: float, limit: int, field: str
) -> None:
    with pytest.raises(ScreeningInputError) as caught:
        screen_name(listed, name, kind=kind, threshold=threshold, limit=limit)
    assert caught.value.field == field
    assert caught.value.code == "invalid-screening-input"


def test_a_refused_name_is_not_repeated_in_the_message(listed: Session) -> None:
    with pytest.raises(ScreeningInputError) as caught:
        screen_name(listed, "Secret Person" + "x" * 500, kind="person")
    assert "Secret" not in caught.value.message


def test_frequent_words_are_counted_and_the_listed_name_is_still_found(session: Session) -> None:
    # Every listed name shares "global" and "trading": too common to fetch all of them
    # through those keys alone; the whole-name and rare keys still find the entry.
    words = [f"{a}{b}{c}" for a in "bcdfgh" for b in "aeiou" for c in "klmnprst"][
        : FREQUENT_KEY + 6
    ]
    rows = "".join(f"G{i},Global {w} Trading,entity\n" for i, w in enumerate(words))
    import_watchlist(
        session,
        "many",
        "tests",
        EXTRACT,
        csv_reader(
            "id,name,kind\nT,Global Trading,entity\nK,Global Kestrelwood Trading,entity\n" + rows
        ),
        now=NOW,
    )
    postings = dict(session.execute(select(WatchlistKeyStat.key, WatchlistKeyStat.postings)).all())
    words_keys = {key_hash("wglobal"), key_hash("wtrading")}
    assert {postings[k] for k in words_keys} == {FREQUENT_KEY + 8}
    # "global" is each name's first long word: its one-letter deletions are as common.
    deletions = {key_hash("d" + "global"[:i] + "global"[i + 1 :]) for i in range(6)}
    assert set(postings) == words_keys | deletions
    assert [h.entry_id for h in screen_name(session, "GLOBAL TRADING LTD", kind="entity")] == ["T"]
    hits = screen_name(session, "Global Kestrelwood Trading Co", kind="entity")
    assert [h.entry_id for h in hits] == ["K"]


def test_a_listed_name_in_cyrillic_is_found_by_its_latin_form(session: Session) -> None:
    import_csv(session, "id,name,kind\nR1,ПАО «Газпром нефть»,entity\nR2,Иван Петров,person\n")
    hit = best(session, "Gazprom Neft PJSC")
    assert (hit.entry_id, hit.score) == ("R1", 100.0)
    assert Normalisation.TRANSLITERATION in hit.normalisations
    assert best(session, "Ivan Petrov", kind="person").entry_id == "R2"
    assert screen_name(session, "Ivan Sidorov", kind="person") == []


def test_a_misspelt_single_word_is_a_candidate(session: Session) -> None:
    import_csv(session, "id,name,kind\nG1,OAO Gazprom,entity\n")
    [hit] = screen_name(session, "Gasprom JSC", kind="entity", threshold=85)
    assert (hit.entry_id, hit.score) == ("G1", 85.7)
    assert screen_name(session, "Gasprom JSC", kind="entity") == []

"""Name normalisation, blocking keys and scoring: pure functions, no database."""

from __future__ import annotations

import pytest

from merchant_onboarding.names import (
    NUMBER_MISMATCH_CAP,
    Normalisation,
    blocking_keys,
    key_hash,
    normalise_name,
    query_keys,
    score_names,
)
from merchant_onboarding.screening import DEFAULT_THRESHOLD

N = Normalisation


@pytest.mark.parametrize(
    ("raw", "text", "steps"),
    [
        ("Acme Trading", "acme trading", {N.CASE}),
        ("ＡＣＭＥ　Ｔｒａｄｉｎｇ", "acme trading", {N.WIDTH, N.CASE}),
        ("  Acme   Trading ", "acme trading", {N.CASE, N.WHITESPACE}),
        ("Acme-Trading, Inc.", "acme trading", {N.CASE, N.PUNCTUATION, N.SUFFIX}),
        ("L.X.C. Aviation", "lxc aviation", {N.CASE, N.PUNCTUATION}),
        ("Smith & Sons Co., Ltd", "smith and sons", {N.CASE, N.PUNCTUATION, N.SUFFIX}),
        ("Société Générale", "societe generale", {N.CASE, N.ACCENTS}),
        ("OAO Gazprom", "gazprom", {N.CASE, N.SUFFIX}),
        ("Faberlic Europe Sp. z o.o.", "faberlic europe", {N.CASE, N.PUNCTUATION, N.SUFFIX}),
        ("acme gmbh", "acme", {N.SUFFIX}),
        ("深圳市腾讯计算机系统有限公司", "深圳市腾讯计算机系统", {N.SUFFIX}),
        ("深圳市 腾讯计算机系统 有限公司", "深圳市腾讯计算机系统", {N.WHITESPACE, N.SUFFIX}),
        ("华为投资控股股份有限公司", "华为投资控股", {N.SUFFIX}),
        ("阿里巴巴集团", "阿里巴巴", {N.SUFFIX}),
        ("中國石油天然氣集團有限公司", "中國石油天然氣", {N.SUFFIX}),
        ("（深圳）腾讯有限公司", "深圳腾讯", {N.WIDTH, N.PUNCTUATION, N.SUFFIX}),
        ("Shenzhen Tengxun Youxian Gongsi", "shenzhen tengxun", {N.CASE, N.SUFFIX}),
    ],
)
def test_normalisation_steps(raw: str, text: str, steps: set[Normalisation]) -> None:
    name = normalise_name(raw)
    assert name.text == text
    assert name.steps == steps


def test_a_name_that_is_only_a_legal_form_keeps_it() -> None:
    assert normalise_name("Limited").text == "limited"
    assert normalise_name("有限公司").text == "有限公司"


def test_punctuation_only_normalises_to_nothing() -> None:
    assert normalise_name(" -- ., ").text == ""


def test_chinese_names_get_pinyin_and_a_form_without_the_region() -> None:
    name = normalise_name("广东省深圳市华为技术有限公司")
    assert name.romanised == "guang dong sheng shen zhen shi hua wei ji shu"
    assert name.stripped == "华为技术"
    assert normalise_name("华为技术有限公司").stripped is None
    assert normalise_name("Huawei").romanised is None


def test_latin_and_chinese_parts_are_separate_words() -> None:
    assert normalise_name("腾讯Tencent").text == "腾讯 tencent"


@pytest.mark.parametrize(
    ("query", "listed", "comparison"),
    [
        ("深圳市 腾讯计算机系统 有限公司", "深圳市腾讯计算机系统有限公司", None),
        ("ＴＥＮＣＥＮＴ ＨＯＬＤＩＮＧＳ ＬＩＭＩＴＥＤ", "Tencent Holdings Ltd.", None),
        ("AlphaBeta Trading", "Alpha Beta Trading Co", N.SPACING),
        ("Wei Zhang", "Zhang Wei", N.WORD_ORDER),
        ("腾讯计算机系统有限公司", "深圳市腾讯计算机系统有限公司", N.REGION_PREFIX),
        ("Zhang Wei", "张伟", N.PINYIN),
        ("Shenzhen Tengxun Jisuanji Xitong Co., Ltd.", "深圳市腾讯计算机系统有限公司", N.PINYIN),
    ],
)
def test_variants_of_one_name_score_high(
    query: str, listed: str, comparison: Normalisation | None
) -> None:
    score = score_names(normalise_name(query), normalise_name(listed))
    assert score.score >= DEFAULT_THRESHOLD
    assert score.comparison == comparison


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ("Huawei Technologies", "Huawei Digital Technologies"),
        ("Sunrise Imports Ltd", "Sunset Imports Ltd"),
        ("深圳市腾讯计算机系统有限公司", "深圳市腾讯网络科技有限公司"),
        ("北京市腾讯计算机系统有限公司", "深圳市腾讯计算机系统有限公司"),
        ("Acme", "Acme Holdings"),
        ("张伟", "章伟"),
    ],
)
def test_different_companies_score_low(query: str, listed: str) -> None:
    assert score_names(normalise_name(query), normalise_name(listed)).score < DEFAULT_THRESHOLD


def test_different_numbers_cap_the_score() -> None:
    score = score_names(normalise_name("Snow Storm 1"), normalise_name("Snow Storm 2"))
    assert score.score == NUMBER_MISMATCH_CAP


def test_scores_are_symmetric_for_spacing_and_width() -> None:
    a, b = normalise_name("ＡＢＣ Ｔｒａｄｉｎｇ"), normalise_name("abc trading limited")
    assert score_names(a, b).score == score_names(b, a).score == 100


def test_variants_share_a_blocking_key() -> None:
    listed = blocking_keys(normalise_name("深圳市腾讯计算机系统有限公司"))
    for variant in (
        "深圳市 腾讯计算机系统 有限公司",
        "腾讯计算机系统有限公司",
        "Shenzhen Tengxun Jisuanji Xitong",
        "深圳腾讯计算机系统",
    ):
        assert blocking_keys(normalise_name(variant)) & listed, variant
    assert blocking_keys(normalise_name("AlphaBeta Trading")) & blocking_keys(
        normalise_name("Alpha Beta Trading")
    )
    assert blocking_keys(normalise_name("Wei Zhang")) & blocking_keys(normalise_name("张伟"))


@pytest.mark.parametrize(
    ("listed", "variant"),
    [
        ("Gazprom", "Gasprom"),  # a letter replaced
        ("Gazprom", "Gazprm"),  # one dropped
        ("Gazprom", "Gazpprom"),  # one added
        ("Gazprom", "Gazpromm JSC"),
        ("Kestrelwood Holdings", "Kestrelwod Holdings"),
        ("Kestrelwood", "Ketsrelwood"),  # two swapped
        ("Газпром", "Gasprom"),  # transliterated, then misspelt
    ],
)
def test_a_one_edit_misspelling_of_a_long_word_shares_a_key(listed: str, variant: str) -> None:
    assert query_keys(normalise_name(variant)) & blocking_keys(normalise_name(listed))


def test_short_words_get_no_deletion_keys_and_only_the_first_long_word_does() -> None:
    assert not any(k.startswith("d") for k in blocking_keys(normalise_name("John Smith")))
    keys = blocking_keys(normalise_name("Kestrelwood Northwind Trading"))
    assert {k for k in keys if k.startswith("d")} == {
        "d" + "kestrelwood"[:i] + "kestrelwood"[i + 1 :] for i in range(11)
    }


@pytest.mark.parametrize(
    ("raw", "text", "romanised"),
    [
        ("Сергей Лавров", "сергеи лавров", "sergei lavrov"),
        ("ООО «Газпром нефть»", "ооо газпром нефть", "gazprom neft"),
        ("Ελληνικά Α.Ε.", "ελληνικα αε", "ellinika ae"),
        ("ПАТ Укрнафта", "пат укрнафта", "ukrnafta"),
        ("Müller GmbH", "muller", None),
    ],
)
def test_other_scripts_are_transliterated_and_normalised_as_latin(
    raw: str, text: str, romanised: str | None
) -> None:
    name = normalise_name(raw)
    assert (name.text, name.romanised) == (text, romanised)


def test_a_cyrillic_name_meets_its_latin_form() -> None:
    latin, cyrillic = normalise_name("Gazprom Neft"), normalise_name("ПАО Газпром нефть")
    assert blocking_keys(latin) & blocking_keys(cyrillic)
    assert score_names(latin, cyrillic) == score_names(cyrillic, latin)
    assert score_names(latin, cyrillic).score == 100
    assert score_names(latin, cyrillic).comparison is N.TRANSLITERATION


def test_two_cyrillic_names_compare_as_written() -> None:
    a, b = normalise_name("Иванов Сергей"), normalise_name("Иванова Сергея")
    assert score_names(a, b).comparison is not N.TRANSLITERATION


def test_key_hash_is_a_signed_64_bit_integer_and_stable() -> None:
    value = key_hash("wacme")
    assert -(2**63) <= value < 2**63
    assert value == key_hash("wacme") != key_hash("wacne")

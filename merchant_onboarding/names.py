"""Name normalisation, blocking keys and scoring for watch-list screening.

Pure functions over strings: nothing here reads the database. ``screening`` stores the
forms and keys computed here and scores the candidates its index returns with
:func:`score_names`. docs/SCREENING.md describes each step.

A name is normalised in this order, each step recorded when it changed something:

1. ``width``: Unicode NFKC, which folds full-width forms (``ＡＢＣ``, ``（``) to their
   ordinary ones and compatibility characters to their canonical ones;
2. ``case``: case folding;
3. ``accents``: combining marks on Latin, Greek and Cyrillic letters are dropped;
4. ``punctuation``: ``&`` becomes ``and``; full stops and apostrophes are deleted
   (``L.X.C.`` is ``lxc``); every other punctuation mark or symbol is a space;
5. ``whitespace``: runs of spaces collapse, and spaces between two Chinese characters go
   (Chinese is written without them);
6. ``suffix``: legal forms are removed: trailing ``Ltd``, ``Co``, ``Inc``, ``LLC``,
   ``GmbH``, ... and leading ``OAO``, ``JSC``, ``The``, ...; for Chinese, trailing
   ``股份有限公司``, ``有限责任公司``, ``有限公司``, ``集团``, ``公司`` and their
   traditional forms. At least one word (two Chinese characters) always remains.

Chinese names also get a romanised form (pinyin, one syllable per character, from
``pypinyin``) and, when they start with a region (``深圳市``, ``广东省深圳市``), a form
without it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from itertools import pairwise

from pypinyin import lazy_pinyin
from rapidfuzz import fuzz


class Normalisation(StrEnum):
    """A normalisation step or comparison that a score depended on."""

    WIDTH = "width"
    CASE = "case"
    ACCENTS = "accents"
    PUNCTUATION = "punctuation"
    WHITESPACE = "whitespace"
    SUFFIX = "suffix"
    REGION_PREFIX = "region-prefix"
    PINYIN = "pinyin"
    WORD_ORDER = "word-order"
    SPACING = "spacing"


# Legal forms removed from the end of a Latin-script name, one word at a time (so that
# "co ltd" and "company limited" go too). Only words that name a legal form, never a
# line of business: "trading" or "holdings" tell companies apart.
LATIN_SUFFIXES = frozenset(
    (
        *("ltd", "limited", "co", "company", "inc", "incorporated", "corp", "corporation"),
        *("llc", "llp", "lp", "plc", "gmbh", "mbh", "ag", "kg", "sa", "sas", "sarl", "srl"),
        *("spa", "bv", "nv", "pte", "pty", "kk", "oy", "oyj", "ab", "asa", "as", "aps"),
        *("jsc", "ojsc", "cjsc", "pjsc", "ooo", "oao", "zao", "pao", "group"),
        *("gongsi", "jituan"),
    )
)
# Legal forms and articles removed from the start of a Latin-script name.
LATIN_PREFIXES = frozenset(("the", "ooo", "oao", "zao", "pao", "ojsc", "cjsc", "pjsc", "jsc", "pt"))
# Multi-word legal forms, removed as a whole from the end.
# Pinyin legal forms ("youxian gongsi", "you xian gong si") count as legal forms too.
LATIN_SUFFIX_PHRASES = tuple(
    tuple(phrase.split())
    for phrase in (
        "sp z oo",
        "s a",
        "b v",
        "n v",
        "l l c",
        "gufen youxian gongsi",
        "youxian zeren gongsi",
        "youxian gongsi",
        "gu fen you xian gong si",
        "you xian ze ren gong si",
        "you xian gong si",
        "gong si",
        "ji tuan",
    )
)

# Longest first, so that 股份有限公司 goes before 有限公司 and 公司.
CHINESE_SUFFIXES = tuple(
    sorted(
        (
            "股份有限公司",
            "有限责任公司",
            "有限責任公司",
            "集团有限公司",
            "集團有限公司",
            "有限公司",
            "集团",
            "集團",
            "公司",
        ),
        key=len,
        reverse=True,
    )
)
_MIN_CHINESE_LEFT = 2

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_SCRIPT_BOUNDARY = re.compile(f"(?<=[{_CJK}])(?=[^{_CJK}\\s])|(?<=[^{_CJK}\\s])(?=[{_CJK}])")
_CJK_SPACE = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")
# A province (or autonomous region) and/or a city, district or county at the start.
_REGION = re.compile(f"^(?:[{_CJK}]{{2,3}}?(?:省|自治区))?(?:[{_CJK}]{{2,3}}?[市区县])?")
_DIGITS = re.compile(r"\d+")
_DELETED = frozenset(".'’‘`´")


@dataclass(frozen=True, slots=True)
class NormalisedName:
    """A name in the forms that screening compares.

    Attributes:
        text: the normalised name, words separated by one space; a run of Chinese
            characters is one word.
        romanised: ``text`` with each Chinese character replaced by its pinyin syllable
            (syllables separated by spaces); ``None`` for a name without Chinese.
        stripped: ``compact`` without a leading region (``深圳市``); ``None`` if none.
        steps: the normalisation steps that changed the name.
    """

    text: str
    romanised: str | None
    stripped: str | None
    steps: frozenset[Normalisation]

    @property
    def compact(self) -> str:
        return self.text.replace(" ", "")

    @property
    def has_chinese(self) -> bool:
        return self.romanised is not None

    @property
    def latin(self) -> str:
        """The form compared with a name in another script: romanised if Chinese."""
        return self.text if self.romanised is None else self.romanised


def normalise_name(raw: str) -> NormalisedName:
    """Normalise a person's or company's name for comparison.

    Returns a name whose ``text`` is empty if nothing but punctuation or spaces was
    given; callers refuse that.
    """
    steps: set[Normalisation] = set()
    text = unicodedata.normalize("NFKC", raw)
    if text != raw:
        steps.add(Normalisation.WIDTH)
    spaced = " ".join(text.split())
    if spaced != text or _CJK_SPACE.search(spaced):
        steps.add(Normalisation.WHITESPACE)
    folded = text.casefold()
    if folded != text:
        steps.add(Normalisation.CASE)
    text = _drop_accents(folded)
    if text != folded:
        steps.add(Normalisation.ACCENTS)
    text, changed = _punctuation(text)
    if changed:
        steps.add(Normalisation.PUNCTUATION)
    text = _SCRIPT_BOUNDARY.sub(" ", text)
    spaced = " ".join(text.split())
    words = _CJK_SPACE.sub("", spaced).split()
    kept = _strip_legal_forms(words)
    if kept != words:
        steps.add(Normalisation.SUFFIX)
    text = " ".join(kept)
    if not _CJK_CHAR.search(text):
        return NormalisedName(text, None, None, frozenset(steps))
    return NormalisedName(text, _romanise(kept), _strip_region(text), frozenset(steps))


def _drop_accents(text: str) -> str:
    out: list[str] = []
    base = ""
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char):
            # Only marks on Latin, Greek and Cyrillic letters: elsewhere (Japanese
            # dakuten, Indic vowel signs) a mark makes a different letter.
            if base and ord(base) < 0x0530:
                continue
        else:
            base = char
        out.append(char)
    return unicodedata.normalize("NFC", "".join(out))


def _punctuation(text: str) -> tuple[str, bool]:
    out: list[str] = []
    changed = False
    for char in text:
        if char == "&":
            out.append(" and ")
            changed = True
        elif char in _DELETED:
            changed = True
        elif unicodedata.category(char)[0] in "PSC" and not char.isspace():
            out.append(" ")
            changed = True
        else:
            out.append(char)
    return "".join(out), changed


def _strip_legal_forms(words: list[str]) -> list[str]:
    kept = list(words)
    while len(kept) > 1:
        for phrase in LATIN_SUFFIX_PHRASES:
            if len(kept) > len(phrase) and tuple(kept[-len(phrase) :]) == phrase:
                del kept[-len(phrase) :]
                break
        else:
            if kept[-1] in LATIN_SUFFIXES:
                kept.pop()
                continue
            if kept[0] in LATIN_PREFIXES:
                kept.pop(0)
                continue
            break
    return [_strip_chinese_suffix(word) for word in kept]


def _strip_chinese_suffix(word: str) -> str:
    if not _CJK_CHAR.match(word):
        return word
    while True:
        suffix = next((s for s in CHINESE_SUFFIXES if word.endswith(s)), None)
        if suffix is None or len(word) - len(suffix) < _MIN_CHINESE_LEFT:
            return word
        word = word[: -len(suffix)]


def _romanise(words: list[str]) -> str:
    return " ".join(" ".join(_syllables(word)) if _CJK_CHAR.match(word) else word for word in words)


@lru_cache(maxsize=65536)
def _syllables(word: str) -> tuple[str, ...]:
    return tuple(s for s in (p.strip() for p in lazy_pinyin(word)) if s)


def _strip_region(text: str) -> str | None:
    compact = text.replace(" ", "")
    region = _REGION.match(compact)
    if region is None or not region.group(0):
        return None
    rest = compact[region.end() :]
    return rest if len(rest) >= _MIN_CHINESE_LEFT else None


# --- blocking keys ------------------------------------------------------------------------


def blocking_keys(name: NormalisedName) -> set[str]:
    """The index keys under which a name is stored and looked up.

    * ``=`` and the compact name, its romanised form and its form without a region:
      every name equal after normalisation shares one of these, however common its words;
    * ``w`` and each word, and each pair of neighbouring words written together (so
      that ``alpha beta`` and ``alphabeta`` meet); for Chinese, each pair of neighbouring
      pinyin syllables written together (``tengxun``), which is how a romanised Chinese
      name is usually split into words, and both orders for a two-character name;
    * ``c`` and each pair of neighbouring Chinese characters (or the one character of a
      one-character word).
    """
    keys = {"=" + name.compact}
    if name.romanised is not None:
        keys.add("=" + name.romanised.replace(" ", ""))
    if name.stripped is not None:
        keys.add("=" + name.stripped)
    words = name.text.split()
    latin = [w for w in words if not _CJK_CHAR.match(w)]
    keys.update("w" + w for w in latin)
    keys.update("w" + a + b for a, b in pairwise(latin))
    for word in words:
        if not _CJK_CHAR.match(word):
            continue
        if len(word) == 1:
            keys.add("c" + word)
        keys.update("c" + word[i : i + 2] for i in range(len(word) - 1))
        syllables = _syllables(word)
        keys.update("w" + a + b for a, b in pairwise(syllables))
        if len(syllables) == 2:
            # A two-character name romanised family name last ("Wei Zhang").
            keys.add("w" + syllables[1] + syllables[0])
    return keys


def key_hash(key: str) -> int:
    """A key as a signed 64-bit integer, the form the index stores.

    A collision only adds a candidate, which scoring then rejects.
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def key_hashes(keys: Iterable[str]) -> set[int]:
    return {key_hash(key) for key in keys}


# --- scoring ------------------------------------------------------------------------------

# A name whose numbers differ from the other's ("Snow Storm 1", "Snow Storm 2") names
# something else, however close the letters.
NUMBER_MISMATCH_CAP = 80.0


@dataclass(frozen=True, slots=True)
class NameScore:
    """How alike two names are, 0 to 100, and what the score depended on."""

    score: float
    comparison: Normalisation | None


def score_names(query: NormalisedName, listed: NormalisedName) -> NameScore:
    """Score two normalised names: the best of the comparisons that apply.

    * the normalised names, character by character (``fuzz.ratio``), and with their
      words sorted (``word-order``), and with all spaces removed (``spacing``);
    * if either starts with a region, without it, and if both do and one region is part
      of the other (``深圳市``, ``广东省深圳市``), both without it (``region-prefix``);
    * if exactly one of them is Chinese, its pinyin against the other (``pinyin``).

    Two Chinese names are compared by their characters, never by pinyin: two different
    characters often share a syllable (张 and 章 are both ``zhang``).
    """
    best = fuzz.ratio(query.text, listed.text)
    comparison: Normalisation | None = None
    for score, kind in _views(query, listed):
        if score > best:
            best, comparison = score, kind
    if _numbers(query.text) != _numbers(listed.text):
        best = min(best, NUMBER_MISMATCH_CAP)
    return NameScore(round(best, 1), comparison)


def _views(query: NormalisedName, listed: NormalisedName) -> list[tuple[float, Normalisation]]:
    views = [
        (fuzz.token_sort_ratio(query.text, listed.text), Normalisation.WORD_ORDER),
        (fuzz.ratio(query.compact, listed.compact), Normalisation.SPACING),
    ]
    if query.stripped is not None:
        views.append((fuzz.ratio(query.stripped, listed.compact), Normalisation.REGION_PREFIX))
    if listed.stripped is not None:
        views.append((fuzz.ratio(query.compact, listed.stripped), Normalisation.REGION_PREFIX))
    if query.stripped is not None and listed.stripped is not None:
        # 深圳市 and 广东省深圳市 are one place written more or less fully; 北京市 and
        # 深圳市 are two places, and two companies.
        q_region = query.compact[: -len(query.stripped)]
        c_region = listed.compact[: -len(listed.stripped)]
        if q_region in c_region or c_region in q_region:
            views.append((fuzz.ratio(query.stripped, listed.stripped), Normalisation.REGION_PREFIX))
    if query.has_chinese != listed.has_chinese:
        q, c = query.latin, listed.latin
        views.append((fuzz.ratio(q.replace(" ", ""), c.replace(" ", "")), Normalisation.PINYIN))
        views.append((fuzz.token_sort_ratio(q, c), Normalisation.PINYIN))
        views.append(
            (fuzz.token_sort_ratio(family_first(q), family_first(c)), Normalisation.PINYIN)
        )
    return views


def family_first(romanised: str) -> str:
    """A romanised name as a Chinese name is usually written in Latin letters: the family
    name's syllable, then the given name's syllables as one word (``huang xiaoming``)."""
    first, _, rest = romanised.partition(" ")
    return f"{first} {rest.replace(' ', '')}" if rest else first


def _numbers(text: str) -> list[str]:
    return _DIGITS.findall(text)

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
without it. Names in other non-Latin scripts (Cyrillic, Greek, Arabic, ...) get a
romanised form too: their letters transliterated by ``anyascii``, then normalised as a
Latin name (``ООО «Газпром нефть»`` is ``gazprom neft``).
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

from anyascii import anyascii
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
    TRANSLITERATION = "transliteration"
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
        *("jsc", "ojsc", "cjsc", "pjsc", "ooo", "oao", "zao", "pao", "ao", "group"),
        *("pat", "prat", "tov"),
        *("gongsi", "jituan"),
    )
)
# Legal forms and articles removed from the start of a Latin-script name.
# Russian and Ukrainian forms (AO, PAT, PrAT, TOV) mostly come from transliteration.
LATIN_PREFIXES = frozenset(
    (
        *("the", "ooo", "oao", "zao", "pao", "ao", "ojsc", "cjsc", "pjsc", "jsc", "pt"),
        *("pat", "prat", "tov"),
    )
)
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
# Letters of a script that is neither Latin nor Chinese: Greek, Cyrillic, Armenian,
# Hebrew, Arabic, the Indic scripts, Thai, Georgian, Hangul, kana, ...
_OTHER_SCRIPT = re.compile(f"[^\\x00-\u024f\u1e00-\u1eff{_CJK}\\W\\d_]")
_DELETED = frozenset(".'’‘`´")


@dataclass(frozen=True, slots=True)
class NormalisedName:
    """A name in the forms that screening compares.

    Attributes:
        text: the normalised name, words separated by one space; a run of Chinese
            characters is one word.
        romanised: ``text`` in Latin letters: each Chinese character replaced by its
            pinyin syllable (syllables separated by spaces), letters of other scripts
            transliterated; ``None`` for a name written in Latin letters only.
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
        return self.romanised is not None and _CJK_CHAR.search(self.text) is not None

    @property
    def script(self) -> str:
        """``latin``, ``chinese`` or ``other``: names of two scripts are compared by their
        romanised forms."""
        if self.romanised is None:
            return "latin"
        return "chinese" if _CJK_CHAR.search(self.text) else "other"

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
    other_script = _OTHER_SCRIPT.search(text) is not None
    if not _CJK_CHAR.search(text):
        romanised = _transliterate(kept) if other_script else None
        return NormalisedName(text, romanised, None, frozenset(steps))
    romanised = _romanise(kept)
    if other_script:
        romanised = _transliterate(romanised.split())
    return NormalisedName(text, romanised, _strip_region(text), frozenset(steps))


def _transliterate(words: list[str]) -> str:
    """Latin letters for the words of other scripts, normalised like a Latin name."""
    latin = " ".join(anyascii(w) if _OTHER_SCRIPT.search(w) else w for w in words)
    text, _ = _punctuation(_drop_accents(latin.casefold()))
    return " ".join(_strip_legal_forms(text.split()))


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


# One-edit misspellings ("gazprom", "gasprom") of a word this long or longer share a
# deletion key; shorter words have too many neighbours to be told apart by one letter.
MIN_DELETION_WORD = 6
MAX_DELETION_WORD = 24
# Deletion keys are stored for this many words of a name at most, the first long ones
# (a company's distinctive word usually comes first): each costs one key per letter, and
# one word already adds about 70% to the index (two: 135%).
DELETION_WORDS = 1


def blocking_keys(name: NormalisedName) -> set[str]:
    """The index keys under which a name is stored.

    * ``=`` and the compact name, its romanised form and its form without a region:
      every name equal after normalisation shares one of these, however common its words;
    * ``w`` and each word, and each pair of neighbouring words written together (so
      that ``alpha beta`` and ``alphabeta`` meet); for Chinese, each pair of neighbouring
      pinyin syllables written together (``tengxun``), which is how a romanised Chinese
      name is usually split into words, and both orders for a two-character name; for
      other non-Latin scripts, the transliterated words too;
    * ``c`` and each pair of neighbouring Chinese characters (or the one character of a
      one-character word);
    * ``d`` and each form of a long Latin (or transliterated) word with one letter
      deleted, for the first ``DELETION_WORDS`` such words: two words one edit apart
      (a letter replaced, added, dropped, or two swapped) share one, and
      :func:`query_keys` adds the word itself.
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
    spelt = _spelt_words(name)
    if name.script == "other":
        keys.update("w" + w for w in spelt)
        keys.update("w" + a + b for a, b in pairwise(spelt))
    long_words = [w for w in spelt if MIN_DELETION_WORD <= len(w) <= MAX_DELETION_WORD]
    for word in long_words[:DELETION_WORDS]:
        keys.update("d" + d for d in _deletions(word))
    return keys


def query_keys(name: NormalisedName) -> set[str]:
    """The keys a screened name is looked up by: its :func:`blocking_keys`, and for each
    long word the word itself under ``d`` (a listed word with one letter more) and its
    deletions under ``w`` (a listed word with one letter less)."""
    keys = blocking_keys(name)
    for word in _spelt_words(name):
        if MIN_DELETION_WORD - 1 <= len(word) <= MAX_DELETION_WORD:
            keys.add("d" + word)
        if MIN_DELETION_WORD <= len(word) <= MAX_DELETION_WORD + 1:
            keys.update("d" + d for d in _deletions(word))
            keys.update("w" + d for d in _deletions(word))
    return keys


def _spelt_words(name: NormalisedName) -> list[str]:
    """The words spelt in Latin letters: a Latin name's, or the transliterated ones."""
    if name.script == "other" and name.romanised is not None:
        return name.romanised.split()
    return [w for w in name.text.split() if not _CJK_CHAR.match(w)]


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


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
    * if exactly one of them is Chinese, its pinyin against the other (``pinyin``); if
      they are in two other scripts (Latin and Cyrillic, say), their transliterations
      (``transliteration``).

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
    if query.script != listed.script:
        q, c = query.latin, listed.latin
        kind = (
            Normalisation.PINYIN
            if "chinese" in (query.script, listed.script)
            else Normalisation.TRANSLITERATION
        )
        views.append((fuzz.ratio(q.replace(" ", ""), c.replace(" ", "")), kind))
        views.append((fuzz.token_sort_ratio(q, c), kind))
        views.append((fuzz.token_sort_ratio(family_first(q), family_first(c)), kind))
    return views


def family_first(romanised: str) -> str:
    """A romanised name as a Chinese name is usually written in Latin letters: the family
    name's syllable, then the given name's syllables as one word (``huang xiaoming``)."""
    first, _, rest = romanised.partition(" ")
    return f"{first} {rest.replace(' ', '')}" if rest else first


def _numbers(text: str) -> list[str]:
    return _DIGITS.findall(text)

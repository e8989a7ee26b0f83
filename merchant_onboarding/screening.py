"""Watch-list screening: import lists, screen a name, return scored hits.

The service API, stable for the onboarding checks (each function takes a ``Session``,
flushes and never commits; the caller owns the transaction):

``import_watchlist(session, name, source, extract_date, rows, *, now=None) -> WatchlistImport``
    Replace the watch list ``name`` with the parties in ``rows`` (a reader from
    :func:`merchant_onboarding.watchlists.open_reader`, or any iterable of
    :class:`~merchant_onboarding.watchlists.ListedParty`), all or nothing: on any bad
    line it raises ``WatchlistImportError`` and the list is as it was.

``screen_name(session, name, *, kind, threshold=DEFAULT_THRESHOLD, watchlists=None,
limit=DEFAULT_LIMIT) -> list[ScreeningHit]``
    Screen one name against every imported list (or those named): the listed entries
    whose best name scores at least ``threshold`` (0 to 100), best first. ``kind`` is
    :class:`PartyKind` ``PERSON`` (a legal representative or beneficial owner, matched
    against listed persons) or ``ENTITY`` (the merchant's legal entity, matched against
    listed companies and organisations); entries of unspecified kind are matched by
    both, and ``UNSPECIFIED`` matches every entry. An empty list means no hit; each hit
    is for an officer to clear. Raises ``NoWatchlistError`` when no list has been
    imported, so that "nothing found" always means "screened".

``list_watchlists(session) -> list[WatchlistInfo]``
    The imported lists with their source and extract date, for a check's evidence.

How a name is matched (docs/SCREENING.md has the detail): both names are normalised
(:mod:`merchant_onboarding.names`); the index (``watchlist_key``) gives the listed
names that share a blocking key with the screened name, taking its rarest keys first
within ``KEY_BUDGET`` postings, plus every listed name equal to it after normalisation;
those candidates are scored with rapidfuzz (:func:`merchant_onboarding.names.score_names`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from merchant_onboarding.errors import (
    NoWatchlistError,
    ScreeningInputError,
    WatchlistImportError,
    WatchlistNotFoundError,
)
from merchant_onboarding.names import (
    NameScore,
    Normalisation,
    NormalisedName,
    blocking_keys,
    family_first,
    key_hash,
    normalise_name,
    query_keys,
    score_names,
)
from merchant_onboarding.screening_models import (
    FREQUENT_KEY,
    Watchlist,
    WatchlistEntry,
    WatchlistKey,
    WatchlistKeyStat,
    WatchlistName,
)
from merchant_onboarding.watchlists import (
    MAX_NAME_LENGTH,
    MAX_REPORTED_ERRORS,
    ListedParty,
    PartyKind,
    WatchlistFormat,
    WatchlistReader,
)
from provenance.imports import LineError

DEFAULT_THRESHOLD = 90.0
MIN_THRESHOLD = 50.0
DEFAULT_LIMIT = 20
# Postings fetched for a name's frequent keys, at most: the rarest keys are taken first.
KEY_BUDGET = 2000
_CHUNK = 1000

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_THRESHOLD",
    "ListedParty",
    "Normalisation",
    "PartyKind",
    "ScreeningHit",
    "WatchlistImport",
    "WatchlistInfo",
    "import_watchlist",
    "list_watchlists",
    "screen_name",
]


@dataclass(frozen=True, slots=True)
class WatchlistInfo:
    """An imported watch list: where it came from and how large it is."""

    name: str
    source: str
    format: WatchlistFormat | None
    extract_date: date
    imported_at: datetime
    entries: int
    names: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "format": self.format.value if self.format else None,
            "extract_date": self.extract_date.isoformat(),
            "imported_at": self.imported_at.isoformat(),
            "entries": self.entries,
            "names": self.names,
        }


@dataclass(frozen=True, slots=True)
class WatchlistImport:
    """The result of an import: the list as it now stands, and how many entries it
    replaced (0 for a new list)."""

    watchlist: WatchlistInfo
    replaced: int


@dataclass(frozen=True, slots=True)
class ScreeningHit:
    """A listed entry whose name is close to the screened name.

    Attributes:
        watchlist, source, extract_date: the list, as imported.
        entry_id: the entry's identifier in that list.
        kind: the entry's kind.
        caption: the entry's name as the list shows it.
        matched_name: the entry's name (or alias) that scored best.
        score: 0 to 100; at least the threshold asked for.
        normalisations: the normalisation steps that changed either name, and the
            comparison that gave the score (``pinyin``, ``word-order``, ``spacing``,
            ``region-prefix``), in the order of :class:`Normalisation`.
        countries: the entry's countries, as listed.
    """

    watchlist: str
    source: str
    extract_date: date
    entry_id: str
    kind: PartyKind
    caption: str
    matched_name: str
    score: float
    normalisations: tuple[Normalisation, ...]
    countries: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready evidence."""
        return {
            "watchlist": self.watchlist,
            "source": self.source,
            "extract_date": self.extract_date.isoformat(),
            "entry_id": self.entry_id,
            "kind": self.kind.value,
            "caption": self.caption,
            "matched_name": self.matched_name,
            "score": self.score,
            "normalisations": [n.value for n in self.normalisations],
            "countries": list(self.countries),
        }


# --- import -------------------------------------------------------------------------------


def _check_list_name(name: str) -> None:
    if not (
        isinstance(name, str)
        and 1 <= len(name) <= 64
        and name[0].isascii()
        and name[0].isalnum()
        and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    ):
        raise ScreeningInputError(
            "a watch list name is 1 to 64 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit",
            field="name",
        )


def _check_metadata(name: str, source: str, extract_date: date, now: datetime) -> str:
    _check_list_name(name)
    if not isinstance(source, str) or not source.strip() or len(source.strip()) > 200:
        raise ScreeningInputError("the source is 1 to 200 characters", field="source")
    if not source.isprintable():
        raise ScreeningInputError("the source has control characters", field="source")
    if isinstance(extract_date, datetime) or not isinstance(extract_date, date):
        raise ScreeningInputError("the extract date must be a date", field="extract_date")
    if extract_date > now.date():
        raise ScreeningInputError("the extract date is in the future", field="extract_date")
    return source.strip()


def import_watchlist(
    session: Session,
    name: str,
    source: str,
    extract_date: date,
    rows: Iterable[ListedParty],
    *,
    now: datetime | None = None,
) -> WatchlistImport:
    """Replace the watch list ``name`` with the parties in ``rows``, all or nothing.

    The list's previous entries, names and index rows are deleted and the new ones
    written inside a savepoint; if any row is bad, the savepoint is rolled back and the
    list stays as it was. Entry ids must be unique within the file; a name that is
    nothing but punctuation is refused.

    Args:
        session: the caller's session; it is flushed, never committed.
        name: the list's name (letters, digits, ``.``, ``_``, ``-``).
        source: where the list came from (publisher, URL or file).
        extract_date: the date of the extract, not after ``now``.
        rows: a reader from ``watchlists.open_reader``, or any iterable of parties.
        now: the import time (default: the current UTC time).

    Returns:
        The list as imported and how many entries it replaced.

    Raises:
        ScreeningInputError: the name, source or date is refused.
        WatchlistImportError: the file has bad lines (every one is named, up to 100),
            or no person or organisation.
    """
    now = now or datetime.now(UTC)
    source = _check_metadata(name, source, extract_date, now)
    format = rows.format if isinstance(rows, WatchlistReader) else None
    with session.begin_nested():
        watchlist = session.scalars(
            select(Watchlist).where(Watchlist.name == name).with_for_update()
        ).one_or_none()
        replaced = 0
        if watchlist is None:
            watchlist = Watchlist(
                name=name,
                source=source,
                format=format,
                extract_date=extract_date,
                imported_at=now,
                entries=0,
                names=0,
            )
            session.add(watchlist)
            session.flush()
        else:
            replaced = watchlist.entries
            _delete_contents(session, watchlist.id)
        entries, names = _write_parties(session, watchlist.id, rows)
        conn = session.connection()
        conn.execute(
            insert(WatchlistKeyStat).from_select(
                ["watchlist_id", "key", "postings"],
                select(WatchlistKey.watchlist_id, WatchlistKey.key, func.count())
                .where(WatchlistKey.watchlist_id == watchlist.id)
                .group_by(WatchlistKey.watchlist_id, WatchlistKey.key)
                .having(func.count() >= FREQUENT_KEY),
            )
        )
        watchlist.source = source
        watchlist.format = format
        watchlist.extract_date = extract_date
        watchlist.imported_at = now
        watchlist.entries = entries
        watchlist.names = names
        session.flush()
    return WatchlistImport(_info(watchlist), replaced)


def _delete_contents(session: Session, watchlist_id: int) -> None:
    conn = session.connection()
    for table in (WatchlistKeyStat, WatchlistKey, WatchlistName, WatchlistEntry):
        conn.execute(delete(table).where(table.watchlist_id == watchlist_id))


def _write_parties(
    session: Session, watchlist_id: int, rows: Iterable[ListedParty]
) -> tuple[int, int]:
    """Write the parties chunk by chunk; raise every bad line once the rows are read."""
    problems: list[LineError] = []
    total_problems = 0
    first_line: dict[str, int] = {}
    entries = names = 0
    chunk: list[tuple[ListedParty, list[NormalisedName]]] = []

    def problem(line: int, field: str | None, message: str) -> None:
        nonlocal total_problems
        total_problems += 1
        if len(problems) < MAX_REPORTED_ERRORS:
            problems.append(LineError(line, field, message))

    def flush() -> None:
        nonlocal entries, names
        if chunk and not total_problems:
            entries += len(chunk)
            names += _insert_chunk(session, watchlist_id, chunk)
        chunk.clear()

    try:
        for party in rows:
            seen = first_line.setdefault(party.entry_id, party.line)
            if seen != party.line:
                problem(party.line, "id", f"duplicate id (first on line {seen})")
                continue
            forms = [normalise_name(n.name) for n in party.names]
            if not forms[0].text:
                problem(party.line, "name", "the name has no letters or digits")
                continue
            chunk.append((party, forms))
            if len(chunk) >= _CHUNK:
                flush()
    except WatchlistImportError as e:
        merged = sorted([*problems, *e.errors], key=lambda p: p.line)
        raise WatchlistImportError(merged[:MAX_REPORTED_ERRORS], total_problems + e.total) from e
    flush()
    if total_problems:
        raise WatchlistImportError(problems, total_problems)
    if not entries:
        raise WatchlistImportError(
            [LineError(1, None, "no person or organisation to screen against")], 1
        )
    return entries, names


def _joined(values: Sequence[str], limit: int) -> str | None:
    text = "; ".join(values)
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _insert_chunk(
    session: Session, watchlist_id: int, chunk: list[tuple[ListedParty, list[NormalisedName]]]
) -> int:
    conn = session.connection()
    entry_ids = conn.execute(
        insert(WatchlistEntry).returning(WatchlistEntry.id, sort_by_parameter_order=True),
        [
            {
                "watchlist_id": watchlist_id,
                "entry_id": party.entry_id,
                "kind": party.kind.value,
                "caption": (party.caption or party.names[0].name)[:MAX_NAME_LENGTH],
                "schema": party.schema,
                "countries": _joined(party.countries, 200),
                "datasets": _joined(party.datasets, 500),
                "note": party.note,
            }
            for party, _ in chunk
        ],
    ).scalars()
    name_rows: list[dict[str, Any]] = []
    name_keys: list[set[int]] = []
    for (party, forms), entry in zip(chunk, entry_ids, strict=True):
        seen: set[str] = set()
        for listed, form in zip(party.names, forms, strict=True):
            if not form.text or form.text in seen:
                continue
            seen.add(form.text)
            name_rows.append(
                {
                    "watchlist_id": watchlist_id,
                    "entry": entry,
                    "kind": party.kind.value,
                    "role": listed.role.value,
                    "name": listed.name,
                    "normalised": form.text,
                    "romanised": form.romanised,
                    "stripped": form.stripped,
                    "steps": ",".join(sorted(form.steps)),
                }
            )
            name_keys.append({key_hash(k) for k in blocking_keys(form)})
    name_ids = conn.execute(
        insert(WatchlistName).returning(WatchlistName.id, sort_by_parameter_order=True),
        name_rows,
    ).scalars()
    _write_keys(
        session,
        [
            (watchlist_id, key, name_id)
            for name_id, keys in zip(name_ids, name_keys, strict=True)
            for key in keys
        ],
    )
    return len(name_rows)


_COPY_KEYS = "COPY watchlist_key (watchlist_id, key, name_id) FROM STDIN"
_INSERT_KEYS = "INSERT INTO watchlist_key (watchlist_id, key, name_id) VALUES (?, ?, ?)"


def _write_keys(session: Session, rows: list[tuple[int, int, int]]) -> None:
    """Write index rows through the driver: ``COPY`` on PostgreSQL, ``executemany`` on
    SQLite. They are most of an import's rows (about 13 a name), and plain integers need
    none of SQLAlchemy's per-parameter processing."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("no driver connection")
    if connection.dialect.name == "postgresql":
        with driver.cursor() as cursor, cursor.copy(_COPY_KEYS) as copy:
            for row in rows:
                copy.write_row(row)
        return
    if connection.dialect.name != "sqlite":
        connection.execute(
            insert(WatchlistKey),
            [{"watchlist_id": w, "key": k, "name_id": n} for w, k, n in rows],
        )
        return
    cursor = driver.cursor()
    try:
        cursor.executemany(_INSERT_KEYS, rows)
    finally:
        cursor.close()


def _info(watchlist: Watchlist) -> WatchlistInfo:
    return WatchlistInfo(
        name=watchlist.name,
        source=watchlist.source,
        format=WatchlistFormat(watchlist.format) if watchlist.format else None,
        extract_date=watchlist.extract_date,
        imported_at=watchlist.imported_at,
        entries=watchlist.entries,
        names=watchlist.names,
    )


def list_watchlists(session: Session) -> list[WatchlistInfo]:
    """Every imported watch list, by name."""
    return [_info(w) for w in session.scalars(select(Watchlist).order_by(Watchlist.name))]


# --- screening ----------------------------------------------------------------------------

_KINDS = {
    PartyKind.PERSON: (PartyKind.PERSON.value, PartyKind.UNSPECIFIED.value),
    PartyKind.ENTITY: (PartyKind.ENTITY.value, PartyKind.UNSPECIFIED.value),
    PartyKind.UNSPECIFIED: tuple(k.value for k in PartyKind),
}


@dataclass(slots=True)
class _Candidate:
    name_id: int
    form: NormalisedName


_NO_STEPS: frozenset[Normalisation] = frozenset()


def screen_name(
    session: Session,
    name: str,
    *,
    kind: PartyKind | str,
    threshold: float = DEFAULT_THRESHOLD,
    watchlists: Sequence[str] | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[ScreeningHit]:
    """Screen one name against the imported watch lists.

    Args:
        session: the caller's session (only read).
        name: the person's or company's name, as the applicant wrote it.
        kind: ``person``, ``entity`` or ``unspecified`` (see the module docstring).
        threshold: the lowest score reported, 50 to 100.
        watchlists: the lists to screen against (default: all).
        limit: the most hits returned, 1 to 1000.

    Returns:
        One hit per listed entry scoring at least ``threshold``, best first.

    Raises:
        ScreeningInputError: the name is empty, too long or nothing but punctuation;
            the kind, threshold or limit is out of range.
        WatchlistNotFoundError: a list in ``watchlists`` has not been imported.
        NoWatchlistError: no list has been imported at all.
    """
    query, kinds = _check_request(name, kind, threshold, limit)
    lists = _lists(session, watchlists)
    candidates = _candidates(session, query, kinds, lists)
    scored = {c.name_id: s for s, c in _score(query, candidates, threshold)}
    if not scored:
        return []
    names = session.scalars(select(WatchlistName).where(WatchlistName.id.in_(list(scored))))
    best: dict[int, tuple[NameScore, WatchlistName]] = {}
    for listed in names:
        score = scored[listed.id]
        held = best.get(listed.entry)
        if held is None or score.score > held[0].score:
            best[listed.entry] = (score, listed)
    entries = {
        e.id: e
        for e in session.scalars(select(WatchlistEntry).where(WatchlistEntry.id.in_(list(best))))
    }
    hits = []
    for entry_id, (score, listed) in best.items():
        entry = entries[entry_id]
        watchlist = lists[listed.watchlist_id]
        steps = set(query.steps) | _steps(listed.steps)
        if score.comparison is not None:
            steps.add(score.comparison)
        hits.append(
            ScreeningHit(
                watchlist=watchlist.name,
                source=watchlist.source,
                extract_date=watchlist.extract_date,
                entry_id=entry.entry_id,
                kind=PartyKind(entry.kind),
                caption=entry.caption,
                matched_name=listed.name,
                score=score.score,
                normalisations=tuple(n for n in Normalisation if n in steps),
                countries=tuple(entry.countries.split("; ")) if entry.countries else (),
            )
        )
    hits.sort(key=lambda h: (-h.score, h.watchlist, h.entry_id))
    return hits[:limit]


def _check_request(
    name: str, kind: PartyKind | str, threshold: float, limit: int
) -> tuple[NormalisedName, tuple[str, ...]]:
    if not isinstance(name, str) or not name.strip():
        raise ScreeningInputError("a name to screen is required", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise ScreeningInputError(
            f"the name is longer than {MAX_NAME_LENGTH} characters", field="name"
        )
    try:
        party_kind = PartyKind(kind)
    except ValueError as e:
        raise ScreeningInputError("the kind is person, entity or unspecified", field="kind") from e
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ScreeningInputError("the threshold must be a number", field="threshold")
    if not MIN_THRESHOLD <= threshold <= 100:
        raise ScreeningInputError(
            f"the threshold is between {MIN_THRESHOLD:g} and 100", field="threshold"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ScreeningInputError("the limit is between 1 and 1000", field="limit")
    query = normalise_name(name)
    if not query.text:
        raise ScreeningInputError("the name has no letters or digits", field="name")
    return query, _KINDS[party_kind]


def _lists(session: Session, names: Sequence[str] | None) -> dict[int, Watchlist]:
    statement = select(Watchlist)
    if names is not None:
        wanted = set(names)
        statement = statement.where(Watchlist.name.in_(wanted))
    lists = {w.id: w for w in session.scalars(statement)}
    if names is not None:
        missing = wanted - {w.name for w in lists.values()}
        if missing:
            raise WatchlistNotFoundError(
                f"no watch list named {', '.join(sorted(missing))} has been imported"
            )
    if not lists:
        raise NoWatchlistError("no watch list has been imported: import one to screen names")
    return lists


def _candidates(
    session: Session, query: NormalisedName, kinds: tuple[str, ...], lists: dict[int, Watchlist]
) -> list[_Candidate]:
    """The listed names that share the query's selective keys, or its normalised form."""
    keys = {key_hash(k): k for k in query_keys(query)}
    frequent: dict[int, dict[int, int]] = defaultdict(dict)
    for watchlist_id, key, postings in session.execute(
        select(WatchlistKeyStat.watchlist_id, WatchlistKeyStat.key, WatchlistKeyStat.postings)
        .where(WatchlistKeyStat.watchlist_id.in_(list(lists)))
        .where(WatchlistKeyStat.key.in_(list(keys)))
    ):
        frequent[watchlist_id][key] = postings
    conditions = []
    for watchlist_id in lists:
        counts = frequent.get(watchlist_id, {})
        chosen = [k for k in keys if k not in counts or keys[k].startswith("=")]
        spent = 0
        for key in sorted((k for k in keys if k not in chosen), key=lambda k: counts[k]):
            if spent + counts[key] > KEY_BUDGET:
                break
            spent += counts[key]
            chosen.append(key)
        conditions.append(
            and_(WatchlistKey.watchlist_id == watchlist_id, WatchlistKey.key.in_(chosen))
        )
    # Core rows, not ORM: a name may have a few thousand candidates. A join from the
    # postings to the names, not "id IN (subquery)": PostgreSQL answers the latter with a
    # hash semi-join over a scan of every listed name (hundreds of milliseconds at a
    # million), the former by probing the names' primary key for each posting.
    rows = (
        session.connection()
        .execute(
            select(
                WatchlistName.id,
                WatchlistName.normalised,
                WatchlistName.romanised,
                WatchlistName.stripped,
            )
            .join(WatchlistKey, WatchlistKey.name_id == WatchlistName.id)
            .where(or_(*conditions))
            .where(WatchlistName.kind.in_(kinds))
            .distinct()
        )
        .all()
    )
    return [
        _Candidate(name_id, NormalisedName(text, romanised, stripped, _NO_STEPS))
        for name_id, text, romanised, stripped in rows
    ]


_STEP_CACHE: dict[str, frozenset[Normalisation]] = {}


def _steps(text: str) -> frozenset[Normalisation]:
    steps = _STEP_CACHE.get(text)
    if steps is None:
        steps = frozenset(Normalisation(s) for s in text.split(",") if s)
        _STEP_CACHE[text] = steps
    return steps


Scorer = Callable[..., float]


def _score(
    query: NormalisedName, candidates: list[_Candidate], threshold: float
) -> list[tuple[NameScore, _Candidate]]:
    """Score every candidate that any comparison could put at or over the threshold.

    The comparisons of :func:`score_names` run first over all candidates at once
    (rapidfuzz's ``process.extract`` with a cutoff, in C++); only the candidates that
    pass one of them are scored in full.
    """
    cutoff = threshold - 0.05
    forms = [c.form for c in candidates]
    passed: set[int] = set()

    def over(text: str, indices: Sequence[int], choices: Sequence[str], scorer: Scorer) -> None:
        for _, _, i in process.extract(
            text, choices, scorer=scorer, score_cutoff=cutoff, limit=None
        ):
            passed.add(indices[i])

    everyone = range(len(forms))
    texts = [f.text for f in forms]
    compacts = [f.compact for f in forms]
    over(query.text, everyone, texts, fuzz.ratio)
    over(query.text, everyone, texts, fuzz.token_sort_ratio)
    over(query.compact, everyone, compacts, fuzz.ratio)
    if query.stripped is not None:
        over(query.stripped, everyone, compacts, fuzz.ratio)
    with_region = [i for i, f in enumerate(forms) if f.stripped is not None]
    regionless = [forms[i].stripped or "" for i in with_region]
    over(query.compact, with_region, regionless, fuzz.ratio)
    if query.stripped is not None:
        over(query.stripped, with_region, regionless, fuzz.ratio)
    other_script = [i for i, f in enumerate(forms) if f.script != query.script]
    if other_script:
        latin = [forms[i].latin for i in other_script]
        over(
            query.latin.replace(" ", ""),
            other_script,
            [t.replace(" ", "") for t in latin],
            fuzz.ratio,
        )
        over(query.latin, other_script, latin, fuzz.token_sort_ratio)
        over(
            family_first(query.latin),
            other_script,
            [family_first(t) for t in latin],
            fuzz.token_sort_ratio,
        )
    scored = []
    for i in passed:
        score = score_names(query, forms[i])
        if score.score >= threshold:
            scored.append((score, candidates[i]))
    return scored

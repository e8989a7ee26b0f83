"""Watch-list screening as an automated check, and the hits officers clear or confirm.

:func:`screening_check` screens the legal entity, the legal representative and each
beneficial owner against the imported watch lists and returns one check result per
screened party (a representative who is also an owner is screened once). Every hit is
kept in ``onboarding_screening_hit`` by :func:`record_hits`; an officer then clears it
(a false positive, with reasons) or confirms it (a true match), a ledger entry projected
into ``onboarding_hit_decision``. The workflow refuses an approval while a hit is open
or after one was confirmed.

A party's result:

* ``fail``: a hit was confirmed, or an open hit scores at least ``fail_from`` (95);
* ``warn``: only open hits below ``fail_from``;
* ``pass``: no hit, or every hit cleared by an officer.

With no watch list imported, one ``warn`` result says that nobody was screened: an empty
answer never passes for a clean one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from merchant_onboarding.checks import CheckContext, CheckName, CheckResult, Result, ScreeningCheck
from merchant_onboarding.errors import HitNotFoundError, NoWatchlistError, ScreeningInputError
from merchant_onboarding.models import Application, HitDecision, Owner, ScreeningHitRecord
from merchant_onboarding.screening import (
    DEFAULT_THRESHOLD,
    PartyKind,
    ScreeningHit,
    WatchlistInfo,
    list_watchlists,
    screen_name,
)

FAIL_FROM = 95.0
"""An open hit scoring this or more fails the check; below it (down to the threshold)
it warns. 100 is a name equal to a listed one after normalisation; 95 leaves room for
one transposed or missing letter in a long name."""


class Role(StrEnum):
    """Why a party is screened."""

    ENTITY = "entity"
    LEGAL_REP = "legal_rep"
    OWNER = "owner"


class HitStatus(StrEnum):
    OPEN = "open"
    CLEARED = "cleared"
    CONFIRMED = "confirmed"


class HitOutcome(StrEnum):
    """An officer's decision on a hit."""

    CLEARED = "cleared"
    CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class ScreenedParty:
    kind: PartyKind
    name: str
    roles: tuple[Role, ...]

    def describe(self) -> str:
        words = {
            Role.ENTITY: "legal entity",
            Role.LEGAL_REP: "legal representative",
            Role.OWNER: "beneficial owner",
        }
        return " and ".join(words[r] for r in self.roles)


def screened_parties(application: Application, owners: Sequence[Owner]) -> list[ScreenedParty]:
    """The entity, the legal representative and each owner; one party per person name."""
    parties = [ScreenedParty(PartyKind.ENTITY, application.legal_name, (Role.ENTITY,))]
    persons: dict[str, list[Role]] = {}
    if application.legal_rep_name and application.legal_rep_name.strip():
        persons.setdefault(application.legal_rep_name.strip(), []).append(Role.LEGAL_REP)
    for owner in sorted(owners, key=lambda o: o.position):
        roles = persons.setdefault(owner.name.strip(), [])
        if Role.OWNER not in roles:
            roles.append(Role.OWNER)
    parties.extend(ScreenedParty(PartyKind.PERSON, n, tuple(r)) for n, r in persons.items())
    return parties


_Identity = tuple[str, str, str, str]


def _identity(party_kind: str, party_name: str, watchlist: str, entry_id: str) -> _Identity:
    return (party_kind, party_name, watchlist, entry_id)


def _decisions(session: Session, application_id: int) -> dict[_Identity, str]:
    rows = session.execute(
        select(
            ScreeningHitRecord.party_kind,
            ScreeningHitRecord.party_name,
            ScreeningHitRecord.watchlist,
            ScreeningHitRecord.entry_id,
            HitDecision.decision,
        )
        .join(HitDecision, HitDecision.hit_id == ScreeningHitRecord.id)
        .where(ScreeningHitRecord.application_id == application_id)
    )
    return {_identity(k, n, w, e): d for k, n, w, e, d in rows}


def _lists_evidence(lists: Sequence[WatchlistInfo]) -> list[dict[str, Any]]:
    return [
        {
            "name": w.name,
            "source": w.source,
            "extract_date": w.extract_date.isoformat(),
            "entries": w.entries,
        }
        for w in lists
    ]


def _source(lists: Sequence[WatchlistInfo]) -> str:
    text = "watch lists: " + "; ".join(
        f"{w.name} ({w.source}, extract {w.extract_date.isoformat()})" for w in lists
    )
    return text if len(text) <= 200 else text[:199] + "…"


def screening_check(
    *,
    threshold: float = DEFAULT_THRESHOLD,
    fail_from: float = FAIL_FROM,
    watchlists: Sequence[str] | None = None,
) -> ScreeningCheck:
    """The screening check the onboarding service runs with the others.

    Args:
        threshold: the lowest score reported as a hit (see docs/SCREENING.md).
        fail_from: an open hit scoring this or more fails; lower ones warn.
        watchlists: the lists to screen against (default: every imported list).
    """

    def check(ctx: CheckContext) -> list[CheckResult]:
        parties = screened_parties(ctx.application, ctx.owners)
        lists = [
            w for w in list_watchlists(ctx.session) if watchlists is None or w.name in watchlists
        ]
        if not lists:
            return [_not_screened(ctx, parties)]
        decisions = _decisions(ctx.session, ctx.application.id)
        results = []
        for party in parties:
            try:
                hits = screen_name(
                    ctx.session,
                    party.name,
                    kind=party.kind,
                    threshold=threshold,
                    watchlists=[w.name for w in lists],
                )
            except NoWatchlistError:
                return [_not_screened(ctx, parties)]
            except ScreeningInputError as e:
                results.append(
                    ctx.result(
                        CheckName.SCREENING,
                        Result.WARN,
                        f"{party.describe()}: not screened: {e.message}",
                        {"screened": False, "party": {"kind": party.kind.value}, "hits": []},
                        _source(lists),
                    )
                )
                continue
            results.append(_party_result(ctx, party, hits, decisions, lists, threshold, fail_from))
        return results

    return check


def _not_screened(ctx: CheckContext, parties: Sequence[ScreenedParty]) -> CheckResult:
    return ctx.result(
        CheckName.SCREENING,
        Result.WARN,
        "not screened: no watch list has been imported",
        {
            "screened": False,
            "parties": [
                {"kind": p.kind.value, "roles": [r.value for r in p.roles]} for p in parties
            ],
            "hits": [],
        },
        "watch lists (none imported)",
    )


def _party_result(
    ctx: CheckContext,
    party: ScreenedParty,
    hits: Sequence[ScreeningHit],
    decisions: dict[_Identity, str],
    lists: Sequence[WatchlistInfo],
    threshold: float,
    fail_from: float,
) -> CheckResult:
    shown = []
    for hit in hits:
        status = decisions.get(
            _identity(party.kind.value, party.name, hit.watchlist, hit.entry_id), HitStatus.OPEN
        )
        shown.append({**hit.to_dict(), "status": str(status)})
    evidence: dict[str, Any] = {
        "screened": True,
        "party": {
            "kind": party.kind.value,
            "roles": [r.value for r in party.roles],
            "name": party.name,
        },
        "threshold": threshold,
        "fail_from": fail_from,
        "watchlists": _lists_evidence(lists),
        "hits": shown,
    }
    source = _source(lists)
    oldest = min(w.extract_date for w in lists)
    who = party.describe()
    confirmed = [h for h in shown if h["status"] == HitStatus.CONFIRMED]
    open_hits = [h for h in shown if h["status"] == HitStatus.OPEN]
    if confirmed:
        result, summary = (
            Result.FAIL,
            f"{who}: confirmed match with {confirmed[0]['caption']} on {confirmed[0]['watchlist']}",
        )
    elif open_hits and open_hits[0]["score"] >= fail_from:
        best = open_hits[0]
        result, summary = (
            Result.FAIL,
            f"{who}: {len(open_hits)} open hit(s), best {best['score']:.0f} "
            f"({best['caption']} on {best['watchlist']})",
        )
    elif open_hits:
        best = open_hits[0]
        result, summary = (
            Result.WARN,
            f"{who}: {len(open_hits)} weak open hit(s), best {best['score']:.0f} "
            f"({best['caption']} on {best['watchlist']})",
        )
    elif shown:
        result, summary = (
            Result.PASS,
            f"{who}: {len(shown)} hit(s), each cleared by an officer as a false positive",
        )
    else:
        result, summary = Result.PASS, f"{who}: no hit on {len(lists)} watch list(s)"
    return CheckResult(
        CheckName.SCREENING, result, summary, evidence, source, ctx.now, extract_date=oldest
    )


def record_hits(
    session: Session,
    application_id: int,
    run: int,
    results: Sequence[CheckResult],
    *,
    now: datetime,
) -> None:
    """Keep every hit of a check run; drop open hits the run no longer finds.

    A hit found again keeps its id and any decision on it; its score and listed names
    are updated. Decided hits are never dropped: the decision is on the ledger. When the
    run screened nobody (no list imported), the hits are left as they were.
    """
    screening = [r for r in results if r.name is CheckName.SCREENING]
    if not any(r.evidence.get("screened") for r in screening):
        return
    existing = {
        _identity(h.party_kind, h.party_name, h.watchlist, h.entry_id): h
        for h in session.scalars(
            select(ScreeningHitRecord).where(ScreeningHitRecord.application_id == application_id)
        )
    }
    for result in screening:
        if not result.evidence.get("screened"):
            continue
        party = result.evidence["party"]
        for hit in result.evidence["hits"]:
            key = _identity(party["kind"], party["name"], hit["watchlist"], hit["entry_id"])
            row = existing.get(key)
            if row is None:
                row = ScreeningHitRecord(
                    application_id=application_id,
                    party_kind=party["kind"],
                    party_name=party["name"],
                    watchlist=hit["watchlist"],
                    entry_id=hit["entry_id"],
                    first_run=run,
                    found_at=now,
                )
                session.add(row)
                existing[key] = row
            row.party_roles = ",".join(party["roles"])
            row.source = hit["source"]
            row.extract_date = date.fromisoformat(hit["extract_date"])
            row.entry_kind = hit["kind"]
            row.caption = hit["caption"]
            row.matched_name = hit["matched_name"]
            row.score = hit["score"]
            row.normalisations = hit["normalisations"]
            row.countries = hit["countries"]
            row.last_run = run
    session.flush()
    decided = select(HitDecision.hit_id).where(HitDecision.application_id == application_id)
    session.execute(
        delete(ScreeningHitRecord)
        .where(
            ScreeningHitRecord.application_id == application_id,
            ScreeningHitRecord.last_run != run,
            ScreeningHitRecord.id.not_in(decided),
        )
        .execution_options(synchronize_session=False)
    )
    session.flush()


@dataclass(frozen=True, slots=True)
class HitView:
    """A stored hit and the decision on it, if any."""

    hit: ScreeningHitRecord
    decision: HitDecision | None

    @property
    def status(self) -> HitStatus:
        return HitStatus.OPEN if self.decision is None else HitStatus(self.decision.decision)


def hits_of(session: Session, application_id: int) -> list[HitView]:
    """The application's hits, best score first, with their decisions."""
    rows = session.execute(
        select(ScreeningHitRecord, HitDecision)
        .outerjoin(HitDecision, HitDecision.hit_id == ScreeningHitRecord.id)
        .where(ScreeningHitRecord.application_id == application_id)
        .order_by(ScreeningHitRecord.score.desc(), ScreeningHitRecord.id)
    )
    return [HitView(hit, decision) for hit, decision in rows]


def get_hit(session: Session, application_id: int, hit_id: int) -> HitView:
    """Raises:
    HitNotFoundError: no such hit on this application.
    """
    hit = session.get(ScreeningHitRecord, hit_id)
    if hit is None or hit.application_id != application_id:
        raise HitNotFoundError(
            f"hit: application {application_id} has no screening hit {hit_id}", field="hit"
        )
    return HitView(hit, session.get(HitDecision, hit_id))

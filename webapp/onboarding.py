"""What the API, the CLI and the tasks share for onboarding: the service, and how an
application is shown (masked; never a clear ID number, bank account or token)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from flask import current_app
from sqlalchemy.orm import Session

from merchant_onboarding.applications import get_application, owners_of
from merchant_onboarding.checks import CheckName
from merchant_onboarding.hits import HitView, hits_of, screening_check
from merchant_onboarding.models import Application, Status
from merchant_onboarding.protect import PersonalData
from merchant_onboarding.registries import OfflineRegistry, Registries
from merchant_onboarding.workflow import (
    Onboarding,
    QueueItem,
    documents,
    history,
    latest_checks,
    questions,
)
from provenance.entries import format_time
from provenance.errors import ConfigError
from webapp.config import Settings, load_personal_data_key
from webapp.runtime import current_runtime


def offline_registries(session: Session) -> Registries:
    registry = OfflineRegistry(session)
    return Registries(enterprise=registry, icp=registry)


def registries_factory(settings: Settings) -> Callable[[Session], Registries]:
    """The registries onboarding checks ask, as ``CARDTRACE_REGISTRIES`` chooses.

    ``offline`` reads the extracts imported with ``cardtrace onboarding registry-import``;
    ``package.module:factory`` names a callable that takes a session and returns
    :class:`~merchant_onboarding.registries.Registries` (a live enterprise or ICP
    service behind the same Protocols).

    Raises:
        ConfigError: the factory cannot be imported or is not callable.
    """
    if settings.registries == "offline":
        return offline_registries
    module_name, _, attribute = settings.registries.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"CARDTRACE_REGISTRIES: cannot import {settings.registries!r} ({type(e).__name__})"
        ) from e
    if not callable(factory):
        raise ConfigError(f"CARDTRACE_REGISTRIES: {settings.registries!r} is not callable")
    return cast(Callable[[Session], Registries], factory)


def onboarding_service() -> Onboarding:
    """The app's onboarding service, built on first use.

    Raises:
        ConfigError: the personal-data key or the platform's secrets are missing.
    """
    service: Onboarding | None = current_app.extensions.get("onboarding")
    if service is None:
        runtime = current_runtime()
        service = Onboarding(
            runtime.ledger,
            PersonalData(load_personal_data_key(runtime.settings)),
            registries_factory(runtime.settings),
            screening=screening_check(),
        )
        current_app.extensions["onboarding"] = service
    return service


def _time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment else None


def status_json(status: Status, now: datetime) -> dict[str, Any]:
    return {
        "state": status.state,
        "since": _time(status.since),
        "waiting_seconds": int((now - status.since).total_seconds()),
        "state_seq": status.state_seq,
        "submitted_at": _time(status.submitted_at),
        "renewal": status.renewal,
        "recommendation": status.recommendation,
        "recommended_by": status.recommended_by,
        "decided_by": status.decided_by,
        "approved_at": _time(status.approved_at),
        "expires_at": _time(status.expires_at),
        "next_review_at": _time(status.next_review_at),
    }


def application_json(
    session: Session,
    service: Onboarding,
    application_id: int,
    now: datetime,
    *,
    officer_view: bool = True,
) -> dict[str, Any]:
    """The application as an officer sees it; with ``officer_view=False`` (its applicant),
    without the screening results, the hits or the risk score: telling an applicant that
    they match a watch list would tip them off."""
    application: Application = get_application(session, application_id)
    status = service.status(session, application_id)
    document: dict[str, Any] = {
        "id": application.id,
        "merchant": application.merchant,
        "status": status_json(status, now),
        "entity": {
            "legal_name": application.legal_name,
            "credit_code": application.credit_code,
            "legal_rep_name": application.legal_rep_name,
            "legal_rep_id_number": application.legal_rep_id_masked,
            "registered_address": application.registered_address,
        },
        "shop": {
            "domain": application.domain,
            "icp_number": application.icp_number,
            "user_agreement_url": application.user_agreement_url,
            "privacy_policy_url": application.privacy_policy_url,
        },
        "payments": {
            "payment_licence": application.payment_licence,
            "clearing_institution": application.clearing_institution,
            "fund_custody": application.fund_custody,
            "bank_name": application.bank_name,
            "bank_account": application.bank_account_masked,
        },
        "owners": [
            {"name": o.name, "share": f"{o.share_bp / 100:.2f}", "id_number": o.id_masked}
            for o in owners_of(session, application.id)
        ],
        "documents": [
            {
                "id": d.id,
                "kind": d.kind,
                "sha256": d.sha256.hex(),
                "size": d.size,
                "media_type": d.media_type,
                "filename": d.filename,
                "uploaded_at": _time(d.uploaded_at),
            }
            for d in documents(session, application.id)
        ],
        "checks": [
            {
                "name": c.name,
                "result": c.result,
                "summary": c.summary,
                "evidence": c.evidence,
                "source": c.source,
                "extract_date": c.extract_date.isoformat() if c.extract_date else None,
                "checked_at": _time(c.checked_at),
                "run": c.run,
            }
            for c in latest_checks(session, application)
        ],
        "screening_hits": [hit_json(h) for h in hits_of(session, application.id)],
        "risk": None
        if application.risk_score is None
        else {
            "score": application.risk_score,
            "level": application.risk_level,
            "contributions": application.risk,
        },
        "questions": [
            {
                "id": q.id,
                "asked_by": q.asked_by,
                "asked_at": _time(q.asked_at),
                "question": q.text,
                "answer": q.answer,
                "answered_at": _time(q.answered_at),
            }
            for q in questions(session, application.id)
        ],
        "history": [
            {
                "seq": h.seq,
                "action": h.action,
                "from": h.from_state,
                "to": h.to_state,
                "by": h.by,
                "at": _time(h.at),
                "reasons": h.reasons,
            }
            for h in history(session, application.id)
        ],
    }
    if not officer_view:
        document["checks"] = [c for c in document["checks"] if c["name"] != CheckName.SCREENING]
        document["screening_hits"] = []
        document["risk"] = None
    return document


def hit_json(view: HitView) -> dict[str, Any]:
    hit, decision = view.hit, view.decision
    return {
        "id": hit.id,
        "status": view.status.value,
        "party": {
            "kind": hit.party_kind,
            "roles": hit.party_roles.split(","),
            "name": hit.party_name,
        },
        "watchlist": hit.watchlist,
        "source": hit.source,
        "extract_date": hit.extract_date.isoformat(),
        "entry_id": hit.entry_id,
        "entry_kind": hit.entry_kind,
        "caption": hit.caption,
        "matched_name": hit.matched_name,
        "score": hit.score,
        "normalisations": hit.normalisations,
        "countries": hit.countries,
        "first_run": hit.first_run,
        "last_run": hit.last_run,
        "found_at": _time(hit.found_at),
        "decision": None
        if decision is None
        else {
            "decision": decision.decision,
            "by": decision.by,
            "at": _time(decision.at),
            "seq": decision.seq,
            "reasons": decision.reasons,
        },
    }


def queue_json(item: QueueItem) -> dict[str, Any]:
    return {
        "id": item.application_id,
        "merchant": item.merchant,
        "legal_name": item.legal_name,
        "state": item.state.value,
        "since": _time(item.since),
        "waiting_seconds": int(item.waiting.total_seconds()),
        "submitted_at": _time(item.submitted_at),
        "risk_score": item.risk_score,
        "risk_level": item.risk_level,
        "recommendation": item.recommendation,
        "recommended_by": item.recommended_by,
        "review_due": item.review_due,
        "expires_at": _time(item.expires_at),
    }

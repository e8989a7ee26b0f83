"""``cardtrace onboarding``: registry extracts, the queue and the workflow. Thin.

Workflow steps act as the staff account named by ``--as USERNAME`` (or ``CARDTRACE_AS``),
with that account's current role (reviewer recommends, approver decides); the service
keeps four eyes between two different accounts, as in the API. Accounts are made with
``cardtrace accounts create``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
from flask import Flask

from webapp.cli_acting import acting_account
from webapp.officer_auth import cli_actor


def _app() -> Flask:
    from webapp import create_app

    return create_app()


@click.group("onboarding")
def onboarding() -> None:
    """Merchant onboarding: registry extracts, queue, decisions (docs/ONBOARDING.md)."""


# --- registries ---------------------------------------------------------------------------


@onboarding.command("registry-import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--kind", type=click.Choice(["enterprise", "icp"]), required=True)
@click.option("--format", "file_format", type=click.Choice(["csv", "json"]), default=None)
@click.option("--source", default=None, help="Where the extract came from (CSV: required).")
@click.option(
    "--date",
    "extract_date",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="The extract's date (CSV: required).",
)
def registry_import(
    file: str,
    kind: str,
    file_format: str | None,
    source: str | None,
    extract_date: datetime | None,
) -> None:
    """Replace the enterprise or ICP registry extract, all or nothing."""
    from pathlib import Path

    from merchant_onboarding.registries import RegistryKind, import_extract
    from provenance.db import write_transaction
    from webapp.runtime import current_runtime, db_session

    fmt = file_format or ("json" if file.lower().endswith(".json") else "csv")
    raw = Path(file).read_bytes()
    with _app().app_context():
        session = db_session()
        with write_transaction(session):
            report = import_extract(
                session,
                RegistryKind(kind),
                raw,
                fmt=fmt,
                source=source,
                extract_date=extract_date.date() if extract_date else None,
                now=current_runtime().now(),
            )
    click.echo(
        f"{report.kind.value} registry: {report.records} records from {report.source}, "
        f"extract of {report.extract_date.isoformat()}"
    )


# --- reading ----------------------------------------------------------------------------


@onboarding.command("queue")
@click.option("--json", "as_json", is_flag=True)
def queue(as_json: bool) -> None:
    """Applications waiting for an officer, oldest first, with their age."""
    from webapp.onboarding import onboarding_service, queue_json
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        items = onboarding_service().queue(db_session(), now=current_runtime().now())
        rows = [queue_json(i) for i in items]
    if as_json:
        click.echo(json.dumps({"applications": rows}, indent=2, ensure_ascii=False))
        return
    for row in rows:
        hours = row["waiting_seconds"] / 3600
        risk = ""
        if row["risk_score"] is not None:
            risk = f"risk {row['risk_score']} {row['risk_level']}"
        click.echo(
            f"#{row['id']:<5} {row['state']:18} {hours:7.1f} h  {row['merchant']:20} "
            f"{row['legal_name']}  {risk}".rstrip()
        )
    if not rows:
        click.echo("the queue is empty")


@onboarding.command("show")
@click.argument("application_id", type=int)
def show(application_id: int) -> None:
    """An application as JSON (ID numbers and bank account masked)."""
    from webapp.onboarding import application_json, onboarding_service
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        document = application_json(
            db_session(), onboarding_service(), application_id, current_runtime().now()
        )
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@onboarding.command("hits")
@click.argument("application_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def hits(application_id: int, as_json: bool) -> None:
    """An application's watch-list hits: open, cleared or confirmed."""
    from merchant_onboarding.applications import get_application
    from merchant_onboarding.hits import hits_of
    from webapp.onboarding import hit_json
    from webapp.runtime import db_session

    with _app().app_context():
        session = db_session()
        get_application(session, application_id)
        rows = [hit_json(h) for h in hits_of(session, application_id)]
    if as_json:
        click.echo(json.dumps({"hits": rows}, indent=2, ensure_ascii=False))
        return
    for row in rows:
        decided = f" by {row['decision']['by']}" if row["decision"] else ""
        click.echo(
            f"hit {row['id']:<5} {row['status']}{decided:16} {row['score']:5.1f}  "
            f"{'+'.join(row['party']['roles'])}: {row['party']['name']} ~ {row['caption']} "
            f"({row['watchlist']} {row['entry_id']}, extract {row['extract_date']}; "
            f"{', '.join(row['normalisations']) or 'as written'})"
        )
    if not rows:
        click.echo(f"application {application_id} has no screening hits")


@onboarding.command("schedule")
def schedule() -> None:
    """Suspend expired approvals and start due re-reviews now (what beat runs daily)."""
    from provenance.db import write_transaction
    from webapp.onboarding import onboarding_service
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        session = db_session()
        with write_transaction(session):
            report = onboarding_service().run_schedule(session, now=current_runtime().now())
    click.echo(
        f"re-reviews started: {report.reviews_started or 'none'}; "
        f"suspended on expiry: {report.suspended_expired or 'none'}"
    )


# --- workflow steps, as the account named by --as -----------------------------------------


def _as_officer(
    application_id: int,
    step: Callable[..., Any],
    *args: Any,
    report: Callable[[Any], str] | None = None,
) -> None:
    from provenance.db import write_transaction
    from webapp.onboarding import onboarding_service
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        session = db_session()
        service = onboarding_service()
        with write_transaction(session):
            actor = cli_actor(session, "onboarding_api", "do this")
            result = step(
                service, session, application_id, *args, actor=actor, now=current_runtime().now()
            )
            line = (
                report(result)
                if report
                else f"application {application_id}: {result.state} (by {actor.id})"
            )
        click.echo(line)


_REASON = click.option(
    "--reason", "reasons", multiple=True, required=True, help="Why (repeatable)."
)


@onboarding.command("review")
@acting_account
@click.argument("application_id", type=int)
def review(application_id: int) -> None:
    """Start reviewing a submitted application (or re-review an approved one)."""
    _as_officer(application_id, lambda svc, *a, **k: svc.start_review(*a, **k))


@onboarding.command("ask")
@acting_account
@click.argument("application_id", type=int)
@click.option("--question", "questions", multiple=True, required=True)
def ask(application_id: int, questions: tuple[str, ...]) -> None:
    """Ask the applicant for information."""
    _as_officer(
        application_id, lambda svc, *a, **k: svc.request_information(*a, **k), list(questions)
    )


@onboarding.command("recommend")
@acting_account
@click.argument("application_id", type=int)
@click.argument("recommendation", type=click.Choice(["approve", "reject", "reinstate"]))
@_REASON
def recommend(application_id: int, recommendation: str, reasons: tuple[str, ...]) -> None:
    """Recommend a decision (reviewer); a different officer decides."""
    from merchant_onboarding.workflow import Recommendation

    _as_officer(
        application_id,
        lambda svc, *a, **k: svc.recommend(*a, **k),
        Recommendation(recommendation),
        list(reasons),
    )


@onboarding.command("decide")
@acting_account
@click.argument("application_id", type=int)
@click.argument("decision", type=click.Choice(["approve", "reject"]))
@_REASON
def decide(application_id: int, decision: str, reasons: tuple[str, ...]) -> None:
    """Approve or reject (approver), after another officer's recommendation."""
    _as_officer(application_id, lambda svc, *a, **k: getattr(svc, decision)(*a, **k), list(reasons))


@onboarding.command("hit")
@acting_account
@click.argument("application_id", type=int)
@click.argument("hit_id", type=int)
@click.argument("decision", type=click.Choice(["clear", "confirm"]))
@_REASON
def hit(application_id: int, hit_id: int, decision: str, reasons: tuple[str, ...]) -> None:
    """Clear a screening hit as a false positive, or confirm it as a true match (reviewer).

    Whoever clears a hit may not approve the application; a confirmed hit refuses approval.
    """
    from merchant_onboarding.hits import HitOutcome

    outcome = HitOutcome.CLEARED if decision == "clear" else HitOutcome.CONFIRMED
    _as_officer(
        application_id,
        lambda svc, *a, **k: svc.decide_hit(*a, **k),
        hit_id,
        outcome,
        list(reasons),
        report=lambda d: f"application {application_id}: hit {hit_id} {d.decision} by {d.by}",
    )


def _simple(name: str, help_text: str) -> None:
    @onboarding.command(name, help=help_text)
    @acting_account
    @click.argument("application_id", type=int)
    @_REASON
    def command(application_id: int, reasons: tuple[str, ...]) -> None:
        _as_officer(application_id, lambda svc, *a, **k: getattr(svc, name)(*a, **k), list(reasons))


_simple("suspend", "Suspend a merchant at once (any officer).")
_simple("reinstate", "Reinstate a suspended merchant (approver, after another's recommendation).")
_simple("terminate", "Terminate a merchant (approver).")

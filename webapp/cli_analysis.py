"""``cardtrace analyze`` (a transfer list, or the ledger) and ``cardtrace alerts``. Thin.

Alert decisions act as the staff account named by ``--as USERNAME`` (or ``CARDTRACE_AS``),
an analyst, as the alerts API would let that account act.
"""

from __future__ import annotations

import json
from typing import Any

import click
from flask import Flask

from webapp.cli_acting import acting_account


def _app() -> Flask:
    from webapp import create_app

    return create_app()


@click.group("analyze", invoke_without_command=True)
@click.option(
    "--edges",
    "edges",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV with a header naming source, target, amount, timestamp (ISO 8601).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Directory for flagged_accounts.csv, flagged_transfers.csv and summary.json.",
)
@click.option(
    "--seeds",
    type=click.Path(exists=True, dir_okay=False),
    help="Known-bad accounts, one per line, to propagate risk from.",
)
@click.pass_context
def analyze(ctx: click.Context, edges: str | None, out_dir: str | None, seeds: str | None) -> None:
    """Find laundering patterns in a transfer list (--edges FILE --out DIR), or in the
    ledger ('analyze ledger'); see docs/ANALYSIS.md.

    Nothing is written unless the whole file reads cleanly; a bad row is reported with
    its line number.
    """
    if ctx.invoked_subcommand is not None:
        return
    if edges is None or out_dir is None:
        raise click.UsageError("give --edges FILE and --out DIR, or a subcommand (ledger)")
    from provenance.analysis import analyze_transfers, read_transfers, write_report

    with open(edges, encoding="utf-8-sig", newline="") as f:
        table = read_transfers(f)
    known: list[str] = []
    if seeds:
        with open(seeds, encoding="utf-8") as f:
            known = [line.strip() for line in f if line.strip()]
    report = analyze_transfers(table, seeds=known)
    written = write_report(report, out_dir)
    accounts = {a for a, _ in report.flagged_accounts()}
    rows = {r for r, _ in report.flagged_transfers()}
    click.echo(
        f"{len(table):,} transfers, {table.n_accounts:,} accounts: {len(report.findings):,} "
        f"findings, {len(accounts):,} accounts and {len(rows):,} transfers flagged -> {written}"
    )


@analyze.command("ledger")
def analyze_ledger() -> None:
    """Analyse the ledger entries appended since the last run and record alerts."""
    from webapp.tasks import analyze_ledger as task

    with _app().app_context():
        result = task.apply().get()
    click.echo(
        f"{result['entries_read']:,} new entries read (up to seq {result['last_seq']:,}): "
        f"{result['findings']:,} findings, {result['opened']:,} alerts opened, "
        f"{result['refreshed']:,} refreshed"
    )
    for proposal in result["proposals"]:
        click.echo(
            f"  alert {proposal['alert']}: merchant {proposal['merchant']}: {proposal['outcome']}"
        )


@click.group("alerts")
def alerts() -> None:
    """The analysis's alerts: list, show, triage, dismiss, escalate."""


@alerts.command("list")
@click.option("--status", help="new, triaged, dismissed or escalated.")
@click.option("--typology", help="e.g. stolen-payment-taint.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def alerts_list(status: str | None, typology: str | None, limit: int, as_json: bool) -> None:
    """Alerts, strongest first."""
    from provenance.analysis.alerts import alert_json, list_alerts
    from webapp.runtime import db_session

    with _app().app_context():
        found = list_alerts(db_session(), status=status, typology=typology, limit=limit)
        shown = [alert_json(a, evidence=False) for a in found]
    if as_json:
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    for a in shown:
        click.echo(
            f"{a['id']:>6} {a['status']:9} {a['severity']:6} {a['score']:.2f} "
            f"{a['typology']:26} {a['subject_kind']}:{a['subject'][:16]}  {a['reason']}"
        )


@alerts.command("show")
@click.argument("alert_id", type=int)
def alerts_show(alert_id: int) -> None:
    """One alert with its evidence subgraph (node-link JSON) and notes."""
    from provenance.analysis.alerts import alert_json, get_alert, notes_of
    from webapp.runtime import db_session

    with _app().app_context():
        session = db_session()
        alert = get_alert(session, alert_id)
        shown = alert_json(alert, notes_of(session, alert))
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))


def _decide(alert_id: int, status: str, assignee: str | None, note: str | None) -> None:
    from provenance.analysis.alerts import decide
    from provenance.db import write_transaction
    from webapp.officer_auth import cli_actor
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        session, runtime = db_session(), current_runtime()
        actor = cli_actor(session, "analysis_api", "work alerts")
        with write_transaction(session):
            alert: Any = decide(
                session,
                runtime.ledger,
                alert_id,
                status,
                officer=actor.id,
                assignee=assignee,
                note=note,
                now=runtime.now(),
            )
            seq = alert.last_seq
    click.echo(f"alert {alert_id} {status} by {actor.id} (ledger entry {seq})")


def _decision(name: str, status: str, help_text: str) -> None:
    @alerts.command(name, help=help_text)
    @acting_account
    @click.argument("alert_id", type=int)
    @click.option("--assignee", help="The officer id who works it.")
    @click.option("--note", help="Why (kept with the alert; the ledger keeps its SHA-256).")
    def command(alert_id: int, assignee: str | None, note: str | None) -> None:
        _decide(alert_id, status, assignee, note)


_decision("triage", "triaged", "Take an alert for investigation (optionally assigning it).")
_decision("dismiss", "dismissed", "Dismiss an alert as a false positive, with a note.")
_decision("escalate", "escalated", "Escalate an alert to a case.")

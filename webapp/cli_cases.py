"""``cardtrace cases``: open and work investigators' cases. Thin.

Actions are taken as the staff account named by ``--as USERNAME`` (or ``CARDTRACE_AS``),
an analyst, as the cases API would let that account act.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask

from webapp.cli_acting import acting_account


def _app() -> Flask:
    from webapp import create_app

    return create_app()


def _act(action: Callable[[Any, Any, str, Any], Any]) -> dict[str, Any]:
    """Run one case action as the account named by ``--as``, in one transaction; the case
    shown."""
    from provenance.cases import case_json
    from provenance.db import write_transaction
    from webapp.officer_auth import cli_actor
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        session, runtime = db_session(), current_runtime()
        actor = cli_actor(session, "cases_api", "work cases")
        with write_transaction(session):
            case = action(session, runtime, actor.id, runtime.now())
            return case_json(case)


def _summary(case: dict[str, Any]) -> str:
    outcome = f" ({case['outcome']})" if case["outcome"] else ""
    members = case["members"] if isinstance(case["members"], int) else len(case["members"])
    return (
        f"{case['reference']:>10} {case['status']}{outcome}  {members} members  "
        f"assignee {case['assignee'] or '-'}  {case['title'] or ''}"
    )


@click.group("cases")
def cases() -> None:
    """Investigators' cases: new, add, assign, status, note, attach, show, list."""


@cases.command("new")
@acting_account
@click.argument("title")
def cases_new(title: str) -> None:
    """Open a case; prints its number (the seq of its ledger entry)."""
    from provenance.cases import open_case

    case = _act(
        lambda s, rt, officer, now: open_case(s, rt.ledger, title=title, officer=officer, now=now)
    )
    click.echo(f"opened case {case['id']} ({case['reference']}) by {case['opened_by']}")
    click.echo(case["id"])


@cases.command("add")
@acting_account
@click.argument("case_id", type=int)
@click.option("--alert", "alerts", multiple=True, help="An alert's id or key.")
@click.option("--merchant", "merchants", multiple=True, help="A party id.")
@click.option("--buyer", "buyers", multiple=True, help="A buyer pseudonym (32 hex).")
@click.option("--instrument", "instruments", multiple=True, help="An instrument pseudonym.")
@click.option("--code", "codes", multiple=True, help="A code fingerprint (hex or base64).")
def cases_add(
    case_id: int,
    alerts: tuple[str, ...],
    merchants: tuple[str, ...],
    buyers: tuple[str, ...],
    instruments: tuple[str, ...],
    codes: tuple[str, ...],
) -> None:
    """Add members to a case, in one ledger entry (pseudonyms and fingerprints only)."""
    from provenance.analysis.alerts import get_alert
    from provenance.cases import add_members

    def act(session: Any, rt: Any, officer: str, now: Any) -> Any:
        keys = [get_alert(session, int(a)).key if a.isdigit() else a for a in alerts]
        members = [("alert", k) for k in keys]
        members += [("merchant", m) for m in merchants]
        members += [("buyer", b) for b in buyers]
        members += [("instrument", i) for i in instruments]
        members += [("code", c) for c in codes]
        return add_members(session, rt.ledger, case_id, members, officer=officer, now=now)

    case = _act(act)
    click.echo(f"case {case_id}: {len(case['members'])} members")


@cases.command("assign")
@acting_account
@click.argument("case_id", type=int)
@click.argument("assignee")
def cases_assign(case_id: int, assignee: str) -> None:
    """Give a case to an investigator."""
    from provenance.cases import assign_case

    _act(
        lambda s, rt, officer, now: assign_case(
            s, rt.ledger, case_id, assignee, officer=officer, now=now
        )
    )
    click.echo(f"case {case_id} assigned to {assignee}")


@cases.command("status")
@acting_account
@click.argument("case_id", type=int)
@click.argument("status", type=click.Choice(["under_investigation", "reported", "closed"]))
@click.option(
    "--outcome",
    type=click.Choice(
        ["fraud_confirmed", "referred_to_police", "no_fraud", "insufficient_evidence", "duplicate"]
    ),
    help="Required when closing.",
)
def cases_status(case_id: int, status: str, outcome: str | None) -> None:
    """Move a case on: open -> under_investigation -> reported -> closed."""
    from provenance.cases import change_status

    case = _act(
        lambda s, rt, officer, now: change_status(
            s, rt.ledger, case_id, status, officer=officer, now=now, outcome=outcome
        )
    )
    click.echo(_summary(case))


@cases.command("note")
@acting_account
@click.argument("case_id", type=int)
@click.argument("text")
def cases_note(case_id: int, text: str) -> None:
    """Note something (the ledger keeps its SHA-256, the case its text)."""
    from provenance.cases import add_note

    case = _act(
        lambda s, rt, officer, now: add_note(s, rt.ledger, case_id, text, officer=officer, now=now)
    )
    click.echo(f"case {case_id}: note recorded in ledger entry {case['notes'][-1]['seq']}")


@cases.command("attach")
@acting_account
@click.argument("case_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def cases_attach(case_id: int, file: Path) -> None:
    """Attach a file, kept by its SHA-256 (size limit 20 MiB)."""
    from provenance.cases import AttachmentStore, attach_file
    from provenance.cases.entries import MAX_ATTACHMENT_BYTES

    with open(file, "rb") as f:
        content = f.read(MAX_ATTACHMENT_BYTES + 1)

    def act(session: Any, rt: Any, officer: str, now: Any) -> Any:
        store = AttachmentStore(Path(rt.settings.instance_path) / "attachments")
        return attach_file(
            session, rt.ledger, store, case_id, file.name, content, officer=officer, now=now
        )

    case = _act(act)
    attached = case["attachments"][-1]
    click.echo(f"case {case_id}: attached {attached['name']} (sha256 {attached['sha256']})")


@cases.command("show")
@click.argument("case_id", type=int)
def cases_show(case_id: int) -> None:
    """One case as JSON: members, timeline, notes, attachments, ledger entries."""
    from provenance.cases import case_json, get_case
    from webapp.runtime import db_session

    with _app().app_context():
        shown = case_json(get_case(db_session(), case_id))
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))


@cases.command("list")
@click.option("--status", help="open, under_investigation, reported or closed.")
@click.option("--assignee")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def cases_list(status: str | None, assignee: str | None, limit: int, as_json: bool) -> None:
    """Cases, most recently changed first."""
    from provenance.cases import case_json, list_cases
    from webapp.runtime import db_session

    with _app().app_context():
        shown = [
            case_json(c, full=False)
            for c in list_cases(db_session(), status=status, assignee=assignee, limit=limit)
        ]
    if as_json:
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    for case in shown:
        click.echo(_summary(case))

"""The demo's last act: a case built from the injected frauds, and its evidence package.

The case holds the alerts the demo's ledger analysis opened for the frauds the supply
chain injected, with the merchants, buyers and payment instruments they are about; it
is worked like an investigator would (assigned, noted, reported) and exported as an
evidence package, which is then verified offline as a police investigator would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from provenance.analysis.alerts import alert_key
from provenance.analysis.models import Alert
from provenance.cases import (
    CaseError,
    CaseInputError,
    add_members,
    add_note,
    assign_case,
    change_status,
    get_case,
    normalise_member,
    open_case,
)
from provenance.cases.models import CaseFile
from provenance.db import write_transaction
from provenance.evidence import verify_package
from provenance.parties import Party
from webapp.cli_evidence import export_evidence
from webapp.runtime import current_runtime, db_session

INVESTIGATOR = "demo.investigator"
ANALYST = "demo.analyst"
CASE_FILE = "demo-case.json"
PACKAGE_DIR = "demo-evidence"
TITLE = "Injected frauds of the demo supply chain / 演示供应链中注入的欺诈"


def _members(alerts: list[Alert], known_parties: set[str]) -> list[tuple[str, str]]:
    """The alerts, and the subjects they are about that a case can hold."""
    members = [("alert", a.key) for a in alerts]
    for alert in alerts:
        kind = {"party": "merchant"}.get(alert.subject_kind, alert.subject_kind)
        if kind == "merchant" and alert.subject not in known_parties:
            continue
        try:
            member = normalise_member(kind, alert.subject)
        except CaseInputError:
            continue  # a serial's short form, a device: shown in the alert's evidence
        pair = (member[0].value, member[1])
        if pair not in members:
            members.append(pair)
    return members


def _build_case(say: Callable[[str], None]) -> int | None:
    runtime, session = current_runtime(), db_session()
    path = runtime.settings.instance_path / CASE_FILE
    if path.exists():
        number = int(json.loads(path.read_text())["case"])
        if session.get(CaseFile, number) is not None:
            say(f"  case {number} was built by an earlier run")
            return number
    cases_path = runtime.settings.instance_path / "demo-analysis-cases.json"
    expected = json.loads(cases_path.read_text()) if cases_path.exists() else []
    keys = [alert_key(t, kind, subject) for t, kind, subject in expected]
    alerts = list(session.scalars(select(Alert).where(Alert.key.in_(keys)))) if keys else []
    if not alerts:
        say("  no alert for the injected frauds: run the analysis first (cardtrace analyze ledger)")
        return None
    alerts.sort(key=lambda a: (-a.score, a.id))
    parties = set(session.scalars(select(Party.id)))
    ledger, now = runtime.ledger, runtime.now()
    with write_transaction(session):
        case = open_case(session, ledger, title=TITLE, officer=INVESTIGATOR, now=now)
        members = _members(alerts, parties)
        for start in range(0, len(members), 100):
            add_members(
                session,
                ledger,
                case.id,
                members[start : start + 100],
                officer=INVESTIGATOR,
                now=now,
            )
        assign_case(session, ledger, case.id, ANALYST, officer=INVESTIGATOR, now=now)
        change_status(session, ledger, case.id, "under_investigation", officer=ANALYST, now=now)
        add_note(
            session,
            ledger,
            case.id,
            f"{len(alerts)} alerts of the analysis grouped for referral; "
            "each finding's evidence subgraph is in the report.",
            officer=ANALYST,
            now=now,
        )
        change_status(session, ledger, case.id, "reported", officer=ANALYST, now=now)
    path.write_text(json.dumps({"case": case.id}))
    shown = get_case(session, case.id)
    kinds: dict[str, int] = {}
    for member in shown.members:
        kinds[member.kind.value] = kinds.get(member.kind.value, 0) + 1
    say(
        f"  case {case.id} ({shown.reference}): "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + f"; {len(shown.events)} ledger entries, now {shown.status.value}"
    )
    return case.id


def run_reports_demo(app: Flask, say: Callable[[str], None]) -> None:
    """Build the demo case, export its evidence package, verify it; print the command."""
    with app.app_context():
        say("\n5. A case from the injected frauds, and its evidence package for the police")
        try:
            number = _build_case(say)
        except CaseError as e:
            say(f"  the demo case could not be built: {e}")
            return
        if number is None:
            return
        runtime, session = current_runtime(), db_session()
        out = runtime.settings.instance_path / PACKAGE_DIR
        if out.exists():
            shutil.rmtree(out)  # the demo's own earlier package
        done = export_evidence(
            session,
            runtime,
            number,
            out,
            officer=INVESTIGATOR,
            recipient="demo police investigator / 演示办案民警",
            language="zh",
        )
        package = done.package
        for notice in package.notices:
            say(f"  note: {notice}")
        say(
            f"  evidence package: {out} ({package.entries} ledger entries, checkpoint "
            f"{package.checkpoint_size}, report in {package.language}); export recorded in "
            f"ledger entry {done.custody_seq}"
        )
        report: Any = verify_package(
            out, runtime.ledger.catalog, trusted_key=runtime.ledger.platform.public_key
        )
        say(f"  verified offline: {report.files} files, {report.entries} entries, all good")
        pub = runtime.settings.key_dir / "log-signing.pub.pem"
        say("  check it yourself (no database needed):")
        say(f"  cardtrace evidence verify {out} --platform-key {pub}")
        say(f"  cardtrace cases show {number}")

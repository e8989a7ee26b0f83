"""The demo's last act: a case from the injected frauds' alerts, an evidence package of
it that verifies, and the command to verify it printed."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from sqlalchemy.orm import Session

from provenance.analysis.alerts import list_alerts, run_ledger_analysis
from provenance.cases import MemberKind, get_case
from provenance.evidence import verify_package
from tests.codes_support import build_chain
from tests.ledger_support import NOW
from tests.test_analysis_alerts import stolen_sales
from webapp.demo_reports import CASE_FILE, PACKAGE_DIR, run_reports_demo
from webapp.runtime import current_runtime


def test_the_demo_builds_a_case_exports_and_verifies_it(app: Flask, session: Session) -> None:
    with app.app_context():
        runtime = current_runtime()
        stolen_sales(session, build_chain(session, runtime.ledger))
        run_ledger_analysis(session, runtime.ledger, now=NOW)
        injected = [[a.typology, a.subject_kind, a.subject] for a in list_alerts(session)]
        instance = Path(runtime.settings.instance_path)
        instance.mkdir(parents=True, exist_ok=True)
        (instance / "demo-analysis-cases.json").write_text(json.dumps(injected))
    said: list[str] = []
    run_reports_demo(app, said.append)
    output = "\n".join(said)
    assert "cardtrace evidence verify" in output and "all good" in output, output
    number = json.loads((instance / CASE_FILE).read_text())["case"]
    case = get_case(session, number)
    assert case.status.value == "reported"
    assert len(case.members_of(MemberKind.ALERT)) == len(injected)
    assert case.events[-1].action == "export"
    with app.app_context():
        ledger = current_runtime().ledger
        report = verify_package(
            instance / PACKAGE_DIR, ledger.catalog, trusted_key=ledger.platform.public_key
        )
    assert report.case == f"CASE-{number}"
    # A second run reuses the case and exports afresh.
    again: list[str] = []
    run_reports_demo(app, again.append)
    assert "built by an earlier run" in "\n".join(again)

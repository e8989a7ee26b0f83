"""``cardtrace analyze ledger`` and ``cardtrace alerts``: a run on an empty ledger, then
decisions as a named account, bad ones refused with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.analysis.alerts import record_findings
from tests.cli_support import add_account, fresh_instance, run
from tests.test_analysis_alerts import finding


@pytest.fixture()
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fresh_instance(tmp_path, monkeypatch)


def _alert() -> None:
    from provenance.db import write_transaction
    from webapp import create_app
    from webapp.runtime import current_runtime, db_session

    with create_app().app_context():
        session, runtime = db_session(), current_runtime()
        with write_transaction(session):
            record_findings(session, runtime.ledger, [finding("shop-x")], now=runtime.now())


def test_analyze_ledger_twice_reads_only_new_entries(instance: Path) -> None:
    first = run("analyze", "ledger")
    assert first.exit_code == 0, first.output
    second = run("analyze", "ledger")
    assert second.output.startswith("0 new entries read")


def test_analyze_without_edges_or_a_subcommand_is_a_usage_error(instance: Path) -> None:
    done = run("analyze")
    assert done.exit_code == 2 and "--edges" in done.output


def test_alerts_list_show_and_triage_as_an_analyst(instance: Path) -> None:
    token = add_account("li.analyst", "analyst")
    _alert()
    listed = json.loads(run("alerts", "list", "--json").output)
    assert [a["subject"] for a in listed] == ["shop-x"]
    alert_id = str(listed[0]["id"])
    shown = json.loads(run("alerts", "show", alert_id).output)
    assert shown["evidence"]["nodes"]
    done = run("alerts", "triage", alert_id, "--note", "checking", as_user=token)
    assert done.exit_code == 0, done.output
    refused = run("alerts", "triage", alert_id, as_user=token)
    assert refused.exit_code == 2 and "alert-transition" not in refused.output
    assert "cannot be triaged" in refused.output
    assert json.loads(run("alerts", "show", alert_id).output)["status"] == "triaged"


def test_alert_decisions_need_an_analysts_account(instance: Path) -> None:
    _alert()
    done = run("alerts", "dismiss", "1", as_user="nobody")
    assert done.exit_code == 2 and "no active account" in done.output
    add_account("li.reviewer", "reviewer")
    refused = run("alerts", "dismiss", "1", as_user="li.reviewer")
    assert refused.exit_code == 2 and "the reviewer role may not" in refused.output
    assert json.loads(run("alerts", "show", "1").output)["status"] == "new"


def test_the_demo_flags_its_injected_frauds_with_evidence(tmp_path: Path) -> None:
    from tests.processes import run as process

    assert process(["init"], tmp_path).returncode == 0
    result = process(["demo", "--scale", "0.003"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "8 of the 8 injected cases have an alert" in result.stdout
    flagged = [line for line in result.stdout.splitlines() if line.strip().startswith("ok #")]
    assert {line.split()[3] for line in flagged} >= {
        "double-sale",
        "unknown-origin",
        "stolen-payment-taint",
    }
    assert "evidence:" in result.stdout

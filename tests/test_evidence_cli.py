"""``cardtrace cases`` and ``cardtrace evidence``: a case worked as an analyst's account,
exported as a package that ``evidence verify`` accepts with the platform key; a changed
file fails naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import add_account, fresh_instance, run
from webapp.config import load_settings


@pytest.fixture()
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fresh_instance(tmp_path, monkeypatch)


def _officer() -> str:
    return add_account("li.investigator", "analyst")


def _case(token: str) -> int:
    """A case made through the commands (on the platform's real clock)."""
    number = int(run("cases", "new", "Stolen-card sales", as_user=token).output.split()[-1])
    run("cases", "add", str(number), "--buyer", "ab" * 16, as_user=token)
    run("cases", "note", str(number), "buyer paid with a reported card", as_user=token)
    return number


def test_cases_commands_work_a_case_as_an_analyst(instance: Path) -> None:
    token = _officer()
    opened = run("cases", "new", "Refund fraud ring", as_user=token)
    assert opened.exit_code == 0, opened.output
    number = opened.output.strip().splitlines()[-1]
    assert run("cases", "add", number, "--buyer", "ab" * 16, as_user=token).exit_code == 0
    assert run("cases", "assign", number, "wang.analyst", as_user=token).exit_code == 0
    assert run("cases", "note", number, "first look", as_user=token).exit_code == 0
    receipt = instance / "receipt.txt"
    receipt.write_text("paid 100")
    attached = run("cases", "attach", number, str(receipt), as_user=token)
    assert attached.exit_code == 0 and "receipt.txt" in attached.output
    assert run("cases", "status", number, "under_investigation", as_user=token).exit_code == 0
    refused = run("cases", "status", number, "closed", as_user=token)
    assert refused.exit_code == 2 and "outcome" in refused.output
    shown = json.loads(run("cases", "show", number).output)
    assert shown["assignee"] == "wang.analyst" and shown["status"] == "under_investigation"
    assert [e["action"] for e in shown["timeline"]] == [
        "open",
        "add",
        "assign",
        "note",
        "attach",
        "status",
    ]
    listed = run("cases", "list")
    assert f"CASE-{number}" in listed.output


def test_case_commands_need_an_analysts_account(instance: Path) -> None:
    done = run("cases", "new", "x", as_user="nobody")
    assert done.exit_code == 2 and "no active account" in done.output
    add_account("qian.auditor", "auditor")
    refused = run("cases", "new", "x", as_user="qian.auditor")
    assert refused.exit_code == 2 and "the auditor role may not" in refused.output
    assert json.loads(run("cases", "list", "--json").output) == []


def test_evidence_export_then_verify_then_tamper(instance: Path) -> None:
    token = _officer()
    number = _case(token)
    out = instance / "package"
    exported = run(
        "evidence",
        "export",
        str(number),
        "-o",
        str(out),
        "--lang",
        "en",
        "--for",
        "PSB",
        as_user=token,
    )
    assert exported.exit_code == 0, exported.output
    assert "cardtrace evidence verify" in exported.output
    key = load_settings().key_dir / "log-signing.pub.pem"
    verified = run("evidence", "verify", str(out), "--platform-key", str(key))
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith(f"OK: CASE-{number}")
    shown = json.loads(run("cases", "show", str(number)).output)
    export = shown["timeline"][-1]
    assert export["action"] == "export" and export["recipient"] == "PSB"
    report = out / "data" / "report.pdf"
    report.write_bytes(report.read_bytes() + b"%")
    failed = run("evidence", "verify", str(out), "--platform-key", str(key))
    assert failed.exit_code == 1 and "data/report.pdf" in failed.output


def test_evidence_export_refuses_a_full_directory(instance: Path) -> None:
    token = _officer()
    number = _case(token)
    (instance / "full").mkdir()
    (instance / "full" / "x").write_text("x")
    done = run("evidence", "export", str(number), "-o", str(instance / "full"), as_user=token)
    assert done.exit_code == 2 and "not an empty directory" in done.output

"""``cardtrace risk``: staff act as a named account, four eyes hold, bad rules and bad region
tables are refused with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import add_account, fresh_instance, run
from tests.risk_support import REGIONS_CSV

RULE = [
    "--rule", "burst-buyer",
    "--condition", "buyer.count_1m >= 3",
    "--action", "block",
    "--reason", "burst-buyer",
    "--en", "Too many purchases in a minute.",
    "--zh", "一分钟内购买次数过多。",
]  # fmt: skip


@pytest.fixture()
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fresh_instance(tmp_path, monkeypatch)


def test_propose_and_approve_with_four_eyes(instance: Path) -> None:
    author = add_account("li.author", "approver")
    approver = add_account("wang.approver", "approver")
    proposed = run("risk", "rules", "propose", *RULE, as_user=author)
    assert proposed.exit_code == 0, proposed.output
    assert "version 1 proposed by li.author" in proposed.output
    own = run("risk", "rules", "approve", "burst-buyer", "1", as_user=author)
    assert own.exit_code == 2 and "a different officer must approve" in own.output
    approved = run("risk", "rules", "approve", "burst-buyer", "1", as_user=approver)
    assert approved.exit_code == 0, approved.output
    listed = json.loads(run("risk", "rules", "list", "--json").output)
    burst = next(r for r in listed["rules"] if r["rule"] == "burst-buyer")
    assert burst["version"] == 1


def test_a_bad_rule_is_refused_with_its_position(instance: Path) -> None:
    author = add_account("li.author", "analyst")
    bad = [*RULE[:3], "buyer.count_1m >= 'x'", *RULE[4:]]
    result = run("risk", "rules", "propose", *bad, as_user=author)
    assert result.exit_code == 2
    assert "at line 1, column 16" in result.output
    assert json.loads(run("risk", "rules", "list", "--json").output)["pending"] == []


def test_check_names_the_features(instance: Path) -> None:
    result = run("risk", "rules", "check", "instrument.tainted")
    assert result.output.strip() == "ok: reads instrument.tainted"
    bad = run("risk", "rules", "check", "instrument.tainte")
    assert bad.exit_code == 2 and "did you mean instrument.tainted" in bad.output


def test_proposing_needs_an_account_whose_role_may(instance: Path) -> None:
    result = run("risk", "rules", "propose", *RULE, as_user="nobody")
    assert result.exit_code == 2 and "no active account" in result.output
    add_account("li.reviewer", "reviewer")
    refused = run("risk", "rules", "propose", *RULE, as_user="li.reviewer")
    assert refused.exit_code == 2 and "the reviewer role may not" in refused.output
    assert json.loads(run("risk", "rules", "list", "--json").output)["pending"] == []


def test_regions_import_is_all_or_nothing(instance: Path, tmp_path: Path) -> None:
    good = tmp_path / "regions.csv"
    good.write_text(REGIONS_CSV, encoding="utf-8")
    assert run("risk", "regions", "import", str(good)).output.strip() == "5 ranges imported"
    bad = tmp_path / "bad.csv"
    bad.write_text("network,region\n192.0.2.0/24,CN\n192.0.2.0/25,US\n", encoding="utf-8")
    result = run("risk", "regions", "import", str(bad))
    assert result.exit_code == 2 and "overlap" in result.output


def test_backtest_and_rebuild_on_an_empty_ledger(instance: Path) -> None:
    result = run("risk", "backtest", "burst-buyer", "0", "--json")
    assert result.exit_code == 0 and json.loads(result.output) == []
    assert run("risk", "rebuild").output.strip() == "risk state rebuilt from 0 sales"

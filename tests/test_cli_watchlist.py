"""``cardtrace watchlist`` as an officer runs it: a real process, real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.processes import run
from tests.screening_support import SANCTIONS_CSV


@pytest.fixture()
def instance(tmp_path: Path) -> Path:
    assert run(["init"], tmp_path).returncode == 0
    return tmp_path


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def import_args(path: str, name: str = "sanctions", file_format: str = "csv") -> list[str]:
    return [
        "watchlist",
        "import",
        path,
        "--name",
        name,
        "--format",
        file_format,
        "--source",
        "tests",
        "--date",
        "2026-11-20",
    ]


def test_import_then_screen_prints_the_hit(instance: Path) -> None:
    done = run(import_args(write(instance, "list.csv", SANCTIONS_CSV)), instance)
    assert done.returncode == 0, done.stderr
    assert "imported watch list sanctions: 8 entries, 11 names (extract of 2026-11-20)" in (
        done.stdout
    )
    screened = run(["watchlist", "screen", "深圳市 腾讯计算机系统 有限公司"], instance)
    assert screened.returncode == 0, screened.stderr
    assert "1 hit(s) at or above 90" in screened.stdout
    assert "sanctions:E1" in screened.stdout
    assert "whitespace" in screened.stdout


def test_screen_as_json_names_the_lists_screened(instance: Path) -> None:
    run(import_args(write(instance, "list.csv", SANCTIONS_CSV)), instance)
    screened = run(["watchlist", "screen", "Zhang Wei", "--kind", "person", "--json"], instance)
    answer = json.loads(screened.stdout)
    assert [h["entry_id"] for h in answer["hits"]] == ["P1"]
    assert answer["watchlists"][0]["extract_date"] == "2026-11-20"


def test_screen_without_a_hit_says_so(instance: Path) -> None:
    run(import_args(write(instance, "list.csv", SANCTIONS_CSV)), instance)
    screened = run(["watchlist", "screen", "Acme Widgets", "--kind", "entity"], instance)
    assert screened.returncode == 0
    assert screened.stdout.startswith("no hit at or above 90 in sanctions (2026-11-20)")


def test_a_bad_file_is_refused_by_line_and_nothing_is_imported(instance: Path) -> None:
    text = "id,name,kind\nA,Acme,entity\nB,Beta,robot\nA,Again,entity\n"
    done = run(import_args(write(instance, "bad.csv", text)), instance)
    assert done.returncode == 1
    assert "nothing was imported: 2 bad line(s)" in done.stderr
    assert "line 3 (kind)" in done.stderr
    assert "line 4 (id): duplicate id (first on line 2)" in done.stderr
    assert "Traceback" not in done.stderr
    assert run(["watchlist", "list"], instance).stdout.strip() == "no watch list has been imported"


def test_ftm_import_reports_skipped_entities(instance: Path) -> None:
    lines = [
        {"id": "p1", "schema": "Person", "properties": {"name": ["Ivan Petrov"]}},
        {"id": "s1", "schema": "Sanction", "properties": {"entity": ["p1"]}},
    ]
    path = write(instance, "os.json", "".join(json.dumps(e) + "\n" for e in lines))
    done = run(import_args(path, "opensanctions", "ftm"), instance)
    assert done.returncode == 0, done.stderr
    assert "1 entries" in done.stdout
    assert "skipped entities that are not persons or organisations: Sanction 1" in done.stdout
    listed = run(["watchlist", "list"], instance).stdout
    assert listed.startswith("opensanctions: 1 entries, 1 names, ftm extract of 2026-11-20")


def test_screening_before_any_import_is_one_clear_error(instance: Path) -> None:
    screened = run(["watchlist", "screen", "Acme"], instance)
    assert screened.returncode == 2
    assert screened.stderr.strip() == (
        "cardtrace: error: no watch list has been imported: import one to screen names"
    )


def test_a_bad_threshold_is_one_clear_error(instance: Path) -> None:
    run(import_args(write(instance, "list.csv", SANCTIONS_CSV)), instance)
    screened = run(["watchlist", "screen", "Acme", "--threshold", "20"], instance)
    assert screened.returncode == 2
    assert screened.stderr.strip() == "cardtrace: error: the threshold is between 50 and 100"

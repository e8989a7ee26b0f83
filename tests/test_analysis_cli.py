"""``cardtrace analyze`` as an analyst runs it: a real process, real files."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from tests.processes import run

HEADER = "source,target,amount,timestamp,label\n"


def transfer_list(folder: Path) -> Path:
    """One-off background payments, then a cycle of five new transfers at the end."""
    rng = random.Random(3)
    lines = [HEADER]
    for i in range(1500):
        a, b = rng.sample(range(3000), 2)
        lines.append(f"p{a},p{b},{rng.randint(10, 500)}.00,2024-03-{1 + i % 28:02d}T10:00:00Z,\n")
    ring = ["r0", "r1", "r2", "r3", "r4"]
    for i in range(5):
        lines.append(f"{ring[i]},{ring[(i + 1) % 5]},900.50,2024-04-0{1 + i}T12:00:00+08:00,x\n")
    path = folder / "edges.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_analyze_writes_flagged_accounts_transfers_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run(["analyze", "--edges", str(transfer_list(tmp_path)), "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    with open(out / "flagged_transfers.csv", newline="", encoding="utf-8") as f:
        transfers = list(csv.DictReader(f))
    assert {t["row"] for t in transfers if t["typology"] == "cycle"} == {
        "1500",
        "1501",
        "1502",
        "1503",
        "1504",
    }
    first = next(t for t in transfers if t["row"] == "1500")
    assert (first["source"], first["target"], first["amount"]) == ("r0", "r1", "900.5")
    assert first["timestamp"] == "2024-04-01T04:00:00Z"
    with open(out / "flagged_accounts.csv", newline="", encoding="utf-8") as f:
        accounts = list(csv.DictReader(f))
    assert {a["account"] for a in accounts if a["typology"] == "cycle"} == {
        "r0",
        "r1",
        "r2",
        "r3",
        "r4",
    }
    assert all(0.0 <= float(a["score"]) <= 1.0 for a in accounts)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["transfers"] == 1505
    assert summary["findings_by_typology"]["cycle"] == 1
    evidence = summary["strongest_findings"][0]["evidence"]
    assert len(evidence["edges"]) == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the file is empty: expected a header row"),
        ("source,target,amount\na,b,1\n", "line 1: the header lacks the column(s) timestamp"),
        (
            "source,target,amount,timestamp\na,b,1,2024-01-01\na,c,1,yesterday\n",
            "line 3: timestamp 'yesterday' is not an ISO 8601 date and time",
        ),
        (
            "source,target,amount,timestamp\na,b,ten,2024-01-01\n",
            "line 2: amount 'ten' is not a number",
        ),
        (
            "source,target,amount,timestamp\na,b,-5,2024-01-01\n",
            "line 2: amount '-5' must be a finite number, zero or more",
        ),
        ("source,target,amount,timestamp\n", "line 2: the file has a header but no transfers"),
    ],
    ids=["empty", "missing-column", "bad-timestamp", "bad-amount", "negative-amount", "no-rows"],
)
def test_bad_transfer_list_is_refused_by_line_and_nothing_is_written(
    tmp_path: Path, text: str, message: str
) -> None:
    edges = tmp_path / "edges.csv"
    edges.write_text(text, encoding="utf-8")
    out = tmp_path / "report"
    done = run(["analyze", "--edges", str(edges), "--out", str(out)], tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert not out.exists()

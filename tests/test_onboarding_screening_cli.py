"""Screening hits from the command line: listed, cleared or confirmed by a named account."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_support import add_account, run
from tests.onboarding_support import ApplicationPayload, enterprise_extract, enterprise_record
from tests.test_onboarding_cli import instance, submitted_application

__all__ = ["instance"]

WATCHLIST = """id,name,kind,aliases,countries,note
P1,王磊,person,Wang Lei,cn,
"""


def test_officers_list_and_clear_hits_through_the_cli(instance: Path) -> None:
    reviewer, approver, both = (
        add_account("li", "reviewer"),
        add_account("wang", "approver"),
        add_account("chen", "reviewer"),
    )
    listing = instance / "list.csv"
    listing.write_text(WATCHLIST)
    imported = run(
        "watchlist", "import", str(listing), "--name", "demo-sanctions", "--format", "csv",
        "--source", "tests", "--date", "2026-11-20",
    )  # fmt: skip
    assert imported.exit_code == 0, imported.output
    payload = ApplicationPayload(legal_rep_name="王 磊", owners=[{"name": "王 磊", "share": "100"}])
    extract = instance / "enterprises.json"
    extract.write_bytes(enterprise_extract(enterprise_record(payload)))
    run("onboarding", "registry-import", str(extract), "--kind", "enterprise")
    app_id = submitted_application(payload)
    run("onboarding", "review", str(app_id), as_user=reviewer)

    listed = run("onboarding", "hits", str(app_id))
    assert "open" in listed.output and "demo-sanctions P1" in listed.output
    [hit] = json.loads(run("onboarding", "hits", str(app_id), "--json").output)["hits"]
    assert hit["party"]["roles"] == ["legal_rep", "owner"] and hit["score"] == 100.0

    no_role = run("onboarding", "hit", str(app_id), str(hit["id"]), "clear", "--reason", "x",
                  as_user=approver)  # fmt: skip
    assert no_role.exit_code == 2 and "reviewer role" in no_role.output
    missing = run("onboarding", "hit", str(app_id), "999999", "clear", "--reason", "x",
                  as_user=reviewer)  # fmt: skip
    assert missing.exit_code == 2 and "no screening hit 999999" in missing.output
    cleared = run("onboarding", "hit", str(app_id), str(hit["id"]), "clear",
                  "--reason", "other ID number", as_user=both)  # fmt: skip
    assert cleared.exit_code == 0
    assert f"hit {hit['id']} cleared by chen" in cleared.output
    assert "cleared by chen" in run("onboarding", "hits", str(app_id)).output

    run("onboarding", "recommend", str(app_id), "approve", "--reason", "ok", as_user=reviewer)
    # The reviewer who cleared the hit becomes an approver: still not the one who decides.
    assert run("accounts", "role", both, "approver").exit_code == 0
    own = run("onboarding", "decide", str(app_id), "approve", "--reason", "ok", as_user=both)
    assert own.exit_code == 2 and "chen cleared a screening hit" in own.output
    decided = run(
        "onboarding", "decide", str(app_id), "approve", "--reason", "ok", as_user=approver
    )
    assert decided.exit_code == 0 and "approved (by wang)" in decided.output

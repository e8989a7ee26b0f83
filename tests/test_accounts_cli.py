"""``cardtrace accounts`` and ``cardtrace apikeys`` on an embedded instance."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from provenance.db import write_transaction
from provenance.ledger import LedgerEntry
from tests.ledger_support import register_party
from tests.test_accounts_support import enrol
from webapp import create_app
from webapp.bootstrap import initialise
from webapp.cli import cli
from webapp.config import load_settings
from webapp.runtime import current_runtime, db_session

PASSWORD = "a long enough password"


@pytest.fixture()
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("CARDTRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARDTRACE_INSTANCE", str(tmp_path / "instance"))
    initialise(load_settings())
    app = create_app()
    with app.app_context():
        session = db_session()
        with write_transaction(session):
            runtime = current_runtime()
            register_party(session, runtime.ledger, "shop-one", kind="merchant", now=runtime.now())
    return tmp_path


def run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def test_accounts_are_created_listed_and_locked(instance: Path) -> None:
    created = run(
        "accounts", "create", "rev.li", "--role", "reviewer", "--name", "Li", stdin=PASSWORD + "\n"
    )
    assert created.exit_code == 0, created.output
    assert PASSWORD not in created.output
    merchant = run(
        "accounts",
        "create",
        "shop.owner",
        "--role",
        "merchant",
        "--name",
        "Owner",
        "--party",
        "shop-one",
        stdin=PASSWORD + "\n",
    )
    assert merchant.exit_code == 0, merchant.output
    assert run("accounts", "lock", "rev.li").exit_code == 0
    listed = json.loads(run("accounts", "list", "--json").output)
    assert [(r["username"], r["role"], r["party"], r["status"]) for r in listed] == [
        ("rev.li", "reviewer", None, "locked"),
        ("shop.owner", "merchant", "shop-one", "active"),
    ]
    assert run("accounts", "unlock", "rev.li").exit_code == 0
    assert json.loads(run("accounts", "list", "--json").output)[0]["status"] == "active"


def test_a_weak_password_is_refused_in_one_line(instance: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["accounts", "create", "rev.li", "--role", "reviewer", "--name", "Li"],
        input="short\n",
    )
    assert result.exit_code == 2
    [line] = [x for x in result.output.splitlines() if "error" in x]
    assert "at least 12 characters" in line and "short" not in line


def test_a_role_change_is_signed_on_the_ledger(instance: Path) -> None:
    run("accounts", "create", "rev.li", "--role", "reviewer", "--name", "Li", stdin=PASSWORD + "\n")
    assert run("accounts", "role", "rev.li", "approver").exit_code == 0
    app = create_app()
    with app.app_context():
        entry = (
            db_session()
            .scalars(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1))
            .one()
        )
    assert entry.type == "account.role"


def test_api_keys_are_printed_once_and_never_listed(instance: Path) -> None:
    created = run(
        "apikeys",
        "create",
        "--party",
        "shop-one",
        "--scope",
        "codes:verify",
        "--scope",
        "entries:append",
        "--name",
        "till",
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("ctk_")
    listed = run("apikeys", "list", "--json")
    assert key not in listed.output and key[17:] not in listed.output
    [row] = json.loads(listed.output)
    assert row["scopes"] == ["codes:verify", "entries:append"] and row["status"] == "active"
    rotated = run("apikeys", "rotate", row["key_id"]).stdout.strip().splitlines()[-1]
    assert rotated != key and rotated.startswith(f"ctk_{row['key_id']}_")
    assert run("apikeys", "revoke", row["key_id"]).exit_code == 0
    assert json.loads(run("apikeys", "list", "--json").output)[0]["status"] == "revoked"


def test_an_unknown_scope_is_refused(instance: Path) -> None:
    result = CliRunner().invoke(
        cli, ["apikeys", "create", "--party", "shop-one", "--scope", "codes:steal", "--name", "x"]
    )
    assert result.exit_code == 2 and "codes:steal" in result.output


def test_a_personal_key_is_made_for_an_account_and_takes_no_party_or_scope(
    instance: Path,
) -> None:
    run("accounts", "create", "rev.li", "--role", "reviewer", "--name", "Li", stdin=PASSWORD + "\n")
    # A staff account has a key only once its second factor is enrolled.
    early = CliRunner().invoke(cli, ["apikeys", "create", "--user", "rev.li", "--name", "laptop"])
    assert early.exit_code != 0 and "second factor" in early.output, early.output
    assert json.loads(run("apikeys", "list", "--json").output) == []
    enrol(create_app().test_client(), "rev.li", datetime.now(UTC), PASSWORD)
    created = run("apikeys", "create", "--user", "rev.li", "--name", "laptop")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("ctk_") and "personal key of rev.li" in created.output
    [row] = json.loads(run("apikeys", "list", "--json").output)
    assert row["personal"] is True and row["scopes"] == [] and key not in json.dumps(row)
    for refused in (
        ["--user", "rev.li", "--party", "shop-one", "--name", "x"],
        ["--user", "rev.li", "--scope", "codes:verify", "--name", "x"],
        ["--party", "shop-one", "--name", "x"],
    ):
        result = CliRunner().invoke(cli, ["apikeys", "create", *refused])
        assert result.exit_code == 2, result.output
    unknown = CliRunner().invoke(cli, ["apikeys", "create", "--user", "nobody", "--name", "x"])
    assert unknown.exit_code != 0 and "nobody" in unknown.output
    assert len(json.loads(run("apikeys", "list", "--json").output)) == 1

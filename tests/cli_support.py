"""The command line under test: a fresh embedded instance, and running a command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from webapp.bootstrap import initialise
from webapp.cli import cli
from webapp.config import load_settings


def fresh_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialised instance under ``tmp_path``, with no other CARDTRACE_ setting."""
    for name in list(os.environ):
        if name.startswith("CARDTRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARDTRACE_INSTANCE", str(tmp_path / "instance"))
    initialise(load_settings())
    return tmp_path


PASSWORD = "correct horse battery staple"


def run(*args: str, as_user: str | None = None, stdin: str | None = None) -> Any:
    """Run ``cardtrace ARGS``, as the account ``as_user`` when given (``CARDTRACE_AS``)."""
    env = {"CARDTRACE_AS": as_user} if as_user else {}
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, catch_exceptions=False)


def add_account(username: str, role: str) -> str:
    """Create a staff account of ``role`` with ``cardtrace accounts create``."""
    result = run(
        "accounts", "create", username, "--role", role, "--name", username, stdin=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    return username

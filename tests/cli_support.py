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


def run(*args: str, token: str | None = None) -> Any:
    """Run ``cardtrace ARGS``, as an officer when ``token`` is given."""
    env = {"CARDTRACE_OFFICER_TOKEN": token} if token else {}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

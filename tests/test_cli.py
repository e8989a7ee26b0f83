"""The ``cardtrace`` command as a user runs it: a real process, real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import run


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    for command in ("init", "db", "health", "serve", "worker", "beat", "demo"):
        assert f"  {command} " in result.stdout


def test_init_twice_is_safe_and_says_nothing_changed(tmp_path: Path) -> None:
    first = run(["init"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "migrated empty ->" in first.stdout
    keys = {p.name: p.read_bytes() for p in (tmp_path / "instance" / "keys").iterdir()}
    second = run(["init"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Nothing to do" in second.stdout
    assert "migrated" not in second.stdout
    assert keys == {p.name: p.read_bytes() for p in (tmp_path / "instance" / "keys").iterdir()}
    instance_line = [line for line in first.stdout.splitlines() if line.startswith("log:")]
    assert instance_line[0].replace("(created)", "(unchanged)") in second.stdout


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        (
            {"CARDTRACE_DATABASE_URL": "postgresql://postgres:hunter2@127.0.0.1:1/x"},
            "CARDTRACE_DATABASE_URL",
        ),
        ({"CARDTRACE_DATABASE_URL": "postgres ql://nope"}, "CARDTRACE_DATABASE_URL"),
        ({"CARDTRACE_DATABASE_URL": "sqlite:////proc/no/such/dir/x.db"}, "CARDTRACE_DATABASE_URL"),
        ({"CARDTRACE_KEY_DIR": "/proc/version"}, "CARDTRACE_KEY_DIR"),
        ({"CARDTRACE_BROKER_URL": "redis:/broken"}, "CARDTRACE_BROKER_URL"),
    ],
)
def test_bad_configuration_ends_with_one_clear_line(
    tmp_path: Path, env: dict[str, str], setting: str
) -> None:
    result = run(["init"], tmp_path, **env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"cardtrace: error: {setting}")
    assert "hunter2" not in result.stderr


def test_unreadable_key_file_ends_with_one_clear_line(tmp_path: Path) -> None:
    assert run(["init"], tmp_path).returncode == 0
    key = tmp_path / "instance" / "keys" / "log-signing.pem"
    key.write_text("not a key")
    result = run(["health"], tmp_path, CARDTRACE_ENV="production")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"cardtrace: error: CARDTRACE_KEY_DIR: {key} is not a PEM Ed25519 private key"
    )


def test_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    assert run(["init"], tmp_path).returncode == 0
    result = run(["demo", "--scale", "0.003"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "database: ok" in result.stdout


def test_db_current_reports_head_after_init(tmp_path: Path) -> None:
    assert run(["init"], tmp_path).returncode == 0
    result = run(["db", "current"], tmp_path)
    assert result.returncode == 0
    current, head = result.stdout.splitlines()
    assert current.split()[-1] == head.split()[-1]

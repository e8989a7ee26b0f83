from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import make_url

from provenance.errors import ConfigError
from tests.keys import write_key_dir
from webapp.config import (
    FINGERPRINT_KEY_FILE,
    LOG_SIGNING_KEY_FILE,
    SESSION_KEY_FILE,
    Environment,
    ensure_secrets,
    load_secrets,
    load_settings,
)
from webapp.database import SQLITE_CACHE_KIB, make_engine


def test_defaults_put_everything_in_the_instance_folder(tmp_path: Path) -> None:
    settings = load_settings({"CARDTRACE_INSTANCE": str(tmp_path / "inst")})
    assert settings.env is Environment.DEVELOPMENT
    assert settings.database_url.get_backend_name() == "sqlite"
    assert settings.database_url.database == str(tmp_path / "inst" / "cardtrace.db")
    assert settings.key_dir == tmp_path / "inst" / "keys"
    assert settings.embedded_tasks
    assert settings.result_backend is None


def test_plain_postgresql_url_gets_the_psycopg_driver() -> None:
    settings = load_settings({"CARDTRACE_DATABASE_URL": "postgresql://u@h:5432/db"})
    assert settings.database_url.drivername == "postgresql+psycopg"


def test_redis_broker_is_also_the_result_backend() -> None:
    settings = load_settings({"CARDTRACE_BROKER_URL": "redis://127.0.0.1:6379/3"})
    assert not settings.embedded_tasks
    assert settings.result_backend == "redis://127.0.0.1:6379/3"


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({"CARDTRACE_DATABASE_URL": "::not a url::"}, "CARDTRACE_DATABASE_URL"),
        ({"CARDTRACE_DATABASE_URL": "mysql://u@h/db"}, "CARDTRACE_DATABASE_URL"),
        ({"CARDTRACE_DATABASE_URL": "postgresql://u@h:5432"}, "CARDTRACE_DATABASE_URL"),
        ({"CARDTRACE_BROKER_URL": "127.0.0.1:6379"}, "CARDTRACE_BROKER_URL"),
        ({"CARDTRACE_BROKER_URL": "http://127.0.0.1:6379"}, "CARDTRACE_BROKER_URL"),
        ({"CARDTRACE_ENV": "staging"}, "CARDTRACE_ENV"),
        ({"CARDTRACE_LOG_ORIGIN": "has spaces/log"}, "CARDTRACE_LOG_ORIGIN"),
        ({"CARDTRACE_LOG_ORIGIN": "日志.example/log"}, "CARDTRACE_LOG_ORIGIN"),
        ({"CARDTRACE_CHECKPOINT_INTERVAL": "soon"}, "CARDTRACE_CHECKPOINT_INTERVAL"),
        ({"CARDTRACE_CHECKPOINT_INTERVAL": "0"}, "CARDTRACE_CHECKPOINT_INTERVAL"),
    ],
)
def test_malformed_setting_is_named_in_one_line(environ: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ)
    assert info.value.code == "bad-configuration"
    assert str(info.value).startswith(setting)
    assert "\n" not in str(info.value)


def test_password_in_a_bad_url_is_not_repeated() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"CARDTRACE_DATABASE_URL": "mysql://u:hunter2@h/db"})
    assert "hunter2" not in str(info.value)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown settings: colour"):
        load_settings({}, {"colour": "blue"})


def test_ensure_secrets_creates_owner_only_files(tmp_path: Path) -> None:
    settings = load_settings({"CARDTRACE_KEY_DIR": str(tmp_path / "keys")})
    created = ensure_secrets(settings)
    assert set(created) >= {SESSION_KEY_FILE, FINGERPRINT_KEY_FILE, LOG_SIGNING_KEY_FILE}
    for name in (SESSION_KEY_FILE, FINGERPRINT_KEY_FILE, LOG_SIGNING_KEY_FILE):
        mode = stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode)
        assert mode == 0o600, name
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert len(load_secrets(settings).fingerprint_key) == 32


def test_ensure_secrets_twice_changes_nothing(tmp_path: Path) -> None:
    settings = load_settings({"CARDTRACE_KEY_DIR": str(tmp_path / "keys")})
    ensure_secrets(settings)
    before = {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()}
    assert ensure_secrets(settings) == []
    after = {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()}
    assert before == after


def test_missing_secrets_say_to_run_init(tmp_path: Path) -> None:
    settings = load_settings({"CARDTRACE_KEY_DIR": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match="run 'cardtrace init'"):
        load_secrets(settings)


def test_key_file_that_is_a_directory_is_named(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys")
    (keys / LOG_SIGNING_KEY_FILE).unlink()
    (keys / LOG_SIGNING_KEY_FILE).mkdir()
    with pytest.raises(ConfigError) as info:
        load_secrets(load_settings({"CARDTRACE_KEY_DIR": str(keys)}))
    assert str(info.value).startswith("CARDTRACE_KEY_DIR")
    assert LOG_SIGNING_KEY_FILE in str(info.value)


def test_garbage_signing_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys")
    (keys / LOG_SIGNING_KEY_FILE).write_bytes(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n")
    with pytest.raises(ConfigError) as info:
        load_secrets(load_settings({"CARDTRACE_KEY_DIR": str(keys)}))
    assert "not a PEM Ed25519 private key" in str(info.value)
    assert "c2VjcmV0" not in str(info.value)


def test_fingerprint_key_of_wrong_length_is_refused(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys")
    (keys / FINGERPRINT_KEY_FILE).write_bytes(b"short")
    with pytest.raises(ConfigError, match="exactly 32 bytes"):
        load_secrets(load_settings({"CARDTRACE_KEY_DIR": str(keys)}))


@pytest.mark.parametrize("weak", ["dev", "changeme", "short-but-not-a-default"])
def test_production_refuses_weak_session_secret(tmp_path: Path, weak: str) -> None:
    keys = write_key_dir(tmp_path / "keys")
    settings = load_settings(
        {
            "CARDTRACE_ENV": "production",
            "CARDTRACE_KEY_DIR": str(keys),
            "CARDTRACE_SECRET_KEY": weak,
        }
    )
    with pytest.raises(ConfigError, match=r"^CARDTRACE_SECRET_KEY"):
        load_secrets(settings)


def test_production_refuses_key_files_readable_by_others(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys")
    (keys / LOG_SIGNING_KEY_FILE).chmod(0o644)
    settings = load_settings({"CARDTRACE_ENV": "production", "CARDTRACE_KEY_DIR": str(keys)})
    with pytest.raises(ConfigError, match="readable by other users"):
        load_secrets(settings)


def test_production_accepts_strong_private_secrets(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys")
    settings = load_settings({"CARDTRACE_ENV": "production", "CARDTRACE_KEY_DIR": str(keys)})
    assert load_secrets(settings).session_key.startswith("test-session-key")


def test_secrets_do_not_show_in_repr(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys")
    settings = load_settings({"CARDTRACE_KEY_DIR": str(keys), "CARDTRACE_SECRET_KEY": "x" * 40})
    secrets = load_secrets(settings)
    assert "x" * 40 not in repr(settings)
    assert "test-session-key" not in repr(secrets)
    assert secrets.fingerprint_key.hex() not in repr(secrets)


def test_a_sqlite_connection_maps_the_file_and_keeps_a_large_page_cache(tmp_path: Path) -> None:
    engine = make_engine(make_url(f"sqlite:///{tmp_path / 'store.db'}"))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
        # SQLite caps the mapping at its compile-time limit; it is on, and large.
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() >= 256 << 20
    engine.dispose()

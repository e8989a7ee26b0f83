"""``CARDTRACE_REDIS_URL`` chooses where the real-time risk state lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenance.errors import ConfigError
from provenance.risk.redis_store import RedisStore
from webapp import create_app
from webapp.api_risk import live_risk
from webapp.config import load_settings


@pytest.mark.parametrize("value", ["localhost:6379", "http://cache:6379/0", "redis://"])
def test_a_malformed_redis_url_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="CARDTRACE_REDIS_URL is not a valid Redis URL"):
        load_settings({"CARDTRACE_REDIS_URL": value})


def test_without_redis_the_state_is_the_databases(key_dir: Path, tmp_path: Path) -> None:
    app = create_app({"env": "testing", "instance_path": tmp_path, "key_dir": key_dir})
    assert live_risk(app).redis_store is None


def test_with_redis_the_state_lives_there(
    key_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARDTRACE_REDIS_URL", "redis://127.0.0.1:6379/14")
    app = create_app({"env": "testing", "instance_path": tmp_path, "key_dir": key_dir})
    store = live_risk(app).redis_store
    assert isinstance(store, RedisStore)
    assert store.prefix == "cardtrace:risk:"
    assert store.client.connection_pool.connection_kwargs["db"] == 14

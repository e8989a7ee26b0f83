"""The Flask app, CLI and Celery tasks: the adapter over the domain packages."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from webapp import (
    accounts,
    api_analysis,
    api_cases,
    api_codes,
    api_ledger,
    api_onboarding,
    api_partners,
    api_risk,
    errors,
    health,
    openapi,
)
from webapp.accounts import limits_store
from webapp.config import Environment, load_settings
from webapp.database import make_engine, session_factory
from webapp.json_provider import FastJSONProvider
from webapp.pages import init_pages
from webapp.routing import IdConverter
from webapp.runtime import Runtime, close_db_session
from webapp.tasks import init_celery
from webapp.verify_fast import VerifyFastPath

_SETTING_KEYS = frozenset(
    {
        "env",
        "instance_path",
        "database_url",
        "broker_url",
        "result_backend",
        "key_dir",
        "log_origin",
        "secret_key",
        "checkpoint_interval_s",
        "registries",
    }
)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app.

    Args:
        test_config: overrides. Lower-case keys are :class:`~webapp.config.Settings`
            fields; ``SESSION_FACTORY`` replaces how request sessions are made (tests bind
            them to a rolled-back connection); ``CLOCK`` replaces the platform's clock;
            other upper-case keys go to ``app.config``.

    Raises:
        ConfigError: a setting is malformed, or production is missing its secrets.
    """
    test_config = dict(test_config or {})
    overrides = {k: test_config.pop(k) for k in list(test_config) if k in _SETTING_KEYS}
    settings = load_settings(overrides=overrides)

    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.json = FastJSONProvider(app)
    app.url_map.converters["int"] = IdConverter
    app.config.update(
        MAX_CONTENT_LENGTH=32 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Secure everywhere; only `cardtrace run` (local http) turns it off.
        SESSION_COOKIE_SECURE=True,
        RATELIMIT_STORAGE_URI=settings.redis_url or f"{limits_store.SCHEME}://",
        TESTING=settings.env is Environment.TESTING,
    )
    make_session = test_config.pop("SESSION_FACTORY", None)
    clock = test_config.pop("CLOCK", None)
    app.config.update(test_config)

    engine = make_engine(settings.database_url)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        make_session=make_session or session_factory(engine),
    )
    if clock is not None:
        runtime.clock = clock
    app.extensions["cardtrace"] = runtime

    if settings.env is Environment.PRODUCTION:
        # Refuse to start without real secrets rather than run with weak ones.
        app.secret_key = runtime.secrets.session_key
    else:
        secrets = runtime.secrets_or_none()
        app.secret_key = secrets.session_key if secrets else os.urandom(32).hex()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    errors.init_app(app)
    accounts.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(api_ledger.bp)
    app.register_blueprint(api_codes.bp)
    app.register_blueprint(api_onboarding.bp)
    app.register_blueprint(api_risk.bp)
    app.register_blueprint(api_analysis.bp)
    app.register_blueprint(api_partners.bp)
    app.register_blueprint(api_cases.bp)
    init_pages(app)
    openapi.init_app(app)
    app.teardown_appcontext(close_db_session)
    init_celery(app)
    app.wsgi_app = VerifyFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    return app

"""The demo: what cardtrace does, end to end, on the embedded default."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from provenance.instance import get_identity
from webapp.health import health_report
from webapp.runtime import current_runtime, db_session


def run_demo(app: Flask, say: Callable[[str], None]) -> None:
    with app.app_context():
        runtime = current_runtime()
        report = health_report()
        say(f"cardtrace demo on {runtime.settings.database_url_display()}")
        for name, check in report["checks"].items():
            say(f"  {name}: {check['status']}")
        identity = get_identity(db_session())
        if identity is None:
            say("The store is not initialised: run 'cardtrace init' first.")
            return
        say(f"  log origin: {identity.origin} (instance {identity.instance_id})")
        say(f"  log public key: {runtime.secrets.log_public_key.hex()}")

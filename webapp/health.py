"""``/healthz``: is the database reachable and migrated, is the broker reachable."""

from __future__ import annotations

from typing import Any

from celery import Celery
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import Engine

from provenance.errors import ConfigError
from webapp.database import check_connection, current_revision, head_revision
from webapp.runtime import current_runtime

bp = Blueprint("health", __name__)


def database_status(engine: Engine) -> dict[str, Any]:
    try:
        check_connection(engine)
        current = current_revision(engine)
    except ConfigError as e:
        return {"status": "error", "backend": engine.dialect.name, "detail": str(e)}
    head = head_revision()
    status = "ok" if current == head else "error"
    result: dict[str, Any] = {
        "status": status,
        "backend": engine.dialect.name,
        "schema": current,
        "schema_head": head,
    }
    if status != "ok":
        result["detail"] = "schema is not at head; run 'cardtrace db upgrade'"
    return result


def broker_status(celery: Celery) -> dict[str, Any]:
    if celery.conf.task_always_eager:
        return {"status": "ok", "mode": "embedded"}
    url = str(celery.conf.broker_url)
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as e:  # kombu raises transport-specific errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return {
            "status": "error",
            "mode": "broker",
            "detail": f"CARDTRACE_BROKER_URL: cannot connect to {_redact(url)}: {reason}",
        }
    return {"status": "ok", "mode": "broker", "transport": celery.conf.broker_url.split(":")[0]}


def _redact(url: str) -> str:
    """Hide a password in a broker URL."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def health_report() -> dict[str, Any]:
    runtime = current_runtime()
    checks = {
        "database": database_status(runtime.engine),
        "broker": broker_status(current_app.extensions["celery"]),
    }
    ok = all(check["status"] == "ok" for check in checks.values())
    return {"status": "ok" if ok else "degraded", "checks": checks}


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    report = health_report()
    return jsonify(report), 200 if report["status"] == "ok" else 503

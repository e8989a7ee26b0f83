from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provenance.errors import ConflictError, NotFoundError, ValidationError
from provenance.instance import InstanceInfo, ensure_identity

PROBLEM = "application/problem+json"


def test_healthz_reports_database_and_embedded_tasks(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["database"]["schema"] == body["checks"]["database"]["schema_head"]
    assert body["checks"]["broker"] == {"status": "ok", "mode": "embedded"}


def test_healthz_is_degraded_when_the_broker_is_unreachable(app: Flask) -> None:
    app.extensions["celery"].conf.update(
        task_always_eager=False, broker_url="redis://:pw@127.0.0.1:1/0"
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    broker = response.get_json()["checks"]["broker"]
    assert broker["status"] == "error"
    assert broker["detail"].startswith("CARDTRACE_BROKER_URL: cannot connect to redis://:***@")
    assert ":pw@" not in broker["detail"]


def test_unknown_route_is_a_problem_document(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["code"] == "not-found"
    assert body["status"] == 404
    assert set(body) >= {"type", "title", "status", "detail", "code"}


def test_problem_type_uri_dereferences(client: FlaskClient) -> None:
    body = client.get("/api/v1/nothing-here").get_json()
    described = client.get(body["type"])
    assert described.status_code == 200
    assert described.get_json()["code"] == "not-found"


def test_wrong_method_names_the_allowed_ones(client: FlaskClient) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == "method-not-allowed"
    assert "GET" in response.headers["Allow"]


def _raising_app(app: Flask, error: Exception) -> FlaskClient:
    @app.get("/api/v1/_raise")
    def _raise() -> str:
        raise error

    return app.test_client()


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ValidationError("serial has a bad format", field="serial"), 422, "invalid-input"),
        (NotFoundError("no code with that fingerprint"), 404, "not-found"),
        (ConflictError("code already sold", code="already-sold"), 409, "already-sold"),
    ],
)
def test_domain_errors_map_to_status_and_code(
    app: Flask, error: Exception, status: int, code: str
) -> None:
    response = _raising_app(app, error).get("/api/v1/_raise")
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["code"] == code
    assert body["detail"] == str(error)


def test_field_is_reported_for_validation_errors(app: Flask) -> None:
    response = _raising_app(app, ValidationError("bad", field="serial")).get("/api/v1/_raise")
    assert response.get_json()["field"] == "serial"


def test_unexpected_error_hides_its_message(app: Flask) -> None:
    client = _raising_app(app, RuntimeError("PIN 1234-5678 leaked"))
    response = client.get("/api/v1/_raise")
    assert response.status_code == 500
    assert response.get_json()["code"] == "internal-error"
    assert b"1234-5678" not in response.data


def test_oversized_body_is_refused(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 10

    @app.post("/api/v1/_echo")
    def _echo() -> str:
        return str(len(request.get_data()))

    response = app.test_client().post("/api/v1/_echo", data=b"x" * 100)
    assert response.status_code == 413
    assert response.get_json()["code"] == "payload-too-large"


def test_instance_row_written_in_a_test_is_rolled_back(session: Session) -> None:
    _, created = ensure_identity(session, "example.test/log", datetime.now(UTC))
    assert created
    assert session.get(InstanceInfo, 1) is not None

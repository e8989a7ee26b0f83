"""The JSON API's OpenAPI description: complete, valid, served, read by people, and
honoured by the app (schemathesis against the WSGI app: no server error, no answer that
breaks the schema)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy.orm import Session

from tests.api_support import machine_client
from tests.codes_support import ISSUER, PRODUCT, SHOP, build_chain, pin, serial
from tests.ledger_support import NOW, register_party
from tests.onboarding_support import ApplicationPayload
from tests.personal_keys_support import personal_key
from webapp.accounts.apikeys import create_key
from webapp.accounts.roles import Role, Scope
from webapp.openapi import API_KEY, CSRF, SECURITY_SCHEMES, SESSION, api_rules, build_document
from webapp.runtime import current_runtime

DOCUMENT = "/api/openapi.json"


def _path_of(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_api_route_is_described(app: Flask) -> None:
    document = build_document(app)
    rules = api_rules(app)
    assert len(rules) > 40
    for rule in rules:
        item = document["paths"][_path_of(rule.rule)]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in item, (rule.rule, method)


def test_the_description_is_valid_openapi_3_1(client: FlaskClient) -> None:
    response = client.get(DOCUMENT)
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_a_view_s_body_model_and_credentials_are_described(app: Flask) -> None:
    document = build_document(app)
    verify = document["paths"]["/api/v1/codes/verify"]["post"]
    schema = verify["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/VerifyRequest"}
    decide = document["paths"]["/api/v1/alerts/{alert_id}/decision"]["post"]
    assert decide["security"] == [{API_KEY: []}, {SESSION: [], CSRF: []}]
    assert decide["parameters"][0]["schema"]["type"] == "integer"
    notices = document["paths"]["/api/v1/partners/{partner}/notices"]["post"]
    assert notices["security"] == [{API_KEY: []}]
    problem = decide["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}


def test_the_only_credentials_are_an_api_key_or_a_session_with_csrf(app: Flask) -> None:
    document = build_document(app)
    assert set(document["components"]["securitySchemes"]) == {API_KEY, SESSION, CSRF}
    assert SECURITY_SCHEMES[API_KEY]["bearerFormat"] == "ctk_<key id>_<secret>"
    for item in document["paths"].values():
        for operation in item.values():
            for requirement in operation.get("security", []):
                assert requirement in ({API_KEY: []}, {SESSION: [], CSRF: []})


def test_two_models_of_one_name_keep_their_own_schemas(app: Flask) -> None:
    schemas = build_document(app)["components"]["schemas"]
    alerts = schemas["webapp__api_analysis__DecisionRequest"]
    onboarding = schemas["webapp__api_onboarding__DecisionRequest"]
    assert "status" in alerts["properties"] and "decision" in onboarding["properties"]


def test_the_documentation_page_lists_operations_without_inline_script(
    client: FlaskClient,
) -> None:
    response = client.get("/api/docs")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "POST /api/v1/codes/verify" in page and 'id="schema-VerifyRequest"' in page
    assert (
        "<script" not in page
        and "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    )


def test_the_description_needs_no_credential(client: FlaskClient) -> None:
    assert client.get(DOCUMENT, headers={"Authorization": "Bearer nobody"}).status_code == 200


def _conforms(document: dict[str, Any], model: str, answer: Any) -> None:
    schema = {**document, "$ref": f"#/components/schemas/{model}"}
    Draft202012Validator(schema).validate(answer)


def test_a_real_verdict_and_code_status_match_their_schemas(app: Flask, session: Session) -> None:
    with app.app_context():
        build_chain(session, current_runtime().ledger)
        session.flush()
    client = machine_client(app, session)
    document = client.get(DOCUMENT).get_json()
    code = {"issuer": ISSUER, "product": PRODUCT, "serial": serial(1), "pin": pin(1)}
    single = client.post("/api/v1/codes/verify", json={"merchant": SHOP, "code": code})
    assert single.status_code == 200 and single.get_json()["custody"]
    _conforms(document, "VerifyAnswer", single.get_json())
    batch = client.post(
        "/api/v1/codes/verify-batch", json={"merchant": SHOP, "items": [{"code": code}]}
    )
    _conforms(document, "VerifyBatchAnswer", batch.get_json())
    status = client.get(f"/api/v1/codes/{single.get_json()['fingerprint']}")
    assert status.status_code == 200
    _conforms(document, "CodeStatusAnswer", status.get_json())


def test_ledger_keys_and_a_case_s_answers_match_their_schemas(
    client: FlaskClient, session: Session, credentials: dict[str, str]
) -> None:
    document = client.get(DOCUMENT).get_json()
    officer = {"Authorization": f"Bearer {credentials[ANALYST]}"}
    _conforms(document, "LedgerKeys", client.get("/api/v1/ledger/keys").get_json())
    opened = client.post("/api/v1/cases", json={"title": "Fan-in"}, headers=officer)
    assert opened.status_code == 201
    case_id = opened.get_json()["id"]
    listed = client.get("/api/v1/cases", headers=officer).get_json()
    assert listed["cases"]
    _conforms(document, "CaseList", listed)
    entries = client.get(f"/api/v1/cases/{case_id}/entries", headers=officer).get_json()
    _conforms(document, "CaseEntries", entries)


# --- schemathesis ------------------------------------------------------------------------


@pytest.fixture()
def credentials(app: Flask, session: Session) -> dict[str, str]:
    """Personal API keys of staff (an approver for onboarding and risk, an analyst for
    alerts and cases), and an API key of the platform's party."""
    with app.app_context():
        ledger = current_runtime().ledger
        ledger.ensure_genesis(session, name="test", now=NOW)
        party = ledger.platform.party
    register_party(session, ledger, FUZZ_SHOP, kind="merchant", now=NOW)
    key = create_key(session, "fuzz", party, frozenset(Scope), now=NOW, actor="root.admin").token
    session.flush()
    return {
        APPROVER: personal_key(app, session, "chen.approver", Role.APPROVER),
        ANALYST: personal_key(app, session, "sun.analyst", Role.ANALYST),
        MERCHANT: personal_key(app, session, "fuzz.owner", Role.MERCHANT, party=FUZZ_SHOP),
        API_KEY: key,
    }


APPROVER, ANALYST, MERCHANT = "approver", "analyst", "merchant"
FUZZ_SHOP = "shop-fuzz"
# Which personal key acts on which officer API (a machine's key is refused there).
_PERSONAL_BY_PREFIX = {
    "/api/v1/onboarding": APPROVER,
    "/api/v1/risk": APPROVER,
    "/api/v1/alerts": ANALYST,
    "/api/v1/cases": ANALYST,
}


# Examples per operation and per generation mode: 46 operations, twice, stay within
# about a minute on a loaded two-core machine.
EXAMPLES = 12


def _headers(operation: Any, credentials: dict[str, str]) -> dict[str, str]:
    for prefix, holder in _PERSONAL_BY_PREFIX.items():
        if operation.path.startswith(prefix):
            return {"Authorization": f"Bearer {credentials[holder]}"}
    security = operation.definition.raw.get("security", [])
    for requirement in security:
        for name in requirement:
            if name in credentials:
                return {"Authorization": f"Bearer {credentials[name]}"}
    return {}


def _exercise(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            headers=headers, checks=[not_a_server_error, response_schema_conformance]
        )

    run()


@pytest.mark.slow
def test_the_api_honours_its_description(app: Flask, credentials: dict[str, str]) -> None:
    """Every operation, with valid and with invalid input, as an officer (or with an API
    key where the operation takes one): no 5xx, and every answer matches its schema."""
    # Objects with small ids, which hypothesis tries early, so that the operations on an
    # application or a case reach their objects and not only a 404.
    client = app.test_client()
    officer = {"Authorization": f"Bearer {credentials[ANALYST]}"}
    merchant = {"Authorization": f"Bearer {credentials[MERCHANT]}"}
    created = client.post(
        "/api/v1/onboarding/applications",
        json=ApplicationPayload(merchant=FUZZ_SHOP),
        headers=merchant,
    )
    opened = client.post("/api/v1/cases", json={"title": "Fan-in"}, headers=officer)
    assert created.status_code == 201 and opened.status_code == 201
    loaded = schemathesis.openapi.from_wsgi(DOCUMENT, app)
    failures: list[str] = []
    exercised = 0
    for result in loaded.get_all_operations():
        operation = result.ok()
        headers = _headers(operation, credentials)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _exercise(operation, mode, headers)
            except Unsatisfiable:
                continue  # nothing about this operation can be made invalid
            except (Exception, BaseExceptionGroup) as e:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {e}")
        exercised += 1
    assert exercised == len(api_rules(app))
    assert failures == [], "\n\n".join(failures)


def test_an_id_beyond_what_the_database_holds_matches_no_route(
    client: FlaskClient, credentials: dict[str, str]
) -> None:
    response = client.get(
        f"/api/v1/alerts/{2**64}", headers={"Authorization": f"Bearer {credentials[ANALYST]}"}
    )
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"

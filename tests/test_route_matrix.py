# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Every route of the app × every role: each gets exactly what it may.

The table below is the access policy, written out: a route added without a line here
fails :func:`test_every_route_has_a_declared_policy`. Each route is requested as nobody
and as each role (path parameters filled with ids that do not exist, bodies empty), and
the answer is classed as

- ``U``: refused as unauthenticated (401, or a page's redirect to the sign-in page);
- ``F``: forbidden (403), and nothing written;
- ``A``: let through to the view (its page, a redirect after the action, or the view's
  own answer to the empty input or the unknown id: 400, 404, 409, 422).

Another merchant's objects are 404 (tested below with a real application, and in the
pages' own tests for every merchant route).
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.routing import Rule

from provenance.ledger import LedgerEntry
from tests.onboarding_support import credit_code
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    OTHER_SHOP,
    PASSWORD,
    SHOP,
    Accounts,
    accounts,
    csrf_token,
    enrol,
    sign_in_as,
    web,
)
from webapp.accounts.roles import Role

# Columns: nobody, merchant, reviewer, approver, analyst, auditor, administrator.
COLUMNS: tuple[Role | None, ...] = (None, *Role)
EXPECTED = {
    "accounts.enrol GET": "U A A A A A A",
    "accounts.enrol_post POST": "U A A A A A A",
    "accounts.home GET": "U A A A A A A",
    "accounts.language POST": "A A A A A A A",
    "accounts.own_second_factor GET": "U A A A A A A",
    "accounts.own_second_factor_post POST": "U U A A A A A",
    "accounts.second_factor GET": "U A A A A A A",
    "accounts.second_factor_post POST": "U A A A A A A",
    "accounts.sign_in GET": "A A A A A A A",
    "accounts.sign_in_post POST": "U U U U U U U",
    "accounts.sign_out POST": "U A A A A A A",
    "accounts_admin.account_action POST": "U F F F F F A",
    "accounts_admin.api_key_action POST": "U F F F F F A",
    "accounts_admin.api_keys GET": "U F F F F F A",
    "accounts_admin.change_role POST": "U F F F F F A",
    "accounts_admin.create_api_key POST": "U F F F F F A",
    "accounts_admin.create_user POST": "U F F F F F A",
    "accounts_admin.users GET": "U F F F F F A",
    "analysis_api.decision POST": "U F F F A F F",
    "analysis_api.index GET": "U F A A A A F",
    "analysis_api.show GET": "U F A A A A F",
    "cases_api.assignment POST": "U F F F A F F",
    "cases_api.attachments POST": "U F F F A F F",
    "cases_api.create POST": "U F F F A F F",
    "cases_api.entries GET": "U F F F A A F",
    "cases_api.evidence_archive GET": "U F F F A A F",
    "cases_api.evidence_export POST": "U F F F A F F",
    "cases_api.evidence_status GET": "U F F F A A F",
    "cases_api.index GET": "U F F F A A F",
    "cases_api.members POST": "U F F F A F F",
    "cases_api.notes POST": "U F F F A F F",
    "cases_api.show GET": "U F F F A A F",
    "cases_api.status POST": "U F F F A F F",
    "codes_api.append_entries POST": "U A F F F F F",
    "codes_api.code_status GET": "U A A A A A F",
    "codes_api.verify POST": "U A A A A A F",
    "codes_api.verify_batch POST": "U A A A A A F",
    "health.healthz GET": "A A A A A A A",
    "ledger_api.checkpoint_at GET": "A A A A A A A",
    "ledger_api.consistency_proof GET": "A A A A A A A",
    "ledger_api.entry GET": "A A A A A A A",
    "ledger_api.inclusion_proof GET": "A A A A A A A",
    "ledger_api.keys GET": "A A A A A A A",
    "ledger_api.latest_checkpoint GET": "A A A A A A A",
    "onboarding_api.add_document POST": "U A A A F F F",
    "onboarding_api.answer POST": "U A A A F F F",
    "onboarding_api.ask POST": "U A A A F F F",
    "onboarding_api.change_application PATCH": "U A A A F F F",
    "onboarding_api.create_application POST": "U A F F F F F",
    "onboarding_api.decide POST": "U A A A F F F",
    "onboarding_api.decide_hit POST": "U A A A F F F",
    "onboarding_api.list_hits GET": "U A A A A A F",
    "onboarding_api.queue GET": "U F A A A A F",
    "onboarding_api.recommend POST": "U A A A F F F",
    "onboarding_api.reinstate POST": "U A A A F F F",
    "onboarding_api.rerun_checks POST": "U A A A F F F",
    "onboarding_api.show_application GET": "U A A A A A F",
    "onboarding_api.start_review POST": "U A A A F F F",
    "onboarding_api.submit POST": "U A A A F F F",
    "onboarding_api.suspend POST": "U A A A F F F",
    "onboarding_api.terminate POST": "U A A A F F F",
    "openapi.docs_page GET": "A A A A A A A",
    "openapi.openapi_json GET": "A A A A A A A",
    "pages_alerts.add_note POST": "U F F F A F F",
    "pages_alerts.alerts GET": "U F A A A A F",
    "pages_alerts.decision POST": "U F F F A F F",
    "pages_alerts.detail GET": "U F A A A A F",
    "pages_applications.ask POST": "U F A A F F F",
    "pages_applications.decide POST": "U F A A F F F",
    "pages_applications.decide_hit POST": "U F A A F F F",
    "pages_applications.detail GET": "U F A A A A F",
    "pages_applications.download_document GET": "U F A A A A F",
    "pages_applications.queue GET": "U F A A A A F",
    "pages_applications.recommend POST": "U F A A F F F",
    "pages_applications.reinstate POST": "U F A A F F F",
    "pages_applications.run_checks POST": "U F A A F F F",
    "pages_applications.start_review POST": "U F A A F F F",
    "pages_applications.suspend POST": "U F A A F F F",
    "pages_applications.terminate POST": "U F A A F F F",
    "pages_codes.lookup GET": "U A A A A A F",
    "pages_codes.lookup_post POST": "U A A A A A F",
    "pages_dashboard.dashboard GET": "U F A A A A A",
    "pages_imports.imports GET": "U F F F F F A",
    "pages_imports.report GET": "U F F F F F A",
    "pages_imports.start_import POST": "U F F F F F A",
    "pages_ledger.checkpoints GET": "U F A A A A A",
    "pages_ledger.consistency GET": "U F A A A A A",
    "pages_ledger.entries GET": "U F A A A A A",
    "pages_ledger.entry GET": "U F A A A A A",
    "pages_merchant.answer POST": "U A F F F F F",
    "pages_merchant.create_application POST": "U A F F F F F",
    "pages_merchant.detail GET": "U A F F F F F",
    "pages_merchant.download_document GET": "U A F F F F F",
    "pages_merchant.edit_application GET": "U A F F F F F",
    "pages_merchant.new_application GET": "U A F F F F F",
    "pages_merchant.overview GET": "U A F F F F F",
    "pages_merchant.save_application POST": "U A F F F F F",
    "pages_merchant.submit POST": "U A F F F F F",
    "pages_merchant.upload_document POST": "U A F F F F F",
    "pages_rules.approve POST": "U F F A F F F",
    "pages_rules.backtest_result GET": "U F F A A A F",
    "pages_rules.new_rule GET": "U F F A A F F",
    "pages_rules.propose POST": "U F F A A F F",
    "pages_rules.rule_versions GET": "U F F A A A F",
    "pages_rules.rules GET": "U F F A A A F",
    "pages_rules.start_backtest POST": "U F F A A F F",
    "pages_tasks.analysis GET": "U F F F A F F",
    "pages_tasks.archive GET": "U F A A A A A",
    "pages_tasks.evidence GET": "U F F F A F F",
    "pages_tasks.progress GET": "U F A A A A A",
    "pages_tasks.progress_json GET": "U F A A A A A",
    "pages_tasks.start_analysis POST": "U F F F A F F",
    "pages_tasks.start_evidence POST": "U F F F A F F",
    "partners_api.post_notices POST": "U U U U U U U",
    "problems.describe GET": "A A A A A A A",
    "risk_api.approve POST": "U F F A F F F",
    "risk_api.check POST": "U F F A A F F",
    "risk_api.list_rules GET": "U F F A A A F",
    "risk_api.propose POST": "U F F A A F F",
    "risk_api.rule_versions GET": "U F F A A A F",
    "risk_api.run_backtest POST": "U F F A A F F",
}
# Requests that change the signed-in session itself go last.
SESSION_CHANGING = (
    "accounts.own_second_factor_post",
    "accounts.enrol_post",
    "accounts.second_factor_post",
    "accounts.language",
    "accounts.sign_in_post",
    "accounts.sign_out",
)
IGNORED = ("static",)  # files; and the accounts fixture's probe_* test endpoints


def _routes(app: Flask) -> list[tuple[Rule, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in IGNORED or rule.endpoint.startswith("probe_"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule, method))
    order = {name: i for i, name in enumerate(SESSION_CHANGING)}
    return sorted(found, key=lambda r: (order.get(r[0].endpoint, -1), r[0].endpoint, r[1]))


def _path(rule: Rule) -> str:
    """The rule's path with every parameter an id or a name that does not exist."""
    path = re.sub(r"<int[^>]*:\w+>", "999999", rule.rule)
    return re.sub(r"<(?:\w+:)?\w+>", "no-such-thing", path)


def test_every_route_has_a_declared_policy(app: Flask) -> None:
    declared = set(EXPECTED)
    routed = {f"{rule.endpoint} {method}" for rule, method in _routes(app)}
    assert sorted(routed - declared) == [], "declare who may use these routes"
    assert sorted(declared - routed) == [], "these routes are gone: remove their lines"


def _sign_in(accounts: Accounts, client: FlaskClient, role: Role | None) -> None:
    if role is None:
        return
    username = f"{role.value}.matrix"
    sign_in_as(accounts, client, role, username)


def _classify(status: int, location: str, signed_in: bool) -> str:
    if status == 401 or (not signed_in and status == 302 and "/sign-in" in location):
        return "U"
    if status == 403:
        return "F"
    assert status < 500, status
    return "A"


def _entries(accounts: Accounts) -> int:
    return int(accounts.session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


@pytest.mark.parametrize("role", COLUMNS, ids=lambda r: r.value if r else "nobody")
def test_each_role_gets_exactly_what_it_may(
    accounts: Accounts, web: FlaskClient, role: Role | None
) -> None:
    _sign_in(accounts, web, role)
    token = csrf_token(web, "/" if role else "/sign-in")
    column = COLUMNS.index(role)
    got, wanted = {}, {}
    for rule, method in _routes(accounts.app):
        name = f"{rule.endpoint} {method}"
        before = _entries(accounts)
        headers = {"X-CSRFToken": token}
        if "_api." in rule.endpoint:
            response = web.open(_path(rule), method=method, json={}, headers=headers)
        else:
            body = {"csrf_token": token}
            response = web.open(_path(rule), method=method, data=body, headers=headers)
        got[name] = _classify(
            response.status_code, response.headers.get("Location", ""), role is not None
        )
        wanted[name] = EXPECTED[name].split()[column]
        if got[name] != "A":
            assert _entries(accounts) == before, f"{name} wrote to the ledger while refusing"
    assert {k: v for k, v in got.items() if v != wanted[k]} == {}


def test_a_merchant_never_reaches_another_merchants_application(
    accounts: Accounts, web: FlaskClient
) -> None:
    from merchant_onboarding.applications import ApplicationInput
    from webapp.onboarding import onboarding_service
    from webapp.runtime import current_runtime

    with accounts.app.app_context():
        service = onboarding_service()
        theirs = service.create(
            accounts.session,
            ApplicationInput(
                merchant=OTHER_SHOP, legal_name="Other Shop Ltd", credit_code=credit_code(7)
            ),
            now=current_runtime().now(),
        ).application.id
        accounts.session.flush()
    _sign_in(accounts, web, Role.MERCHANT)
    token = csrf_token(web, "/")
    assert "Other Shop Ltd" not in web.get("/merchant").get_data(as_text=True)
    for path in (f"/merchant/applications/{theirs}", f"/merchant/applications/{theirs}/edit"):
        assert web.get(path).status_code == 404
    for suffix in ("", "/submit", "/answers", "/documents"):
        refused = web.post(f"/merchant/applications/{theirs}{suffix}", data={"csrf_token": token})
        assert refused.status_code == 404
    api = f"/api/v1/onboarding/applications/{theirs}"
    assert web.get(api).status_code == 404
    assert web.get(f"{api}/hits").status_code == 404
    changed = web.patch(api, json={"legal_name": "Mine now"}, headers={"X-CSRFToken": token})
    assert changed.status_code == 404
    submitted = web.post(f"{api}/submit", json={}, headers={"X-CSRFToken": token})
    assert submitted.status_code == 404

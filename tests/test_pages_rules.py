# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Pages: risk rules. Writing a rule (refused with the error's position, nothing saved),
four eyes, shadow mode, trying a draft on a sample sale, the backtest as a task, roles."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from provenance.ledger import LedgerEntry
from provenance.risk.rules import RiskRuleVersion, RuleMode, active_specs
from tests.codes_support import SHOP as SALE_SHOP
from tests.codes_support import build_chain, sale_body
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
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
from webapp.runtime import current_runtime
from webapp.task_runs import TaskRun

RUN_RE = re.compile(r"/tasks/([0-9a-f]{32})$")


def sign_in(accounts: Accounts, client: FlaskClient, role: Role, name: str = "one") -> str:
    username = f"{role.value}.{name}"
    sign_in_as(accounts, client, role, username)
    return username


def other_client(accounts: Accounts, role: Role, name: str) -> FlaskClient:
    """Another browser, from an address of its own (sign-in is rate-limited by address)."""
    client = accounts.app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"192.0.2.{sum(map(ord, role.value + name)) % 250 + 1}"
    sign_in(accounts, client, role, name)
    return client


def draft(**changes: Any) -> dict[str, str]:
    fields = {
        "rule": "instrument-many-buyers",
        "condition": "instrument.distinct_buyers_24h >= 2",
        "action": "block",
        "reason": "instrument-many-buyers",
        "en": "This card was used by several buyers.",
        "zh": "该支付卡被多个买家使用。",
        "mode": "enforce",
        "intent": "propose",
    }
    fields.update(changes)
    return fields


def post(client: FlaskClient, path: str, data: dict[str, str]) -> Any:
    return client.post(path, data={"csrf_token": csrf_token(client, "/"), **data})


def entries(accounts: Accounts) -> int:
    return int(accounts.session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def versions(accounts: Accounts) -> list[RiskRuleVersion]:
    return list(accounts.session.scalars(select(RiskRuleVersion)))


# --- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_exactly_the_rules_pages_it_may(
    accounts: Accounts, web: FlaskClient, role: Role
) -> None:
    sign_in(accounts, web, role)
    reads = role in (Role.ANALYST, Role.APPROVER, Role.AUDITOR)
    writes = role in (Role.ANALYST, Role.APPROVER)
    assert web.get("/rules").status_code == (200 if reads else 403)
    assert web.get("/rules/burst-buyer/versions").status_code == (200 if reads else 403)
    assert web.get("/rules/new").status_code == (200 if writes else 403)
    assert web.get("/rules/new?rule=burst-buyer").status_code == (200 if writes else 403)
    before = entries(accounts)
    proposed = post(web, "/rules/new", draft())
    assert proposed.status_code == (303 if writes else 403)
    assert (entries(accounts) > before) is writes
    backtest = post(web, "/rules/backtest", {"rule": "burst-buyer", "version": "0"})
    assert backtest.status_code == (303 if writes else 403)
    approve = post(web, "/rules/instrument-many-buyers/versions/1/approve", {})
    # Only an approver approves (and never its own version); everyone else is refused.
    assert approve.status_code == (409 if role is Role.APPROVER else 403)


def test_the_auditor_reads_the_rules_without_any_action_form(
    accounts: Accounts, web: FlaskClient
) -> None:
    writer = other_client(accounts, Role.ANALYST, "writer")
    post(writer, "/rules/new", draft())
    sign_in(accounts, web, Role.AUDITOR)
    page = web.get("/rules").get_data(as_text=True)
    assert "burst-buyer" in page and "instrument-many-buyers" in page
    assert "/approve" not in page and 'id="new-rule"' not in page
    rule_page = web.get("/rules/instrument-many-buyers/versions").get_data(as_text=True)
    assert "backtest-form" not in rule_page and "/approve" not in rule_page
    assert post(web, "/rules/instrument-many-buyers/versions/1/approve", {}).status_code == 403
    assert versions(accounts)[0].status == "pending"


def test_an_unknown_rule_is_not_found(accounts: Accounts, web: FlaskClient) -> None:
    sign_in(accounts, web, Role.ANALYST)
    assert web.get("/rules/no-such-rule/versions").status_code == 404
    assert web.get("/rules/new?rule=no-such-rule").status_code == 404


# --- the active rules and the versions ----------------------------------------------------


def test_the_rules_page_lists_the_rules_in_force_with_both_sentences(
    accounts: Accounts, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    page = web.get("/rules").get_data(as_text=True)
    assert 'id="active-rules"' in page
    assert "buyer.count_1m &gt;= 6 || buyer.count_1h &gt;= 30" in page
    assert "This buyer made too many purchases in a short time." in page
    assert "该买家在短时间内购买次数过多。" in page
    assert 'href="/static/css/rules.css"' in page


# --- writing a rule: refusals --------------------------------------------------------------

BAD_CONDITIONS = [
    # (condition, field, code message, line, column)
    ("buyer.count_1m >= ", "condition", "check its syntax", 1, 18),
    (
        "buyer.count_1m >= 3 &&\r\n  buyer.cnt_1h > 2",
        "condition",
        "feature that does not exist",
        2,
        9,
    ),
    ('buyer.count_1m > "many"', "condition", "wrong type", 1, 16),
]


@pytest.mark.parametrize(("condition", "field", "message", "line", "column"), BAD_CONDITIONS)
def test_a_bad_condition_is_refused_with_its_position_and_nothing_saved(
    accounts: Accounts,
    web: FlaskClient,
    condition: str,
    field: str,
    message: str,
    line: int,
    column: int,
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    before = entries(accounts)
    response = post(web, "/rules/new", draft(condition=condition))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'id="error-{field}"' in page and message in page
    assert f"Line {line}, column {column}." in page
    assert 'id="error-position"' in page and '<mark class="error-at">' in page
    assert f'data-error-line="{line}" data-error-column="{column}"' in page
    assert entries(accounts) == before and versions(accounts) == []


def test_the_marked_position_is_the_character_the_checker_named(
    accounts: Accounts, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    page = post(web, "/rules/new", draft(condition="buyer.count_1m >= 3 && buyer.nope")).get_data(
        as_text=True
    )
    marked = re.search(r'<span class="source-line has-error">.*?</span>(.*?)<mark', page)
    assert marked and marked.group(1) == "buyer.count_1m &gt;= 3 &amp;&amp; buyer."


def test_an_unknown_action_is_refused_under_the_action_field(
    accounts: Accounts, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.APPROVER)
    before = entries(accounts)
    response = post(web, "/rules/new", draft(action="allow"))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="error-action"' in page and "The action must be review or block." in page
    assert entries(accounts) == before and versions(accounts) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"zh": "no chinese here"}, "zh"), ({"rule": "Bad Id"}, "rule"), ({"mode": "loud"}, "mode")],
)
def test_other_bad_fields_are_refused_under_their_field(
    accounts: Accounts, web: FlaskClient, changes: dict[str, str], field: str
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    before = entries(accounts)
    response = post(web, "/rules/new", draft(**changes))
    assert response.status_code == 422
    assert f'id="error-{field}"' in response.get_data(as_text=True)
    assert entries(accounts) == before and versions(accounts) == []


def test_what_was_typed_comes_back_escaped(accounts: Accounts, web: FlaskClient) -> None:
    sign_in(accounts, web, Role.ANALYST)
    page = post(
        web, "/rules/new", draft(condition="<script>alert(1)</script>", en="<b>x</b>")
    ).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;" in page


# --- four eyes ---------------------------------------------------------------------------


def test_a_valid_version_waits_until_a_different_officer_approves_it(
    accounts: Accounts, web: FlaskClient
) -> None:
    author = sign_in(accounts, web, Role.APPROVER)
    response = post(web, "/rules/new", draft())
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/rules/instrument-many-buyers/versions")
    [row] = versions(accounts)
    assert (row.version, row.status, row.author) == (1, "pending", author)
    in_force = {s.id: s.version for s in active_specs(accounts.session)}
    assert in_force["instrument-many-buyers"] == 0
    page = web.get("/rules/instrument-many-buyers/versions").get_data(as_text=True)
    assert "Awaiting approval" in page and "a different officer must approve it" in page

    refused = post(web, "/rules/instrument-many-buyers/versions/1/approve", {})
    assert refused.status_code == 409
    assert "You wrote version 1 of instrument-many-buyers" in refused.get_data(as_text=True)
    accounts.session.expire_all()
    assert versions(accounts)[0].status == "pending"

    analyst = other_client(accounts, Role.ANALYST, "second")
    assert post(analyst, "/rules/instrument-many-buyers/versions/1/approve", {}).status_code == 403
    second = other_client(accounts, Role.APPROVER, "second")
    approved = post(second, "/rules/instrument-many-buyers/versions/1/approve", {})
    assert approved.status_code == 303
    accounts.session.expire_all()
    [row] = versions(accounts)
    assert (row.status, row.approved_by) == ("active", "approver.second")
    in_force = {s.id: s.version for s in active_specs(accounts.session)}
    assert in_force["instrument-many-buyers"] == 1
    listed = second.get("/rules").get_data(as_text=True).split('id="active-rules"')[1]
    row = listed.split('href="/rules/instrument-many-buyers/versions"')[1].split("</tr>")[0]
    assert f"<td>{author}</td>" in row and "approver.second" in row
    again = post(second, "/rules/instrument-many-buyers/versions/1/approve", {})
    assert again.status_code == 409


def test_a_new_version_starts_from_the_rule_in_force(accounts: Accounts, web: FlaskClient) -> None:
    sign_in(accounts, web, Role.ANALYST)
    page = web.get("/rules/new?rule=burst-ip").get_data(as_text=True)
    assert 'value="burst-ip"' in page and "ip.count_1m &gt;= 12" in page


# --- shadow mode ---------------------------------------------------------------------------


def test_a_shadow_version_runs_in_shadow_once_approved(
    accounts: Accounts, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    post(
        web,
        "/rules/new",
        draft(
            rule="big-amount", reason="big-amount", mode="shadow", condition="sale.amount >= 1000.0"
        ),
    )
    approver = other_client(accounts, Role.APPROVER, "two")
    assert post(approver, "/rules/big-amount/versions/1/approve", {}).status_code == 303
    spec = next(s for s in active_specs(accounts.session) if s.id == "big-amount")
    assert spec.mode is RuleMode.SHADOW
    page = web.get("/rules").get_data(as_text=True)
    assert 'class="mode-shadow"' in page and "Shadow (recorded, never enforced)" in page


# --- trying a draft on a sample sale -------------------------------------------------------


def sample(**features: str) -> dict[str, str]:
    return {f"sample.{name}": value for name, value in features.items()}


def test_trying_a_draft_shows_what_it_decides_and_saves_nothing(
    accounts: Accounts, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    before = entries(accounts)
    fields = draft(
        rule="many-quick", reason="many-quick", condition="buyer.count_1m >= 3", intent="try"
    ) | sample(**{"buyer.count_1m": "4"})
    response = post(web, "/rules/new", fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="trial-result"' in page and "The rule fires: Block." in page
    assert re.search(r'id="decision-now">Allow<', page)
    assert re.search(r'id="decision-with">Block<', page)
    assert entries(accounts) == before and versions(accounts) == []

    quiet = post(web, "/rules/new", fields | sample(**{"buyer.count_1m": "2"}))
    assert "The rule does not fire on this sale." in quiet.get_data(as_text=True)


def test_a_shadow_draft_fires_without_changing_the_decision(
    accounts: Accounts, web: FlaskClient
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    fields = draft(
        rule="many-quick",
        reason="many-quick",
        condition="buyer.count_1m >= 3",
        mode="shadow",
        intent="try",
    ) | sample(**{"buyer.count_1m": "4"})
    page = post(web, "/rules/new", fields).get_data(as_text=True)
    assert "in shadow mode: recorded, not enforced" in page
    assert re.search(r'id="decision-with">Allow<', page)


def test_the_sample_sale_runs_the_rules_in_force_too(accounts: Accounts, web: FlaskClient) -> None:
    sign_in(accounts, web, Role.ANALYST)
    fields = draft(intent="try") | sample(**{"instrument.tainted": "1"})
    page = post(web, "/rules/new", fields).get_data(as_text=True)
    assert re.search(r'id="decision-now">Block<', page) and "instrument-stolen" in page


def test_a_bad_sample_value_is_refused(accounts: Accounts, web: FlaskClient) -> None:
    sign_in(accounts, web, Role.ANALYST)
    fields = draft(intent="try") | sample(**{"sale.amount": "lots"})
    response = post(web, "/rules/new", fields)
    assert response.status_code == 422
    assert "sale.amount must be a number." in response.get_data(as_text=True)


# --- the backtest --------------------------------------------------------------------------


def record_sales(accounts: Accounts) -> None:
    with accounts.app.app_context():
        chain = build_chain(accounts.session, current_runtime().ledger)
        for i in range(4):
            chain.append(
                accounts.session, SALE_SHOP, "code.sale", sale_body(i, instrument="card-1")
            )


def test_the_backtest_runs_as_a_task_and_shows_its_result_by_day_and_merchant(
    accounts: Accounts, web: FlaskClient
) -> None:
    record_sales(accounts)
    sign_in(accounts, web, Role.ANALYST)
    post(web, "/rules/new", draft())
    form = web.get("/rules/instrument-many-buyers/versions").get_data(as_text=True)
    assert 'id="backtest-form"' in form and '<option value="1"' in form

    started = post(web, "/rules/backtest", {"rule": "instrument-many-buyers", "version": "1"})
    assert started.status_code == 303
    match = RUN_RE.search(started.headers["Location"])
    assert match
    run_id = match.group(1)

    status = web.get(f"/tasks/{run_id}.json").get_json()
    assert status["state"] == "done" and status["done"] == status["total"] == 4
    assert status["result_url"] == f"/rules/backtests/{run_id}"
    progress = web.get(f"/tasks/{run_id}").get_data(as_text=True)
    assert "Finished" in progress and f'href="/rules/backtests/{run_id}"' in progress

    response = web.get(f"/rules/backtests/{run_id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<svg id="backtest-chart"' in page and 'class="bar bar-candidate"' in page
    assert "style=" not in page and "<script>" not in page
    by_merchant = page.split('id="backtest-by-merchant"')[1]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", by_merchant.split("</table>")[0])
    # merchant, sales, blocked now, would block, review now, would review, newly, no longer
    assert cells[:4] == [SALE_SHOP, "4", "2", "3"] and cells[6:8] == ["1", "0"]
    assert 'id="backtest-by-day"' in page
    run = accounts.session.get(TaskRun, run_id)
    assert run is not None and run.started_by == "analyst.one"


def test_someone_elses_backtest_is_not_found(accounts: Accounts, web: FlaskClient) -> None:
    sign_in(accounts, web, Role.ANALYST)
    started = post(web, "/rules/backtest", {"rule": "burst-buyer", "version": "0"})
    run_id = started.headers["Location"].rsplit("/", 1)[1]
    other = other_client(accounts, Role.APPROVER, "other")
    for path in (f"/tasks/{run_id}", f"/tasks/{run_id}.json", f"/rules/backtests/{run_id}"):
        assert other.get(path).status_code == 404
        assert web.get(path).status_code == 200


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"version": "9"}, "version"),
        ({"version": "x"}, "version"),
        ({"version": "0", "since": "yesterday"}, "since"),
        ({"version": "0", "since": "2026-11-20", "until": "2026-11-10"}, "until"),
    ],
)
def test_a_bad_backtest_request_is_refused_and_nothing_starts(
    accounts: Accounts, web: FlaskClient, fields: dict[str, str], field: str
) -> None:
    sign_in(accounts, web, Role.ANALYST)
    response = post(web, "/rules/backtest", {"rule": "burst-buyer", **fields})
    assert response.status_code == 422
    assert f'id="error-{field}"' in response.get_data(as_text=True)
    assert accounts.session.scalar(select(func.count()).select_from(TaskRun)) == 0

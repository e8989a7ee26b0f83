"""In a real browser, the back office's flows end to end: a merchant applies; a reviewer
(signed in with password and TOTP) starts the review and recommends; a different officer,
the approver, approves; the merchant sees the result. An analyst opens an alert and its
evidence graph, drawn by Cytoscape, and triages it."""

from __future__ import annotations

import re
from typing import Any

from stdnum.cn import ric, uscc

from tests.browser.conftest import Browsing

# A company the demo's cast does not use (its credit codes run on serials 101-110), with
# names on no demo watch list.
REGION = "110105"
SERIAL = 907
LEGAL_NAME = "北京测试浏览器科技有限公司"
REP = "欧阳明"
A_PDF = b"%PDF-1.7\n1 0 obj <</Title (licence)>> endobj\ntrailer <<>>\n%%EOF\n"


def credit_code() -> str:
    body = f"91{REGION}{SERIAL:09d}"
    return body + uscc.calc_check_digit(body)


def id_number() -> str:
    body = f"{REGION}19880315{SERIAL % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


APPLICATION = {
    "legal_name": LEGAL_NAME,
    "credit_code": credit_code(),
    "legal_rep_name": REP,
    "legal_rep_id_number": id_number(),
    "registered_address": "北京市朝阳区测试路8号",
    "domain": "browser-test.example.cn",
    "icp_number": "京ICP备39990907号-1",
    "user_agreement_url": "https://browser-test.example.cn/terms",
    "privacy_policy_url": "https://browser-test.example.cn/privacy",
    "clearing_institution": "示例支付有限公司",
    "bank_name": "示例银行",
    "bank_account": "6222020000000990907",
}


def state_of(page: Any) -> str | None:
    value: str | None = page.locator(".page-head [data-state]").first.get_attribute("data-state")
    return value


def submit_form(page: Any, form: str, button: str = "button[type=submit]") -> None:
    """Press ``button`` in ``form`` and wait for the page the server answers with."""
    with page.expect_navigation():
        page.click(f"{form} {button}")


def test_a_merchant_applies_a_reviewer_recommends_an_approver_approves_and_the_merchant_sees_it(
    browse: Browsing,
) -> None:
    # The merchant fills in the application, uploads a document and submits.
    merchant = browse.page_as("merchant")
    merchant.goto("/merchant")
    browse.shot(merchant, "merchant-overview")
    with merchant.expect_navigation():
        merchant.click("#new-application")
    for name, value in APPLICATION.items():
        merchant.fill(f"#f-{name}", value)
    merchant.select_option("#f-fund_custody", "licensed_institution")
    merchant.fill("input[name=owner_name_0]", REP)
    merchant.fill("input[name=owner_share_0]", "100")
    merchant.fill("input[name=owner_id_number_0]", id_number())
    browse.shot(merchant, "merchant-form")
    submit_form(merchant, "#application-form")
    found = re.search(r"/merchant/applications/(\d+)$", merchant.url)
    assert found, merchant.url
    application_id = int(found.group(1))
    assert state_of(merchant) == "draft"
    merchant.select_option("#document-kind", index=0)
    merchant.set_input_files(
        "#document-file", {"name": "licence.pdf", "mimeType": "application/pdf", "buffer": A_PDF}
    )
    submit_form(merchant, "#form-upload")
    assert "licence.pdf" in merchant.inner_text("#documents")
    assert merchant.locator("#missing").count() == 0, merchant.inner_text("#missing")
    submit_form(merchant, "#form-submit")
    assert state_of(merchant) == "submitted", merchant.inner_text("main")
    browse.shot(merchant, "merchant-submitted")

    # The reviewer (password and TOTP) takes it and recommends approval.
    reviewer = browse.page_as("reviewer")
    reviewer.goto("/applications")
    assert reviewer.locator(f"a[href='/applications/{application_id}']").count() > 0
    browse.shot(reviewer, "review-queue")
    reviewer.goto(f"/applications/{application_id}")
    assert LEGAL_NAME in reviewer.inner_text("main h1")
    assert reviewer.locator("#checks tbody tr").count() > 0
    browse.shot(reviewer, "application-submitted")
    submit_form(reviewer, "#form-review")
    assert state_of(reviewer) == "in_review"
    reviewer.select_option("#recommendation-choice", "approve")
    reviewer.fill("#recommend-reasons", "Documents and registry extract agree.")
    submit_form(reviewer, "#form-recommend")
    assert reviewer.locator("#action-error").count() == 0
    assert "demo.reviewer" in reviewer.inner_text("#recommendation")
    # Four eyes: the recommending officer is offered no decision.
    assert reviewer.locator("#form-decide").count() == 0
    browse.shot(reviewer, "application-recommended")

    # A different officer, the approver, approves.
    approver = browse.page_as("approver")
    approver.goto(f"/applications/{application_id}")
    approver.fill("#decide-reasons", "Four eyes: the recommendation holds.")
    submit_form(approver, "#form-decide", "button[name=decision][value=approve]")
    assert approver.locator("#action-error").count() == 0
    assert state_of(approver) == "approved"
    actions = approver.locator("#timeline > li").evaluate_all(
        "items => items.map(li => li.dataset.action)"
    )
    recommended = [i for i, action in enumerate(actions) if action.startswith("recommend")]
    assert recommended and recommended[-1] < actions.index("approve"), actions
    browse.shot(approver, "application-approved")

    # The merchant sees the result.
    merchant.goto(f"/merchant/applications/{application_id}")
    assert state_of(merchant) == "approved"
    assert "Your application is approved." in merchant.inner_text("main")
    assert merchant.locator("#timeline li[data-action=approve]").count() == 1
    browse.shot(merchant, "merchant-sees-approval")
    merchant.goto("/merchant")
    row = merchant.locator(f"#my-applications tr[data-application='{application_id}']")
    assert row.locator("[data-state]").get_attribute("data-state") == "approved"
    browse.shot(merchant, "merchant-overview-approved")


def test_an_analyst_opens_an_alert_and_its_graph(browse: Browsing) -> None:
    analyst = browse.page_as("analyst")
    analyst.goto("/alerts")
    rows = analyst.locator("tr[data-alert-id]")
    assert rows.count() > 0
    browse.shot(analyst, "alerts")
    alert_id = rows.first.get_attribute("data-alert-id")
    with analyst.expect_navigation():
        rows.first.locator("a").first.click()
    assert analyst.url.endswith(f"/alerts/{alert_id}")

    graph = analyst.locator("#alert-graph[data-ready=true]")
    graph.wait_for()
    nodes = int(graph.get_attribute("data-nodes") or 0)
    assert nodes > 0
    drawn = analyst.evaluate(
        """() => {
            const cy = window.cardtraceGraph;
            const canvas = document.querySelector("#alert-graph canvas");
            return {
                nodes: cy.nodes().length,
                edges: cy.edges().length,
                canvas: canvas ? [canvas.width, canvas.height] : null,
            };
        }"""
    )
    assert drawn["nodes"] == nodes
    assert drawn["canvas"] and min(drawn["canvas"]) > 0, drawn
    browse.shot(analyst, "alert-graph")

    # A click on a node lists its attributes beside the graph.
    before = analyst.inner_text("#graph-panel-title")
    x, y = analyst.evaluate(
        """() => {
            const node = window.cardtraceGraph.nodes()[0];
            const box = document.getElementById("alert-graph").getBoundingClientRect();
            const at = node.renderedPosition();
            return [box.left + at.x, box.top + at.y];
        }"""
    )
    analyst.mouse.click(x, y)
    analyst.wait_for_function(
        "before => document.getElementById('graph-panel-title').textContent !== before",
        arg=before,
    )
    assert analyst.locator("#graph-panel-attributes dt").count() > 0
    browse.shot(analyst, "alert-graph-node")

    # The analyst triages it to themself.
    if analyst.locator("#triage-form").count():
        analyst.fill("#triage-note", "Looking into it.")
        submit_form(analyst, "#triage-form")
        assert analyst.get_attribute("#alert-status", "data-status") == "triaged"
        assert "demo.analyst" in analyst.inner_text("#alert-assignee")
        browse.shot(analyst, "alert-triaged")

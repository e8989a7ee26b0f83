"""In a real browser: a code lookup answers with a ``block`` verdict and its reasons, in
English and in Chinese, and the page's "Verify in the browser" check of the inclusion
proofs against the signed checkpoint passes (WebCrypto, webapp/static/js/proof.js)."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.browser.conftest import Browsing
from tests.browser.test_accounts import switch_language

# A code sold once already: the demo's example of a double sale.
DOUBLE_SALE = "already-sold"
CJK = re.compile(r"[\u4e00-\u9fff]")


def demo_example(browse: Browsing, expect: str) -> dict[str, Any]:
    examples = json.loads((browse.site.folder / "instance" / "demo-examples.json").read_text())
    found: dict[str, Any] = next(e for e in examples if e["expect"] == expect)
    return found


def looking_up(browse: Browsing, example: dict[str, Any]) -> Any:
    """A page of the merchant the example's sale is at (the demo's merchant account, when
    it is that shop's), else of an analyst, who names the selling merchant."""
    if browse.site.account("merchant").party == example["merchant"]:
        return browse.page_as("merchant")
    return browse.page_as("analyst")


def look_up(page: Any, example: dict[str, Any]) -> None:
    page.goto("/codes")
    page.fill("#fingerprint", example["fingerprint"])
    if page.locator("#merchant").count():
        page.fill("#merchant", example["merchant"])
    with page.expect_navigation():
        page.click("#code-lookup button[type=submit]")
    page.wait_for_selector("#verdict")


def test_a_code_lookup_shows_a_block_verdict_with_reasons_in_both_languages(
    browse: Browsing,
) -> None:
    example = demo_example(browse, DOUBLE_SALE)
    page = looking_up(browse, example)
    page.goto("/codes")
    page.wait_for_selector("#code-lookup")
    browse.shot(page, "lookup-form")
    look_up(page, example)
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-decision") == "block"
    assert verdict.locator(".decision").text_content() == "Block"
    reasons = page.locator("#reasons li")
    codes = reasons.evaluate_all("items => items.map(li => li.dataset.code)")
    assert DOUBLE_SALE in codes
    english = page.locator(f"#reasons li[data-code={DOUBLE_SALE}]").inner_text()
    assert not CJK.search(english), english
    assert page.locator("#custody tbody tr").count() > 0
    browse.shot(page, "verdict-en")

    # The proofs behind the verdict, checked by the browser against the checkpoint root.
    page.click("#verify-proofs")
    page.wait_for_selector("#proof-summary[data-result=verified]")
    statuses = page.locator(".proof-status").evaluate_all(
        "cells => cells.map(c => c.dataset.result)"
    )
    assert statuses and set(statuses) == {"verified"}, statuses
    browse.shot(page, "verified-in-the-browser")

    switch_language(page, "zh_CN")
    try:
        assert page.get_attribute("html", "lang") == "zh-CN"
        look_up(page, example)
        assert page.locator("#verdict").get_attribute("data-decision") == "block"
        chinese = page.locator(f"#reasons li[data-code={DOUBLE_SALE}]").inner_text()
        assert CJK.search(chinese), chinese
        assert chinese != english
        assert page.locator("#verdict .decision").text_content() == "拦截"
        assert "卡密查询" in page.inner_text("header")
        page.click("#verify-proofs")
        page.wait_for_selector("#proof-summary[data-result=verified]")
        assert CJK.search(page.inner_text("#proof-summary"))
        browse.shot(page, "verdict-zh")
    finally:
        switch_language(page, "en")
    assert page.get_attribute("html", "lang") == "en"


def test_a_tampered_proof_fails_the_check_in_the_browser(browse: Browsing) -> None:
    example = demo_example(browse, DOUBLE_SALE)
    page = looking_up(browse, example)
    look_up(page, example)
    # Flip one bit of the first leaf hash the page embeds, as a forged answer would.
    page.evaluate(
        """() => {
            const block = document.getElementById("proof-data");
            const data = JSON.parse(block.textContent);
            const leaf = atob(data.inclusion[0].leaf_hash);
            const flipped = String.fromCharCode(leaf.charCodeAt(0) ^ 1) + leaf.slice(1);
            data.inclusion[0].leaf_hash = btoa(flipped);
            block.textContent = JSON.stringify(data);
        }"""
    )
    # The button read the data when the page loaded: load the module again on a fresh
    # button so it reads the tampered block.
    page.evaluate(
        """async () => {
            const old = document.getElementById("verify-proofs");
            old.replaceWith(old.cloneNode(true));
            const proof = await import("/static/js/proof.js");
            proof.wireInclusionButton("verify-proofs", "proof-data", "proof-summary");
        }"""
    )
    page.click("#verify-proofs")
    page.wait_for_selector("#proof-summary[data-result=failed]")
    browse.shot(page, "tampered-proof-fails")

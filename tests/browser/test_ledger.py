"""In a real browser: the ledger explorer proves that the latest signed checkpoint extends
an older one, and the browser checks the consistency proof itself (proof.js, WebCrypto)."""

from __future__ import annotations

from tests.browser.conftest import Browsing


def test_the_browser_verifies_the_consistency_of_two_signed_checkpoints(
    browse: Browsing,
) -> None:
    page = browse.page_as("analyst")
    page.goto("/ledger/checkpoints")
    sizes = sorted(
        {
            int(size)
            for size in page.locator("#checkpoints tr[data-size]").evaluate_all(
                "rows => rows.map(row => row.dataset.size)"
            )
        }
    )
    assert len(sizes) >= 2, f"the demo signs more than one checkpoint: {sizes}"
    browse.shot(page, "checkpoints")
    page.goto(f"/ledger/consistency?old={sizes[0]}&new={sizes[-1]}")
    page.wait_for_selector("#consistency")
    assert page.locator("#consistency-proof li").count() > 0
    page.click("#verify-consistency")
    page.wait_for_selector("#consistency-result[data-result=verified]")
    browse.shot(page, "consistency-verified")

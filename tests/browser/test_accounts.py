"""In a real browser: signing in (a merchant with a password; staff with password and
TOTP), the language switcher, and the Content-Security-Policy the pages run under."""

from __future__ import annotations

from tests.browser.conftest import Browsing


def test_a_merchant_signs_in_with_a_password(browse: Browsing) -> None:
    page = browse.new_page()
    page.goto("/sign-in")
    page.wait_for_selector("main form #username")
    browse.shot(page, "sign-in")
    browse.sign_in(page, "merchant")
    page.wait_for_selector("main h1")
    assert page.url.rstrip("/") == browse.site.base_url
    assert "demo.merchant" in page.inner_text("main")
    assert page.inner_text("header .who").endswith("Merchant")
    browse.shot(page, "home")


def test_a_reviewer_signs_in_with_password_and_totp(browse: Browsing) -> None:
    account = browse.site.account("reviewer")
    page = browse.new_page()
    page.goto("/sign-in")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    browse.shot(page, "sign-in")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/sign-in/code")
    code = page.locator("#code")
    assert code.get_attribute("autocomplete") == "one-time-code"
    browse.shot(page, "second-factor")
    code.fill(account.totp())
    page.click("main form button[type=submit]")
    page.wait_for_url(browse.site.base_url + "/")
    assert "demo.reviewer" in page.inner_text("main")
    browse.site.signed_in["reviewer"] = page.context.storage_state()
    browse.shot(page, "home")


def switch_language(page: object, code: str) -> None:
    """Press the header's language button for ``code`` (``en`` or ``zh_CN``)."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    with page.expect_navigation():
        page.click(f"header button[name=language][value={code}]")


def test_the_language_switcher_turns_the_pages_to_chinese_and_back(browse: Browsing) -> None:
    page = browse.new_page()
    page.goto("/sign-in")
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("main h1") == "Sign in"
    switch_language(page, "zh_CN")
    assert page.url.endswith("/sign-in")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("main h1") == "登录"
    assert page.get_attribute("header button[value=zh_CN]", "aria-current") == "true"
    browse.shot(page, "sign-in-zh")
    switch_language(page, "en")
    assert page.inner_text("main h1") == "Sign in"

    # Signed in, the choice is kept as the user's language: every page follows it.
    user = browse.page_as("merchant")
    switch_language(user, "zh_CN")
    try:
        assert user.get_attribute("html", "lang") == "zh-CN"
        assert "退出登录" in user.inner_text("header")
        assert "欢迎" in user.inner_text("main h1")
        browse.shot(user, "home-zh")
        user.goto("/merchant")
        assert user.get_attribute("html", "lang") == "zh-CN"
        browse.shot(user, "merchant-zh")
    finally:
        switch_language(user, "en")
    assert user.get_attribute("html", "lang") == "en"
    assert "Sign out" in user.inner_text("header")
    browse.shot(user, "merchant-en")


def test_the_content_security_policy_is_enforced(browse: Browsing) -> None:
    page = browse.new_page()
    response = page.goto("/sign-in")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    # An injected inline script and style attribute are refused, and the console says so.
    # (The style attribute comes second: once its message is in, both are.)
    with page.expect_console_message(lambda m: "style-src" in m.text):
        ran = page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.injected = true";
                document.body.appendChild(script);
                const div = document.createElement("div");
                div.setAttribute("style", "color: red");
                document.body.appendChild(div);
                return window.injected === true;
            }"""
        )
    assert ran is False
    for directive in ("script-src", "style-src"):
        assert any(directive in v for v in browse.csp_violations), browse.console
    browse.csp_violations.clear()

    # The application's own pages break none of it (the fixture checks the console when
    # the test ends): every page in the navigation of two roles.
    for role in ("analyst", "merchant"):
        staff = browse.page_as(role)
        links = staff.eval_on_selector_all(
            "header .links a", "links => links.map(a => a.getAttribute('href'))"
        )
        for path in ["/", *links]:
            answer = staff.goto(path)
            assert answer is not None and answer.status == 200, path
            staff.wait_for_load_state("load")
            browse.shot(staff, f"{role}-{path.strip('/').replace('/', '-') or 'home'}")

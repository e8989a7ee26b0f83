"""Real-browser tests: Debian's chromium, driven by Playwright for Python, against the real
application in a process of its own.

Once per session: ``cardtrace init`` and ``cardtrace demo --no-serve`` (at a small scale)
make a fresh instance in a temporary folder, with the demo's data and one account per
role, whose passwords and TOTP secrets are read from what the demo prints; then
``cardtrace run`` serves it on a free port of 127.0.0.1 (the local server, whose session
cookies work over plain http). One headless browser serves every test; each test opens
contexts of its own (a fresh cookie jar), and fails if any page it visited reported a
Content-Security-Policy violation on the console.

Each test keeps full-page screenshots of its key pages under
``test-artifacts/screenshots/<test name>/NN-<page>.png`` (from the project's root).

Without Playwright or chromium the tests skip, saying what is missing; with
``CARDTRACE_TEST_REQUIRE_SERVICES=1`` (as CI sets) they fail instead.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pyotp
import pytest

from tests.processes import cardtrace_command, clean_env, free_port, stop, wait_for_http
from tests.services import REQUIRED
from tests.test_demo_accounts import printed

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# Small, but with every kind of demo case: the verdict examples, alerts, the onboarding cast.
DEMO_SCALE = "0.001"
TOTP_STEP_S = 30
# How long one page may take to answer or draw (the shared CI machine is slow at times).
TIMEOUT_MS = 20_000
CSP_MESSAGE = "Content Security Policy"


def missing(what: str) -> NoReturn:
    """Skip for want of ``what``; fail instead when CI says every service must be here."""
    if REQUIRED:
        pytest.fail(f"{what}, and CARDTRACE_TEST_REQUIRE_SERVICES=1 says it must be")
    pytest.skip(what)


@dataclass
class DemoAccount:
    username: str
    role: str
    password: str
    secret: str | None
    # The merchant account's party.
    party: str | None = None
    # The last TOTP time step used: the server accepts each step once.
    last_step: int | None = None

    def totp(self) -> str:
        """A code the server has not seen yet: this step's, or the next one's (it also
        accepts one step ahead, for clock drift)."""
        assert self.secret is not None, f"{self.username} has no second factor"
        step = int(time.time()) // TOTP_STEP_S
        if self.last_step is not None and self.last_step >= step:
            step = self.last_step + 1
        if step > int(time.time()) // TOTP_STEP_S + 1:
            # Both usable steps are spent: only the clock can give a new code.
            time.sleep(TOTP_STEP_S - time.time() % TOTP_STEP_S + 0.1)
            step = int(time.time()) // TOTP_STEP_S
        self.last_step = step
        return pyotp.TOTP(self.secret, interval=TOTP_STEP_S).at(step * TOTP_STEP_S)


@dataclass
class Site:
    """The application under test: where it answers and who may sign in."""

    base_url: str
    folder: Path
    accounts: dict[str, DemoAccount]
    # Each role's signed-in cookies, once a test has signed it in through the pages
    # (the sign-in form allows few posts a minute from one address).
    signed_in: dict[str, Any] = field(default_factory=dict)

    def account(self, role: str) -> DemoAccount:
        return self.accounts[role]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Debian chromium for the whole session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed (pip install -e '.[dev]')")
    executable = shutil.which("chromium")
    if executable is None:
        missing("Debian's chromium is not installed (bash scripts/system-deps.sh)")
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        playwright.stop()


def _cardtrace(args: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    """Run ``cardtrace ARGS`` in ``folder`` (so on ./instance there), with no other
    CARDTRACE_ setting; slower than the CLI tests allow on a busy machine."""
    return subprocess.run(
        [*cardtrace_command(), *args],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def site(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A fresh instance with the demo's data, served by ``cardtrace run`` on a free port."""
    folder = tmp_path_factory.mktemp("browser-site")
    init = _cardtrace(["init"], folder)
    assert init.returncode == 0, init.stderr
    # The server starts while the demo loads its data: most of either is start-up time.
    port = free_port()
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [*cardtrace_command(), "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder,
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        demo = _cardtrace(["demo", "--scale", DEMO_SCALE, "--no-serve"], folder)
    except BaseException:
        stop(server)
        raise
    if demo.returncode != 0:
        stop(server)
        pytest.fail(f"cardtrace demo failed:\n{demo.stdout[-2000:]}\n{demo.stderr[-2000:]}")
    shown = printed(demo.stdout.splitlines())
    accounts = {
        seen["role"]: DemoAccount(name, seen["role"], seen["password"], seen.get("secret"))
        for name, seen in shown.items()
    }
    bound = re.search(r"^  demo\.merchant +merchant of (\S+)$", demo.stdout, re.MULTILINE)
    if bound and "merchant" in accounts:
        accounts["merchant"].party = bound.group(1)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base_url}/healthz", server, timeout=90)
        yield Site(base_url, folder, accounts)
    finally:
        stop(server)
        log.close()


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


class Browsing:
    """One test's view of the site: pages in contexts of their own, screenshots, and the
    console's Content-Security-Policy violations."""

    def __init__(self, browser: Browser, site: Site, test_name: str) -> None:
        self.browser = browser
        self.site = site
        self.contexts: list[BrowserContext] = []
        self.console: list[str] = []
        self.csp_violations: list[str] = []
        self.shots = SCREENSHOTS / _folder_name(test_name)
        self._shot = 0
        shutil.rmtree(self.shots, ignore_errors=True)
        self.shots.mkdir(parents=True)

    def new_page(self, *, storage_state: Any = None) -> Page:
        """A page in a new context (its own cookies), in English unless switched."""
        context = self.browser.new_context(
            base_url=self.site.base_url,
            locale="en-US",
            viewport={"width": 1280, "height": 900},
            storage_state=storage_state,
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.on("console", self._on_console)
        self.contexts.append(context)
        return context.new_page()

    def _on_console(self, message: ConsoleMessage) -> None:
        text = f"{message.type}: {message.text} ({message.location.get('url', '')})"
        self.console.append(text)
        if CSP_MESSAGE in message.text:
            self.csp_violations.append(text)

    def shot(self, page: Page, name: str) -> Path:
        """Save a full-page screenshot as the next NN-<name>.png of this test."""
        self._shot += 1
        path = self.shots / f"{self._shot:02d}-{_folder_name(name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def sign_in(self, page: Page, role: str) -> None:
        """Sign in through the pages: password, then (staff) the TOTP code."""
        account = self.site.account(role)
        page.goto("/sign-in")
        page.fill("#username", account.username)
        page.fill("#password", account.password)
        with page.expect_navigation():
            page.click("main form button[type=submit]")
        if account.secret is not None:
            self._refused(page, account, "/sign-in/code")
            page.fill("#code", account.totp())
            with page.expect_navigation():
                page.click("main form button[type=submit]")
        self._refused(page, account, None)
        self.site.signed_in[role] = page.context.storage_state()

    @staticmethod
    def _refused(page: Page, account: DemoAccount, expected: str | None) -> None:
        """Fail with what the sign-in page says, if it refused (a wrong code, or the
        sign-in rate limit: 10 posts a minute from one address)."""
        if expected is not None and page.url.endswith(expected):
            return
        if expected is None and "/sign-in" not in page.url:
            return
        alert = page.locator("main [role=alert]")
        said = alert.inner_text() if alert.count() else "(nothing)"
        raise AssertionError(f"{account.username} was refused at {page.url}: {said}")

    def page_as(self, role: str) -> Page:
        """A page signed in as the demo's ``role``: with the cookies of an earlier sign-in
        in this session, else through the sign-in pages."""
        if role in self.site.signed_in:
            page = self.new_page(storage_state=self.site.signed_in[role])
            page.goto("/")
            if "/sign-in" not in page.url:
                return page
            page.context.close()
            self.contexts.remove(page.context)
        page = self.new_page()
        self.sign_in(page, role)
        return page

    def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):
                context.close()


@pytest.fixture()
def browse(browser: Browser, site: Site, request: pytest.FixtureRequest) -> Iterator[Browsing]:
    """This test's browsing; it fails the test if a page broke the CSP."""
    browsing = Browsing(browser, site, request.node.name)
    try:
        yield browsing
    finally:
        browsing.close()
    assert not browsing.csp_violations, "CSP violations:\n" + "\n".join(browsing.csp_violations)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests are slow: mark them so (-m 'not slow' leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.slow)

"""End-to-end fixtures: the real stack of tests/integration plus Debian's Chromium driven by Playwright.

The browser is /usr/bin/chromium from Debian (tools/ensure-chromium.sh installs it); Playwright only
drives it (`executable_path`), it never downloads a browser of its own.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("SOC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BOARD_VIEWPORT = {"width": 1920, "height": 1080}
INBOX_VIEWPORT = {"width": 1400, "height": 1000}


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def chromium_path() -> str:
    # `make test` runs the script first; running it here too (a no-op when all is installed) keeps
    # `pytest tests/e2e` working on a fresh machine.
    script = ROOT / "tools" / "ensure-chromium.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"{script} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}; run tools/ensure-chromium.sh")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path):
    # Module scope, not session: Playwright's sync API runs an asyncio loop in this thread while it
    # is started, which would break the pytest-asyncio tests that run after this directory.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()



class Pages:
    """Opens board, inbox and sites pages signed in as users (tests/support.py Pipeline.add_user); records
    console errors, page errors and dialogs."""

    def __init__(self, browser, pipeline):
        self.browser = browser
        self.pipeline = pipeline
        self.contexts = []
        self.pages = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []

    def _page(self, viewport):
        context = self.browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

        def on_dialog(dialog):
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        self.pages.append(page)
        return page

    def user(self, department: str, role: str | None = None, name: str | None = None) -> str:
        """A new user of this test's own (unique id), in `department` with `role` (by default the centre's duty
        officer, the leadership's leader, a department's clerk); returns the user id."""
        from tests.support import CONFIG, marker

        default = {"ops_centre": "duty_officer", CONFIG.district.leadership: "leader"}.get(department, "clerk")
        user_id = f"e2e-{marker()}{marker()[:4]}"  # letters: no run of digits that reads as a phone number
        return self.pipeline.add_user(user_id, department, role or default, name=name)

    def sign_in(self, page, user_id: str, password: str | None = None) -> None:
        """Sign in on the page's form with a user name and password."""
        from tests.support import TEST_PASSWORD

        page.fill("#user", user_id)
        page.fill("#password", TEST_PASSWORD if password is None else password)
        page.click("#signin-form button[type=submit]")

    def board(self, department: str = "ops_centre", name: str = "张值班", token: str | None = None,
              user: str | None = None, role: str | None = None):
        """The board signed in as a new user of `department` (or as `user`), or with the wall screen's `token`;
        connected, with its first snapshot in."""
        from playwright.sync_api import expect

        page = self._page(BOARD_VIEWPORT)
        page.goto(f"{self.pipeline.worker.url}/")
        if token:
            page.click("#wall-link")
            page.fill("#token", token)
            page.click("#wall-form button[type=submit]")
        else:
            self.sign_in(page, user or self.user(department, role, name))
        expect(page.locator("#conn")).to_have_attribute("data-state", "connected", timeout=15_000)
        self.wait_snapshot(page)
        return page

    @staticmethod
    def wait_snapshot(page) -> None:
        # The first snapshot is in: the board shows the current tickets, and live events follow it. Polled with
        # page.evaluate: wait_for_function's polling evaluates a string in the page, which the pages' CSP
        # (no 'unsafe-eval') refuses whenever the first check is not already true.
        from tests.support import poll

        poll(lambda: page.evaluate("() => Boolean(window.SOC_BOARD && window.SOC_BOARD.stats.snapshots >= 1)"),
             15, "the board's first snapshot", 0.1)

    def inbox(self, department: str, name: str = "李工", user: str | None = None, role: str | None = None):
        """The inbox signed in as a new user of `department` (or as `user`), its first poll in."""
        from playwright.sync_api import expect

        page = self._page(INBOX_VIEWPORT)
        page.goto(f"{self.pipeline.worker.url}/inbox")
        self.sign_in(page, user or self.user(department, role, name))
        expect(page.locator("#conn")).to_have_attribute("data-state", "connected", timeout=15_000)
        return page

    def sites(self, department: str = "construction_safety", user: str | None = None):
        """The site registration page, signed in (or, for a department that may not use it, refused)."""
        page = self._page(INBOX_VIEWPORT)
        page.goto(f"{self.pipeline.worker.url}/sites")
        self.sign_in(page, user or self.user(department))
        return page

    def close(self, failed_test: str | None, artifacts: Path) -> None:
        if failed_test:
            safe = re.sub(r"[^\w.-]+", "_", failed_test)[:120]
            for number, page in enumerate(self.pages):
                try:
                    page.screenshot(path=str(artifacts / f"failed-{safe}-{number}.png"), full_page=True)
                except Exception:  # the page may be gone; the test's own failure is what matters
                    pass
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(request, browser, pipeline, artifacts) -> Iterator[Pages]:  # noqa: F811
    opened = Pages(browser, pipeline)
    yield opened
    report = getattr(request.node, "rep_call", None)
    opened.close(request.node.name if report is not None and report.failed else None, artifacts)
    assert not opened.page_errors, f"JavaScript errors on the page: {opened.page_errors}"
    assert not opened.dialogs, f"a page opened a dialog (injected script?): {opened.dialogs}"


@pytest.fixture
def wait_ready(pipeline) -> Callable[[float], None]:  # noqa: F811
    from streams.ops.devstack import http_ok
    from tests.support import poll

    def wait(timeout: float = 180.0) -> None:
        def ready() -> bool:
            proc = pipeline.worker.process
            if proc.popen.poll() is not None:
                pytest.fail(f"worker exited with {proc.popen.returncode}:\n{pipeline.worker.log_tail()}")
            return http_ok(f"{pipeline.worker.url}/readyz/processing")

        poll(ready, timeout, "the worker to be ready again", 0.25)

    return wait

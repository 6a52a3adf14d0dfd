"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium); never a downloaded browser.

Without Chromium the tests are skipped with a message, except in CI, where that fails.
"""

from __future__ import annotations

import os

import pytest

from benchmarks.render import CHROMIUM, CHROMIUM_ARGS  # one Chromium, started one way, for tests and benchmarks
from tests.conftest import in_ci


@pytest.fixture(scope="session", autouse=True)
def _allow_orm_beside_playwright():
    # Playwright's sync API keeps an event loop in this thread; Django's ORM calls from the
    # test body and its database fixtures are still synchronous and safe. (Subprocesses
    # of other tests drop this variable: see tests.conftest.subprocess_env.)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "e2e" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM}: apt-get install chromium to run the browser tests."
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture
def csp_violations(page):
    """Console messages about blocked scripts or styles; a test asserts this stays empty."""
    found: list[str] = []
    page.on(
        "console",
        lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return found


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    """Every browser runs in a known zone (a test may force another), so the one reload after the
    browser first reports its zone never lands in the middle of a test."""
    from tests.e2e.calendar_browser import BROWSER_ZONE

    return {**browser_context_args, "timezone_id": BROWSER_ZONE}


@pytest.fixture
def js_errors(page):
    """Uncaught JavaScript errors on the page; a test asserts this stays empty."""
    found: list[str] = []
    page.on("pageerror", lambda error: found.append(str(error)))
    return found


@pytest.fixture
def page_loads(page):
    """Every full page load (the "load" event) from the moment a test starts counting."""
    found: list[str] = []
    page.on("load", lambda p: found.append(p.url))
    return found

"""Helpers shared by the calendar and booking browser tests."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.factories import TEST_PASSWORD

# Every browser of the e2e tests runs in this zone unless a test forces another (see conftest).
BROWSER_ZONE = "Europe/London"


def sign_in(page: Page, live_server, membership) -> None:
    """Sign in and wait until the browser's zone has reached the server (so no reload follows later)."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(membership.user.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/time-zone/") and r.request.method == "POST"):
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(membership.clinic.name)


def mark_page(page: Page) -> None:
    """A marker that a full page load would wipe out."""
    page.evaluate("window.__marker = 1")


def still_marked(page: Page) -> bool:
    return page.evaluate("window.__marker") == 1

"""Helpers shared by the calendar and booking browser tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from playwright.sync_api import Locator, Page, expect

from tests.factories import TEST_PASSWORD

# Every browser of the e2e tests runs in this zone unless a test forces another (see conftest).
BROWSER_ZONE = "Europe/London"
WINTER_DAY = dt.date(2027, 1, 11)  # a Monday, in the future; London = UTC then
DAY_VIEW = f"?view=day&date={WINTER_DAY.isoformat()}"


def sign_in(page: Page, live_server, membership) -> None:
    """Sign in and wait until the browser's zone has reached the server (so no reload follows later)."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(membership.user.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/time-zone/") and r.request.method == "POST"):
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(membership.clinic.name)


def mark_page(page: Page) -> None:
    """A marker that a full page load would wipe out."""
    page.evaluate("window.__marker = 1")


def still_marked(page: Page) -> bool:
    return page.evaluate("window.__marker") == 1


def open_day(page: Page, live_server) -> None:
    page.goto(f"{live_server.url}/calendar/{DAY_VIEW}")
    expect(page.locator("body")).to_have_attribute("data-viewer-zone", BROWSER_ZONE)
    expect(page.locator(".zone-label")).to_have_text(f"Times shown in {BROWSER_ZONE}")
    expect(page.locator("h1.cal-title")).to_have_text("Monday 11 January 2027")


def tip(page: Page) -> Locator:
    return page.locator("dialog#tip")


def find_and_pick(page: Page, typed: str, listed: str) -> None:
    """Type into "Find the patient" (results follow as you type) and click the patient."""
    box = tip(page).get_by_label("Find the patient")
    expect(box).to_be_visible()
    box.press_sequentially(typed, delay=50)
    pick = tip(page).locator("#booking-results").get_by_role("link", name=listed)
    expect(pick).to_have_count(1)
    pick.click()
    expect(tip(page).get_by_role("region", name="Patient")).to_be_visible()


# htmx wires up swapped-in links and forms in its settle step, a moment after the swap; a person
# reading the popup never beats it, a test's key press can.
ARM_SETTLE = """() => {
    window.__settled = false;
    document.body.addEventListener("htmx:afterSettle", () => { window.__settled = true; }, { once: true });
}"""


def settle_after(page: Page, action: Callable[[], object]) -> None:
    """Do something that swaps content in with htmx, and wait until htmx has settled it."""
    page.evaluate(ARM_SETTLE)
    action()
    page.wait_for_function("() => window.__settled === true")


def press_and_settle(page: Page, key: str) -> None:
    """Press a key that swaps something in with htmx, and wait until htmx has settled it."""
    settle_after(page, lambda: page.keyboard.press(key))

"""A clinician turns on two-way sync with Google in the browser: Sync Calendar → Connect with Google →
the fake Google's consent (it sends the browser straight back) → Choose your Default Calendar → connected,
the clinic's event pushed to the new calendar → Disconnect."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

from calendar_sync.models import GoogleConnection, GoogleState
from clinic.celery import app
from tests.calendar_sync import google_helpers
from tests.calendar_sync.google_helpers import EMAIL
from tests.e2e.calendar_browser import sign_in
from tests.factories import OtherEventFactory

pytestmark = pytest.mark.django_db(transaction=True)

# The two-way sync tests' fixtures: the fake Google wired into settings, a clinician with a practitioner.
google = google_helpers.google
clinician = google_helpers.clinician

SHOTS = "/tmp/shots"


@pytest.fixture(autouse=True)
def tasks_run_in_process():
    """Sync tasks run eagerly in the live server's thread, even when REDIS_URL names a broker (CI): no worker
    runs beside the browser tests."""
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


def screenshot(page: Page, name: str) -> None:
    """A full-page picture for a person to review; never fails the test."""
    try:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, name), full_page=True)
    except (OSError, PlaywrightError):
        pass


def two_way_card(page: Page) -> Locator:
    return page.get_by_role("region", name="Two-way sync with Google Calendar")


def choose_two_way(page: Page, live_server, membership, practitioner) -> None:
    """Sign in, allow sync and save two-way sync: the Connect with Google card appears."""
    sign_in(page, live_server, membership)
    page.goto(f"{live_server.url}/sync/")
    expect(page.get_by_role("heading", name=f"Calendar sync: {practitioner.name}")).to_be_visible()
    page.get_by_label("Allow your calendar to sync").check()
    page.get_by_role("group", name="Sync type").get_by_label("Two-way sync with Google Calendar").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Sync settings saved.")).to_be_visible()
    expect(two_way_card(page).get_by_role("button", name="Connect with Google")).to_be_visible()


def test_connect_two_way_sync_choose_the_default_calendar_then_disconnect(
    page, live_server, csp_violations, js_errors, google, clinic_a, clinician
):
    membership, practitioner = clinician
    starts = (timezone.now() + dt.timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    event = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Team meeting", starts_at=starts)
    google.set_browser_user(EMAIL)
    choose_two_way(page, live_server, membership, practitioner)

    # Off to Google (the page's CSP allows that form redirect); the fake has the account signed in and sends
    # the browser straight back with a code.
    two_way_card(page).get_by_role("button", name="Connect with Google").click()

    expect(page).to_have_url(re.compile(r"/sync/google/default/\?practitioner="))
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose your Default Calendar")
    expect(page.get_by_text(f"Connected to Google as {EMAIL}.")).to_be_visible()
    recommended = page.get_by_label(f"A new Google calendar for {clinic_a.name}")
    expect(recommended).to_be_checked()
    expect(page.locator("label", has=recommended).locator(".badge")).to_have_text("Recommended")
    expect(page.get_by_label(f"{EMAIL} (your primary calendar)")).not_to_be_checked()
    expect(page.get_by_text("⚠ Not recommended.")).to_be_visible()
    screenshot(page, "google-default-calendar.png")
    page.get_by_role("button", name="Use this calendar").click()

    expect(page).to_have_url(re.compile(r"/sync/\?practitioner="))
    expect(page.get_by_text("Two-way sync is on. Your calendar is being sent to Google.")).to_be_visible()
    card = two_way_card(page)
    facts = card.locator("dl.facts")
    expect(facts).to_contain_text(EMAIL)
    expect(facts).to_contain_text(f"{clinic_a.name} · Clinic Scheduler")
    expect(card.get_by_role("heading", name="Secondary Google calendars")).to_be_visible()
    primary = card.get_by_role("switch", name=f"Sync {EMAIL}")
    expect(primary).to_have_text("Not synced · turn on")
    expect(primary).to_have_attribute("aria-checked", "false")
    expect(card.get_by_role("button", name="Sync now")).to_be_visible()
    screenshot(page, "google-sync-connected.png")

    connection = GoogleConnection.objects.get(practitioner=practitioner)
    assert connection.state == GoogleState.CONNECTED and connection.email == EMAIL
    assert connection.default_calendar_created and connection.default_calendar_id != EMAIL
    pushed = {e["id"]: e for e in google.events(connection.default_calendar_id)}
    assert pushed["cse" + event.public_id.hex]["summary"] == "Team meeting"

    card.get_by_role("link", name="Disconnect…").click()
    expect(page.get_by_text("Disconnect from Google?")).to_be_visible()
    screenshot(page, "google-sync-disconnect-ask.png")
    page.get_by_role("button", name="Disconnect", exact=True).click()
    expect(page.get_by_text("Disconnected from Google.")).to_be_visible()
    # Disconnecting returns to one-way sync: the subscription URL instead of the Google card.
    expect(page.get_by_role("group", name="Sync type").get_by_label("One-way sync")).to_be_checked()
    expect(page.get_by_role("region", name="Subscription URL")).to_be_visible()
    expect(card).to_have_count(0)
    assert not GoogleConnection.objects.filter(practitioner=practitioner).exists()
    assert csp_violations == []
    assert js_errors == []


def test_a_secondary_calendar_asks_google_then_the_page_says_what_google_refused_and_sync_now_retries(
    page, live_server, csp_violations, js_errors, google, clinic_a, clinician
):
    """Issue 18 in the browser: syncing a secondary calendar goes to Google's consent for reading events and back
    (the page's CSP lets the form go there); a calendar without push notifications says it is polled; a change
    Google refused shows with what to do, passes axe, and Sync now sends it."""
    from calendar_sync.models import GoogleRefusal
    from scheduling.signals import announce_calendar_change
    from tests.e2e.test_accessibility import accessibility_problems

    membership, practitioner = clinician
    google.set_browser_user(EMAIL)
    google.user_subscribe_calendar(EMAIL, "Holidays in the United Kingdom")
    choose_two_way(page, live_server, membership, practitioner)
    two_way_card(page).get_by_role("button", name="Connect with Google").click()
    page.get_by_role("button", name="Use this calendar").click()
    expect(page.get_by_text("Two-way sync is on.")).to_be_visible()

    card = two_way_card(page)
    card.get_by_role("switch", name="Sync Holidays in the United Kingdom").click()
    expect(page.get_by_text("“Holidays in the United Kingdom” is synced")).to_be_visible()
    asked = [r for r in google.requests if r.path.startswith("/o/oauth2/")]
    assert asked[-1].query["scope"] == ["https://www.googleapis.com/auth/calendar.events.readonly"]
    from calendar_sync.models import GoogleCalendar

    GoogleCalendar.objects.filter(summary="Holidays in the United Kingdom").update(push_refused=True)

    starts = (timezone.now() + dt.timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    google.fail_next(1, status=400, reason="invalid", path_contains="/events")
    event = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Audit", starts_at=starts)
    announce_calendar_change([practitioner.pk], events=[event.pk])
    assert GoogleRefusal.objects.filter(key=f"e{event.pk}").exists()
    page.reload()
    card = two_way_card(page)
    expect(card.get_by_text("Google refused 1 change to your calendar")).to_be_visible()
    expect(card.get_by_text("Google sends no change notifications for this calendar")).to_be_visible()
    screenshot(page, "google-sync-refused.png")
    assert accessibility_problems(page, "the Sync page with a refusal") == []
    card.get_by_role("button", name="Sync now").click()
    expect(page.get_by_text("Sync started.")).to_be_visible()
    expect(two_way_card(page).get_by_text("Google refused")).to_have_count(0)
    connection = GoogleConnection.objects.get(practitioner=practitioner)
    assert "Audit" in {e["summary"] for e in google.events(connection.default_calendar_id)}
    assert csp_violations == []
    assert js_errors == []

"""A recurring series from the calendar in Chromium: slot → tooltip → Book Appointment → find the patient
→ Create Recurring Series → Recurrence Settings → Preview Recurrence (a card per occurrence, Remove) → Review
→ Book Appointment; the popup closes and the grid refreshes without a page load (issue 7).

The rota: Monday, Wednesday and Friday 18:00 group sessions for two weeks from Monday 11 January 2027 (a
winter date, so London = UTC), except Wednesday 20 January, which has no session. A weekly Mon/Wed/Fri
series of 6 from the first Monday thus has one occurrence without a session.

Set SERIES_SCREENSHOTS=1 to save the preview and review steps to /tmp/series-preview.png and
/tmp/series-review.png.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Locator, Page, expect

from scheduling.models import Appointment, AppointmentStatus, DraftOccurrence, Series
from tests.e2e.calendar_browser import (
    WINTER_DAY,
    find_and_pick,
    mark_page,
    open_day,
    press_and_settle,
    sign_in,
    still_marked,
    tip,
)
from tests.factories import PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_rota

pytestmark = pytest.mark.django_db(transaction=True)

LONDON = ZoneInfo("Europe/London")
MISSING = dt.date(2027, 1, 20)  # the second Wednesday: no session
SERIES_DAYS = [dt.date(2027, 1, d) for d in (11, 13, 15, 18, 20, 22)]
BOOKED_DAYS = [d for d in SERIES_DAYS if d != MISSING]
CARD_DATES = [f"{d:%a} {d.day} {d:%b %Y}" for d in SERIES_DAYS]  # "Mon 11 Jan 2027"...
SCREENSHOTS = os.environ.get("SERIES_SCREENSHOTS") == "1"


@pytest.fixture
def rota(reception_a):
    """Mon/Wed/Fri 18:00 groups on 11, 13, 15, 18 and 22 January 2027: none on Wednesday the 20th."""
    clinic = reception_a.clinic
    therapist = PractitionerFactory(clinic=clinic, name="Dr Group")
    group = SlotTypeFactory(clinic=clinic, name="DBT skills group", capacity=8, default_length_minutes=60)
    allocate_rota(clinic, therapist, group, WINTER_DAY, dt.date(2027, 1, 18))
    allocate_rota(clinic, therapist, group, dt.date(2027, 1, 22), dt.date(2027, 1, 22), weekdays=())
    return therapist, group


def at_six(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(18), tzinfo=LONDON)


def cards(page: Page) -> Locator:
    return tip(page).locator("ol.occurrence-cards li.occurrence")


def unmatched_cards(page: Page) -> Locator:
    return tip(page).locator("ol.occurrence-cards li.occurrence.unmatched")


def review_button(page: Page) -> Locator:
    return tip(page).get_by_role("button", name="Review", exact=True)


def continue_button(page: Page) -> Locator:
    return tip(page).get_by_role("button", name="Continue anyway", exact=True)


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=f"/tmp/series-{name}.png", full_page=True)


def start_series(page: Page, live_server, reception) -> Locator:
    """Sign in, open the day, click the group slot, Book Appointment, find Rosa Vale, Create Recurring
    Series: the Recurrence Settings show. Returns the slot's cell in the grid."""
    sign_in(page, live_server, reception)
    open_day(page, live_server)
    cell = page.locator("a.slot")
    expect(cell).to_have_count(1)
    expect(cell).to_contain_text("18:00")
    expect(cell).to_contain_text("0/8")
    mark_page(page)

    cell.click()
    dialog = tip(page)
    expect(dialog).to_be_visible()
    dialog.get_by_role("link", name="Book Appointment", exact=True).click()
    find_and_pick(page, "vale", "Vale, Rosa")
    expect(review_button(page)).to_be_enabled()
    create = dialog.get_by_role("button", name="Create Recurring Series", exact=True)
    expect(create).to_be_visible()
    create.click()
    expect(dialog.get_by_role("heading", name="Book Appointment · Recurring Series")).to_be_visible()
    return cell


def tick_wednesday_and_friday(page: Page) -> None:
    on = tip(page).get_by_role("group", name="On", exact=True)
    on.get_by_role("checkbox", name="Wednesday", exact=True).check()
    on.get_by_role("checkbox", name="Friday", exact=True).check()


def book_series(page: Page) -> None:
    """Book Appointment on the review step: a 204 with calendar:changed closes the popup."""
    dialog = tip(page)
    with page.expect_response(lambda r: r.url.endswith("/series/") and r.request.method == "POST") as posted:
        dialog.get_by_role("button", name="Book Appointment", exact=True).click()
    assert posted.value.status == 204, "a series booked from the popup answers 204 + calendar:changed"
    expect(dialog).to_be_hidden()


# --- 1. Preview, remove, review, book ----------------------------------------------------------------------


def test_preview_remove_review_and_book_a_series(
    page, live_server, reception_a, rota, csp_violations, js_errors, page_loads
):
    therapist, group = rota
    patient = PatientFactory(clinic=reception_a.clinic, first_name="Rosa", last_name="Vale")
    cell = start_series(page, live_server, reception_a)
    page_loads.clear()
    dialog = tip(page)

    # Recurrence Settings: open, weekly on the slot's weekday, 6 sessions.
    settings = dialog.locator("details.recurrence-settings")
    expect(settings).to_have_attribute("open", "")
    expect(settings.locator("summary")).to_contain_text("Recurrence Settings")
    frequency = dialog.get_by_role("group", name="Recurrence type")
    expect(frequency.get_by_role("radio")).to_have_count(3)
    expect(frequency.get_by_role("radio", name="Weekly")).to_be_checked()
    expect(dialog.get_by_label("Repeat every")).to_have_value("1")
    on = dialog.get_by_role("group", name="On", exact=True)
    expect(on.get_by_role("checkbox")).to_have_count(7)
    expect(on.get_by_role("checkbox", name="Monday", exact=True)).to_be_checked()
    expect(on.get_by_role("checkbox", name="Wednesday", exact=True)).not_to_be_checked()
    ends = dialog.get_by_role("group", name="Recurrence end")
    expect(ends.get_by_role("radio", name="End after a number of sessions")).to_be_checked()
    expect(dialog.get_by_role("spinbutton", name="Sessions")).to_have_value("6")
    # The weekdays show for Weekly only (CSS :has on the chosen type).
    frequency.get_by_role("radio", name="Daily").check()
    expect(on).to_be_hidden()
    frequency.get_by_role("radio", name="Weekly").check()
    expect(on).to_be_visible()

    tick_wednesday_and_friday(page)
    dialog.get_by_role("button", name="Preview Recurrence", exact=True).click()

    # Preview: six cards, the second Wednesday without a session.
    expect(dialog.get_by_role("heading", name="Preview: 6 occurrences")).to_be_visible()
    expect(cards(page)).to_have_count(6)
    expect(cards(page).locator(".when")).to_have_text([f"{d} 18:00" for d in CARD_DATES])
    unmatched = unmatched_cards(page)
    expect(unmatched).to_have_count(1)
    expect(unmatched).to_contain_text("Wed 20 Jan 2027")
    expect(unmatched).to_contain_text("No session at this time")
    expect(unmatched.get_by_role("img", name="Warning")).to_be_visible()
    expect(unmatched).not_to_contain_text("saved as a draft")
    expect(cards(page).get_by_role("button", name="Remove", exact=False)).to_have_count(6)
    expect(review_button(page)).to_be_disabled()
    expect(continue_button(page)).to_be_visible()
    expect(dialog.locator("#unmatched-help")).to_contain_text("1 occurrence has no session with a free place.")
    screenshot(page, "preview")

    # Remove the Wednesday without a session: Review becomes active.
    dialog.get_by_role("button", name="Remove Wed 20 Jan 2027", exact=True).click()
    expect(cards(page)).to_have_count(5)
    expect(unmatched_cards(page)).to_have_count(0)
    expect(dialog.get_by_role("heading", name="Preview: 5 occurrences")).to_be_visible()
    expect(dialog).to_contain_text("1 occurrence removed.")
    expect(dialog.get_by_role("button", name="Restore all", exact=True)).to_be_visible()
    expect(cards(page).locator(".when strong")).to_have_text([d for d in CARD_DATES if not d.startswith("Wed 20")])
    expect(review_button(page)).to_be_enabled()
    expect(continue_button(page)).to_have_count(0)

    # Review.
    review_button(page).click()
    expect(dialog.get_by_role("heading", name="Review Recurring Series")).to_be_visible()
    facts = dialog.locator("section.series-preview dl.facts")
    expect(facts).to_contain_text("Rosa Vale")
    expect(facts).to_contain_text("Every week on Monday, Wednesday and Friday at 18:00")
    expect(facts).to_contain_text("5 appointments")
    expect(facts).to_contain_text("Dr Group")
    expect(facts).to_contain_text("DBT skills group")
    expect(facts).to_contain_text("SELF PAY")
    expect(facts).not_to_contain_text("Drafts")
    expect(cards(page)).to_have_count(5)
    expect(cards(page).get_by_role("button", name="Remove", exact=False)).to_have_count(0)
    assert not Appointment.objects.exists(), "nothing is booked before Book Appointment"
    screenshot(page, "review")

    book_series(page)
    expect(cell).to_contain_text("1/8")
    assert still_marked(page), "the grid is refreshed without a page load"
    assert page_loads == []

    series = Series.objects.get()
    assert (series.patient, series.practitioner, series.slot_type) == (patient, therapist, group)
    appointments = list(Appointment.objects.filter(patient=patient).order_by("starts_at"))
    assert len(appointments) == 5
    assert all(a.series_id == series.pk for a in appointments)
    assert [a.starts_at for a in appointments] == [at_six(d) for d in BOOKED_DAYS]
    assert all(a.status == AppointmentStatus.BOOKED and a.self_pay for a in appointments)
    assert all(a.slot.booked_count == 1 for a in appointments)
    assert not DraftOccurrence.objects.exists()
    assert csp_violations == []
    assert js_errors == []


# --- 2. Continue anyway: the card without a session becomes a draft -----------------------------------------


def test_continue_anyway_books_the_rest_and_saves_a_draft(
    page, live_server, reception_a, rota, csp_violations, js_errors, page_loads
):
    patient = PatientFactory(clinic=reception_a.clinic, first_name="Rosa", last_name="Vale")
    cell = start_series(page, live_server, reception_a)
    page_loads.clear()
    dialog = tip(page)
    tick_wednesday_and_friday(page)
    dialog.get_by_role("button", name="Preview Recurrence", exact=True).click()
    expect(cards(page)).to_have_count(6)
    expect(review_button(page)).to_be_disabled()

    continue_button(page).click()
    expect(dialog.get_by_role("heading", name="Review Recurring Series")).to_be_visible()
    expect(cards(page)).to_have_count(6)
    unmatched = unmatched_cards(page)
    expect(unmatched).to_have_count(1)
    expect(unmatched).to_contain_text("Wed 20 Jan 2027")
    expect(unmatched).to_contain_text("saved as a draft")
    facts = dialog.locator("section.series-preview dl.facts")
    expect(facts).to_contain_text("5 appointments")
    expect(facts).to_contain_text("Drafts")
    assert not Appointment.objects.exists()

    book_series(page)
    expect(cell).to_contain_text("1/8")
    assert still_marked(page), "the grid is refreshed without a page load"
    assert page_loads == []

    series = Series.objects.get()
    appointments = list(series.appointments.order_by("starts_at"))
    assert [a.starts_at for a in appointments] == [at_six(d) for d in BOOKED_DAYS]
    assert all(a.patient == patient for a in appointments)
    draft = DraftOccurrence.objects.get()
    assert draft.series == series
    assert draft.starts_at == at_six(MISSING)
    assert draft.is_open
    assert csp_violations == []
    assert js_errors == []


# --- 3. The keyboard ----------------------------------------------------------------------------------------


def test_preview_remove_and_restore_work_from_the_keyboard(page, live_server, reception_a, rota, js_errors):
    PatientFactory(clinic=reception_a.clinic, first_name="Rosa", last_name="Vale")
    start_series(page, live_server, reception_a)
    dialog = tip(page)

    # Space ticks a weekday; Enter on Preview Recurrence previews.
    on = dialog.get_by_role("group", name="On", exact=True)
    wednesday = on.get_by_role("checkbox", name="Wednesday", exact=True)
    wednesday.focus()
    page.keyboard.press("Space")
    expect(wednesday).to_be_checked()
    friday = on.get_by_role("checkbox", name="Friday", exact=True)
    friday.focus()
    page.keyboard.press("Space")
    expect(friday).to_be_checked()
    preview = dialog.get_by_role("button", name="Preview Recurrence", exact=True)
    preview.focus()
    expect(preview).to_be_focused()
    press_and_settle(page, "Enter")
    expect(cards(page)).to_have_count(6)

    # Tab reaches the Remove button of the unmatched card; Enter removes it.
    remove = dialog.get_by_role("button", name="Remove Wed 20 Jan 2027", exact=True)
    first_remove = dialog.get_by_role("button", name="Remove Mon 11 Jan 2027", exact=True)
    first_remove.focus()
    for _ in range(6):
        if remove.evaluate("el => el === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(remove).to_be_focused()
    press_and_settle(page, "Enter")
    expect(cards(page)).to_have_count(5)
    expect(review_button(page)).to_be_enabled()

    # Restore all, by keyboard, brings it back (and the gate with it).
    restore = dialog.get_by_role("button", name="Restore all", exact=True)
    restore.focus()
    press_and_settle(page, "Enter")
    expect(cards(page)).to_have_count(6)
    expect(unmatched_cards(page)).to_have_count(1)
    expect(review_button(page)).to_be_disabled()
    assert js_errors == []

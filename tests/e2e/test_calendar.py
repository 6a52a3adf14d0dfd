"""The calendar in Chromium: shortcuts, htmx navigation and history, tabs, the view switch,
the viewer's time zone, the slot tooltip and new events from an empty time.

Every browser here runs in a known zone (Europe/London unless a test forces another), so the
one reload after the zone is first reported happens before a test starts counting page loads.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from scheduling.models import OtherEvent
from tests.e2e.calendar_browser import BROWSER_ZONE, find_and_pick, mark_page, sign_in, still_marked
from tests.factories import (
    TEST_PASSWORD,
    LocationFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
)

pytestmark = pytest.mark.django_db(transaction=True)

WINTER_DAY = dt.date(2027, 1, 11)  # a Monday: London = UTC, New York = UTC-5, Chicago = UTC-6, Tokyo = UTC+9


def watch_csp(page: Page) -> list[str]:
    """CSP console messages of a page made outside the `page` fixture."""
    found: list[str] = []
    page.on("console", lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None)
    return found


def open_calendar(page: Page, live_server, query: str = "") -> None:
    page.goto(f"{live_server.url}/calendar/{query}")
    # The page knows the browser's zone: no reload is still to come.
    expect(page.locator("body")).to_have_attribute("data-viewer-zone", BROWSER_ZONE)
    expect(page.locator(".zone-label")).to_have_text(f"Times shown in {BROWSER_ZONE}")


def params(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def title(page: Page):
    return page.locator("h1.cal-title")


# --- 1. Alt+C -------------------------------------------------------------------------------------


def test_alt_c_from_another_page_opens_the_calendar(page, live_server, admin_a, csp_violations, js_errors):
    PractitionerFactory(clinic=admin_a.clinic, name="Dr Alt")
    sign_in(page, live_server, admin_a)
    page.goto(f"{live_server.url}/patients/")
    expect(page).to_have_url(re.compile(r"/patients/$"))
    page.keyboard.press("Alt+c")
    expect(page).to_have_url(re.compile(r"/calendar/$"))
    expect(page.locator("#calendar")).to_be_visible()
    expect(page.locator("nav.tabs").get_by_role("link", name="Dr Alt")).to_be_visible()
    assert csp_violations == []
    assert js_errors == []


# --- 2. t: today, keeping the view -------------------------------------------------------------------


def test_t_goes_to_today_and_keeps_the_month_view(page, live_server, admin_a, csp_violations, js_errors):
    PractitionerFactory(clinic=admin_a.clinic)
    sign_in(page, live_server, admin_a)
    open_calendar(page, live_server, "?view=month&date=2027-03-10")
    expect(title(page)).to_have_text("March 2027")
    expect(page.locator("table.month")).to_be_visible()
    mark_page(page)

    today = admin_a.clinic.today()
    page.keyboard.press("t")
    expect(title(page)).to_have_text(f"{today:%B %Y}")
    expect(page).to_have_url(re.compile(rf"view=month&date={today.isoformat()}"))
    assert params(page)["view"] == ["month"]
    assert params(page)["date"] == [today.isoformat()]
    expect(page.locator("table.month")).to_be_visible()
    expect(page.locator("table.month td.today .num")).to_have_text(str(today.day))
    expect(page.locator("#cal-view")).to_have_value("month")
    assert still_marked(page), "t swaps the calendar without a page load"
    assert csp_violations == []
    assert js_errors == []


# --- 3. Arrows, and the Back button ----------------------------------------------------------------


def test_arrow_keys_change_the_week_and_back_returns(page, live_server, admin_a, csp_violations, js_errors):
    PractitionerFactory(clinic=admin_a.clinic, name="Dr Week")
    sign_in(page, live_server, admin_a)
    open_calendar(page, live_server, "?view=week&date=2027-01-13")
    expect(title(page)).to_have_text("11 – 17 January 2027")
    mark_page(page)

    page.keyboard.press("ArrowRight")
    expect(title(page)).to_have_text("18 – 24 January 2027")
    expect(page).to_have_url(re.compile(r"view=week&date=2027-01-20"))
    expect(page.locator("section.cal-group h2").first).to_have_text("Mon 18 Jan")

    page.keyboard.press("ArrowLeft")
    expect(title(page)).to_have_text("11 – 17 January 2027")
    expect(page).to_have_url(re.compile(r"view=week&date=2027-01-13"))
    page.keyboard.press("ArrowLeft")
    expect(title(page)).to_have_text("4 – 10 January 2027")
    expect(page).to_have_url(re.compile(r"view=week&date=2027-01-06"))
    expect(page.locator("section.cal-group h2").first).to_have_text("Mon 4 Jan")
    assert still_marked(page), "the arrow keys swap the calendar without a page load"

    page.go_back()
    expect(page).to_have_url(re.compile(r"view=week&date=2027-01-13"))
    expect(title(page)).to_have_text("11 – 17 January 2027")
    expect(page.locator("section.cal-group h2").first).to_have_text("Mon 11 Jan")
    page.go_back()
    expect(page).to_have_url(re.compile(r"view=week&date=2027-01-20"))
    expect(title(page)).to_have_text("18 – 24 January 2027")
    assert csp_violations == []
    assert js_errors == []


def test_the_previous_and_next_links_change_the_week_and_back_returns(
    page, live_server, admin_a, csp_violations, js_errors
):
    PractitionerFactory(clinic=admin_a.clinic, name="Dr Week")
    sign_in(page, live_server, admin_a)
    open_calendar(page, live_server, "?view=week&date=2027-01-13")
    mark_page(page)
    nav = page.get_by_role("navigation", name="Calendar dates")

    nav.get_by_role("link", name="Next week").click()
    expect(title(page)).to_have_text("18 – 24 January 2027")
    expect(page).to_have_url(re.compile(r"view=week&date=2027-01-20"))
    assert still_marked(page), "the › link swaps the calendar without a page load"

    page.go_back()
    expect(page).to_have_url(re.compile(r"view=week&date=2027-01-13"))
    expect(title(page)).to_have_text("11 – 17 January 2027")
    assert csp_violations == []
    assert js_errors == []


# --- 4. Practitioner tabs and the view switch ----------------------------------------------------------


def test_a_practitioner_tab_then_the_day_view(page, live_server, admin_a, csp_violations, js_errors):
    clinic = admin_a.clinic
    alpha = PractitionerFactory(clinic=clinic, name="Dr Alpha")
    beta = PractitionerFactory(clinic=clinic, name="Dr Beta")
    normal = SlotTypeFactory(clinic=clinic, name="Normal")
    allocate_session(clinic, practitioner=alpha, day=WINTER_DAY, start=dt.time(9), slot_types=[normal] * 2)
    allocate_session(clinic, practitioner=beta, day=WINTER_DAY, start=dt.time(10), slot_types=[normal] * 3)
    sign_in(page, live_server, admin_a)
    open_calendar(page, live_server, "?view=week&date=2027-01-13")
    tabs = page.locator("nav.tabs a")
    expect(tabs).to_have_text(["All", "Dr Alpha", "Dr Beta"])
    expect(page.locator("nav.tabs a[aria-current=page]")).to_have_text("All")
    monday = page.locator(".cal-group").first
    expect(monday.locator(".cal-col-head")).to_have_text(["Dr Alpha", "Dr Beta"])
    expect(page.locator("a.slot")).to_have_count(5)
    mark_page(page)

    tabs.filter(has_text="Dr Beta").click()
    expect(page).to_have_url(re.compile(rf"tab={beta.public_id}"))
    expect(page.locator("nav.tabs a[aria-current=page]")).to_have_text("Dr Beta")
    expect(monday.locator(".cal-colwrap")).to_have_count(1)
    expect(page.locator("a.slot")).to_have_count(3)
    expect(page.locator("a.slot b")).to_have_text(["10:00", "10:10", "10:20"])
    expect(title(page)).to_have_text("11 – 17 January 2027")
    assert still_marked(page), "a tab swaps the calendar without a page load"

    page.locator("#cal-view").select_option("day")
    expect(title(page)).to_have_text("Wednesday 13 January 2027")
    expect(page).to_have_url(re.compile(r"view=day"))
    assert params(page)["view"] == ["day"]
    assert params(page)["date"] == ["2027-01-13"]
    assert params(page)["tab"] == [str(beta.public_id)]
    expect(page.locator(".cal-group")).to_have_count(1)
    expect(page.locator("section.cal-group h2")).to_have_text("Wed 13 Jan")
    expect(page.locator("nav.tabs a[aria-current=page]")).to_have_text("Dr Beta")
    expect(page.locator("#cal-view")).to_have_value("day")
    expect(page.locator("a.slot")).to_have_count(0)
    assert still_marked(page), "the view switch swaps the calendar without a page load"
    assert csp_violations == []
    assert js_errors == []


# --- 5. The shortcuts dialog ------------------------------------------------------------------------


def test_question_mark_opens_the_shortcuts_and_escape_closes_them(
    page, live_server, admin_a, csp_violations, js_errors
):
    PractitionerFactory(clinic=admin_a.clinic)
    sign_in(page, live_server, admin_a)
    open_calendar(page, live_server, "?view=week&date=2027-01-13")
    dialog = page.locator("dialog#shortcuts")
    expect(dialog).to_be_hidden()

    page.keyboard.press("?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", name="Keyboard shortcuts")).to_be_visible()
    expect(dialog).to_contain_text("Alt+C")
    expect(dialog).to_contain_text("Today (keeps the view)")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Closed, the shortcuts work again.
    page.keyboard.press("n")
    expect(title(page)).to_have_text("18 – 24 January 2027")
    assert csp_violations == []
    assert js_errors == []


# --- 6. The viewer's time zone -------------------------------------------------------------------------


@pytest.fixture
def zone_clinic(clinic_a):
    """A London clinic with a practitioner who lives in Chicago, working 09:00 London time."""
    london = LocationFactory(clinic=clinic_a, name="London surgery", time_zone="Europe/London")
    doctor = PractitionerFactory(
        clinic=clinic_a, name="Dr Abroad", default_location=london, time_zone="America/Chicago"
    )
    normal = SlotTypeFactory(clinic=clinic_a, name="Normal")
    allocate_session(
        clinic_a, practitioner=doctor, location=london, day=WINTER_DAY, start=dt.time(9), slot_types=[normal] * 3
    )
    return clinic_a


@pytest.mark.parametrize(
    ("zone", "times"),
    [
        ("America/New_York", ["04:00", "04:10", "04:20"]),
        ("Asia/Tokyo", ["18:00", "18:10", "18:20"]),
        ("Europe/London", ["09:00", "09:10", "09:20"]),
    ],
)
def test_times_are_shown_in_the_browser_zone(browser, live_server, admin_a, zone_clinic, zone, times):
    context = browser.new_context(timezone_id=zone)
    try:
        check_times_in_zone(context.new_page(), live_server, admin_a, zone, times)
    finally:
        context.close()


def check_times_in_zone(page: Page, live_server, admin_a, zone: str, times: list[str]) -> None:
    csp = watch_csp(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    day = f"/calendar/?view=day&date={WINTER_DAY.isoformat()}"

    # Straight to the calendar: signing in lands there, which reports the zone and reloads once.
    page.goto(f"{live_server.url}{day}")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Email").fill(admin_a.user.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".zone-label")).to_have_text(f"Times shown in {zone}")
    expect(page.locator("body")).to_have_attribute("data-viewer-zone", zone)
    expect(page).to_have_url(re.compile(re.escape(day) + "$"))
    expect(title(page)).to_have_text("Monday 11 January 2027")
    expect(page.locator("a.slot b").first).to_have_text(times[0])
    expect(page.locator("a.slot b")).to_have_text(times)
    expect(page.locator(".cal-hours")).to_contain_text(f"{times[0][:2]}:00")

    # The tooltip tells the same time, in the same zone.
    page.locator("a.slot").first.click()
    tip = page.locator("dialog#tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text(f"{times[0]}–{times[1]}")
    expect(tip).to_contain_text(f"({zone})")
    assert csp == []
    assert errors == []


# --- 7. The slot tooltip ----------------------------------------------------------------------------


def test_clicking_a_slot_shows_its_type_and_patient(page, live_server, admin_a, csp_violations, js_errors):
    clinic = admin_a.clinic
    doctor = PractitionerFactory(clinic=clinic, name="Dr Tip")
    normal = SlotTypeFactory(clinic=clinic, name="Normal", colour="blue")
    phone = SlotTypeFactory(clinic=clinic, name="Telephone consultation", colour="green")
    session = allocate_session(
        clinic, practitioner=doctor, day=WINTER_DAY, start=dt.time(9), slot_types=[normal, phone]
    )
    slot = session.slots.get(slot_type=phone)
    book(slot, PatientFactory(clinic=clinic, first_name="Jane", last_name="Doe", internal_id="P123456"))
    sign_in(page, live_server, admin_a)
    open_calendar(page, live_server, f"?view=day&date={WINTER_DAY.isoformat()}")
    booked = page.locator("a.slot.booked")
    expect(booked).to_have_count(1)
    expect(booked).to_contain_text("09:10")
    expect(booked).to_contain_text("Jane Doe")
    mark_page(page)

    booked.click()
    tip = page.locator("dialog#tip")
    expect(tip).to_be_visible()
    expect(tip.get_by_role("heading", level=2)).to_contain_text("Telephone consultation")
    expect(tip.locator("ul.people")).to_contain_text("Jane Doe · P123456")
    expect(tip.locator("ul.people")).to_contain_text("Booked")
    expect(tip).to_contain_text("Dr Tip")
    expect(tip).to_contain_text("09:10–09:20")
    assert still_marked(page), "the tooltip opens without a page load"
    page.keyboard.press("Escape")
    expect(tip).to_be_hidden()

    # A free slot says so.
    page.locator("a.slot:not(.booked)").click()
    expect(tip).to_be_visible()
    expect(tip.get_by_role("heading", level=2)).to_contain_text("Normal")
    expect(tip).to_contain_text("Nobody is booked in this slot yet.")
    page.keyboard.press("Escape")
    expect(tip).to_be_hidden()
    assert csp_violations == []
    assert js_errors == []


# --- 8. A new event from an empty time ------------------------------------------------------------------


def test_clicking_an_empty_time_adds_an_event(page, live_server, admin_a, csp_violations, js_errors):
    clinic = admin_a.clinic
    doctor = PractitionerFactory(clinic=clinic, name="Dr Busy")
    sign_in(page, live_server, admin_a)
    open_calendar(page, live_server, f"?view=day&date={WINTER_DAY.isoformat()}&tab={doctor.public_id}")
    column = page.locator(".cal-col")
    expect(column).to_have_count(1)
    expect(column.locator("a.ev")).to_have_count(0)
    mark_page(page)

    # The visible day is 07:00–19:00; a click a quarter of the way down is at 10:00.
    box = column.bounding_box()
    assert box is not None
    column.click(position={"x": box["width"] / 2, "y": box["height"] * 0.25 + 2})
    tip = page.locator("dialog#tip")
    expect(tip).to_be_visible()
    expect(tip.get_by_role("heading", name="New event")).to_be_visible()
    expect(tip.get_by_label("Date")).to_have_value(WINTER_DAY.isoformat())
    expect(tip.locator("#id_start_time")).to_have_value("10:00")
    expect(tip.locator("#id_end_time")).to_have_value("10:30")
    expect(tip.get_by_label("Calendar of")).to_have_value(str(doctor.public_id))

    tip.get_by_label("Title").fill("Practice meeting")
    tip.get_by_role("button", name="Add event").click()
    expect(tip).to_be_hidden()
    event = column.locator("a.ev")
    expect(event).to_have_count(1)
    expect(event).to_contain_text("Practice meeting")
    expect(event).to_contain_text("10:00–10:30")
    assert still_marked(page), "the event is added and the grid refreshed without a page load"
    expect(page).to_have_url(re.compile(rf"view=day&date={WINTER_DAY.isoformat()}&tab={doctor.public_id}"))

    stored = OtherEvent.objects.get(clinic=clinic)
    assert stored.title == "Practice meeting"
    assert stored.practitioner == doctor
    assert stored.starts_at == dt.datetime(2027, 1, 11, 10, tzinfo=dt.UTC)
    assert stored.ends_at == dt.datetime(2027, 1, 11, 10, 30, tzinfo=dt.UTC)
    assert csp_violations == []
    assert js_errors == []


def test_a_client_appointment_from_an_empty_time_opens_booking_there(
    page, live_server, admin_a, csp_violations, js_errors
):
    clinic = admin_a.clinic
    clinic.bills_insurance = False  # and a practice that does not bill insurance is never asked about it
    clinic.save()
    doctor = PractitionerFactory(clinic=clinic, name="Dr Client")
    routine = SlotTypeFactory(clinic=clinic, name="Routine")
    # A session from 10:20: the time clicked (10:00–10:30) is empty, and its slot 10:20–10:30 is free.
    allocate_session(clinic, practitioner=doctor, day=WINTER_DAY, start=dt.time(10, 20), slot_types=[routine])
    PatientFactory(clinic=clinic, first_name="Nadia", last_name="Quist")
    sign_in(page, live_server, admin_a)
    open_calendar(page, live_server, f"?view=day&date={WINTER_DAY.isoformat()}&tab={doctor.public_id}")
    column = page.locator(".cal-col")
    box = column.bounding_box()
    assert box is not None
    column.click(position={"x": box["width"] / 2, "y": box["height"] * 0.25 + 2})
    tip = page.locator("dialog#tip")
    expect(tip.get_by_role("heading", name="New event")).to_be_visible()
    expect(tip.get_by_label("Title")).to_be_visible()
    tip.get_by_label("Client appointment").check()
    # An appointment has no title or "show as": the form says what happens instead.
    expect(tip.get_by_label("Title")).to_be_hidden()
    expect(tip.get_by_text("Booking opens at this practitioner and time")).to_be_visible()
    tip.get_by_role("button", name="Find a slot and book").click()
    expect(tip.get_by_text("Find the patient")).to_be_visible()
    expect(tip).to_contain_text("10:20")
    # Typed key by key, as a person does: a fill() at once could beat htmx wiring up the new popup's search.
    find_and_pick(page, "quist", "Quist, Nadia")
    expect(tip.get_by_label("Appointment type")).to_be_visible()
    expect(tip.get_by_role("group", name="Insurance")).to_have_count(0)
    expect(tip.get_by_text("SELF PAY")).to_have_count(0)
    tip.get_by_role("button", name=re.compile("Review")).click()
    tip.get_by_role("button", name="Book appointment").click()
    expect(tip).to_be_hidden()
    expect(page.locator("#calendar-said")).to_contain_text("Booked Nadia Quist on Mon 11 Jan 2027, 10:20")
    assert OtherEvent.objects.count() == 0

    # Where nothing is free (12:00), booking opens in Create New Slot at that time, in the popup: once the
    # refreshed grid (with the booking in it) has settled, so the click lands on the new one.
    expect(column.locator("a.slot", has_text="Nadia Quist")).to_be_visible()
    box = column.bounding_box()
    assert box is not None
    column.click(position={"x": box["width"] / 2, "y": box["height"] * (5 / 12) + 2})
    expect(tip.get_by_role("heading", name="New event")).to_be_visible()
    expect(tip.locator("#id_start_time")).to_have_value("12:00")
    tip.get_by_label("Client appointment").check()
    tip.get_by_role("button", name="Find a slot and book").click()
    expect(tip.get_by_role("heading", name="Create New Slot")).to_be_visible()
    expect(tip.get_by_text("There is no free slot at that time")).to_be_visible()
    expect(tip.get_by_label("Start")).to_have_value("12:00")
    expect(tip.get_by_label("Length (minutes)")).to_have_value("30")
    assert js_errors == []

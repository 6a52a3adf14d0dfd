"""Reception books from the calendar in Chromium: slot → tooltip → Book Appointment → find the
patient → the card and the form → Review → Book appointment; the popup closes and the grid refreshes
without a page load.

As in test_calendar, every browser runs in Europe/London and waits for its zone to reach the server
before the calendar opens, so no reload follows later.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import Locator, Page, expect

from patients.models import Coverage
from scheduling.models import Appointment, Slot
from tests.e2e.calendar_browser import (
    WINTER_DAY,
    find_and_pick,
    mark_page,
    open_day,
    press_and_settle,
    settle_after,
    sign_in,
    still_marked,
    tip,
)
from tests.factories import (
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
)

pytestmark = pytest.mark.django_db(transaction=True)


def book_link(page: Page) -> Locator:
    return tip(page).get_by_role("link", name="Book Appointment", exact=True)


def review_and_book(page: Page) -> None:
    dialog = tip(page)
    dialog.get_by_role("button", name="Review", exact=True).click()
    expect(dialog.get_by_role("heading", name="Review Appointment Details")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/book/") and r.request.method == "POST") as posted:
        dialog.get_by_role("button", name="Book appointment", exact=True).click()
    assert posted.value.status == 204, "a booking from the popup answers 204 + calendar:changed"
    expect(dialog).to_be_hidden()


# --- 1. A single slot, with a primary plan ---------------------------------------------------------------


def test_reception_books_a_single_slot_with_a_primary_plan(
    page, live_server, reception_a, csp_violations, js_errors, page_loads
):
    clinic = reception_a.clinic
    doctor = PractitionerFactory(clinic=clinic, name="Dr Single")
    normal = SlotTypeFactory(clinic=clinic, name="Normal")
    session = allocate_session(clinic, practitioner=doctor, day=WINTER_DAY, start=dt.time(9), slot_types=[normal])
    slot = session.slots.get()
    patient = PatientFactory(clinic=clinic, first_name="Mary", last_name="Thornbury", internal_id="P424242")
    PatientFactory(clinic=clinic, first_name="Tom", last_name="Thornton")  # also matches "thorn"
    plan = Coverage.objects.create(
        clinic=clinic, patient=patient, payer="Acme Health", plan_name="Gold PPO", member_id="ACM-001",
        priority="primary",
    )  # fmt: skip
    other = Coverage.objects.create(
        clinic=clinic, patient=patient, payer="Blue Shield", plan_name="Silver", member_id="BS-9",
        priority="secondary",
    )  # fmt: skip
    sign_in(page, live_server, reception_a)
    open_day(page, live_server)
    cell = page.locator("a.slot")
    expect(cell).to_have_count(1)
    expect(cell).to_contain_text("09:00")
    expect(cell).to_contain_text("Normal")
    mark_page(page)
    page_loads.clear()

    cell.click()
    dialog = tip(page)
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Nobody is booked in this slot yet.")
    book_link(page).click()
    expect(dialog.get_by_role("heading", name="Book Appointment")).to_be_visible()
    expect(dialog).to_contain_text("Dr Single")

    box = dialog.get_by_label("Find the patient")
    box.press_sequentially("thorn", delay=50)
    results = dialog.locator("#booking-results li")
    expect(results).to_have_count(2)
    box.press_sequentially("b", delay=50)
    expect(results).to_have_count(1)
    expect(results).to_contain_text("Thornbury, Mary")
    expect(results).to_contain_text("P424242")
    results.get_by_role("link").click()

    card = dialog.get_by_role("region", name="Patient")
    expect(card.get_by_role("heading", name="Mary Thornbury")).to_be_visible()
    insurance = dialog.get_by_role("group", name="Insurance")
    primary = insurance.get_by_role("radio", name="Primary: Acme Health · Gold PPO")
    self_pay = insurance.get_by_role("radio", name="SELF PAY")
    expect(primary).to_be_visible()
    expect(self_pay).to_be_visible()
    expect(primary).to_be_checked()  # the primary plan comes chosen
    self_pay.check()
    primary.check()
    expect(self_pay).not_to_be_checked()
    # The secondary list never offers the plan chosen as primary, whichever that is.
    secondary = dialog.get_by_label("Secondary plan")
    offered = secondary.locator("option:not([hidden])")
    expect(offered).to_have_text(["(none)", "Secondary: Blue Shield · Silver"])
    secondary.select_option(str(other.public_id))
    insurance.get_by_role("radio", name="Secondary: Blue Shield · Silver").check()
    expect(offered).to_have_text(["(none)", "Primary: Acme Health · Gold PPO"])
    expect(secondary).to_have_value("")  # it was the secondary: no longer offered there
    primary.check()
    expect(offered).to_have_text(["(none)", "Secondary: Blue Shield · Silver"])
    expect(dialog.get_by_label("Department")).to_be_visible()
    expect(dialog.get_by_label("Appointment type")).to_have_value(str(normal.public_id))
    expect(dialog.locator("details.resources summary")).to_contain_text("Dr Single")

    dialog.get_by_role("button", name="Review", exact=True).click()
    expect(dialog.get_by_role("heading", name="Review Appointment Details")).to_be_visible()
    summary = dialog.locator("dl.facts").filter(visible=True)
    expect(summary).to_have_count(1)
    expect(summary).to_contain_text("Mary Thornbury")
    expect(summary).to_contain_text(clinic.name)
    expect(summary).to_contain_text("Monday 11 January 2027")
    expect(summary).to_contain_text("09:00–09:10")
    expect(summary).to_contain_text("Dr Single")
    expect(summary).to_contain_text("Normal")
    expect(summary).to_contain_text("Acme Health · Gold PPO")
    expect(summary).not_to_contain_text("SELF PAY")

    with page.expect_response(lambda r: r.url.endswith("/book/") and r.request.method == "POST") as posted:
        dialog.get_by_role("button", name="Book appointment", exact=True).click()
    assert posted.value.status == 204
    expect(dialog).to_be_hidden()
    booked = page.locator("a.slot.booked")
    expect(booked).to_have_count(1)
    expect(booked).to_contain_text("Mary Thornbury")
    expect(booked).to_contain_text("09:00")
    assert still_marked(page), "the grid is refreshed without a page load"
    assert page_loads == []

    appointment = Appointment.objects.get(slot=slot)
    assert appointment.patient == patient
    assert appointment.coverage == plan
    assert appointment.self_pay is False
    assert appointment.secondary_coverage is None
    assert appointment.slot_type == normal
    assert appointment.practitioner == doctor
    assert appointment.created_by == reception_a.user
    slot.refresh_from_db()
    assert slot.booked_count == 1

    # The slot's tooltip now says it is full, and offers no booking.
    booked.click()
    expect(dialog).to_be_visible()
    expect(dialog.locator("ul.people")).to_contain_text("Mary Thornbury · P424242")
    expect(dialog).to_contain_text("This slot is full.")
    expect(book_link(page)).to_have_count(0)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert still_marked(page)
    assert csp_violations == []
    assert js_errors == []


# --- 2. A group slot ----------------------------------------------------------------------------------------


def test_booking_into_a_group_slot_counts_up(page, live_server, reception_a, csp_violations, js_errors):
    clinic = reception_a.clinic
    doctor = PractitionerFactory(clinic=clinic, name="Dr Group")
    group = SlotTypeFactory(clinic=clinic, name="Antenatal class", capacity=10, default_length_minutes=30)
    session = allocate_session(clinic, practitioner=doctor, day=WINTER_DAY, start=dt.time(10), slot_types=[group])
    slot = session.slots.get()
    assert slot.capacity == 10
    for last_name in ("Alder", "Birch", "Cedar"):
        book(slot, PatientFactory(clinic=clinic, last_name=last_name))
    newcomer = PatientFactory(clinic=clinic, first_name="Gwen", last_name="Quillfeather")
    sign_in(page, live_server, reception_a)
    open_day(page, live_server)
    cell = page.locator("a.slot")
    expect(cell).to_have_count(1)
    expect(cell).to_contain_text("3/10")
    expect(cell.get_by_role("img", name="Group")).to_be_visible()
    mark_page(page)

    cell.click()
    dialog = tip(page)
    expect(dialog).to_be_visible()
    heading = dialog.get_by_role("heading", level=2)
    expect(heading).to_contain_text("Antenatal class")
    expect(heading.locator(".count")).to_have_text("3/10")
    expect(heading.get_by_role("img", name="Group slot")).to_be_visible()
    expect(dialog).to_contain_text("3 of 10 booked, 7 free")
    expect(dialog.locator("ul.people li")).to_have_count(3)
    book_link(page).click()
    expect(dialog.get_by_role("heading", name="Book Appointment")).to_be_visible()
    expect(dialog.get_by_role("img", name="Group")).to_be_visible()
    expect(dialog).to_contain_text("3/10")

    find_and_pick(page, "quill", "Quillfeather, Gwen")
    insurance = dialog.get_by_role("group", name="Insurance")
    expect(insurance.get_by_role("radio")).to_have_count(1)  # no plans: SELF PAY only
    expect(insurance.get_by_role("radio", name="SELF PAY")).to_be_checked()
    review_and_book(page)
    expect(dialog.get_by_role("heading", name="Review Appointment Details")).to_have_count(0)
    # Say what happened, and show it: the message names the patient and time; the slot is in view,
    # highlighted and focused.
    expect(page.locator("#calendar-said")).to_have_text("Booked Gwen Quillfeather on Mon 11 Jan 2027, 10:00.")
    expect(cell).to_have_attribute("id", f"slot-{slot.public_id}")
    expect(cell).to_have_class(re.compile(r"\bjust-changed\b"))
    expect(cell).to_be_focused()
    expect(cell).to_be_in_viewport()

    expect(cell).to_contain_text("4/10")
    expect(cell).not_to_have_class("full")
    assert still_marked(page), "the grid is refreshed without a page load"
    slot.refresh_from_db()
    assert slot.booked_count == 4
    appointment = Appointment.objects.get(slot=slot, patient=newcomer)
    assert appointment.self_pay is True
    assert appointment.coverage is None

    cell.click()
    expect(dialog).to_be_visible()
    expect(heading.locator(".count")).to_have_text("4/10")
    expect(dialog).to_contain_text("4 of 10 booked, 6 free")
    expect(dialog.locator("ul.people")).to_contain_text("Gwen Quillfeather")
    expect(book_link(page)).to_be_visible()
    assert csp_violations == []
    assert js_errors == []


# --- 3. A closed session ------------------------------------------------------------------------------------


def test_a_closed_session_warns_but_still_books(page, live_server, reception_a, csp_violations, js_errors):
    clinic = reception_a.clinic
    doctor = PractitionerFactory(clinic=clinic, name="Dr Closed")
    normal = SlotTypeFactory(clinic=clinic, name="Normal")
    session = allocate_session(
        clinic, practitioner=doctor, day=WINTER_DAY, start=dt.time(11), slot_types=[normal], closed_session=True
    )
    assert session.closed_session
    slot = session.slots.get()
    patient = PatientFactory(clinic=clinic, first_name="Olive", last_name="Kestrel")
    sign_in(page, live_server, reception_a)
    open_day(page, live_server)
    expect(page.locator(".sess").get_by_role("img", name="Closed session")).to_have_count(1)
    mark_page(page)

    page.locator("a.slot").click()
    dialog = tip(page)
    expect(dialog).to_be_visible()
    warning = dialog.locator("p.warning")
    expect(warning).to_contain_text("Closed session.")
    expect(warning).to_contain_text("Booking stays possible.")
    expect(warning.get_by_role("img", name="Closed session")).to_be_visible()
    expect(warning).not_to_contain_text("and it has")  # the session is still in the future
    book_link(page).click()
    expect(dialog.get_by_role("heading", name="Book Appointment")).to_be_visible()
    expect(warning).to_contain_text("Closed session.")
    expect(warning).to_contain_text("Booking stays possible.")
    expect(warning.get_by_role("img", name="Closed session")).to_be_visible()

    find_and_pick(page, "kest", "Kestrel, Olive")
    expect(warning).to_contain_text("Closed session.")  # still there beneath the patient card
    review_and_book(page)
    booked = page.locator("a.slot.booked")
    expect(booked).to_have_count(1)
    expect(booked).to_contain_text("Olive Kestrel")
    assert still_marked(page), "the grid is refreshed without a page load"
    assert Appointment.objects.get(slot=slot).patient == patient
    assert csp_violations == []
    assert js_errors == []


# --- 4. The keyboard ----------------------------------------------------------------------------------------


def focused_in(locator: Locator) -> bool:
    return locator.evaluate("el => el.contains(document.activeElement)")


def tab_to(page: Page, target: Locator, limit: int = 25) -> None:
    """Press Tab until `target` has the focus (and fail if it never does)."""
    for _ in range(limit):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    expect(target).to_be_focused()


def test_the_tooltip_and_booking_form_work_from_the_keyboard(
    page, live_server, reception_a, csp_violations, js_errors, page_loads
):
    clinic = reception_a.clinic
    doctor = PractitionerFactory(clinic=clinic, name="Dr Keys")
    normal = SlotTypeFactory(clinic=clinic, name="Normal")
    session = allocate_session(
        clinic, practitioner=doctor, day=WINTER_DAY, start=dt.time(9), slot_types=[normal, normal]
    )
    first = session.slots.order_by("starts_at").first()
    patient = PatientFactory(clinic=clinic, first_name="Kit", last_name="Keyworth")
    sign_in(page, live_server, reception_a)
    open_day(page, live_server)
    cells = page.locator("a.slot")
    expect(cells).to_have_count(2)
    mark_page(page)
    page_loads.clear()
    dialog = tip(page)

    # Enter on a focused slot opens its tooltip; Escape closes it and gives the focus back.
    cells.first.focus()
    press_and_settle(page, "Enter")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("09:00–09:10")
    assert focused_in(dialog), "the open tooltip has the focus"
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(cells.first).to_be_focused()

    # Again, and this time book: Book Appointment, the search, the result, Review, Book appointment.
    press_and_settle(page, "Enter")
    expect(dialog).to_be_visible()
    tab_to(page, book_link(page))
    press_and_settle(page, "Enter")
    box = dialog.get_by_label("Find the patient")
    expect(box).to_be_visible()
    tab_to(page, box)
    settle_after(page, lambda: page.keyboard.type("keyw", delay=50))
    pick = dialog.locator("#booking-results").get_by_role("link", name="Keyworth, Kit")
    expect(pick).to_have_count(1)
    tab_to(page, pick)
    press_and_settle(page, "Enter")
    expect(dialog.get_by_role("region", name="Patient")).to_be_visible()
    self_pay = dialog.get_by_role("radio", name="SELF PAY")
    expect(self_pay).to_be_checked()
    tab_to(page, dialog.get_by_role("button", name="Review", exact=True))
    press_and_settle(page, "Enter")
    expect(dialog.get_by_role("heading", name="Review Appointment Details")).to_be_visible()
    tab_to(page, dialog.get_by_role("button", name="Book appointment", exact=True))
    press_and_settle(page, "Enter")  # settles the refreshed grid
    expect(dialog).to_be_hidden()
    booked = page.locator("a.slot.booked")
    expect(booked).to_have_count(1)
    expect(booked).to_contain_text("Kit Keyworth")
    expect(booked).to_contain_text("09:00")
    assert still_marked(page), "the grid is refreshed without a page load"
    assert page_loads == []
    assert Appointment.objects.get(slot=first).patient == patient
    assert Slot.objects.get(pk=first.pk).booked_count == 1

    # The refreshed grid still answers the keyboard, and Escape still closes the tooltip.
    booked.focus()
    press_and_settle(page, "Enter")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("This slot is full.")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(booked).to_be_focused()
    assert csp_violations == []
    assert js_errors == []


# --- 5. The popup's content works the moment it shows ----------------------------------------------------

# Clicks "Book Appointment" as soon as the tooltip dialog opens (a quick keyboard user's Enter on the
# focused link does the same).
CLICK_BOOK_ON_OPEN = """() => {
    const dialog = document.getElementById("tip");
    new MutationObserver((_, observer) => {
        if (!dialog.open) { return; }
        observer.disconnect();
        const link = [...dialog.querySelectorAll("a")].find((a) => a.textContent.trim() === "Book Appointment");
        link.click();
    }).observe(dialog, { attributes: true, attributeFilter: ["open"] });
}"""


def test_book_appointment_works_as_soon_as_the_tooltip_shows(
    page, live_server, reception_a, csp_violations, js_errors, page_loads
):
    """Book Appointment, activated the moment the tooltip shows (it has the focus then), opens the
    booking form inside the popup, not the no-JavaScript page in place of the calendar."""
    clinic = reception_a.clinic
    doctor = PractitionerFactory(clinic=clinic, name="Dr Quick")
    allocate_session(
        clinic, practitioner=doctor, day=WINTER_DAY, start=dt.time(9), slot_types=[SlotTypeFactory(clinic=clinic)]
    )
    sign_in(page, live_server, reception_a)
    open_day(page, live_server)
    mark_page(page)
    page_loads.clear()

    page.evaluate(CLICK_BOOK_ON_OPEN)
    page.locator("a.slot").click()
    dialog = tip(page)
    expect(dialog.get_by_label("Find the patient")).to_be_visible()
    expect(dialog.get_by_role("heading", name="Book Appointment")).to_be_visible()
    assert page_loads == [], f"the booking form opens in the popup, not as a page: {page_loads}"
    assert still_marked(page)
    assert csp_violations == []
    assert js_errors == []
